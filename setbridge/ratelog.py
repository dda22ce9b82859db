"""Counted, rate-limited log lines for things that can happen thousands of times a second.

The first occurrence is logged at once; after that one summary line per ``every_s`` says how
many happened and from whom, so nothing is refused silently and the log is not flooded.

>>> busy = RateLimitedLog(log, "answered %(n)d request(s) busy in %(s).1f s (%(who)s)")
>>> busy.count("script-ipad")
>>> busy.flush()        # from a periodic loop, so the last summary is not held back
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

TOP = 5
"""How many keys a summary names."""


class RateLimitedLog:
    """Counts by key; logs ``message`` with ``n``, ``s`` (seconds covered) and ``who``."""

    def __init__(self, logger: logging.Logger, message: str, every_s: float = 5.0, level: int = logging.WARNING):
        self.logger = logger
        self.message = message
        self.every_s = every_s
        self.level = level
        self.total = 0
        """Everything counted since start."""
        self._pending: Counter[str] = Counter()
        self._since = 0.0
        self._last = -float("inf")
        self._lock = threading.Lock()

    def count(self, key: str = "", n: int = 1) -> None:
        with self._lock:
            self.total += n
            if not self._pending:
                self._since = time.monotonic()
            self._pending[key or "-"] += n
        self.flush(due_only=True)

    def flush(self, due_only: bool = True) -> None:
        """Log the pending summary if ``every_s`` has passed since the last line (or now)."""
        with self._lock:
            now = time.monotonic()
            if not self._pending or (due_only and now - self._last < self.every_s):
                return
            pending, self._pending = self._pending, Counter()
            covered, self._last = now - self._since, now
        who = ", ".join(f"{k} x{v}" for k, v in pending.most_common(TOP))
        if len(pending) > TOP:
            who += f", {len(pending) - TOP} more"
        self.logger.log(self.level, self.message, {"n": sum(pending.values()), "s": covered, "who": who})
