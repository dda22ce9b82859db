"""The hub: wires the set controller to the MQTT bus and to whatever triggers are configured.

It publishes its birth/last will, the retained set state, heartbeats and events; answers
requests; and accepts actions from voice, GPIO and the CLI through :meth:`Hub.submit`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple, cast

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .. import __version__
from ..bus import Bus
from ..config import Settings
from .controller import Action, Outcome, SetController
from ..errors import PayloadError, SetbridgeError
from ..codec import MISSING, parse_payload, transaction_of
from ..messages import Heartbeat, HubStatus, SetEvent, SetRequest, SetResponse, SetState
from ..offload.relay import OffloadRelay
from .component import Component, Health, HubLink
from .roster import Roster
from .. import expiry, lot
from .homeassistant import HomeAssistantDiscovery
from .state_store import StateStore
from ..ratelog import RateLimitedLog
from .systemd import Notifier, Watchdog
from .transactions import TransactionLog, key_of
from .worker import ActionWorker
from ..topics import Topics

if TYPE_CHECKING:
    from ..recorder import Recorder

log = logging.getLogger(__name__)


class ReplyRoute(NamedTuple):
    """Where a request's answer goes: a topic, and the MQTT 5 Correlation Data to send back."""

    topic: str
    correlation: bytes | None

READY_WAIT_S = 10.0
"""How long start-up waits for the broker before telling systemd it is ready anyway."""
CLAIM_WAIT_S = 3.0
"""How long start-up waits for the broker to look for other hubs first (then it starts anyway)."""
REQUEST_QUEUE = 2000
"""Requests waiting for the controller at most; more are answered busy."""
SOURCE_SHARE = REQUEST_QUEUE // 4
"""Once the queue is this close to full, a ``source`` with this many requests waiting is answered
busy: a looping script cannot crowd out the others, and a lone client still has the queue."""
BACKLOG_BUSY = 5000
"""Unacknowledged publishes at which new requests are answered busy (the broker is slow)."""
BACKLOG_SHED = 20000
"""Unacknowledged publishes at which even busy answers are shed (counted and logged)."""
RETRY_AFTER_S = 1.0
"""The retry hint in a busy answer."""
STALL_S = 5.0
"""A loop that shows no progress for this long stops the watchdog (at least 3 heartbeats)."""


@dataclass(frozen=True)
class _Request:
    """An MQTT request parsed on the network thread, waiting for the controller."""

    topic: str
    request: SetRequest
    route: "ReplyRoute"
    expires_at: float | None = None
    """When its MQTT 5 Message Expiry runs out (wall clock), if it has one."""


