"""A small energy voice-activity tracker that hears the foreground and ends utterances early.

Energy is measured on pre-emphasised audio (so rumble and brown noise count less), smoothed
over 30 ms, and compared with three levels; a frame is speech only when it is above all of them:

* the noise floor (the quietest smoothed level of the last few seconds) plus ``margin_db``;
* with ``foreground_db``, the background plus ``foreground_db``, so that talk several dB under
  the call neither opens an utterance nor keeps one open. The background is the quiet fifth
  of the last few seconds (``BACKGROUND_QUANTILE``): babble and steady noise fill it, but one
  talker's pauses and dips do too, so a talker's own sentences never raise it (a median did, and
  cut one talker's sentence into pieces that looked said alone);
* with ``tail_drop_db``, the loudest frame of the current utterance minus ``tail_drop_db``
  (after it ends, that level falling at ``TAIL_DECAY_DB_S``), so that a reverberant tail
  counts as quiet and the utterance ends when the talker stops, not when the room does. Only
  sound that decays counts as a tail: a rising frame (the talker's next, quieter syllable) is
  speech, or the rule would cut one talker's sentence into pieces that looked said alone.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

FRAME_S = 0.01
SMOOTH_FRAMES = 3
FLOOR_WINDOW_S = 3.0
BACKGROUND_WINDOW_S = 4.0
FLOOR_MIN_DB = -75.0
PRE_EMPHASIS = 0.95
BACKGROUND_QUANTILE = 0.2
"""Which level of the last few seconds is the background: one talker's pauses and dips fill more
than this share of them, babble and steady noise do not."""
HISTORY_S = 12.0
"""Frame levels kept for :meth:`EnergyVad.level_db`."""
RISE_FRAMES = 10
RISE_DB = 3.0
RISE_HOLD_S = 0.2
"""A frame ``rise_db`` (default ``RISE_DB``) louder than the quietest of the ``RISE_FRAMES`` before it
starts a syllable, and sound within ``RISE_HOLD_S`` after is that syllable: a talker's speech, never
a reverberant tail (``tail_drop_db`` ends an utterance only on sound that decays). A large hall's
decaying tail ripples by 3-5 dB, which at 3 dB counts as new syllables and holds the utterance
open; 6 dB ends it there, but on the benchmark's location corpus it split more of the crew's
sentences into phrases that looked said alone (``[speech] tail_rise_db``)."""
TAIL_DECAY_DB_S = 40.0
"""After an utterance, how fast its tail threshold falls (a reverberant room decays faster)."""


class EnergyVad:
    """Tracks when speech was last heard; ``feed`` returns True when the block held speech."""

    def __init__(self, rate: int, margin_db: float, foreground_db: float = 0.0, tail_drop_db: float = 0.0,
                 rise_db: float = RISE_DB):
        self.frame = max(1, int(rate * FRAME_S))
        self.rate = rate
        self.margin_db = margin_db
        self.foreground_db = foreground_db
        self.tail_drop_db = tail_drop_db
        self.rise_db = rise_db
        self.position = 0.0
        self.last_speech: float | None = None
        """Position (s) of the end of the last speech frame."""
        self.segment_start: float | None = None
        """Position (s) where the current run of speech began (``None`` while silent)."""
        self.previous_end: float = -math.inf
        """Position (s) where the speech of the previous utterance ended."""
        self.peak_db = -math.inf
        """Loudest frame of the current utterance (dBFS)."""
        self._held_peak = -math.inf
        self._held_at = 0.0
        self._recent: deque[float] = deque(maxlen=SMOOTH_FRAMES)
        self._minima: deque[float] = deque(maxlen=max(1, int(FLOOR_WINDOW_S / FRAME_S / 10)))
        self._levels: deque[float] = deque(maxlen=max(1, int(BACKGROUND_WINDOW_S / FRAME_S / 10)))
        self._history: deque[tuple[float, float]] = deque(maxlen=int(HISTORY_S / FRAME_S))
        self._block_min = math.inf
        self._block_sum = 0.0
        self._frames = 0
        self._last_sample = 0.0
        self._previous: deque[float] = deque(maxlen=RISE_FRAMES)
        self._rose_at = -math.inf

    @property
    def floor_db(self) -> float:
        return max(FLOOR_MIN_DB, min(self._minima, default=self._block_min))

    @property
    def background_db(self) -> float:
        """The quiet fifth of the levels of the last few seconds (the floor until there is a history)."""
        if not self._levels:
            return self.floor_db
        levels = sorted(self._levels)
        return levels[int(BACKGROUND_QUANTILE * (len(levels) - 1))]

    def threshold_db(self, rising: bool = False) -> float:
        """The level a frame must exceed to count as speech now; a ``rising`` frame (a syllable just
        begun) is never a reverberant tail, which only decays."""
        threshold = self.floor_db + self.margin_db
        if self.foreground_db > 0:
            threshold = max(threshold, self.background_db + self.foreground_db)
        if self.tail_drop_db > 0 and not rising:
            if self.segment_start is not None:
                threshold = max(threshold, self.peak_db - self.tail_drop_db)
            else:
                held = self._held_peak - self.tail_drop_db - TAIL_DECAY_DB_S * (self.position - self._held_at)
                threshold = max(threshold, held)
        return threshold

    def feed(self, pcm: bytes) -> bool:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if not len(samples):
            return False
        emphasised = samples - PRE_EMPHASIS * np.concatenate(([self._last_sample], samples[:-1]))
        self._last_sample = float(samples[-1])
        heard = False
        for start in range(0, len(samples), self.frame):
            chunk = emphasised[start:start + self.frame]
            self._recent.append(float(np.dot(chunk, chunk)) / len(chunk))
            db = 10 * math.log10(sum(self._recent) / len(self._recent) / (32768.0 ** 2) + 1e-12)
            self.position += len(chunk) / self.rate
            self._history.append((self.position, db))
            self._block_min = min(self._block_min, db)
            self._block_sum += db
            self._frames += 1
            if self._frames % 10 == 0:
                self._minima.append(self._block_min)
                self._levels.append(self._block_sum / 10)
                self._block_min = math.inf
                self._block_sum = 0.0
            if self._previous and db > min(self._previous) + self.rise_db:
                self._rose_at = self.position
            self._previous.append(db)
            if db > self.threshold_db(rising=self.position - self._rose_at <= RISE_HOLD_S):
                heard = True
                if self.segment_start is None:
                    self.segment_start = self.position - len(chunk) / self.rate
                    self.peak_db = db
                self.peak_db = max(self.peak_db, db)
                self.last_speech = self.position
        return heard

    def level_db(self, start: float, end: float) -> float:
        """Mean energy (dBFS) of the frames between ``start`` and ``end`` s; the floor when there are none."""
        levels = [db for at, db in self._history if start < at <= end + FRAME_S]
        if not levels:
            return self.floor_db
        return 10 * math.log10(sum(10 ** (db / 10) for db in levels) / len(levels))

    def silence_s(self) -> float:
        """Seconds since the last speech frame (infinite before any speech)."""
        return math.inf if self.last_speech is None else self.position - self.last_speech

    def end_segment(self) -> None:
        if self.segment_start is not None:
            self.previous_end = self.last_speech if self.last_speech is not None else self.position
            self._held_peak, self._held_at = self.peak_db, self.position
        self.segment_start = None
        self.peak_db = -math.inf
