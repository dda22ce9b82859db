"""Who may hold an open event stream: bounded per client address and for sets nobody has heard of,
so idle streams on made-up sets never take the places meant for real phone lights.

- at most ``per_address`` streams from one address (a phone holds one, a board screen one);
- at most a tenth of the places for streams on sets the web process has not heard of (a door
  phone opened before its hub came up is one of these: it still gets its stream);
- when every place is taken, a stream on a real set (or the board) ends the oldest stream on an
  unknown set and takes its place: real sets first.

>>> gate = StreamGate(max_streams=1000, per_address=8)
>>> gate.admit("10.0.0.7", known=True, sub=subscriber)  # None: admitted, else why not
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Protocol

log = logging.getLogger(__name__)

UNKNOWN_SHARE = 10
"""Streams on unknown sets hold at most 1/UNKNOWN_SHARE of the places."""


class Endable(Protocol):
    def end(self) -> None: ...


class StreamGate:
    """Admits and releases event streams; runs on the event loop only."""

    def __init__(self, max_streams: int, per_address: int):
        self.max_streams = max_streams
        self.per_address = per_address
        self.open: dict[Endable, tuple[str, bool]] = {}
        """Every open stream → (address, on a known set), oldest first."""
        self.unknown: dict[Endable, None] = {}
        """The open streams on unknown sets, oldest first."""
        self.by_address: Counter[str] = Counter()

    @property
    def max_unknown(self) -> int:
        return max(1, self.max_streams // UNKNOWN_SHARE)

    def __len__(self) -> int:
        return len(self.open)

    def admit(self, address: str, known: bool, sub: Endable) -> str | None:
        """Count ``sub`` as open and return None, or return why it may not open (one line)."""
        if self.by_address[address] >= self.per_address:
            return f"{self.per_address} pages are open from this address already; close one"
        if not known and len(self.unknown) >= self.max_unknown:
            return (f"{self.max_unknown} pages are open on sets this board has not heard of; "
                    "check the set id in the address")
        if len(self.open) >= self.max_streams:
            if not (known and self.unknown):
                return f"{self.max_streams} pages are open already; retrying"
            oldest = next(iter(self.unknown))
            log.warning("web: ended a stream on an unknown set from %s to make room for a real one",
                        self.open[oldest][0])
            self.release(oldest)
            oldest.end()
        self.open[sub] = (address, known)
        self.by_address[address] += 1
        if not known:
            self.unknown[sub] = None
        return None

    def release(self, sub: Endable) -> None:
        """``sub`` closed (or was ended); a second release is a no-op."""
        entry = self.open.pop(sub, None)
        if entry is None:
            return
        self.unknown.pop(sub, None)
        address = entry[0]
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]
