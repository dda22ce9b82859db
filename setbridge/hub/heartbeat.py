"""The hub's heartbeat: the set's ``{base}/set/{set}/heartbeat`` on a fixed schedule.

Each beat carries the stored state (epoch, seq, state), read without the controller's lock, so a
controller busy writing to disk never delays it. A beat that comes late is counted and logged (the
hub is short of CPU); each beat also flushes the hub's counted log lines, so no summary is held back.

>>> heartbeat = Heartbeats(context, controller, tallies=desk.tallies)
>>> heartbeat.start(); heartbeat.age_s; heartbeat.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from ..messages import Heartbeat
from ..ratelog import RateLimitedLog
from .component import HubContext
from .controller import SetController

log = logging.getLogger(__name__)


class Heartbeats:
    """One thread beating every ``heartbeat_s`` while the bus is connected."""

    def __init__(self, ctx: HubContext, controller: SetController, tallies: Sequence[RateLimitedLog] = ()):
        self.bus = ctx.bus
        self.controller = controller
        self.topics = ctx.topics
        self.settings = ctx.settings.hub
        self.tallies = tallies
        """Counted log lines flushed on every beat."""
        self.late_beats = RateLimitedLog(log, "%(n)d heartbeat(s) late in %(s).1f s (%(who)s): the hub is short "
                                              "of CPU")
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and wait (2 s at most) for a beat under way."""
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout=2)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def age_s(self) -> float:
        """Seconds since the loop last ran (about ``heartbeat_s``; more: the hub is short of CPU)."""
        return time.monotonic() - self._progress

    def _loop(self) -> None:
        """Beat on a fixed schedule (no drift); a beat that comes late is counted and logged."""
        period = self.settings.heartbeat_s
        topic = self.topics.set_heartbeat(self.settings.set)
        due = time.monotonic() + period
        while not self._stopping.wait(max(0.0, due - time.monotonic())):
            now = self._progress = time.monotonic()
            if now - due > period / 2:
                self.late_beats.count(f"{now - due:.1f} s late")
            due = max(due + period, now + period / 2)
            if self.bus.connected.is_set():
                s = self.controller.stored  # one immutable snapshot, read without the lock
                self.bus.publish(topic, Heartbeat(epoch=s.epoch, seq=s.seq, state=s.state))
            for tally in (*self.tallies, self.late_beats, self.bus.refused, self.controller.save_failures):
                tally.flush()
