"""A small energy voice-activity tracker with an adaptive noise floor, used to end utterances early."""

from __future__ import annotations

import array
import math
import sys

FRAME_S = 0.01
FLOOR_MIN_DB = -70.0
FLOOR_RISE_DB_PER_S = 1.0


class EnergyVad:
    """Tracks when speech was last heard; ``feed`` returns True when the block held speech."""

    def __init__(self, rate: int, margin_db: float):
        self.frame = max(1, int(rate * FRAME_S))
        self.rate = rate
        self.margin_db = margin_db
        self.floor_db: float | None = None
        self.position = 0.0
        self.last_speech: float | None = None
        """Position (s) of the end of the last speech frame."""
        self.segment_start: float | None = None
        """Position (s) where the current run of speech began (``None`` while silent)."""

    def feed(self, pcm: bytes) -> bool:
        samples = array.array("h", pcm)
        if sys.byteorder == "big":
            samples.byteswap()
        heard = False
        for start in range(0, len(samples), self.frame):
            chunk = samples[start:start + self.frame]
            energy = sum(s * s for s in chunk) / max(1, len(chunk))
            db = 10 * math.log10(energy / (32768.0 ** 2) + 1e-12)
            self.position += len(chunk) / self.rate
            if self.floor_db is None:
                self.floor_db = max(db, FLOOR_MIN_DB)
            if db < self.floor_db:
                self.floor_db = max(db, FLOOR_MIN_DB)
            else:
                self.floor_db += FLOOR_RISE_DB_PER_S * len(chunk) / self.rate
            if db > self.floor_db + self.margin_db:
                heard = True
                if self.segment_start is None:
                    self.segment_start = self.position - len(chunk) / self.rate
                self.last_speech = self.position
        return heard

    def silence_s(self) -> float:
        """Seconds since the last speech frame (infinite before any speech)."""
        return math.inf if self.last_speech is None else self.position - self.last_speech

    def end_segment(self) -> None:
        self.segment_start = None
