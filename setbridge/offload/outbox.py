"""The offload relay's share of the hub's MQTT send queue.

The hub has one MQTT connection, and the client sends QoS 1 messages in the order they were
published. Without a bound, a flood of offload reports (each answered on ``{base}/offload/error``)
puts tens of thousands of publishes ahead of the set's answers and state, and the hub's busy
check (its count of unacknowledged publishes) refuses roll and cut because of offload work.
An :class:`Outbox` lets at most ``window`` of the relay's publishes wait for the broker at once:
the set's messages queue behind that many offload messages at most.

With a ``rate``, :meth:`Outbox.offer` also sends at most that many a second (a token bucket
holding one second's worth): a flood's answers cost the hub little beyond counting them.

>>> outbox = Outbox(bus, window=64, rate=200)
>>> outbox.offer(topic, lambda: payload)  # None: the window is full or the rate spent (the caller sheds)
>>> outbox.publish(topic, payload, stop)  # waits for room (the delivery thread)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ..bus import Delivery
from ..messages import Payload

WAIT_S = 0.5
"""How long :meth:`Outbox.publish` waits on the oldest publish before it looks at ``stop`` again."""
FORGET_S = 30.0
"""A publish unacknowledged this long no longer counts against the window (the client still
resends it after a reconnect): a lost acknowledgement cannot close the window for good."""


class _Publisher(Protocol):
    def publish(self, topic: str, payload: Payload | bytes) -> Delivery: ...


class Outbox:
    """At most ``window`` publishes through ``bus`` unacknowledged at once. Thread-safe."""

    def __init__(self, bus: _Publisher, window: int, rate: float | None = None):
        self.bus = bus
        self.window = window
        self.rate = rate
        self._tokens = rate or 0.0
        self._filled = time.monotonic()
        self._waiting: deque[tuple[float, Delivery]] = deque()
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Publishes of this outbox the broker has not acknowledged yet."""
        with self._lock:
            self._prune()
            return len(self._waiting)

    def offer(self, topic: str, build: Callable[[], Payload | bytes]) -> Delivery | None:
        """Publish what ``build()`` makes, unless ``window`` publishes are waiting already or the rate
        is spent (then None: nothing was built or sent)."""
        with self._lock:
            if self.rate is not None:
                now = time.monotonic()
                self._tokens = min(self.rate, self._tokens + (now - self._filled) * self.rate)
                self._filled = now
                if self._tokens < 1:
                    return None
            self._prune()
            if len(self._waiting) >= self.window:
                return None
            if self.rate is not None:
                self._tokens -= 1
            return self._send(topic, build())

    def publish(self, topic: str, payload: Payload | bytes, stop: threading.Event) -> Delivery | None:
        """Publish once there is room, waiting as long as it takes; None when ``stop`` is set first."""
        while True:
            with self._lock:
                self._prune()
                if len(self._waiting) < self.window:
                    return self._send(topic, payload)
                oldest = self._waiting[0][1]
            if stop.is_set():
                return None
            oldest.wait(WAIT_S)

    def _send(self, topic: str, payload: Payload | bytes) -> Delivery:
        delivery = self.bus.publish(topic, payload)
        if delivery.queued:
            self._waiting.append((time.monotonic() + FORGET_S, delivery))
        return delivery

    def _prune(self) -> None:
        """Forget the publishes the broker acknowledged (it acknowledges in order, mostly: one
        still waiting at the front holds the rest back, which only makes the window smaller)."""
        waiting = self._waiting
        now = time.monotonic()
        while waiting and (waiting[0][1].acknowledged() or waiting[0][0] < now):
            waiting.popleft()
