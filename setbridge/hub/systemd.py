"""systemd's service notification protocol (sd_notify): READY, STATUS, WATCHDOG, STOPPING.

systemd passes ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` in the environment; reading them here is
part of that protocol (the settings model stays the only reader of setbridge's own variables).
Outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

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

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, **fields: object) -> None:
        if not self.address:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", self.address.lstrip("\0"), exc)
