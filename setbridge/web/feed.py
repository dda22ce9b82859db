"""The web process's MQTT connections, and the fan-out of what they hear to event streams.

Two connections, each with the least role it needs and a user of its own (a broker made by
``setbridge broker config`` allows one connection per user):

- **view** (``[web] mqtt_username``, role monitor, a persistent session, QoS 1): statuses, set
  states, heartbeats, lights and offload cards → :class:`~.stage.Stage` → every open event
  stream of the board and the lights; and set events → :class:`~.takes.TakeLog`, each
  committed before paho acknowledges it, so the broker keeps what the web process has not
  stored yet, across its restarts;
- **control** (``[web] control_username``, role integrator), only when set: roll/cut/standby
  requests, matched to the hub's responses by ``transaction``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from .. import contract as c
from ..bus import Bus
from ..codec import parse_payload
from ..config import MqttSettings, Settings
from ..errors import PayloadError, SetbridgeError
from ..expiry import expiring, expiry_properties
from ..messages import SetEvent, SetResponse
from ..topics import Topics
from .stage import Change, Stage, dumps
from .takes import TakeLog

log = logging.getLogger(__name__)

BOARD_TOPICS = (c.HUB_STATUS, c.SET_STATE, c.LIGHT_STATUS, c.LIGHT_STATE, c.OFFLOAD_CARD, c.SET_HEARTBEAT,
                c.LIGHT_ALIVE)
"""What the board shows, besides set events (which go to the take log first): every hub, set and
light, and every card, each subscribed with its contract's QoS."""
BOARD = "board"
"""Fan-out channel of the board; a light page listens on ``light:{set}``."""
BEATS_S = 1.0
"""How often the board hears every set's heartbeat age."""
QUEUE_LIMIT = 256
"""Messages a slow event-stream client may fall behind before it is dropped (it reconnects)."""


