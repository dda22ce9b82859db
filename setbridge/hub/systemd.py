"""systemd's service notification protocol (sd_notify): READY, STATUS, WATCHDOG, STOPPING,
and a :class:`Watchdog` that is fed only while the hub's loops make progress.

systemd passes ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` in the environment; reading them here is
part of that protocol (the settings model stays the only reader of setbridge's own variables).
Outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends ``KEY=VALUE`` lines to the service manager, e.g. ``Notifier().send(READY=1)``."""

    def __init__(self, environ: Mapping[str, str] = os.environ):
        address = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and mine else None
        """The watchdog timeout in seconds, or None when systemd does not watch this process."""

    def send(self, **fields: object) -> None:
        if not self.address:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", self.address.lstrip("\0"), exc)


class Watchdog:
    """Sends ``WATCHDOG=1`` only while ``stalled()`` is empty; a stall is logged once, with names.

    >>> Watchdog(Notifier(), hub.stalled).run(stop_event)
    """

    def __init__(self, notifier: Notifier, stalled: Callable[[], list[str]]):
        self.notifier = notifier
        self.stalled = stalled
        self.tick_s = min(1.0, notifier.watchdog_s / 3) if notifier.watchdog_s else 1.0
        self._was_stalled: list[str] = []

    def tick(self) -> bool:
        """Check once; True when the watchdog was fed."""
        stalled = self.stalled()
        if stalled:
            if [s.split(" (")[0] for s in stalled] != [s.split(" (")[0] for s in self._was_stalled]:
                log.error("not feeding the systemd watchdog: %s; systemd restarts the hub if this lasts",
                          ", ".join(stalled))
                self.notifier.send(STATUS=f"stalled: {', '.join(stalled)}")
        elif self._was_stalled:
            log.warning("feeding the systemd watchdog again: every loop makes progress")
            self.notifier.send(STATUS="running")
        self._was_stalled = stalled
        if not stalled:
            self.notifier.send(WATCHDOG=1)
        return not stalled

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.tick_s):
            self.tick()
