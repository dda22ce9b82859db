"""The hub's Prometheus metrics (``[metrics]``, off by default), served over HTTP on their own port.

Almost everything is read from the hub's public state when Prometheus scrapes (a collector), so
the request path does no extra work: requests by outcome come from the counts the hub keeps for
its logs anyway. Only set transitions and audio faults are counted here as they happen, from
the hub's listeners (a few per take); the offload relay counts its events and journal faults. Labels are bounded: a set, a state, a cause
from the hub's own code, an outcome, a reason class; never a transaction or a phrase.

>>> hub.add_component(HubMetrics(context))   # serves http://127.0.0.1:9853/metrics
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from .. import __version__
from ..messages import SetState
from ..offload.relay import OffloadRelay
from .component import Health, HubContext

if TYPE_CHECKING:
    from .service import Hub

log = logging.getLogger(__name__)

SET_STATES = ("idle", "standby", "rolling")
AUDIO_STATES = ("ok", "fault", "off")
RETRY_S = 30.0
"""Seconds between tries to listen while the metrics port is taken."""
MAX_CAUSES = 32
"""Distinct transition causes kept; any further one is counted as ``other`` (the label stays bounded)."""


class _Collects(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class HubMetrics:
    """A hub component: counts what must be counted as it happens and serves every metric."""

    def __init__(self, ctx: HubContext):
        self.hub: Hub = ctx.hub
        self.settings = ctx.settings.metrics
        self.transitions: Counter[tuple[str, str]] = Counter()
        """(state reached, cause) → transitions."""
        self.audio_faults = 0
        self._audio = ctx.health().audio
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_HubCollector(self))
        self.port: int | None = None
        """The port actually listened on, once started."""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._retry: threading.Thread | None = None
        self._stopping = threading.Event()
        self._failed = False
        ctx.on_state(self._on_state)
        ctx.on_health(self._on_health)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Listen; a port that is taken never stops the hub (the set runs on): one error line, and
        another try every ``RETRY_S`` until it is free."""
        if not self._listen():
            self._retry = threading.Thread(target=self._keep_trying, name="metrics-retry", daemon=True)
            self._retry.start()

    def _listen(self) -> bool:
        host, port = self.settings.host, self.settings.port
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            if not self._failed:
                log.error("[metrics] cannot listen on %s:%d (%s); pick a free port in [metrics] port, or set "
                          "[metrics] enabled = false; the hub runs on without metrics and tries again every %g s",
                          host, port, exc.strerror or exc, RETRY_S)
            self._failed = True
            return False
        with self._lock:
            self._server, self._thread = server, thread
        self.port = int(server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host, self.port)
        return True

    def _keep_trying(self) -> None:
        while not self._stopping.wait(RETRY_S):
            if self._listen():
                return

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=2)
        if self._retry is not None:
            self._retry.join(timeout=2)

    # -- counted as it happens (the hub's listeners; a few per take) ------------------------
    def _on_state(self, state: SetState) -> None:
        """On the controller's thread, once per change: one dictionary update (a new key takes the lock,
        so a scrape copying the dictionary never sees it grow)."""
        key = (state.state, state.cause)
        n = self.transitions.get(key)
        if n is not None:
            self.transitions[key] = n + 1
            return
        with self._lock:
            if len(self.transitions) >= MAX_CAUSES * len(SET_STATES):
                key = (state.state, "other")
            self.transitions[key] += 1

    def _on_health(self, health: Health) -> None:
        with self._lock:
            if health.audio == "fault" and self._audio != "fault":
                self.audio_faults += 1
            self._audio = health.audio


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def _counter(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


class _HubCollector:
    """Reads the hub's state when Prometheus scrapes."""

    def __init__(self, metrics: HubMetrics):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        hub = m.hub
        settings = hub.settings
        set_id = hub.set_id

        info = InfoMetricFamily("setbridge_build", "The hub's version, id and set", labels=["version", "hub", "set"])
        info.add_metric([__version__, settings.hub.id, set_id], {})
        yield info

        stored = hub.controller.stored
        state = GaugeMetricFamily("setbridge_set_state", "1 for the set's current state, 0 for the others",
                                  labels=["set", "state"])
        for name in SET_STATES:
            state.add_metric([set_id, name], 1.0 if stored.state == name else 0.0)
        yield state
        yield _gauge("setbridge_set_take", "The take number of the set", stored.take, {"set": set_id})
        with m._lock:
            transitions = dict(m.transitions)
            audio_faults = m.audio_faults
        family = CounterMetricFamily("setbridge_set_transitions", "Set state changes, by state reached and cause",
                                     labels=["set", "state", "cause"])
        for (to, cause), n in sorted(transitions.items()):
            family.add_metric([set_id, to, cause], n)
        yield family

        desk = hub.requests
        taken, refused, repeated = hub.worker.taken, desk.refused.total, desk.repeated.total
        requests = CounterMetricFamily("setbridge_requests", "MQTT set requests, by outcome: ok (applied or "
                                       "already so), refused, busy, repeated (a known transaction), malformed, "
                                       "shed (unanswered: the broker took no answers)", labels=["outcome"])
        for outcome, n in (("ok", max(0, taken - refused - repeated)), ("refused", refused), ("busy", desk.busy.total),
                           ("repeated", repeated), ("malformed", desk.rejected.total), ("shed", desk.shed.total)):
            requests.add_metric([outcome], n)
        yield requests

        for component in hub.components:
            stats: _Collects | None = getattr(component, "stats", None)
            if stats is not None and hasattr(stats, "collect"):
                yield from stats.collect()

        yield _gauge("setbridge_heartbeat_age_seconds", "Seconds since the hub's heartbeat loop last ran",
                     hub.heartbeat.age_s, {"set": set_id})
        yield _counter("setbridge_heartbeats_late", "Heartbeats sent more than half a period late (the hub is "
                       "short of CPU)", hub.heartbeat.late_beats.total, {"set": set_id})
        yield _gauge("setbridge_hub_stalled_loops", "The hub's loops (network, controller, heartbeat) that made "
                     "no progress lately; the systemd watchdog restarts the hub when this stays above 0",
                     len(hub.stalled()))

        audio = GaugeMetricFamily("setbridge_audio_status", "1 for the audio source's status (ok, fault, off)",
                                  labels=["status"])
        for name in AUDIO_STATES:
            audio.add_metric([name], 1.0 if hub.audio_status == name else 0.0)
        yield audio
        yield _counter("setbridge_audio_faults", "Times the audio source went to fault", audio_faults)
        timecode = hub.timecode_health[0]  # whether it records comes with the recorder's own stats
        tc = GaugeMetricFamily("setbridge_timecode_status", "1 for the recorder source's status (LTC timecode "
                               "or record tally: ok, fault, off)", labels=["status"])
        for name in AUDIO_STATES:
            tc.add_metric([name], 1.0 if timecode == name else 0.0)
        yield tc

        bus = hub.bus
        yield _gauge("setbridge_mqtt_connected", "1 while the hub is connected to its MQTT broker",
                     1.0 if bus.connected.is_set() else 0.0)
        yield _counter("setbridge_mqtt_connections", "Successful connections to the broker since start; "
                       "each after the first is a reconnect", bus.connections)
        yield _gauge("setbridge_mqtt_unacknowledged_publishes", "QoS 1 publishes the broker has not "
                     "acknowledged yet", bus.backlog)
        yield _gauge("setbridge_request_queue_depth", "MQTT requests waiting for the controller",
                     hub.worker.queued)

        relay = next((c for c in hub.components if isinstance(c, OffloadRelay)), None)
        if relay is not None:
            yield _gauge("setbridge_offload_queue_depth", "Offload reports waiting for the journal",
                         relay.waiting)
            events = CounterMetricFamily("setbridge_offload_events", "Offload events accepted, by status",
                                         labels=["status"])
            for status, n in sorted(relay.accepted.items()):
                events.add_metric([status], n)
            yield events
            yield _counter("setbridge_offload_journal_faults", "Times the offload journal went to fault",
                           relay.faults)
            yield _counter("setbridge_offload_answers_shed", "Answers on offload/error not sent (a flood of reports "
                           "beyond the answer window or rate)", relay.answers_shed)
        yield _gauge("setbridge_offload_journal_fault", "1 while the offload journal cannot be opened or written",
                     1.0 if hub.offload_health[0] == "fault" else 0.0)
        yield _gauge("setbridge_hub_conflict", "1 while another hub is online for this set, or relays offload while "
                     "this one does", 1.0 if hub.roster.conflict else 0.0)

        try:
            disk = shutil.disk_usage(settings.hub.state_dir)
        except OSError:
            return
        where = {"path": str(settings.hub.state_dir)}
        yield _gauge("setbridge_state_dir_free_bytes", "Bytes free (to this user) where set state and the offload "
                     "journal live", disk.free, where)
        yield _gauge("setbridge_state_dir_size_bytes", "Size of the file system where set state and the offload "
                     "journal live", disk.total, where)
