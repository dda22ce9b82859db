"""The timecode input: the LTC channel of the ``[audio]`` input, decoded on a thread of its own.

Blocks arrive from the audio source's tap (:meth:`LtcInput.receiver`) and are decoded by libltc;
rec runs go to ``on_change`` (rec-run mode only), the health (``ok``/``fault`` and why) to
``on_health``, and :attr:`LtcInput.stamp` is the latest code for stamping events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..audio.base import Tap
from ..config import TimecodeSettings
from ..hub.component import Worker
from .ltc import LtcDecoder
from .runs import RunChange, RunDetector

log = logging.getLogger(__name__)

SIGNAL_DBFS = -42.0
"""A block peaking above this carries a signal (LTC is sent at -30 to 0 dBFS; one 8-bit step is -42)."""


@dataclass(frozen=True)
class Stamp:
    """The code to put on an event."""

    timecode: str
    fps: float
    drop_frame: bool


@dataclass(frozen=True)
class _Block:
    data: bytes
    rate: int


class _Restart:
    """The audio source was opened again: a new stream."""


class _AudioFault:
    def __init__(self, reason: str | None):
        self.reason = reason


class LtcInput(Worker):
    """A hub component; see the module docstring."""

    name = "timecode"

    def __init__(self, settings: TimecodeSettings, on_change: Callable[[RunChange], None],
                 on_health: Callable[[bool, str | None], None]):
        super().__init__()
        self.settings = settings
        self.on_change = on_change
        self.on_health = on_health
        self.stamp: Stamp | None = None
        self.rate = 0
        self._decoder: LtcDecoder | None = None
        self._runs: RunDetector | None = None
        self._last_frame = 0
        self._last_quiet = 0
        self._audio_fault: str | None = None
        self._healthy: tuple[bool, str | None] | None = None
        self.decoded = 0
        """Frames decoded since start."""

    def receiver(self) -> Tap:
        """The audio tap: hands each block of the LTC channel to this input's thread (never blocks)."""
        self.post(_Restart())
        return lambda data, rate: self.post(_Block(data, rate))

    def audio_fault(self, reason: str | None) -> None:
        """The ``[audio]`` input failed (``reason``) or works again (None)."""
        self.post(_AudioFault(reason))

    def _close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()

    def _handle(self, event: object) -> None:
        if isinstance(event, _Block):
            self._block(event)
        elif isinstance(event, _Restart) and self._decoder is not None:
            position = self._decoder.position
            self._decoder.close()
            self._decoder = LtcDecoder(self.rate)
            self._decoder.position = self._last_quiet = self._last_frame = position
        elif isinstance(event, _AudioFault):
            self._audio_fault = event.reason
            self._report()

    def _block(self, block: _Block) -> None:
        if block.rate != self.rate or self._decoder is None or self._runs is None:
            self._new_stream(block.rate)
        assert self._decoder is not None and self._runs is not None
        pcm = np.frombuffer(block.data, dtype="<i2")
        frames = list(self._decoder.write_s16(pcm))
        position = self._decoder.position
        if frames:
            self.decoded += len(frames)
            self._last_frame = position
        peak = int(np.abs(pcm.astype(np.int32)).max()) if len(pcm) else 0
        if peak < 32768 * 10 ** (SIGNAL_DBFS / 20):
            self._last_quiet = position
        changes = self._runs.feed(frames, position)
        last = self._runs.last
        if last is not None and frames:
            self.stamp = Stamp(last.timecode, self._runs.fps, last.drop_frame)
        if self.settings.mode == "rec-run":
            for change in changes:
                log.info("timecode: recorder %s at %s (%g fps)", "started" if change.recording else "stopped",
                         change.timecode, change.fps)
                self.on_change(change)
        self._report()

    def _new_stream(self, rate: int) -> None:
        if self._runs is not None and self._runs.recording and self.settings.mode == "rec-run":
            change = self._runs.check(self._runs.last.end + self._runs.hold_off if self._runs.last else 0)
            if change is not None:
                self.on_change(change)
        if self._decoder is not None:
            self._decoder.close()
        self.rate = rate
        self._decoder = LtcDecoder(rate)
        self._runs = RunDetector(rate, self.settings.hold_off_s, self.settings.min_run_s)
        self._last_frame = self._last_quiet = 0

    def _report(self) -> None:
        healthy, reason = True, None
        channel, position = self.settings.channel, self._decoder.position if self._decoder else 0
        limit = self.settings.fault_s * self.rate
        if self._audio_fault is not None:
            healthy, reason = False, f"no LTC: the [audio] input is at fault ({self._audio_fault})"
        elif self.rate and position - max(self._last_frame, self._last_quiet) >= limit:
            healthy, reason = False, (f"signal on [timecode] channel {channel} does not decode as LTC "
                                      "(wrong channel, or not timecode?)")
        elif self.rate and self.settings.mode == "free-run" and position - self._last_frame >= limit:
            healthy, reason = False, (f"no timecode on [timecode] channel {channel}; free-run code is expected "
                                      "all the time (cable, or the recorder's TC output off?)")
        if (healthy, reason) != self._healthy:
            self._healthy = (healthy, reason)
            self.on_health(healthy, reason)
