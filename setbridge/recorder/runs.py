"""Rec-run detection: from decoded LTC frames to "the recorder started / stopped", in stream time.

The code advancing (two frames in a row, one after the other in the stream and in code; or one frame
that carries on from where the code stopped, see :data:`RESUME_FRAMES`) starts a run; the code
standing still or gone for ``hold_off_s`` ends it, so dropouts and the short bursts
of held code some recorders send when stopped never cut a take. Pure logic: no clock, no threads.

>>> runs = RunDetector(48000, hold_off_s=0.5)
>>> for change in runs.feed(decoder.write_s16(block), decoder.position): ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .ltc import DecodedFrame

DAY = 24 * 3600 * 32
"""Frame keys in a day (:attr:`DecodedFrame.key` counts 32 per second)."""
RESUME_FRAMES = 3
"""In rec run the code stands still while the recorder is stopped and goes on from there: a first
frame after a pause that lies 1 to 3 frames past the last one read (libltc completes a burst's last
frame only when signal returns, and drop frame skips two) is the recorder recording again, and
rolls at once. Any other code needs two frames in a row."""
LONGEST_FPS_DIVISOR = 20
"""A frame spanning more samples than a 20 fps frame is the last one of a burst, which libltc
completes only when signal returns: its code is right but its place is not, so it is skipped."""
FRAME_RATES = (23.976, 24.0, 25.0, 29.97, 30.0)
"""The rates told apart: by the highest frame number seen, the drop-frame flag and the measured pace."""


def guess_fps(max_frame: int, drop_frame: bool, samples_per_frame: float | None, rate: int) -> float:
    """The frame rate that fits the highest frame number, the drop-frame flag and the measured
    samples per frame (None when not yet measured: the nominal rate is assumed)."""
    if drop_frame:
        return 29.97
    candidates = [f for f in FRAME_RATES if round(f) > max_frame] or [30.0]
    if samples_per_frame is None:
        return max(candidates) if max_frame < 23 else min(candidates)
    measured = rate / samples_per_frame
    return min(candidates, key=lambda f: abs(f - measured))


@dataclass(frozen=True)
class RunChange:
    """A run started (``recording`` True) or stopped, at ``at_s`` seconds into the stream."""

    recording: bool
    at_s: float
    timecode: str
    fps: float
    drop_frame: bool


@dataclass
class _Run:
    first: DecodedFrame
    last: DecodedFrame
    started: bool = False


class RunDetector:
    """Finds rec runs in a stream of frames; feed frames with the stream position reached."""

    def __init__(self, rate: int, hold_off_s: float = 0.5, min_run_s: float = 0.0):
        self.rate = rate
        self.hold_off = round(hold_off_s * rate)
        self.min_run = round(min_run_s * rate)
        self.last: DecodedFrame | None = None
        """The newest frame decoded (for stamping events)."""
        self.max_frame = 0
        self._run: _Run | None = None
        self._stretch: tuple[DecodedFrame, DecodedFrame, int] | None = None
        """First and last frame of the current stretch of running code, and its frame count."""
        self._best: tuple[DecodedFrame, DecodedFrame, int] | None = None
        """The longest stretch so far: the pace (samples per frame) is measured on it."""

    @property
    def recording(self) -> bool:
        return self._run is not None and self._run.started

    @property
    def fps(self) -> float:
        return guess_fps(self.max_frame, bool(self.last and self.last.drop_frame), self._samples_per_frame(),
                         self.rate)

    def feed(self, frames: Iterable[DecodedFrame], position: int) -> list[RunChange]:
        """Take the frames decoded up to ``position`` (samples); the starts and stops they make."""
        changes: list[RunChange] = []
        for frame in frames:
            if not frame.reverse and frame.end - frame.start < self.rate // LONGEST_FPS_DIVISOR:
                changes.extend(self._frame(frame))
        change = self.check(position)
        if change is not None:
            changes.append(change)
        return changes

    def check(self, position: int) -> RunChange | None:
        """The stop, when the code has not advanced for the hold-off by ``position``."""
        run = self._run
        if run is None or position - run.last.end < self.hold_off:
            return None
        self._run = None
        if not run.started:
            return None
        return self._change(False, run.last, run.last.end)

    def running_samples(self, position: int) -> int:
        """Samples since the current run started, at ``position`` (0 when no run is on)."""
        return position - self._run.first.start if self._run is not None and self._run.started else 0

    def end(self) -> RunChange | None:
        """The stream ended: the stop of a run still open, where its code last advanced."""
        return self.check(self._run.last.end + self.hold_off) if self._run is not None else None

    def _frame(self, frame: DecodedFrame) -> list[RunChange]:
        previous, self.last = self.last, frame
        self.max_frame = max(self.max_frame, frame.frames)
        follows = (previous is not None and frame.start - previous.end <= max(1, frame.end - frame.start) // 2
                   and _advance(previous, frame, 2 * 32))
        first, _, count = self._stretch if follows and self._stretch else (frame, frame, 0)
        self._stretch = (first, frame, count + 1)
        if self._best is None or self._stretch[2] >= self._best[2]:
            self._best = self._stretch
        changes = [c for c in (self.check(frame.start),) if c is not None]  # a gap beyond the hold-off
        run = self._run
        if run is None:
            if follows:
                assert previous is not None
                run = self._run = _Run(previous, frame)
            elif previous is not None and 0 < self._frames_between(previous, frame) <= RESUME_FRAMES:
                run = self._run = _Run(frame, frame)  # rec run resumes where it stopped: one frame says so
            else:
                return changes
        elif follows or _advance(run.last, frame, 2 * 32 + 32 * (frame.start - run.last.end) // self.rate):
            run.last = frame  # running on, after a dropout, or from a new code (the recorder re-jammed)
        else:
            return changes  # still code, or code from elsewhere: the hold-off runs on
        if not run.started and run.last.end - run.first.start >= self.min_run:
            run.started = True
            changes.append(self._change(True, run.first, run.first.start))
        return changes

    def _frames_between(self, before: DecodedFrame, after: DecodedFrame) -> int:
        """How many frames ``after``'s code lies ahead of ``before``'s (negative when behind)."""
        nominal = round(self.fps)
        seconds = ((after.hours - before.hours) * 60 + after.minutes - before.minutes) * 60 + after.seconds - before.seconds
        return seconds * nominal + after.frames - before.frames

    def _samples_per_frame(self) -> float | None:
        if self._best is None or self._best[2] < 2:
            return None
        first, last, count = self._best
        return (last.end - first.end) / (count - 1)

    def _change(self, recording: bool, frame: DecodedFrame, position: int) -> RunChange:
        return RunChange(recording, position / self.rate, frame.timecode, self.fps, frame.drop_frame)


def _advance(before: DecodedFrame, after: DecodedFrame, most: int) -> bool:
    """True when ``after``'s code is ahead of ``before``'s by at least a frame and at most ``most`` keys."""
    delta = (after.key - before.key) % DAY
    return 0 < delta <= most
