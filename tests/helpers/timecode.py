"""LTC audio made by the real libltc encoder, for the timecode tests and the bench."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from setbridge.recorder.ltc import LtcEncoder


def code(rate: int, fps: float, seconds: float, start: str = "10:00:00:00", level_dbfs: float = -12.0,
         drop_frame: bool = False, encoder: LtcEncoder | None = None) -> np.ndarray:
    """``seconds`` of running LTC as int16 (from ``encoder``, continuing its code, if given)."""
    enc = encoder or LtcEncoder(rate, fps, start, drop_frame=drop_frame, level_dbfs=level_dbfs)
    return enc.encode(seconds)


def quiet(rate: int, seconds: float) -> np.ndarray:
    return np.zeros(int(rate * seconds), dtype=np.int16)


def write_wav(path: Path, rate: int, *channels: np.ndarray) -> Path:
    """A 16-bit WAV with one channel per array (shorter ones padded with silence)."""
    n = max(len(c) for c in channels)
    frames = np.zeros((n, len(channels)), dtype=np.int16)
    for i, c in enumerate(channels):
        frames[:len(c), i] = c
    with wave.open(str(path), "wb") as w:
        w.setnchannels(len(channels))
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    return path
