"""A small energy voice-activity tracker used to end utterances early.

Energy is measured on pre-emphasised audio (so rumble and brown noise count less), smoothed
over 30 ms, and compared with a noise floor: the quietest smoothed level of the last few seconds.
"""

from __future__ import annotations

import array
import math
import sys
from collections import deque

FRAME_S = 0.01
SMOOTH_FRAMES = 3
FLOOR_WINDOW_S = 3.0
FLOOR_MIN_DB = -75.0
PRE_EMPHASIS = 0.95


class EnergyVad:
    """Tracks when speech was last heard; ``feed`` returns True when the block held speech."""

    def __init__(self, rate: int, margin_db: float):
        self.frame = max(1, int(rate * FRAME_S))
        self.rate = rate
        self.margin_db = margin_db
        self.position = 0.0
        self.last_speech: float | None = None
        """Position (s) of the end of the last speech frame."""
        self.segment_start: float | None = None
        """Position (s) where the current run of speech began (``None`` while silent)."""
        self._recent: deque[float] = deque(maxlen=SMOOTH_FRAMES)
        self._minima: deque[float] = deque(maxlen=max(1, int(FLOOR_WINDOW_S / FRAME_S / 10)))
        self._block_min = math.inf
        self._frames = 0
        self._last_sample = 0

    @property
    def floor_db(self) -> float:
        return max(FLOOR_MIN_DB, min(self._minima, default=self._block_min))

    def feed(self, pcm: bytes) -> bool:
        samples = array.array("h", pcm)
        if sys.byteorder == "big":
            samples.byteswap()
        heard = False
        previous = self._last_sample
        for start in range(0, len(samples), self.frame):
            chunk = samples[start:start + self.frame]
            energy = 0.0
            for s in chunk:
                d = s - PRE_EMPHASIS * previous
                energy += d * d
                previous = s
            self._recent.append(energy / max(1, len(chunk)))
            db = 10 * math.log10(sum(self._recent) / len(self._recent) / (32768.0 ** 2) + 1e-12)
            self.position += len(chunk) / self.rate
            self._block_min = min(self._block_min, db)
            self._frames += 1
            if self._frames % 10 == 0:
                self._minima.append(self._block_min)
                self._block_min = math.inf
            if db > self.floor_db + self.margin_db:
                heard = True
                if self.segment_start is None:
                    self.segment_start = self.position - len(chunk) / self.rate
                self.last_speech = self.position
        self._last_sample = previous
        return heard

    def silence_s(self) -> float:
        """Seconds since the last speech frame (infinite before any speech)."""
        return math.inf if self.last_speech is None else self.position - self.last_speech

    def end_segment(self) -> None:
        self.segment_start = None
