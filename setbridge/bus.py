"""The MQTT bus: a paho-mqtt 2.x client with birth/last will, backoff reconnects and
subscriptions that survive reconnects."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import cast

import paho.mqtt.client as mqtt
from paho.mqtt.client import ConnectFlags, DisconnectFlags
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from . import contract
from .broker_diagnosis import ConnectionWatch
from .bus_clients import MqttClient, make_client
from .config import MqttSettings
from .messages import Payload
from .ratelog import RateLimitedLog

log = logging.getLogger(__name__)

INFLIGHT = 65535
"""QoS 1 publishes sent unacknowledged at most: as many as MQTT 5 allows, or fewer when the broker's
CONNACK says so (Mosquitto's ``max_inflight_messages``, 20 unless configured; 0 announces none).
What the hub queues is bounded by its own busy answers (``hub.requests.BACKLOG_BUSY``)."""
RECEIVE_MAXIMUM = 100
"""QoS 1 messages the broker may send the hub unacknowledged (MQTT 5 Receive Maximum). The hub
acknowledges as it reads, so this is plenty; more would only move the broker's queue (its
``max_queued_messages`` counts beyond these) into the socket."""
ROUTE_CACHE = 4096
"""Topics whose routes and declarations the bus remembers (cleared when exceeded)."""

Handler = Callable[[str, bytes], None]
"""``handler(topic, payload)``, called on paho's network thread: it must not block."""
MessageHandler = Callable[[mqtt.MQTTMessage], None]
"""``handler(message)``: the whole message, with ``retain`` and (MQTT 5) ``properties``."""
SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the broker keeps a persistent MQTT 5 session of a client that is away."""
SESSION_TAKEN_OVER = 0x8E
"""MQTT 5 reason code of a broker that let another connection take this client id (Mosquitto 2.0.12
and later send it; 2.0.11 just closes the connection)."""


class Delivery:
    """One publish: whether the client took it, and whether the broker has acknowledged it.

    A QoS 1 message published while the connection is down is kept by the client and sent on
    reconnect; :meth:`acknowledged` turns true once the broker's PUBACK for it arrives.
    """

    def __init__(self, bus: Bus, topic: str, qos: int, retain: bool, info: mqtt.MQTTMessageInfo, after: int):
        self.topic, self.qos, self.retain = topic, qos, retain
        self.mid = info.mid
        self.rc = info.rc
        self._bus = bus
        self._after = after

    @property
    def error(self) -> str | None:
        """None when the client took the message on a live connection, else why not (one line)."""
        if self.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return mqtt.error_string(self.rc)

    @property
    def queued(self) -> bool:
        """The client sent the message or keeps it to send on reconnect (QoS 1)."""
        ok = self.rc == MQTTErrorCode.MQTT_ERR_SUCCESS
        return ok or (self.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.qos > 0)

    def acknowledged(self) -> bool:
        """True once the broker acknowledged the message (QoS 0: once it was written)."""
        return self.queued and self._bus._acked_after(self.mid, self._after)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for :meth:`acknowledged`."""
        if not self.queued:
            return False
        with self._bus._acks_changed:
            return self._bus._acks_changed.wait_for(self.acknowledged, timeout)

    is_published = acknowledged
    """Alias of :meth:`acknowledged` (the name paho uses)."""

    def wait_for_publish(self, timeout: float) -> bool:
        return self.wait(timeout)


