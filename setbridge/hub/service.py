"""The hub: wires the set controller to the MQTT bus and to whatever triggers are configured,
and runs their lifecycle.

It publishes its birth/last will, the retained set state and events, and accepts actions from
voice, GPIO and the CLI through :meth:`Hub.submit`. Requests are answered by
:class:`~.requests.RequestDesk`, heartbeats sent by :class:`~.heartbeat.Heartbeats`; every
component (offload relay, recorder, voice listener, GPIO panel, Home Assistant discovery, metrics)
is built from one :class:`~.component.HubContext` and started and stopped with the hub.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Literal, cast

from .. import __version__
from ..bus import Bus
from ..config import Settings
from .controller import Action, Outcome, SetController
from ..errors import SetbridgeError
from ..messages import HubStatus, SetEvent, SetState
from ..offload.relay import OffloadRelay
from .component import Component, Health, HubContext
from .heartbeat import Heartbeats
from .requests import RequestDesk
from .roster import Roster
from .homeassistant import HomeAssistantDiscovery
from .state_store import StateStore
from .systemd import Notifier, Watchdog
from ..topics import Topics

if TYPE_CHECKING:
    from ..recorder import Recorder

log = logging.getLogger(__name__)


READY_WAIT_S = 10.0
"""How long start-up waits for the broker before telling systemd it is ready anyway."""
CLAIM_WAIT_S = 3.0
"""How long start-up waits for the broker to look for other hubs first (then it starts anyway)."""
STALL_S = 5.0
"""A loop that shows no progress for this long stops the watchdog (at least 3 heartbeats)."""


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
        self.stall_s = STALL_S
        """A loop without progress for this long (or 3 heartbeats) counts as stalled."""
        self._state_lock = threading.Lock()
        self._latest_state: SetState | None = None
        self._state_topic = self.topics.set_state(self.set_id)
        self._event_topic = self.topics.set_event(self.set_id)
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
        self.context = ctx = HubContext(
            bus=self.bus, topics=self.topics, settings=settings, submit=self.submit,
            state=lambda: self.controller.state, snapshot=self.controller.snapshot, on_state=self.add_state_listener,
            publish_event=self._publish_event, health=self.health, on_health=self.add_health_listener,
            set_audio_status=self.set_audio_status, set_offload_health=self.set_offload_health,
            set_timecode_health=self.set_timecode_health, voice_enabled=lambda: bool(self.voice_enabled),
            set_voice_enabled=self.set_voice_enabled, hub=self)
        """What every component is built from."""
        self.requests = RequestDesk(ctx, self.controller)
        self.worker = self.requests.worker
        self.heartbeat = Heartbeats(ctx, self.controller, tallies=self.requests.tallies)
        # Other hubs first: their retained statuses are in once a later subscription is acknowledged.
        self.bus.subscribe(self.topics.hub_status("+"), self.roster.on_status, qos=0)
        self.bus.subscribe(self.topics.set_heartbeat("+"), self.roster.on_heartbeat, qos=0)
        self._claimed = False
        """Start-up found no other hub serving this set: requests are taken and the birth is out."""
        self._early_events: list[SetEvent] = []
        """Events of local actions taken before then, published once it is (dropped if it refuses)."""
        # Light commands are not read here: a flood of them must never reach the hub. A light ignores
        # a retained one itself (docs/mqtt.md).
        self.bus.on_connect(self._on_connect)
        self.bus.on_connect(self._health_changed)
        self.bus.on_disconnect(self._health_changed)
        self.relay: OffloadRelay | None = None
        if settings.offload.enabled:
            self.relay = OffloadRelay(ctx)
            self.add_component(self.relay)
        elif settings.offload.watch:
            raise SetbridgeError("[offload] watch is set but [offload] enabled = false; enable offload on this hub "
                                 "or empty watch")
        if settings.timecode.mode != "off" or settings.timecode.tally_pin is not None:
            from ..recorder import Recorder  # libltc and gpiozero only when a recorder source is configured

            self.recorder = Recorder(ctx)
            self.add_component(self.recorder)
        if settings.audio.source != "none":
            from ..audio import open_source
            from ..speech.listener import VoiceListener  # loads Vosk and PortAudio only when voice is configured

            recorder = self.recorder
            self.voice_enabled = settings.speech.enabled
            self.add_component(VoiceListener(  # the recorder, if any, arbitrates voice and taps its audio
                replace(ctx, submit=recorder.voice) if recorder else ctx,
                source_factory=(lambda: recorder.tapped(open_source(settings.audio))) if recorder else None))
        if settings.gpio.any_pin():
            from .panel import GpioPanel  # gpiozero only when pins are configured

            self.add_component(GpioPanel(ctx))
        self.add_component(HomeAssistantDiscovery(ctx))
        if settings.metrics.enabled:
            from .metrics import HubMetrics

            self.add_component(HubMetrics(ctx))

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

    def _health_changed(self) -> None:
        health = self.health()
        for listener in self._health_listeners:
            try:
                listener(health)
            except Exception:
                log.exception("health listener failed")

    def start(self) -> None:
        self.controller.restore()
        self.requests.start()
        self.bus.start()
        self._claim()
        self.heartbeat.start()
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
                self.requests.stop()
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
        self.requests.listen()
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
        self.heartbeat.stop()
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                log.exception("stopping %r failed", component)
        self.requests.stop()
        self.controller.close()
        offline = self._status("offline")
        self.bus.stop(final=(self.topics.hub_status(self.settings.hub.id), offline.to_bytes(), True))

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

    def healthy(self) -> bool:
        """True while the bus loop, the controller and the heartbeat all make progress."""
        return not self.stalled()

    def stalled(self) -> list[str]:
        """The hub's loops that made no progress lately, each as "name (no progress for N s)"."""
        limit = max(self.stall_s, 3 * self.settings.hub.heartbeat_s)
        bus_limit = limit if self.bus.connected.is_set() else limit + self.settings.mqtt.reconnect_max_s + 10
        ages = {
            "the MQTT network loop": (self.bus.stalled_for(), bus_limit),
            "the controller": (self.worker.stalled_for() if self.worker.running else float("inf"), limit),
            "the heartbeat": (self.heartbeat.age_s if self.heartbeat.alive else float("inf"), limit),
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
