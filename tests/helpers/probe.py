"""One MQTT probe for every test: a real paho client (MQTT 3.1.1 or 5) that records each message."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


@dataclass(frozen=True)
class Message:
    """One message as the probe received it."""

    topic: str
    payload: bytes
    data: Any
    """The payload decoded as JSON; None when it is not JSON."""
    retained: bool
    qos: int
    properties: dict[str, Any] = field(default_factory=dict)
    """MQTT 5 properties by name (``CorrelationData``, ``MessageExpiryInterval``...); empty under 3.1.1."""

    @property
    def correlation(self) -> bytes | None:
        return self.properties.get("CorrelationData")


Predicate = Callable[[Message], object]


def on(topic_end: str, **fields: object) -> Predicate:
    """A ``Probe.wait_for`` predicate: the topic ends with ``topic_end`` and the JSON payload carries ``fields``."""
    def match(m: Message) -> bool:
        return (m.topic.endswith(topic_end) and isinstance(m.data, dict)
                and all(m.data.get(k) == v for k, v in fields.items()))
    match.what = f"a message on …{topic_end} with {fields}" if fields else f"a message on …{topic_end}"  # type: ignore[attr-defined]
    return match


def at(topic: str, containing: bytes | None = None) -> Predicate:
    """A ``Probe.wait_for`` predicate: a message on exactly ``topic`` whose raw payload contains ``containing``."""
    def match(m: Message) -> bool:
        return m.topic == topic and (containing is None or containing in m.payload)
    match.what = f"a message on {topic}" + (f" containing {containing!r}" if containing is not None else "")  # type: ignore[attr-defined]
    return match


def _properties(msg: mqtt.MQTTMessage) -> dict[str, Any]:
    props = getattr(msg, "properties", None)
    if props is None:
        return {}
    names = (name.replace(" ", "") for name in props.names)
    return {name: getattr(props, name) for name in names if hasattr(props, name)}


class Probe:
    """A real paho client that subscribes to ``filters`` and records every message it receives.

    ``v5`` speaks MQTT 5; ``user`` logs in with ``password``; ``tls_ca`` connects over TLS; ``will`` is a
    retained last will (topic, payload); ``clean=False`` keeps the session. Without filters the probe may
    also be refused (see ``accepted``): it only publishes, or subscribes later with ``subscribe``.
    """

    def __init__(self, port: int, *filters: str, v5: bool = False, qos: int = 1, user: str | None = None,
                 password: str | None = None, tls_ca: Path | None = None, client_id: str | None = None,
                 will: tuple[str, str] | None = None, clean: bool = True):
        self.user = user
        self.seen: list[Message] = []
        self.result: ReasonCode | None = None
        """The broker's answer to the connect (None: none came)."""
        self.disconnects = 0
        self._cond = threading.Condition()
        self._qos = qos
        cid = client_id if client_id is not None else f"{user or 'probe'}-{uuid.uuid4().hex[:8]}"
        if v5:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
        if user is not None:
            self.client.username_pw_set(user, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        answered = threading.Event()
        subscribed = threading.Event()
        refused: list[str] = []
        subscriptions = [(f, qos) for f in filters]

        def on_connect(client: mqtt.Client, userdata: Any, flags: Any, code: ReasonCode, props: Any) -> None:
            self.result = code
            if subscriptions and not code.is_failure:
                client.subscribe(subscriptions)  # from the network thread, at once (amqtt has missed a later one)
            answered.set()

        def on_subscribe(client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any) -> None:
            refused.extend(f for (f, _), code in zip(subscriptions, codes) if code.is_failure)
            subscribed.set()

        def on_disconnect(client: mqtt.Client, userdata: Any, flags: Any, code: ReasonCode, props: Any) -> None:
            answered.set()  # refused or dropped before (or without) an answer
            with self._cond:
                self.disconnects += 1
                self._cond.notify_all()

        self.client.on_connect, self.client.on_disconnect = on_connect, on_disconnect
        self.client.on_subscribe = on_subscribe
        self.client.on_connect_fail = lambda c, u: answered.set()
        self.client.on_message = self._on_message
        if v5:
            self.client.connect("127.0.0.1", port, clean_start=clean)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        answered.wait(10)
        if filters:
            if not self.accepted:
                self.close()
                raise AssertionError(f"probe could not connect to port {port}: {self.result}")
            if not subscribed.wait(10) or refused:
                self.close()
                raise AssertionError(f"the broker refused or did not answer the subscription to {refused or filters}")

    @property
    def accepted(self) -> bool:
        """Whether the broker accepted the connect."""
        return self.result is not None and not self.result.is_failure

    def subscribe(self, *filters: str) -> list[str]:
        """Subscribe and wait for the broker's answer: the filters it refused."""
        answered = threading.Event()
        refused: list[str] = []

        def on_subscribe(client: mqtt.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any) -> None:
            refused.extend(f for f, code in zip(filters, codes) if code.is_failure)
            answered.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe([(f, self._qos) for f in filters])
        assert answered.wait(10), f"no answer from the broker to the subscription to {list(filters)}"
        return refused

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            data = json.loads(msg.payload)
        except ValueError:
            data = None
        message = Message(msg.topic, bytes(msg.payload), data, bool(msg.retain), msg.qos, _properties(msg))
        with self._cond:
            self.seen.append(message)
            self._cond.notify_all()

    def wait_for(self, predicate: Predicate, timeout: float = 5.0, what: str | None = None) -> Message:
        """The first message (received before or arriving later) for which ``predicate`` holds; after
        ``timeout`` seconds fail naming ``what`` (or the predicate's own ``what``) and the last messages."""
        found: list[Message] = []
        checked = 0

        def match() -> bool:
            nonlocal checked
            for message in self.seen[checked:]:
                checked += 1
                if predicate(message):
                    found.append(message)
                    return True
            return False

        with self._cond:
            if not self._cond.wait_for(match, timeout):
                what = what or getattr(predicate, "what", "a matching message")
                recent = [(m.topic, m.payload[:80], m.retained) for m in self.seen[-10:]]
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last seen {recent}")
        return found[0]

    def has_seen(self, predicate: Predicate) -> bool:
        """Whether a message for which ``predicate`` holds has arrived (no waiting)."""
        with self._cond:
            return any(predicate(m) for m in self.seen)

    def wait_disconnected(self, timeout: float) -> bool:
        """Whether the broker dropped the connection within ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self.disconnects > 0, timeout)

    def publish(self, topic: str, payload: bytes | str | dict = '{"v": 1}', retain: bool = False, qos: int = 1,
                **properties: Any) -> None:
        """Publish (a dict as JSON) and wait until the broker has it (QoS 1 and 2). ``properties`` are MQTT 5
        properties by name: ``ResponseTopic``, ``CorrelationData``, ``MessageExpiryInterval``..."""
        props = None
        if properties:
            props = Properties(PacketTypes.PUBLISH)
            for name, value in properties.items():
                setattr(props, name, value)
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if qos:
            info.wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