class Subscriber:
    """One event-stream client: a bounded queue of encoded frames that never blocks the sender."""

    def __init__(self, limit: int = QUEUE_LIMIT):
        self.items: deque[bytes] = deque()
        self.limit = limit
        self.dropped = False
        self._waiter: asyncio.Future[None] | None = None

    def push(self, frame: bytes) -> None:
        if len(self.items) >= self.limit:
            self.dropped = True  # too slow: end its stream; the browser reconnects and gets a snapshot
        else:
            self.items.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self) -> None:
        """End this client's stream now (its place is needed); the browser may reconnect."""
        self.dropped = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self, timeout: float) -> bytes | None:
        """The next frame, or None after ``timeout`` seconds of quiet."""
        if not self.items and not self.dropped:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(timeout, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        return self.items.popleft() if self.items else None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def frame(event: str, data: str) -> bytes:
    """One Server-Sent Event, encoded once for every client (``data`` is one line of JSON)."""
    return f"event: {event}\r\ndata: {data}\r\n\r\n".encode()


class Fanout:
    """Channels of subscribers; ``publish`` runs on the event loop."""

    def __init__(self) -> None:
        self.channels: dict[str, set[Subscriber]] = {}

    def subscribe(self, channel: str) -> Subscriber:
        return self.add(channel, Subscriber())

    def add(self, channel: str, sub: Subscriber) -> Subscriber:
        self.channels.setdefault(channel, set()).add(sub)
        return sub

    def unsubscribe(self, channel: str, sub: Subscriber) -> None:
        subs = self.channels.get(channel)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.channels[channel]

    def publish(self, channel: str, event: str, data: str) -> None:
        subs = self.channels.get(channel)
        if not subs:
            return
        encoded = frame(event, data)
        for sub in list(subs):
            sub.push(encoded)
            if sub.dropped:
                self.unsubscribe(channel, sub)

    def count(self, channel: str) -> int:
        return len(self.channels.get(channel, ()))


def _credentials(mqtt: MqttSettings, username: str | None, password: Any) -> MqttSettings:
    """``[mqtt]`` with the web process's own user (never the hub's)."""
    return mqtt.model_copy(update={"username": username, "password": password})


class Feed:
    """Starts and stops the connections; bridges paho's threads to the event loop."""

    BOARD_COALESCE_S = 0.05
    """Board updates closer together than this are sent as one snapshot."""

    def __init__(self, settings: Settings, stage: Stage, fanout: Fanout, takes: TakeLog | None):
        self.settings = settings
        self.topics = Topics(settings.mqtt.base_topic)
        self.stage = stage
        self.fanout = fanout
        self.takes = takes
        self.loop: asyncio.AbstractEventLoop | None = None
        web = settings.web
        users = [u for u in (web.mqtt_username, web.control_username) if u]
        if settings.mqtt.username in users or settings.hub.id in users or len(set(users)) < len(users):
            raise SetbridgeError("[web] mqtt_username and control_username must be users of their own, not the "
                                 "hub's nor each other's: the broker allows one connection per user, so a shared "
                                 "user would replace the other connection (setbridge broker add-user web --role "
                                 "monitor, and web-control --role integrator)")
        monitor = _credentials(settings.mqtt, web.mqtt_username, web.mqtt_password)
        self.live = Bus(monitor, client_id=web.client_id, persistent=True)
        base = self.topics.base
        for spec in BOARD_TOPICS:
            self.live.subscribe(spec.filter(base), self._on_live, qos=spec.qos, whole=True)
        self.live.subscribe(c.SET_EVENT.filter(base), self._on_event, qos=c.SET_EVENT.qos, whole=True)
        self.live.on_connect(lambda: self._on_broker(True))
        self.live.on_disconnect(lambda: self._on_broker(False))
        self.control: Bus | None = None
        self._pending: dict[str, asyncio.Future[SetResponse]] = {}
        if web.control_username:
            control = _credentials(settings.mqtt, web.control_username, web.control_password)
            self.control = Bus(control, client_id=f"{web.client_id}-control")
            self.control.subscribe(self.topics.set_response("+"), self._on_response)
        self._board_due = False
        self._beats_timer: asyncio.TimerHandle | None = None
        if not web.mqtt_username and settings.mqtt.username:
            log.warning("[web] mqtt_username is unset: connecting without credentials (the hub's [mqtt] user "
                        "is never borrowed); add a monitor user with `setbridge broker add-user web --role monitor`")

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._beats_timer = loop.call_later(BEATS_S, self._send_beats)
        for bus in (self.live, self.control):
            if bus is not None:
                bus.start()

    def stop_timers(self) -> None:
        """On the event loop, before :meth:`stop`."""
        if self._beats_timer is not None:
            self._beats_timer.cancel()
            self._beats_timer = None

    def stop(self) -> None:
        for bus in (self.control, self.live):
            if bus is not None:
                bus.stop()

    # -- paho threads → loop ---------------------------------------------------------------
    def _call(self, fn: Callable[..., object], *args: object) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # the loop closed meanwhile (shutting down)
                pass

    def _on_broker(self, connected: bool) -> None:
        self.stage.broker(connected)
        self._call(self._broker_changed)

    def _on_live(self, message: mqtt.MQTTMessage) -> None:
        change = self.stage.handle(message.topic, bytes(message.payload), retained=bool(message.retain))
        if change is not None:
            self._call(self._changed, change)

    def _on_event(self, message: mqtt.MQTTMessage) -> None:
        """A set event: into the take log (committed before paho acknowledges it), then the board."""
        found = c.identify(self.topics.base, message.topic)
        set_id = found[1].get("set") if found else None
        if self.takes is not None and message.payload and set_id:
            try:
                event = parse_payload(SetEvent, bytes(message.payload))
            except PayloadError as exc:
                log.warning("take log: ignored a message on %s: %s", message.topic, exc)
            else:
                try:
                    self.takes.record(set_id, event)
                except Exception:  # a full or broken disk must not stop the board
                    log.exception("take log: could not store event %s of set %s", event.event_id, set_id)
        self._on_live(message)

    def _on_response(self, topic: str, payload: bytes) -> None:
        try:
            response = parse_payload(SetResponse, payload)
        except PayloadError:
            return
        if response.transaction:
            self._call(self._resolve, response.transaction, response)

    # -- on the loop -----------------------------------------------------------------------
    def _push_light(self, set_id: str) -> None:
        channel = f"light:{set_id}"
        if self.fanout.count(channel):
            self.fanout.publish(channel, "view", dumps(self.stage.light_view(set_id)))

    def _changed(self, change: Change) -> None:
        """Push the news: at once to the set's light pages, and to the board coalesced (a
        heartbeat that changed nothing reaches the board only in the once-a-second beats)."""
        if change.set_id is not None:
            self._push_light(change.set_id)
        if change.board:
            self._board_soon()

    def _broker_changed(self) -> None:
        for set_id in list(self.stage.sets):
            self._push_light(set_id)
        self._board_soon()

    def _board_soon(self) -> None:
        if not self._board_due and self.fanout.count(BOARD):
            self._board_due = True
            assert self.loop is not None
            self.loop.call_later(self.BOARD_COALESCE_S, self._send_board)

    def _send_board(self) -> None:
        self._board_due = False
        self.fanout.publish(BOARD, "board", dumps(self.stage.board()))

    def _send_beats(self) -> None:
        """Once a second: each set's heartbeat age and link, so the board's ages and LINK LOST stay true."""
        assert self.loop is not None
        if self.fanout.count(BOARD):
            self.fanout.publish(BOARD, "beats", dumps(self.stage.beats()))
        if self._beats_timer is not None:
            self._beats_timer = self.loop.call_later(BEATS_S, self._send_beats)

    def _resolve(self, transaction: str, response: SetResponse) -> None:
        future = self._pending.pop(transaction, None)
        if future is not None and not future.done():
            future.set_result(response)

    async def request(self, set_id: str, action: str, source: str, timeout: float = 3.0) -> SetResponse | None:
        """Send a request as the control user; the hub's response, or None without one in time."""
        if self.control is None:
            raise PermissionError("control is not configured ([web] control_username)")
        tx = f"web-{uuid.uuid4().hex}"
        future: asyncio.Future[SetResponse] = asyncio.get_running_loop().create_future()
        self._pending[tx] = future
        try:
            # It expires before the board gives up, so an answer to one run at its deadline still arrives.
            request, expiry_s = expiring(action, tx, source, max(0.5, timeout - 0.5))
            self.control.publish(self.topics.set_request(set_id), request, properties=expiry_properties(expiry_s))
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._pending.pop(tx, None)