class Bus:
    """One MQTT connection. ``on_connect`` hooks run after every (re)connect, in order.

    >>> bus = Bus(settings.mqtt, "setbridge-hub-1", will=("setbridge/hub/hub-1/status", b"...", True))
    >>> bus.subscribe("setbridge/set/main/request", handle_request)
    >>> bus.start()
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        will: tuple[str, bytes, bool] | None = None,
        mqtt5: bool | None = None,
        persistent: bool = False,
    ):
        """``mqtt5`` speaks MQTT 5, so that a live message published retained is recognised and
        requests carry their Response Topic; by default ``[mqtt] protocol`` decides.
        ``persistent`` keeps the broker session (subscriptions, and QoS 1 messages queued while
        away) across disconnects; it needs a fixed ``client_id`` (or user name)."""
        self.settings = settings
        self.mqtt5 = settings.protocol == "5" if mqtt5 is None else mqtt5
        self.persistent = persistent
        self._client: MqttClient = make_client(settings.client, client_id, self.mqtt5, persistent)
        self._client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(settings.reconnect_max_s)))
        # paho refuses publishes beyond this queue; the hub bounds what it queues itself (busy
        # answers), so state and heartbeats are never refused here.
        self._client.max_queued_messages_set(0)
        self._client.limit_inflight(INFLIGHT)
        if settings.username:
            password = settings.password.get_secret_value() if settings.password else None
            self._client.username_pw_set(settings.username, password)
        if settings.tls.enabled:
            self._client.tls_set(
                ca_certs=str(settings.tls.ca) if settings.tls.ca else None,
                certfile=str(settings.tls.cert) if settings.tls.cert else None,
                keyfile=str(settings.tls.key) if settings.tls.key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if will:
            topic, payload, retain = will
            self._client.will_set(topic, payload, qos=1, retain=retain)
        self._subscriptions: dict[str, tuple[int, Handler | MessageHandler, bool]] = {}
        self._whole: set[str] = set()
        self._on_retained: dict[str, Handler] = {}
        self._routes: dict[str, list[str]] = {}
        """Topic → the filters it matches, worked out once per topic (bursts repeat topics)."""
        self._specs: dict[str, contract.TopicSpec | None] = {}
        """Topic → its contract declaration, looked up once per topic."""
        self._on_connect_hooks: list[Callable[[], None]] = []
        self._on_disconnect_hooks: list[Callable[[], None]] = []
        self.connected = threading.Event()
        self.connections = 0
        """How many times the bus has connected; more than one means it lost the broker and reconnected."""
        self._stopping = False
        self._acks: dict[int, int] = {}
        """Message id → the ordinal of the broker's latest acknowledgement of that id."""
        self._ack_count = 0
        self._acks_changed = threading.Condition()
        self._unacked: deque[tuple[int, int]] = deque()
        """(message id, acknowledgements counted before it) of each QoS 1 publish, oldest first,
        until :attr:`backlog` sees its acknowledgement."""
        self._unacked_lock = threading.Lock()
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_publish = self._handle_publish
        self._client.on_connect_fail = self._handle_connect_fail
        self._client.on_subscribe = self._handle_subscribe
        self._unacked_subscriptions: set[int] = set()
        """Message ids of SUBSCRIBE packets sent on this connection that the broker has not acknowledged."""
        self._early_subacks: set[int] = set()
        """Message ids acknowledged before :meth:`_subscribe` noted them (the network thread can be first)."""
        self.watch = ConnectionWatch(settings.host, settings.port, self.mqtt5, log)
        """Why connecting fails, said at once then at a limited rate; ``watch.problem`` for status."""
        self._client.on_pre_connect = lambda client, userdata: self.watch.attempt()
        self.last_activity = time.monotonic()
        """When paho's network thread last ran one of our callbacks (monotonic)."""
        self.refused = RateLimitedLog(log, "paho refused %(n)d publish(es) in %(s).1f s (%(who)s)")

    # -- wiring ---------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler | MessageHandler, qos: int = 1, commands: bool = False,
                  whole: bool = False, on_retained: Handler | None = None) -> None:
        """Route messages matching ``topic_filter`` to ``handler(topic, payload)``, or with
        ``whole=True`` to ``handler(message)``.

        ``commands=True`` marks a command topic (requests, reports): a retained message never
        reaches the handler; the bus clears it from the broker (an empty retained payload) and
        logs one line. Empty payloads, which are such clears, are ignored. ``on_retained`` also
        marks a command topic, but hands retained messages to ``on_retained(topic, payload)``
        instead, which clears them itself.
        """
        commands = commands or on_retained is not None
        self._subscriptions[topic_filter] = (qos, handler, commands)
        self._routes = {}
        if on_retained is not None:
            self._on_retained[topic_filter] = on_retained
        else:
            self._on_retained.pop(topic_filter, None)
        if whole:
            self._whole.add(topic_filter)
        else:
            self._whole.discard(topic_filter)
        if self.connected.is_set():
            self._subscribe(topic_filter, qos, commands)

    def _subscribe(self, topic_filter: str, qos: int, commands: bool) -> None:
        if self.mqtt5:  # retain-as-published: a live retained command carries its flag too
            _, mid = self._client.subscribe(topic_filter, options=SubscribeOptions(qos=qos, retainAsPublished=commands))
        else:
            _, mid = self._client.subscribe(topic_filter, qos)
        if mid is not None:
            with self._acks_changed:
                if mid in self._early_subacks:
                    self._early_subacks.discard(mid)
                else:
                    self._unacked_subscriptions.add(mid)

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every subscription sent on this connection so far.
        The broker sends a subscription's retained messages before it handles the next packet, so
        once a later subscription is acknowledged, the QoS 0 retained messages of earlier ones are in."""
        with self._acks_changed:
            return self._acks_changed.wait_for(lambda: self.connected.is_set() and not self._unacked_subscriptions,
                                               timeout)

    def _handle_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reason_codes: list[ReasonCode],
                          properties: Properties | None) -> None:
        self.last_activity = time.monotonic()
        with self._acks_changed:
            if mid in self._unacked_subscriptions:
                self._unacked_subscriptions.discard(mid)
            else:
                self._early_subacks.add(mid)
            self._acks_changed.notify_all()

    def on_connect(self, hook: Callable[[], None]) -> None:
        self._on_connect_hooks.append(hook)

    def on_disconnect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on paho's thread whenever the connection drops (the web board says so at once)."""
        self._on_disconnect_hooks.append(hook)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho's loop thread reconnects with backoff."""
        s = self.settings
        if self.mqtt5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
            if self.persistent:
                properties.SessionExpiryInterval = SESSION_EXPIRY_S
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive_s, clean_start=not self.persistent,
                                       properties=properties)
        else:
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    def stop(self, final: tuple[str, bytes, bool] | None = None) -> None:
        """Publish ``final`` (topic, payload, retain) if connected, then disconnect cleanly."""
        self._stopping = True
        self.watch.stop()
        if final and self.connected.is_set():
            self.publish(final[0], final[1], retain=final[2]).wait(2)
        self._client.disconnect()
        self._client.loop_stop()

    # -- publishing -----------------------------------------------------------------------
    def publish(self, topic: str, payload: Payload | bytes, *, qos: int | None = None,
                retain: bool | None = None, properties: Properties | None = None) -> Delivery:
        """Publish with the QoS and retain flag :mod:`setbridge.contract` declares for ``topic``.

        ``qos``/``retain`` may only restate the declaration, except ``retain=True`` with an empty
        payload, which clears a retained message. Topics outside the contract default to QoS 1,
        not retained. ``properties`` (MQTT 5 only, such as Correlation Data) are dropped on 3.1.1.
        """
        data = payload.to_bytes() if isinstance(payload, Payload) else payload
        try:
            spec = self._specs[topic]
        except KeyError:
            if len(self._specs) > ROUTE_CACHE:
                self._specs = {}
            spec = self._specs[topic] = contract.lookup(self.settings.base_topic, topic)
        if spec is None:
            qos, retain = (1 if qos is None else qos), bool(retain)
        else:
            clearing = retain and data == b""
            if (qos is not None and qos != spec.qos) or (retain is not None and retain != spec.retain and not clearing):
                raise ValueError(f"{topic} is declared QoS {spec.qos}, retain {spec.retain} in setbridge.contract; "
                                 f"got qos={qos}, retain={retain}")
            qos, retain = spec.qos, bool(clearing) or spec.retain
        after = self._ack_count
        info = self._client.publish(topic, data, qos=qos, retain=retain, properties=properties if self.mqtt5 else None)
        # NO_CONN is not a refusal: paho keeps QoS 1 messages for the next connection.
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self.refused.count(f"{topic.rsplit('/', 1)[-1]}: {mqtt.error_string(info.rc)}")
        elif qos:
            self._unacked.append((info.mid, after))
            if len(self._unacked) > 64:
                _ = self.backlog  # drops what was acknowledged, also where nothing asks for the backlog
        return Delivery(self, topic, qos, retain, info, after)

    def _acked_after(self, mid: int, after: int) -> bool:
        return self._acks.get(mid, -1) > after

    @property
    def backlog(self) -> int:
        """QoS 1 publishes the client holds that the broker has not acknowledged yet (counted by
        the bus: paho has no public accessor for its queue). The broker acknowledges in order."""
        unacked, acks = self._unacked, self._acks
        with self._unacked_lock:
            while unacked and acks.get(unacked[0][0], -1) > unacked[0][1]:
                unacked.popleft()
            return len(unacked)

    @property
    def send_window(self) -> int:
        """QoS 1 publishes the bus sends before it waits for acknowledgements (see :data:`INFLIGHT`)."""
        return self._client.max_inflight_messages

    def stalled_for(self) -> float:
        """Seconds since paho's network thread last showed progress (callbacks)."""
        return time.monotonic() - self.last_activity

    # -- paho callbacks -------------------------------------------------------------------
    def _handle_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self.last_activity = time.monotonic()
        self.watch.failed()

    def _handle_connect(self, client: mqtt.Client, userdata: object, flags: ConnectFlags, reason_code: ReasonCode,
                        properties: Properties | None) -> None:
        self.last_activity = time.monotonic()
        if reason_code.is_failure:
            self.watch.refused(str(reason_code))
            return
        self.watch.connected()
        window = getattr(properties, "ReceiveMaximum", None) if self.mqtt5 else None
        self._client.limit_inflight(min(INFLIGHT, window) if isinstance(window, int) and window > 0 else INFLIGHT)
        log.info("connected to MQTT broker %s:%d", self.settings.host, self.settings.port)
        sock = client.socket()
        if isinstance(sock, socket.socket):  # small state messages must not wait for Nagle's algorithm
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for topic_filter, (qos, _, commands) in self._subscriptions.items():
            self._subscribe(topic_filter, qos, commands)
        self.connections += 1
        self.connected.set()
        for hook in self._on_connect_hooks:
            try:
                hook()
            except Exception:
                log.exception("on-connect hook failed")

    def _handle_disconnect(self, client: mqtt.Client, userdata: object, flags: DisconnectFlags,
                           reason_code: ReasonCode, properties: Properties | None) -> None:
        self.last_activity = time.monotonic()
        was_connected = self.connected.is_set()
        self.connected.clear()
        with self._acks_changed:
            self._unacked_subscriptions.clear()  # sent again on the next connection
            self._early_subacks.clear()
        if was_connected and not self._stopping:
            if getattr(reason_code, "value", None) == SESSION_TAKEN_OVER:
                log.error("another connection logged in as MQTT user %s and replaced this one; give every program "
                          "its own broker user (see docs/deploy.md); reconnecting", self.settings.username)
            else:
                log.warning("lost the MQTT broker %s:%d (%s); reconnecting", self.settings.host, self.settings.port,
                            reason_code)
        for hook in self._on_disconnect_hooks:
            try:
                hook()
            except Exception:
                log.exception("on-disconnect hook failed")

    def _handle_publish(self, client: mqtt.Client, userdata: object, mid: int, reason_code: ReasonCode,
                        properties: Properties | None) -> None:
        self.last_activity = time.monotonic()
        # Runs on paho's thread with its message lock held: only this leaf condition is taken here.
        with self._acks_changed:
            self._ack_count += 1
            self._acks[mid] = self._ack_count
            self._acks_changed.notify_all()

    def _handle_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.last_activity = time.monotonic()
        routes = self._routes
        matched = routes.get(message.topic)
        if matched is None:
            matched = [f for f in list(self._subscriptions) if mqtt.topic_matches_sub(f, message.topic)]
            if len(routes) > ROUTE_CACHE:
                routes.clear()
            routes[message.topic] = matched
        for topic_filter in matched:
            entry = self._subscriptions.get(topic_filter)
            if entry is not None:
                _, handler, commands = entry
                if commands and (message.retain or not message.payload):
                    on_retained = self._on_retained.get(topic_filter)
                    if on_retained is not None and message.retain:
                        try:
                            on_retained(message.topic, bytes(message.payload))
                        except Exception:
                            log.exception("retained handler for %s failed on %s", topic_filter, message.topic)
                    elif message.retain and message.payload:
                        self._clear_retained(message)
                    continue
                try:
                    if topic_filter in self._whole:
                        cast(MessageHandler, handler)(message)
                    else:
                        cast(Handler, handler)(message.topic, bytes(message.payload))
                except Exception:
                    log.exception("handler for %s failed on a message from %s", topic_filter, message.topic)

    def _clear_retained(self, message: mqtt.MQTTMessage) -> None:
        """A retained command would run again at every (re)connect: remove it, never run it."""
        self.publish(message.topic, b"", retain=True)
        log.warning("ignored a retained command on %s and cleared it (%d bytes); commands must be "
                    "published without the retain flag", message.topic, len(message.payload))
