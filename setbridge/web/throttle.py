"""How many password checks a login form may cost: per user name and address, per address, overall,
and per known device.

A try is counted when it is admitted, before its password is hashed, so forty tries sent at once
cost five checks, not forty. Nothing is locked: a refused try says how long to wait, and a browser
that has logged in as a user before carries a signed *device cookie* whose tries for that user are
counted on their own (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"), so guesses
from elsewhere, also from behind the same NAT, never keep the right person out on a known phone.

>>> throttle = LoginThrottle()
>>> throttle.admit("10.0.0.7", "ad", device=None)  # 0.0: check the password now, else seconds to wait
0.0
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable

from itsdangerous import BadSignature, TimestampSigner

WINDOW_S = 60.0
"""The sliding window every limit below counts in."""
PER_USER_ADDRESS = 5
"""Tries for one user name from one address in a window (a known device has its own count)."""
PER_ADDRESS = 10
"""Tries from one address, over all user names, in a window."""
OVERALL = 30
"""Tries from browsers without a device cookie, over every address, in a window (failed ones: a
successful login gives its slot back)."""
PER_DEVICE = 5
"""Tries for its user from one known device in a window."""
DEVICE_COOKIE = "setbridge-device"
DEVICE_DAYS = 30
"""How long a device cookie vouches for a browser after its last successful login."""
_MAX_KEYS = 10_000


class Windows:
    """Sliding-window counts of events per key, each key holding at most ``limit`` in ``window_s``."""

    def __init__(self, limit: int, window_s: float = WINDOW_S):
        self.limit = limit
        self.window_s = window_s
        self._events: dict[str, deque[float]] = {}

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may have another event (0.0: now)."""
        events = self._events.get(key)
        if events is None:
            return 0.0
        while events and now - events[0] >= self.window_s:
            events.popleft()
        if not events:
            del self._events[key]
            return 0.0
        return 0.0 if len(events) < self.limit else self.window_s - (now - events[0])

    def add(self, key: str, now: float) -> None:
        if len(self._events) >= _MAX_KEYS:
            self._prune(now)
        self._events.setdefault(key, deque()).append(now)

    def give_back(self, key: str) -> None:
        """Forget the latest event of ``key``."""
        events = self._events.get(key)
        if events:
            events.pop()

    def forget(self, key: str) -> None:
        self._events.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._events.items() if not v or now - v[-1] >= self.window_s]:
            del self._events[key]


class LoginThrottle:
    """Admits password checks within the limits above; all on the event loop, so never racing."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.user_address = Windows(PER_USER_ADDRESS)
        self.address = Windows(PER_ADDRESS)
        self.overall = Windows(OVERALL)
        self.device = Windows(PER_DEVICE)

    def admit(self, address: str, user: str, device: str | None) -> float:
        """0.0 when a check of ``user``'s password may run now (the try is counted), else the seconds
        to wait. ``device``: the id of a valid device cookie of ``user``, or None."""
        now = self.clock()
        if device is not None:
            wait = self.device.wait(device, now)
            if not wait:
                self.device.add(device, now)
            return wait
        pair = f"{address} {user}"
        wait = max(self.user_address.wait(pair, now), self.address.wait(address, now), self.overall.wait("", now))
        if not wait:
            self.user_address.add(pair, now)
            self.address.add(address, now)
            self.overall.add("", now)
        return wait

    def succeeded(self, address: str, user: str, device: str | None) -> None:
        """The right password: the tries before it no longer count against this user, address or device."""
        if device is not None:
            self.device.forget(device)
            return
        self.user_address.forget(f"{address} {user}")
        self.address.give_back(address)
        self.overall.give_back("")


class DeviceCookies:
    """Signed cookies naming a browser that logged in as a user: ``user.random-id``."""

    def __init__(self, secret: str):
        self.signer = TimestampSigner(secret, salt="setbridge-device")

    def issue(self, user: str) -> str:
        return self.signer.sign(f"{user}.{secrets.token_urlsafe(12)}").decode()

    def device(self, cookie: str | None, user: str) -> str | None:
        """The device id in ``cookie`` when it is valid, recent and for ``user``; else None."""
        if not cookie:
            return None
        try:
            value = self.signer.unsign(cookie, max_age=DEVICE_DAYS * 86400).decode()
        except (BadSignature, UnicodeDecodeError):
            return None
        owner, _, device = value.rpartition(".")
        return value if owner == user and device else None