class Hub:
    """One stage's hub. ``start()`` returns once everything is running; ``stop()`` goes offline cleanly."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.topics = Topics(settings.mqtt.base_topic)
        self.set_id = settings.hub.set
        self.audio_status = "off"
        self.voice_enabled: bool | None = None
        self.offload_health: tuple[str, str | None] = ("ok", None) if settings.offload.enabled else ("off", None)
        self.timecode_health: tuple[str, str | None, str | None] = ("off", None, None)
        """The recorder source: ok/fault/off, why it is at fault, recording/stopped."""
        self.recorder: Recorder | None = None
        self.components: list[Component] = []
        self._state_listeners: list[Callable[[SetState], None]] = []
        self._health_listeners: list[Callable[[Health], None]] = []
        self._stopping = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._heartbeat_progress = time.monotonic()
        self.stall_s = STALL_S
        """A loop without progress for this long (or 3 heartbeats) counts as stalled."""
        self._state_lock = threading.Lock()
        self._latest_state: SetState | None = None
        self.worker = ActionWorker(self._run_batch, capacity=REQUEST_QUEUE)
        self._waiting: dict[str, int] = {}
        """Requests queued per source (sources with none are not kept)."""
        self._waiting_lock = threading.Lock()
        self.busy = RateLimitedLog(log, "answered %(n)d request(s) busy in %(s).1f s: the controller had "
                                        f"{REQUEST_QUEUE} waiting, or the source {SOURCE_SHARE}, or the broker "
                                        "lagged (%(who)s)")
        self.shed = RateLimitedLog(log, "shed %(n)d request(s) unanswered in %(s).1f s, the broker is not "
                                        "taking the hub's answers (%(who)s)")
        self.rejected = RateLimitedLog(log, f"rejected %(n)d malformed request(s) on {self.topics.set_request(self.set_id)}"
                                            " in %(s).1f s (%(who)s)")
        self.refused = RateLimitedLog(log, "refused %(n)d request(s) in %(s).1f s (%(who)s)")
        self.repeated = RateLimitedLog(log, "answered %(n)d repeated transaction(s) again in %(s).1f s, nothing "
                                            "changed (%(who)s)", level=logging.INFO)
        """Per request, but counted: a client looping on a bad or refused request cannot flood the log."""
        self.late_beats = RateLimitedLog(log, "%(n)d heartbeat(s) late in %(s).1f s (%(who)s): the hub is short "
                                              "of CPU")
        self.transactions = TransactionLog(window_s=settings.hub.transaction_window_s)
        self._state_topic = self.topics.set_state(self.set_id)
        self._event_topic = self.topics.set_event(self.set_id)
        self._response_topic = self.topics.set_response(self.set_id)
        self.roster = Roster(settings.hub.id, self.set_id, settings.offload.enabled, on_change=self._roster_changed)
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
        # Other hubs first: their retained statuses are in once a later subscription is acknowledged.
        self.bus.subscribe(self.topics.hub_status("+"), self.roster.on_status, qos=0)
        self.bus.subscribe(self.topics.set_heartbeat("+"), self.roster.on_heartbeat, qos=0)
        self._claimed = False
        """Start-up found no other hub serving this set: requests are taken and the birth is out."""
        self._early_events: list[SetEvent] = []
        """Events of local actions taken before then, published once it is (dropped if it refuses)."""
        self._centre_request_topic = lot.centre_request_topic(self.topics.base, self.set_id)
        # Light commands are not read here: a flood of them must never reach the hub. A light ignores
        # a retained one itself (docs/mqtt.md).
        self.bus.on_connect(self._on_connect)
        self.bus.on_connect(self._health_changed)
        self.bus.on_disconnect(self._health_changed)
        self.relay: OffloadRelay | None = None
        if settings.offload.enabled:
            self.relay = OffloadRelay(self.bus, self.topics, settings.offload, settings.hub.state_dir,
                                      on_health=self.set_offload_health)
            self.add_component(self.relay)
        elif settings.offload.watch:
            raise SetbridgeError("[offload] watch is set but [offload] enabled = false; enable offload on this hub "
                                 "or empty watch")
        if settings.timecode.mode != "off" or settings.timecode.tally_pin is not None:
            from ..recorder import Recorder  # libltc and gpiozero only when a recorder source is configured

            self.recorder = Recorder(self.link(), settings.timecode, publish_event=self._publish_event,
                                     report=self.set_timecode_health, reopen_s=settings.audio.reopen_s)
            self.add_component(self.recorder)
        if settings.audio.source != "none":
            from ..audio import open_source
            from ..speech.listener import VoiceListener  # loads Vosk and PortAudio only when voice is configured

            recorder = self.recorder
            self.voice_enabled = settings.speech.enabled
            self.add_component(VoiceListener(
                settings, submit=recorder.voice if recorder else self.submit, get_state=lambda: self.state,
                set_audio_status=self.set_audio_status, voice_enabled=lambda: bool(self.voice_enabled),
                source_factory=(lambda: recorder.tapped(open_source(settings.audio))) if recorder else None,
            ))
        if settings.gpio.any_pin():
            from .panel import GpioPanel  # gpiozero only when pins are configured

            self.add_component(GpioPanel(self.link(), settings.gpio))
        self.add_component(HomeAssistantDiscovery(self.bus, self.topics, settings.homeassistant, settings.hub.id,
                                                  self.set_id, settings.timecode))
        if settings.metrics.enabled:
            from .metrics import HubMetrics

            self.add_component(HubMetrics(self, settings.metrics))

    # -- public API ---------------------------------------------------------------------
    def submit(self, action: str, cause: str, **detail: object) -> Outcome:
        """Apply an action from any trigger (voice, button, the CLI) on the controller's thread,
        ahead of queued MQTT requests, and return its outcome. Thread-safe."""
        return cast(Outcome, self.worker.call(Action(action, cause, detail)))

    @property
    def state(self) -> str:
        return self.controller.state

    def set_audio_status(self, status: str) -> None:
        """Report the audio source as ok / fault / off; republished in the hub status."""
        if status != self.audio_status:
            self.audio_status = status
            self._publish_status()
            self._health_changed()

    def set_offload_health(self, state: str, reason: str | None) -> None:
        """Report offload as ok / fault (with a one-line reason); republished in the hub status."""
        if (state, reason) != self.offload_health:
            self.offload_health = (state, reason)
            self._publish_status()

    def set_timecode_health(self, state: str, reason: str | None, recorder: str | None) -> None:
        """Report the recorder source as ok / fault / off (with a reason) and what it says; republished
        in the hub status."""
        if (state, reason, recorder) != self.timecode_health:
            self.timecode_health = (state, reason, recorder)
            self._publish_status()
            self._health_changed()

    def set_voice_enabled(self, enabled: bool) -> None:
        if enabled != self.voice_enabled:
            self.voice_enabled = enabled
            self._publish_status()

    def add_component(self, component: Component) -> None:
        self.components.append(component)

    def add_state_listener(self, listener: Callable[[SetState], None]) -> None:
        """Call ``listener`` with every new set state (from the controller's thread)."""
        self._state_listeners.append(listener)

    def health(self) -> Health:
        return Health(broker=self.bus.connected.is_set(), audio=self.audio_status, timecode=self.timecode_health[0])

    def add_health_listener(self, listener: Callable[[Health], None]) -> None:
        """Call ``listener`` with the hub's health whenever it changes (broker, audio)."""
        self._health_listeners.append(listener)

    def link(self) -> HubLink:
        """What a component may use of the hub."""
        return HubLink(submit=self.submit, snapshot=self.controller.snapshot, on_state=self.add_state_listener,
                       health=self.health, on_health=self.add_health_listener,
                       set_voice_enabled=self.set_voice_enabled)

    def _health_changed(self) -> None:
        health = self.health()
        for listener in self._health_listeners:
            try:
                listener(health)
            except Exception:
                log.exception("health listener failed")

    def start(self) -> None:
        self.controller.restore()
        self.worker.start()
        self.bus.start()
        self._claim()
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

    def _claim(self) -> None:
        """Look for other hubs before taking requests or saying online: refuse to start when another
        hub serves this set; run without offload when another hub relays it. Raises SetbridgeError."""
        if self.bus.wait_connected(CLAIM_WAIT_S) and self.bus.wait_subscribed(CLAIM_WAIT_S):
            same_set, offload = self.roster.rivals()
            if same_set is not None:
                self.worker.stop()
                self.controller.close()
                self.bus.stop()
                raise SetbridgeError(
                    f"hub {same_set.hub} already serves set {self.set_id} on this broker (its status is online and "
                    "its heartbeats arrive); refusing to start, two hubs would interleave the set's state: stop "
                    "it, or give this hub another [hub] set")
            if offload is not None and self.relay is not None:
                self.components.remove(self.relay)
                self.relay = None
                reason = (f"hub {offload.hub} relays offload reports on this broker; this hub does not (set "
                          "[offload] enabled = false on every hub but one)")
                log.error("offload: off: %s", reason)
                self.offload_health = ("off", reason)
        else:
            log.warning("could not look for other hubs on the broker %s:%d within %.0f s; starting anyway",
                        self.settings.mqtt.host, self.settings.mqtt.port, CLAIM_WAIT_S)
        self.roster.start_watching(relays_offload=self.relay is not None)
        self.bus.subscribe(self.topics.set_request(self.set_id), self._handle_request, commands=True, whole=True)
        self.bus.subscribe(self._centre_request_topic, self._handle_request, commands=True, whole=True)
        if self.relay is not None:
            self.relay.listen()
        with self._state_lock:
            self._claimed = True
            early, self._early_events = self._early_events, []
        for event in early:
            self.bus.publish(self._event_topic, event)
        if self.bus.connected.is_set():
            self._announce()

    def _on_connect(self) -> None:
        if self._claimed:
            self._announce()

    def _roster_changed(self) -> None:
        if self._claimed and self.bus.connected.is_set():
            self._publish_status()

    def stop(self) -> None:
        self._stopping.set()
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        self.worker.stop()
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
        self.serve(stop, Notifier())

    def serve(self, stop: threading.Event, notifier: Notifier) -> None:
        """Start, say READY, feed the watchdog while :meth:`stalled` is empty, and stop on ``stop``."""
        if notifier.watchdog_s:
            self.stall_s = min(STALL_S, notifier.watchdog_s / 2)
        self.start()  # loads the speech model, if any, before saying ready
        connected = self.bus.wait_connected(READY_WAIT_S)
        broker = f"{self.settings.mqtt.host}:{self.settings.mqtt.port}"
        problem = self.bus.watch.problem
        why = f" ({problem.text})" if problem is not None and not connected else ""
        notifier.send(READY=1, STATUS=f"set {self.set_id}: {self.state}; broker {broker} "
                                      f"{'connected' if connected else 'unreachable, retrying'}{why}")
        try:
            Watchdog(notifier, self.stalled).run(stop)
        finally:
            notifier.send(STOPPING=1)
            self.stop()

    @property
    def heartbeat_age_s(self) -> float:
        """Seconds since the heartbeat loop last ran (about ``heartbeat_s``; more: the hub is short of CPU)."""
        return time.monotonic() - self._heartbeat_progress

    def healthy(self) -> bool:
        """True while the bus loop, the controller and the heartbeat all make progress."""
        return not self.stalled()

    def stalled(self) -> list[str]:
        """The hub's loops that made no progress lately, each as "name (no progress for N s)"."""
        limit = max(self.stall_s, 3 * self.settings.hub.heartbeat_s)
        bus_limit = limit if self.bus.connected.is_set() else limit + self.settings.mqtt.reconnect_max_s + 10
        heartbeat_alive = self._heartbeat_thread is not None and self._heartbeat_thread.is_alive()
        ages = {
            "the MQTT network loop": (self.bus.stalled_for(), bus_limit),
            "the controller": (self.worker.stalled_for() if self.worker.running else float("inf"), limit),
            "the heartbeat": (time.monotonic() - self._heartbeat_progress if heartbeat_alive else float("inf"), limit),
        }
        return [f"{name} (no progress for {age:.1f} s)" if age != float("inf") else f"{name} (not running)"
                for name, (age, most) in ages.items() if age > most]

    # -- publishing -------------------------------------------------------------------------
    def _status(self, state: Literal["online", "offline"]) -> HubStatus:
        offload, offload_reason = self.offload_health
        timecode, timecode_reason, recorder = self.timecode_health
        return HubStatus(state=state, hub=self.settings.hub.id, set=self.set_id, version=__version__,
                         audio=self.audio_status, voice=self.voice_enabled, offload=offload,
                         offload_reason=offload_reason, conflict=self.roster.conflict, timecode=timecode,
                         timecode_reason=timecode_reason, recorder=recorder)

    def _publish_status(self) -> None:
        self.bus.publish(self.topics.hub_status(self.settings.hub.id), self._status("online"))

    def _publish_state(self, state: SetState) -> None:
        for listener in self._state_listeners:
            try:
                listener(state)
            except Exception:
                log.exception("state listener failed")
        with self._state_lock:  # the newest state is the last one published, also against _announce
            self._latest_state = state
            if self._claimed and self.bus.connected.is_set():  # else it is published on (re)connect or claim
                self.bus.publish(self._state_topic, state)

    def _publish_event(self, event: SetEvent) -> None:
        if self.recorder is not None:
            event = self.recorder.stamp(event)
        with self._state_lock:
            if not self._claimed:  # a button pressed while start-up looks for other hubs
                self._early_events.append(event)
                return
        self.bus.publish(self._event_topic, event)

    def _announce(self) -> None:
        """Birth and current state, after every (re)connect."""
        self._publish_status()
        with self._state_lock:  # never waits on the controller (it may be writing to disk)
            state = self._latest_state or self.controller.snapshot()
            self.bus.publish(self.topics.set_state(self.set_id), state)

    def _heartbeat_loop(self) -> None:
        """Beat on a fixed schedule (no drift); a beat that comes late is counted and logged."""
        period = self.settings.hub.heartbeat_s
        topic = self.topics.set_heartbeat(self.set_id)
        due = time.monotonic() + period
        while not self._stopping.wait(max(0.0, due - time.monotonic())):
            now = self._heartbeat_progress = time.monotonic()
            if now - due > period / 2:
                self.late_beats.count(f"{now - due:.1f} s late")
            due = max(due + period, now + period / 2)
            if self.bus.connected.is_set():
                s = self.controller.stored  # one immutable snapshot, read without the lock
                self.bus.publish(topic, Heartbeat(epoch=s.epoch, seq=s.seq, state=s.state))
            for tally in (self.busy, self.shed, self.rejected, self.refused, self.repeated, self.late_beats,
                          self.bus.refused, self.controller.save_failures):
                tally.flush()

    # -- requests -------------------------------------------------------------------------
    def _handle_request(self, message: mqtt.MQTTMessage) -> None:
        """On the network thread: parse, then hand over to the controller's worker without waiting
        (answered in :meth:`_answer_requests`); a request it cannot take now is answered busy.

        An MQTT 5 request with a Response Topic under ``{base}/set/{set}/response/`` is answered
        there, with its Correlation Data; any other request on ``{base}/set/{set}/response``.
        """
        topic, payload = message.topic, bytes(message.payload)
        route, route_error = self._reply_route(message)
        try:
            request = parse_payload(SetRequest, payload)
        except PayloadError as exc:
            tx = transaction_of(payload)
            self.rejected.count(str(exc)[:160])
            if tx is not MISSING or route.correlation is not None:
                self._respond(SetResponse(transaction=None if tx is MISSING else tx, ok=False, error=str(exc),
                                          state=self.state, seq=self.controller.seq), route)
            return
        if not route_error and topic == self._centre_request_topic:  # crossed a lot's bridge
            route_error = lot.age_limit_missing(request, message)
        if route_error:
            log.warning("refused %s on %s: %s", request.action, topic, route_error)
            self._respond(SetResponse(transaction=request.transaction, ok=False, error=route_error, state=self.state,
                                      seq=self.controller.seq), route)
            return
        source = request.source or ""
        if self.bus.backlog < BACKLOG_BUSY:
            if not self._take_slot(source):
                self._refuse_busy(request, route, f"this source has {SOURCE_SHARE} requests waiting")
                return
            if self.worker.offer(_Request(topic, request, route, expiry.expires_at(message))):
                return
            self._release_slot(source)
        self._refuse_busy(request, route)

    def _take_slot(self, source: str) -> bool:
        """Count one more queued request of ``source``; False when it has its share of a queue
        that is nearly full (the rest is kept for other sources)."""
        with self._waiting_lock:
            mine = self._waiting.get(source, 0)
            if mine >= SOURCE_SHARE and self.worker.queued >= REQUEST_QUEUE - SOURCE_SHARE:
                return False
            self._waiting[source] = mine + 1
            return True

    def _release_slot(self, source: str) -> None:
        with self._waiting_lock:
            left = self._waiting.get(source, 0) - 1
            if left > 0:
                self._waiting[source] = left
            else:
                self._waiting.pop(source, None)

    def _refuse_busy(self, request: SetRequest, route: ReplyRoute,
                     why: str = "the hub has more requests than it can take") -> None:
        source = request.source or "no source"
        if self.bus.backlog >= BACKLOG_SHED:
            self.shed.count(source)
            return
        self.busy.count(source)
        s = self.controller.stored
        self._respond(SetResponse(
            transaction=request.transaction, ok=False, state=s.state, seq=s.seq, retry_after_s=RETRY_AFTER_S,
            error=f"busy: {why}; nothing changed, retry in {RETRY_AFTER_S:g} s"),
            route)

    def _run_batch(self, items: list[Action | _Request]) -> list[Outcome | None]:
        """On the worker: local actions and queued requests, applied with one write to disk."""
        actions = [item if isinstance(item, Action) else None for item in items]
        requests: list[tuple[int, _Request]] = []
        now = time.time()
        for i, item in enumerate(items):
            if isinstance(item, _Request):
                r = item.request
                self._release_slot(r.source or "")
                late = expiry.refusal(r, item.expires_at, now, self.settings.hub.request_max_age_s)
                if late:
                    self._refuse_late(item, late)
                    continue
                requests.append((i, item))
                actions[i] = Action(r.action, "request", {"source": r.source, "transaction": r.transaction})
        answered = self._repeats(requests)
        run = [a for i, a in enumerate(actions) if a is not None and i not in answered]
        outcomes = iter(self.controller.apply_many(run) if run else [])
        results: list[Outcome | None] = [None if i in answered or actions[i] is None else next(outcomes)
                                         for i in range(len(items))]
        self._answer_requests(requests, results, answered)
        return results

    def _refuse_late(self, item: _Request, why: str) -> None:
        """Answer an expired request; it changes nothing and its transaction stays free for a retry."""
        r = item.request
        self.refused.count(f"{r.action} from {r.source or 'no source'}: {why.split(':')[0]} expired")
        if r.transaction is None and item.route.correlation is None:
            return
        s = self.controller.stored
        self._respond(SetResponse(transaction=r.transaction, ok=False, error=why, state=s.state, seq=s.seq),
                      item.route)

    def _repeats(self, requests: list[tuple[int, _Request]]) -> dict[int, int | SetResponse]:
        """Which requests repeat a transaction (answered from memory or from an earlier one in this batch)."""
        answered: dict[int, int | SetResponse] = {}
        first_in_batch: dict[str, int] = {}
        for i, item in requests:
            r = item.request
            if r.transaction is None:
                continue
            remembered = self.transactions.recall(r.transaction, (r.action, r.source))
            key = key_of(r.transaction)
            if remembered is not None:
                answered[i] = remembered
            elif key in first_in_batch:
                answered[i] = first_in_batch[key]
            else:
                first_in_batch[key] = i
        return answered

    def _answer_requests(self, requests: list[tuple[int, _Request]], results: list[Outcome | None],
                         answered: dict[int, int | SetResponse]) -> None:
        """Answer every request that carries a transaction, echoing it exactly; a transaction seen in
        the last ``[hub] transaction_window_s`` gets its first answer and changes nothing."""
        built: dict[int, SetResponse] = {}
        for i, item in requests:
            r, tx = item.request, item.request.transaction
            if i in answered:
                remembered = answered[i]
                if isinstance(remembered, int):  # repeated within this batch: its first answer is known now
                    remembered = self.transactions.recall(tx, (r.action, r.source)) or built[remembered]
                self.repeated.count(f"{r.source or 'no source'}: {key_of(tx)[:40]}")
                self._respond(remembered, item.route)
                continue
            outcome = results[i]
            assert outcome is not None
            if not outcome.ok:
                self.refused.count(f"{r.action} from {r.source or 'no source'}: {outcome.error}")
            response = SetResponse(transaction=tx, ok=outcome.ok, error=outcome.error,
                                   state=outcome.state, seq=outcome.seq, changed=outcome.changed)
            if tx is not None and not outcome.transient:
                self.transactions.remember(tx, (r.action, r.source), response, source=r.source or "")
            built[i] = response
            self._respond(response, item.route)

    def _reply_route(self, message: mqtt.MQTTMessage) -> tuple[ReplyRoute, str | None]:
        """Where to answer ``message``, and why its own Response Topic was refused (or None)."""
        shared = self._response_topic
        props = getattr(message, "properties", None)
        wanted = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        if wanted is None:
            return ReplyRoute(shared, correlation), None
        allowed = shared + "/"
        if wanted.startswith(allowed) and len(wanted) > len(allowed) and not set("+#\0") & set(wanted) or (
                lot.answer_topic_allowed(self.topics.base, self.set_id, wanted)):  # a client at a lot's centre
            return ReplyRoute(wanted, correlation), None
        return ReplyRoute(shared, correlation), (
            f"response topic {wanted[:80]!r} is not under {allowed}; name one below it (answered here instead)")

    def _respond(self, response: SetResponse, route: ReplyRoute | None = None) -> None:
        route = route or ReplyRoute(self._response_topic, None)
        props = None
        if route.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = route.correlation
        self.bus.publish(route.topic, response, properties=props)
