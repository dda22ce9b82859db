"""One LTC stream, block by block: libltc decoding, rec runs, and whether the channel is quiet.

Shared by the hub's timecode input, ``setbridge timecode`` and the bench, so all three read code
the same way::

    stream = LtcStream(48000, hold_off_s=0.5)
    for change in stream.feed(block): ...      # int16 mono samples
"""

from __future__ import annotations

import numpy as np

from .ltc import LtcDecoder
from .runs import RunChange, RunDetector

SIGNAL_DBFS = -42.0
"""A block peaking above this carries a signal (LTC is sent at -30 to 0 dBFS; one 8-bit step is -42)."""
SIGNAL_PEAK = int(32768 * 10 ** (SIGNAL_DBFS / 20))


class LtcStream:
    """Feed int16 blocks in order; :meth:`feed` returns the rec runs' starts and stops."""

    def __init__(self, rate: int, hold_off_s: float = 0.5, min_run_s: float = 0.0):
        self.rate = rate
        self.decoder = LtcDecoder(rate)
        self.runs = RunDetector(rate, hold_off_s, min_run_s)
        self.decoded = 0
        """Frames decoded so far."""
        self.last_frame = 0
        """Stream position (samples) at the end of the last block that decoded a frame."""
        self.last_quiet = 0
        """Stream position at the end of the last block without a signal."""

    @property
    def position(self) -> int:
        return self.decoder.position

    def feed(self, pcm: np.ndarray) -> list[RunChange]:
        """Decode one block. A block without a signal is not handed to libltc (it has nothing to
        decode, and the quiet between rec runs then costs next to nothing)."""
        if not len(pcm):
            return []
        if max(int(pcm.max()), -int(pcm.min())) < SIGNAL_PEAK:
            self.decoder.skip(len(pcm))
            self.last_quiet = self.position
            return self.runs.feed((), self.position)
        frames = list(self.decoder.write_s16(pcm))
        if frames:
            self.decoded += len(frames)
            self.last_frame = self.position
        return self.runs.feed(frames, self.position)

    def running_s(self) -> float:
        """How long the current rec run has lasted (0 without one)."""
        return self.runs.running_samples(self.position) / self.rate

    def restart(self) -> None:
        """The input was opened again: a new decoder, the stream position and the runs carry on."""
        position = self.position
        self.decoder.close()
        self.decoder = LtcDecoder(self.rate)
        self.decoder.position = self.last_quiet = self.last_frame = position

    def end(self) -> RunChange | None:
        """The stream ended: the stop of a run still open."""
        return self.runs.end()

    def close(self) -> None:
        self.decoder.close()
