"""The hub: wires the set controller to the MQTT bus and to whatever triggers are configured.

It publishes its birth/last will, the retained set state, heartbeats and events; answers
requests; and accepts actions from voice, GPIO and the CLI through :meth:`Hub.submit`.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import NamedTuple, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .. import __version__
from ..bus import Bus
from ..config import Settings
from .controller import Outcome, SetController
from ..errors import PayloadError, SetbridgeError
from ..messages import (MISSING, Heartbeat, HubStatus, SetEvent, SetRequest, SetResponse, SetState, parse_payload,
                        transaction_of)
from ..offload.relay import OffloadRelay
from .state_store import StateStore
from .systemd import Notifier
from .transactions import TransactionLog, key_of
from ..topics import Topics

log = logging.getLogger(__name__)


class ReplyRoute(NamedTuple):
    """Where a request's answer goes: a topic, and the MQTT 5 Correlation Data to send back."""

    topic: str
    correlation: bytes | None

READY_WAIT_S = 10.0
"""How long start-up waits for the broker before telling systemd it is ready anyway."""


class Component(Protocol):
    """Something the hub starts and stops with itself (voice listener, offload relay, GPIO)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Hub:
    """One stage's hub. ``start()`` returns once everything is running; ``stop()`` goes offline cleanly."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.topics = Topics(settings.mqtt.base_topic)
        self.set_id = settings.hub.set
        self.audio_status = "off"
        self.voice_enabled: bool | None = None
        self.offload_health: tuple[str, str | None] = ("ok", None)
        self.components: list[Component] = []
        self._state_listeners: list[Callable[[SetState], None]] = []
        self._stopping = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self.transactions = TransactionLog(window_s=settings.hub.transaction_window_s)
        self.bus = Bus(
            settings.mqtt,
            client_id=f"setbridge-hub-{settings.hub.id}",
            will=(self.topics.hub_status(settings.hub.id), self._status("offline").to_bytes(), True),
        )
        try:
            self.controller = SetController(
                self.set_id,
                StateStore(settings.hub.state_dir, self.set_id),
                on_state=self._publish_state,
                on_event=self._publish_event,
                post_roll_s=settings.hub.post_roll_s,
            )
        except OSError as exc:
            raise SetbridgeError(f"hub.state_dir {settings.hub.state_dir} is not writable ({exc.strerror}); "
                                 "set [hub] state_dir to a directory this user owns") from None
        self.bus.subscribe(self.topics.set_request(self.set_id), self._handle_request, commands=True, whole=True)
        self.bus.on_connect(self._announce)
        self.add_component(OffloadRelay(self.bus, self.topics, settings.offload, settings.hub.state_dir,
                                        on_health=self.set_offload_health))
        if settings.audio.source != "none":
            from ..speech.listener import VoiceListener  # loads Vosk and PortAudio only when voice is configured

            self.voice_enabled = settings.speech.enabled
            self.add_component(VoiceListener(
                settings, submit=self.submit, get_state=lambda: self.state, set_audio_status=self.set_audio_status,
                voice_enabled=lambda: bool(self.voice_enabled),
            ))
        if settings.gpio.any_pin():
            from .panel import GpioPanel  # gpiozero only when pins are configured

            self.add_component(GpioPanel(self))

    # -- public API ---------------------------------------------------------------------
    def submit(self, action: str, cause: str, **detail: object) -> Outcome:
        """Apply an action from any trigger (voice, button, request). Thread-safe."""
        return self.controller.apply(action, cause, **detail)

    @property
    def state(self) -> str:
        return self.controller.state

    def set_audio_status(self, status: str) -> None:
        """Report the audio source as ok / fault / off; republished in the hub status."""
        if status != self.audio_status:
            self.audio_status = status
            self._publish_status()

    def set_offload_health(self, state: str, reason: str | None) -> None:
        """Report offload as ok / fault (with a one-line reason); republished in the hub status."""
        if (state, reason) != self.offload_health:
            self.offload_health = (state, reason)
            self._publish_status()

    def set_voice_enabled(self, enabled: bool) -> None:
        if enabled != self.voice_enabled:
            self.voice_enabled = enabled
            self._publish_status()

    def add_component(self, component: Component) -> None:
        self.components.append(component)

    def add_state_listener(self, listener: Callable[[SetState], None]) -> None:
        """Call ``listener`` with every new set state (from the controller's thread)."""
        self._state_listeners.append(listener)

    def start(self) -> None:
        self.controller.restore()
        self.bus.start()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        self._heartbeat_thread.start()
        started: list[Component] = []
        try:
            for component in self.components:
                component.start()
                started.append(component)
        except BaseException:
            self.components = started  # stop only what is running, then go offline cleanly
            self.stop()
            raise
        log.info("hub %s started for set %s (epoch %d)", self.settings.hub.id, self.set_id, self.controller.epoch)

    def stop(self) -> None:
        self._stopping.set()
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        self.controller.close()
        offline = self._status("offline")
        self.bus.stop(final=(self.topics.hub_status(self.settings.hub.id), offline.to_bytes(), True))
        if self._heartbeat_thread:
            self._heartbeat_thread.join(timeout=2)

    def run_forever(self) -> None:
        """Run until SIGTERM or SIGINT, telling systemd when ready and pinging its watchdog."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        notifier = Notifier()
        self.start()  # loads the speech model, if any, before saying ready
        connected = self.bus.wait_connected(READY_WAIT_S)
        broker = f"{self.settings.mqtt.host}:{self.settings.mqtt.port}"
        notifier.send(READY=1, STATUS=f"set {self.set_id}: {self.state}; broker {broker} "
                                      f"{'connected' if connected else 'unreachable, retrying'}")
        tick = min(1.0, notifier.watchdog_s / 3) if notifier.watchdog_s else 1.0
        try:
            while not stop.wait(tick):
                if self.healthy():
                    notifier.send(WATCHDOG=1)
        finally:
            notifier.send(STOPPING=1)
            self.stop()

    def healthy(self) -> bool:
        """True while the hub's own loops run (what the systemd watchdog checks)."""
        return self._heartbeat_thread is not None and self._heartbeat_thread.is_alive()

    # -- publishing -------------------------------------------------------------------------
    def _status(self, state: str) -> HubStatus:
        offload, offload_reason = self.offload_health
        return HubStatus(state=state, hub=self.settings.hub.id, set=self.set_id, version=__version__,
                         audio=self.audio_status, voice=self.voice_enabled, offload=offload,  # type: ignore[arg-type]
                         offload_reason=offload_reason)

    def _publish_status(self) -> None:
        self.bus.publish(self.topics.hub_status(self.settings.hub.id), self._status("online"))

    def _publish_state(self, state: SetState) -> None:
        for listener in self._state_listeners:
            try:
                listener(state)
            except Exception:
                log.exception("state listener failed")
        if not self.bus.connected.is_set():
            return  # the retained state is republished on (re)connect; never queue stale states
        self.bus.publish(self.topics.set_state(self.set_id), state)

    def _publish_event(self, event: SetEvent) -> None:
        self.bus.publish(self.topics.set_event(self.set_id), event)

    def _announce(self) -> None:
        """Birth and current state, after every (re)connect."""
        self._publish_status()
        self._publish_state(self.controller.snapshot())

    def _heartbeat_loop(self) -> None:
        period = self.settings.hub.heartbeat_s
        topic = self.topics.set_heartbeat(self.set_id)
        while not self._stopping.wait(period):
            if self.bus.connected.is_set():
                c = self.controller
                self.bus.publish(topic, Heartbeat(epoch=c.epoch, seq=c.seq, state=c.state))

    # -- requests -------------------------------------------------------------------------
    def _handle_request(self, message: mqtt.MQTTMessage) -> None:
        """Answer every request that carries a transaction, echoing it exactly; a transaction
        seen in the last ``[hub] transaction_window_s`` gets its first answer and changes nothing.

        An MQTT 5 request with a Response Topic under ``{base}/set/{set}/response/`` is answered
        there, with its Correlation Data; any other request on ``{base}/set/{set}/response``.
        """
        topic, payload = message.topic, message.payload
        route, route_error = self._reply_route(message)
        try:
            request = parse_payload(SetRequest, payload)
        except PayloadError as exc:
            tx = transaction_of(payload)
            log.warning("rejected request on %s: %s", topic, exc)
            if tx is not MISSING or route.correlation is not None:
                self._respond(SetResponse(transaction=None if tx is MISSING else tx, ok=False, error=str(exc),
                                          state=self.state, seq=self.controller.seq), route)
            return
        tx = request.transaction
        if route_error:
            log.warning("refused %s on %s: %s", request.action, topic, route_error)
            self._respond(SetResponse(transaction=tx, ok=False, error=route_error, state=self.state,
                                      seq=self.controller.seq), route)
            return
        fingerprint = (request.action, request.source)
        if tx is not None:
            remembered = self.transactions.recall(tx, fingerprint)
            if remembered is not None:
                log.info("repeated transaction %s on %s: answered again, nothing changed", key_of(tx)[:40], topic)
                self._respond(remembered, route)
                return
        outcome = self.submit(request.action, cause="request", source=request.source, transaction=tx)
        if not outcome.ok:
            log.warning("refused %s from %s: %s", request.action, request.source or "a request", outcome.error)
        response = SetResponse(transaction=tx, ok=outcome.ok, error=outcome.error,
                               state=outcome.state, seq=outcome.seq, changed=outcome.changed)
        if tx is not None:
            self.transactions.remember(tx, fingerprint, response)
        self._respond(response, route)

    def _reply_route(self, message: mqtt.MQTTMessage) -> tuple[ReplyRoute, str | None]:
        """Where to answer ``message``, and why its own Response Topic was refused (or None)."""
        shared = self.topics.set_response(self.set_id)
        props = getattr(message, "properties", None)
        wanted = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        if wanted is None:
            return ReplyRoute(shared, correlation), None
        allowed = shared + "/"
        if wanted.startswith(allowed) and len(wanted) > len(allowed) and not set("+#\0") & set(wanted):
            return ReplyRoute(wanted, correlation), None
        return ReplyRoute(shared, correlation), (
            f"response topic {wanted[:80]!r} is not under {allowed}; name one below it (answered here instead)")

    def _respond(self, response: SetResponse, route: ReplyRoute | None = None) -> None:
        route = route or ReplyRoute(self.topics.set_response(self.set_id), None)
        props = None
        if route.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = route.correlation
        self.bus.publish(route.topic, response, properties=props)
