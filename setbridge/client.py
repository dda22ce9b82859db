"""A short-lived MQTT client for the CLI: connect, do one thing, disconnect."""

from __future__ import annotations

import queue
import uuid

from .bus import Bus
from .config import Settings
from .errors import SetbridgeError


def connect(settings: Settings, role: str, timeout: float = 5.0) -> Bus:
    """A connected :class:`Bus`, or a one-line error naming the broker."""
    bus = Bus(settings.mqtt, client_id=f"setbridge-{role}-{uuid.uuid4().hex[:8]}")
    bus.start()
    if not bus.wait_connected(timeout):
        bus.stop()
        m = settings.mqtt
        raise SetbridgeError(f"cannot reach the MQTT broker at {m.host}:{m.port} within {timeout:g} s; "
                             "is it running and are [mqtt] host/port/username right?")
    return bus


def collect(bus: Bus, topic_filter: str) -> "queue.Queue[tuple[str, bytes]]":
    """Subscribe and return a queue receiving (topic, payload) pairs."""
    q: queue.Queue[tuple[str, bytes]] = queue.Queue()
    bus.subscribe(topic_filter, lambda t, p: q.put((t, p)))
    return q
