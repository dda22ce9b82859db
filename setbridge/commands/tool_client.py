"""A short-lived MQTT client for the CLI: connect, do one thing, disconnect."""

from __future__ import annotations

import queue
import uuid

from ..bus import Bus
from ..config import MqttSettings, Settings
from ..errors import BrokerUnreachable, SetbridgeError


def tool_mqtt(settings: Settings) -> MqttSettings:
    """The broker settings a command-line tool connects with: ``[mqtt.tools]``'s user when set.

    A broker made by ``setbridge broker config`` sets every client id to its user name, so a tool
    logged in as the hub would replace the hub's own connection (its last will says offline and
    every light shows link lost): refused with a one-line error instead."""
    m = settings.mqtt
    if m.tools.username:
        return m.model_copy(update={"username": m.tools.username, "password": m.tools.password})
    if m.username and m.username == settings.hub.id:
        raise SetbridgeError(f"[mqtt] username {m.username!r} is the hub's own broker user, and a tool logged in "
                             "as it would replace the hub's connection; give the tools a user of their own in "
                             "[mqtt.tools] username/password (setbridge broker add-user NAME --role integrator)")
    return m


def connect(settings: Settings, role: str, timeout: float = 5.0) -> Bus:
    """A connected :class:`Bus`, or a one-line error naming the broker.

    The client id is only a label: the generated broker replaces it with the user name."""
    bus = Bus(tool_mqtt(settings), client_id=f"setbridge-{role}-{uuid.uuid4().hex[:8]}")
    bus.watch.quiet = True  # a failure is this function's one-line error, not a log line too
    bus.start()
    if not bus.wait_connected(timeout):
        problem = bus.watch.problem
        bus.stop()
        m = settings.mqtt
        if problem is not None:
            raise BrokerUnreachable(f"cannot reach the MQTT broker at {m.host}:{m.port}: {problem.text}",
                                    problem.kind)
        raise BrokerUnreachable(f"cannot reach the MQTT broker at {m.host}:{m.port} within {timeout:g} s; "
                                "is it running and are [mqtt] host/port/username right?", "unreachable")
    return bus


def collect(bus: Bus, topic_filter: str) -> "queue.Queue[tuple[str, bytes]]":
    """Subscribe and return a queue receiving (topic, payload) pairs."""
    q: queue.Queue[tuple[str, bytes]] = queue.Queue()
    bus.subscribe(topic_filter, lambda t, p: q.put((t, p)))
    return q
