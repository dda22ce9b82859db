"""The recorder's record tally on a GPIO input (gpiozero): closed = recording.

The same rules as rec-run timecode: closing starts at once; opening stops once it has stayed open
for ``hold_off_s`` (a contact that bounces or a short glitch never cuts a take); closed for longer
than ``stuck_s`` is reported as a fault (a stuck tally). The pin factory is the seam:
gpiozero's default on a Pi, ``MockFactory()`` in tests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..config import TimecodeSettings
from ..hub.component import Worker

log = logging.getLogger(__name__)


class TallyInput(Worker):
    """A hub component; ``on_change(recording)`` and ``on_health(healthy, reason)`` run on its thread."""

    name = "tally"

    def __init__(self, settings: TimecodeSettings, on_change: Callable[[bool], None],
                 on_health: Callable[[bool, str | None], None], pin_factory: Any = None):
        super().__init__()
        self.settings = settings
        self.on_change = on_change
        self.on_health = on_health
        self.pin_factory = pin_factory
        self.recording = False
        self._button: Any = None
        self._timer: threading.Timer | None = None
        self._generation = 0

    def _open(self) -> None:
        from gpiozero import Button

        self._button = Button(self.settings.tally_pin, pull_up=self.settings.tally_pull_up, bounce_time=None,
                              pin_factory=self.pin_factory)
        self._button.when_pressed = lambda: self.post("closed")
        self._button.when_released = lambda: self.post("open")
        if self._button.is_pressed:
            self.post("closed")

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._button is not None:
            self._button.close()
            self._button = None

    def _later(self, delay_s: float, event: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._generation += 1
        timer = threading.Timer(delay_s, self.post, args=((event, self._generation),))
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _handle(self, event: object) -> None:
        if event == "closed":
            self._later(self.settings.stuck_s, "stuck")
            if not self.recording:
                self.recording = True
                log.info("record tally: recording")
                self.on_change(True)
        elif event == "open":
            self.on_health(True, None)
            if self.recording:
                self._later(self.settings.hold_off_s, "stopped")
        elif isinstance(event, tuple) and event[1] == self._generation:
            if event[0] == "stopped" and self.recording:
                self.recording = False
                log.info("record tally: stopped")
                self.on_change(False)
            elif event[0] == "stuck":
                self.on_health(False, f"record tally closed for more than {self.settings.stuck_s:g} s "
                                      "(stuck? check the cable and [timecode] tally_pull_up)")
