"""Korean speech from espeak-ng for the voice tests, rendered once per session."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

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
