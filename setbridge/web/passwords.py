"""Password hashes for web users: scrypt from the standard library, never the password itself.

>>> h = hash_password("correct horse")
>>> verify_password("correct horse", h), verify_password("wrong", h)
(True, False)
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

N, R, P = 2**14, 8, 1
"""scrypt cost: about 16 MiB and a few tens of milliseconds per check on a Pi 4."""
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` for ``password``, with a fresh random salt."""
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for any malformed hash."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r),
                             p=int(p), maxmem=_MAXMEM, dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@functools.cache
def dummy_hash() -> str:
    """Checked against for unknown users, so a login takes as long whether or not the user exists
    (made once, when the web app starts, not when this module is imported)."""
    return hash_password(secrets.token_urlsafe(12))


class PasswordChecker:
    """Runs password checks one at a time in one thread of its own, off the event loop: scrypt's
    16 MiB is held once, never once per concurrent login, and memory freed after a check is reused
    by the next one (one thread, one malloc arena). At most ``max_waiting`` checks queue behind it
    (the login throttle admits fewer in a burst; this bound is a safety net)."""

    def __init__(self, max_waiting: int = 64):
        self.max_waiting = max_waiting
        self.waiting = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="password-check")

    async def verify(self, password: str, stored: str) -> bool | None:
        """As :func:`verify_password`; None, without checking, when the queue is full."""
        if self.waiting >= self.max_waiting:
            return None
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, verify_password, password, stored)
        finally:
            self.waiting -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
