"""Remembered answers, so that a request repeated with the same transaction changes nothing.

An integrator that timed out sends its request again with the same ``transaction``; within
``window_s`` it gets the first answer back and the set is not touched again. Each ``source``
keeps at most a share of the memory: a script looping on requests forgets its own oldest
answers, never another source's.

>>> log = TransactionLog(window_s=600, capacity=10_000)
>>> log.recall("a7f3", ("roll", None))          # None: new, execute it
>>> log.remember("a7f3", ("roll", None), response, source="editorial")
>>> log.recall("a7f3", ("roll", None))          # the first response
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from ..messages import SetResponse

WINDOW_S = 600.0
"""How long an answer is remembered (10 minutes)."""
CAPACITY = 10_000
"""How many answers are remembered at most; the oldest go first."""
SOURCE_SHARE = CAPACITY // 4
"""How many answers one ``source`` keeps at most; its own oldest go first (the request queue's
share too): four busy sources fill the memory together, one never does."""


def key_of(transaction: Any) -> str:
    """The transaction as canonical JSON: ``42`` and ``"42"`` are different transactions."""
    if type(transaction) is str:  # the usual kinds, as json.dumps writes them, without its overhead
        return encode_basestring_ascii(transaction)
    if type(transaction) is int:
        return int.__repr__(transaction)
    return json.dumps(transaction, sort_keys=True, separators=(",", ":"))


class TransactionLog:
    """Answers by transaction, for ``window_s`` seconds and at most ``capacity`` of them. Thread-safe."""

    def __init__(self, window_s: float = WINDOW_S, capacity: int = CAPACITY, share: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self.capacity = capacity
        self.share = share if share is not None else max(1, capacity * SOURCE_SHARE // CAPACITY)
        self._clock = clock
        self._answers: OrderedDict[str, tuple[float, Hashable, SetResponse, str]] = OrderedDict()
        self._by_source: dict[str, OrderedDict[str, None]] = {}
        """Source → its remembered transactions, oldest first."""
        self._lock = threading.Lock()

    def recall(self, transaction: Any, fingerprint: Hashable) -> SetResponse | None:
        """The remembered answer to ``transaction``, or None when it is new (or forgotten).

        A transaction reused for a different request (another ``fingerprint``: action, source)
        is answered with a refusal that changes nothing.
        """
        key = key_of(transaction)
        with self._lock:
            self._expire()
            entry = self._answers.get(key)
        if entry is None:
            return None
        _, first, response, _ = entry
        if first == fingerprint:
            return response
        return SetResponse(transaction=transaction, ok=False, state=response.state, seq=response.seq,
                           error=f"transaction {key[:40]} was already used for another request in the last "
                                 f"{self.window_s / 60:g} minutes; send a new transaction")

    def remember(self, transaction: Any, fingerprint: Hashable, response: SetResponse, source: str = "") -> None:
        """Keep ``response`` for ``transaction``, counted against ``source``'s share."""
        key = key_of(transaction)
        with self._lock:
            if key in self._answers:
                self._forget(key)
            self._answers[key] = (self._clock(), fingerprint, response, source)
            mine = self._by_source.setdefault(source, OrderedDict())
            mine[key] = None
            if len(mine) > self.share:
                self._forget(next(iter(mine)))
            while len(self._answers) > self.capacity:
                self._forget(next(iter(self._answers)))

    def held_by(self, source: str) -> int:
        """How many answers ``source`` has remembered."""
        with self._lock:
            return len(self._by_source.get(source, ()))

    def _forget(self, key: str) -> None:
        _, _, _, source = self._answers.pop(key)
        mine = self._by_source[source]
        del mine[key]
        if not mine:
            del self._by_source[source]

    def __len__(self) -> int:
        return len(self._answers)

    def _expire(self) -> None:
        limit = self._clock() - self.window_s
        while self._answers:
            key, first = next(iter(self._answers.items()))
            if first[0] >= limit:
                break
            self._forget(key)
