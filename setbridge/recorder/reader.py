"""Read a recording's timecode track: the rec runs of a WAV file, for ``setbridge timecode``."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AudioError
from .runs import RunChange
from .stream import LtcStream

CHUNK_S = 0.05
"""Read in chunks as the hub does, so a file reads exactly as the live input would."""


@dataclass(frozen=True)
class RecRun:
    """One run of advancing code: where it starts and stops in the file and its code."""

    start: float
    stop: float
    fps: float
    drop_frame: bool
    start_tc: str
    stop_tc: str


def read_runs(path: Path, channel: int | None = None, hold_off_s: float = 0.5,
              min_run_s: float = 0.0) -> tuple[list[RecRun], int]:
    """The rec runs of a 16-bit WAV file's channel ``channel`` (1 = first; default: the only one, or
    the last of several, where recorders usually put timecode) and the frames decoded."""
    try:
        wav = wave.open(str(path), "rb")
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioError(f"{path}: cannot read as a WAV file ({exc}); give a 16-bit PCM .wav") from None
    with wav:
        if wav.getsampwidth() != 2:
            raise AudioError(f"{path}: only 16-bit PCM WAV is supported; convert with `sox IN -b 16 OUT.wav`")
        channels, rate = wav.getnchannels(), wav.getframerate()
        pick = channels if channel is None else channel
        if not 1 <= pick <= channels:
            raise AudioError(f"{path} has {channels} channel(s); channel {channel} does not exist (1 is the first)")
        stream = LtcStream(rate, hold_off_s, min_run_s)
        changes: list[RunChange] = []
        chunk = max(1, int(rate * CHUNK_S))
        while data := wav.readframes(chunk):
            changes += stream.feed(np.ascontiguousarray(np.frombuffer(data, dtype="<i2").reshape(-1, channels)[:, pick - 1]))
        change = stream.end()  # the file ended: a run still open stops where its code last advanced
        if change is not None:
            changes.append(change)
        decoded = stream.decoded
        stream.close()
    out: list[RecRun] = []
    for start, stop in zip(changes[0::2], changes[1::2]):
        out.append(RecRun(round(start.at_s, 3), round(stop.at_s, 3), stop.fps, start.drop_frame, start.timecode,
                          stop.timecode))
    return out, decoded
