"""The timecode input: the LTC channel, decoded on a thread of its own.

Blocks arrive from the ``[audio]`` source's tap or from an input of its own
(:mod:`.ltc_audio`), both through :meth:`LtcInput.receiver`, and are decoded by libltc;
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
from .runs import RunChange
from .stream import LtcStream

log = logging.getLogger(__name__)


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
        self._stream: LtcStream | None = None
        self._audio_fault: str | None = None
        self._healthy: tuple[bool, str | None] | None = None
        self.heard_s = 0.0
        """Seconds of LTC-channel audio handled since start (its runs and health already reported)."""

    def receiver(self) -> Tap:
        """The audio tap: hands each block of the LTC channel to this input's thread (never blocks)."""
        self.post(_Restart())
        return lambda data, rate: self.post(_Block(data, rate))

    def audio_fault(self, reason: str | None) -> None:
        """The ``[audio]`` input failed (``reason``) or works again (None)."""
        self.post(_AudioFault(reason))

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def _handle(self, event: object) -> None:
        if isinstance(event, _Block):
            self._block(event)
        elif isinstance(event, _Restart) and self._stream is not None:
            self._stream.restart()
        elif isinstance(event, _AudioFault):
            self._audio_fault = event.reason
            self._report()

    def _block(self, block: _Block) -> None:
        if self._stream is None or block.rate != self._stream.rate:
            self._new_stream(block.rate)
        assert self._stream is not None
        changes = self._stream.feed(np.frombuffer(block.data, dtype="<i2"))
        runs = self._stream.runs
        if runs.last is not None and self._stream.last_frame == self._stream.position:
            self.stamp = Stamp(runs.last.timecode, runs.fps, runs.last.drop_frame)
        self._report()  # first: code that decodes again is healthy before its start counts
        if self.settings.mode == "rec-run":
            for change in changes:
                log.info("timecode: recorder %s at %s (%g fps)", "started" if change.recording else "stopped",
                         change.timecode, change.fps)
                self.on_change(change)
        self.heard_s += len(block.data) / 2 / block.rate

    def _new_stream(self, rate: int) -> None:
        if self._stream is not None:
            change = self._stream.end()
            if change is not None and self.settings.mode == "rec-run":
                self.on_change(change)  # a new rate is a new input: the recorder's run on the old one is over
            self._stream.close()
        self._stream = LtcStream(rate, self.settings.hold_off_s, self.settings.min_run_s)

    def _report(self) -> None:
        healthy, reason = True, None
        stream, channel = self._stream, self.settings.channel
        if self._audio_fault is not None:
            healthy, reason = False, f"no LTC: its audio input is at fault ({self._audio_fault})"
        elif stream is not None and stream.position - max(stream.last_frame, stream.last_quiet) >= self._limit():
            healthy, reason = False, (f"signal on [timecode] channel {channel} does not decode as LTC "
                                      "(wrong channel, or not timecode?)")
        elif (stream is not None and self.settings.mode == "free-run"
              and stream.position - stream.last_frame >= self._limit()):
            healthy, reason = False, (f"no timecode on [timecode] channel {channel}; free-run code is expected "
                                      "all the time (cable, or the recorder's TC output off?)")
        elif stream is not None and self.settings.mode == "rec-run" and stream.running_s() > self.settings.stuck_s:
            healthy, reason = False, (f"the code has run for more than {self.settings.stuck_s:g} s without a stop: "
                                      'is the recorder in free run? (then set [timecode] mode = "free-run")')
        if (healthy, reason) != self._healthy:
            self._healthy = (healthy, reason)
            self.on_health(healthy, reason)

    def _limit(self) -> float:
        assert self._stream is not None
        return self.settings.fault_s * self._stream.rate

    @property
    def decoded(self) -> int:
        """Frames decoded since start."""
        return self._stream.decoded if self._stream is not None else 0
