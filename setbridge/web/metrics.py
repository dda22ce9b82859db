"""The web process's Prometheus metrics: the board's view of every set, hub, light and offload
card on the broker, read from :class:`~setbridge.web.stage.Stage` when Prometheus scrapes.

Prefixed ``setbridge_board_`` so that a rule joining a light to its set's state never mixes
them with the hub's own ``setbridge_set_state``. Labels are ids the stage already bounds
(``MAX_SETS``, ``MAX_LIGHTS``) and the card statuses of the contract.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .. import __version__
from ..config import WebSettings
from .stage import Stage

SET_STATES = ("idle", "standby", "rolling")


class StageCollector:
    """Reads one :class:`Stage` at scrape time."""

    def __init__(self, stage: Stage):
        self.stage = stage

    def collect(self) -> Iterator[Metric]:
        board = self.stage.board()
        now = board["now"]
        info = InfoMetricFamily("setbridge_board_build", "The web process's version", labels=["version"])
        info.add_metric([__version__], {})
        yield info
        broker = GaugeMetricFamily("setbridge_board_broker_connected", "1 while the web process is connected to "
                                   "the MQTT broker")
        broker.add_metric([], 1.0 if board["broker"] else 0.0)
        yield broker

        state = GaugeMetricFamily("setbridge_board_set_state", "1 for each set's current state as the board "
                                  "shows it (0 for the others; all 0 while its state is unknown)",
                                  labels=["set", "state"])
        lost = GaugeMetricFamily("setbridge_board_set_link_lost", "1 while a set's lights would show link lost "
                                 "(no broker, hub offline, no state, or no heartbeat)", labels=["set"])
        beat = GaugeMetricFamily("setbridge_board_set_heartbeat_age_seconds", "Seconds since the set's last "
                                 "heartbeat reached the web process", labels=["set"])
        hub_online = GaugeMetricFamily("setbridge_board_hub_online", "1 while a hub says it is online "
                                       "(its retained status; only a heartbeat proves it is not frozen)",
                                       labels=["hub", "set"])
        audio = GaugeMetricFamily("setbridge_board_hub_audio_fault", "1 while a hub reports an audio fault",
                                  labels=["hub", "set"])
        offload = GaugeMetricFamily("setbridge_board_hub_offload_fault", "1 while a hub reports an offload "
                                    "(journal) fault", labels=["hub", "set"])
        timecode = GaugeMetricFamily("setbridge_board_hub_timecode_fault", "1 while a hub reports its recorder "
                                     "source (timecode, tally) at fault", labels=["hub", "set"])
        alive = GaugeMetricFamily("setbridge_board_light_alive", "1 while a light's alive messages keep coming, "
                                  "0 once they stopped (absent until the web process has listened 3 s)",
                                  labels=["light", "set"])
        online = GaugeMetricFamily("setbridge_board_lights", "Lights following each set by what their retained "
                                   "status says (online, offline); a frozen light still counts as online",
                                   labels=["set", "status"])
        seen = GaugeMetricFamily("setbridge_board_light_last_seen_age_seconds", "Seconds since the web process "
                                 "last heard from a light", labels=["light", "set"])
        for s in board["sets"]:
            set_id = s["set"]
            for name in SET_STATES:
                state.add_metric([set_id, name], 1.0 if s["state"] == name else 0.0)
            lost.add_metric([set_id], 1.0 if s["lost"] else 0.0)
            if s["beat_age_s"] is not None:
                beat.add_metric([set_id], s["beat_age_s"])
            for h in s["hubs"]:
                hub_online.add_metric([h["id"], set_id], 1.0 if h.get("state") == "online" else 0.0)
                audio.add_metric([h["id"], set_id], 1.0 if h.get("audio") == "fault" else 0.0)
                offload.add_metric([h["id"], set_id], 1.0 if h.get("offload") == "fault" else 0.0)
                timecode.add_metric([h["id"], set_id], 1.0 if h.get("timecode") == "fault" else 0.0)
        for set_id, lights in [(s["set"], s["lights"]) for s in board["sets"]] + [("", board["other_lights"])]:
            statuses: Counter[str] = Counter()
            for light in lights:
                labels = [light["id"], set_id]
                if light["alive"] is not None:
                    alive.add_metric(labels, 1.0 if light["alive"] else 0.0)
                if light["online"] is not None:
                    statuses["online" if light["online"] else "offline"] += 1
                if light["seen"] is not None:
                    seen.add_metric(labels, max(0.0, now - light["seen"]))
            if lights:
                for status in ("online", "offline"):
                    online.add_metric([set_id, status], statuses[status])
        yield from (state, lost, beat, hub_online, audio, offload, timecode, alive, online, seen)

        by_status: Counter[str] = Counter(str(card.get("status")) for card in board["cards"])
        cards = GaugeMetricFamily("setbridge_board_offload_cards", "Cards on the broker, by their latest status",
                                  labels=["status"])
        for status, n in sorted(by_status.items()):
            cards.add_metric([status], n)
        yield cards
        unsafe = [card for card in board["cards"] if not card.get("safe_to_wipe")]
        yield _gauge("setbridge_board_offload_cards_unsafe", "Cards not (yet) safe to wipe", len(unsafe))
        oldest = min((card["ts"] for card in unsafe if isinstance(card.get("ts"), (int, float))), default=None)
        yield _gauge("setbridge_board_offload_oldest_unsafe_age_seconds", "Seconds since the latest news of the "
                     "card that has been unsafe to wipe the longest (0 when none is)",
                     0.0 if oldest is None else max(0.0, time.time() - oldest))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def stage_registry(stage: Stage) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StageCollector(stage))
    return registry


class MetricsPage:
    """``GET /metrics``. Open when the board is; when ``[web] login_to_view`` is true it needs a
    logged-in session or HTTP Basic credentials of a ``[web] users`` entry (what Prometheus'
    ``basic_auth`` sends), checked by ``verify`` (the login form's throttle and one-at-a-time
    checks, so guessing here costs what it costs there). A verified credential is remembered for a
    while, so a scrape every 15 s costs one scrypt per ``REMEMBER_S``, not one per scrape."""

    REMEMBER_S = 600.0

    def __init__(self, stage: Stage, settings: WebSettings, session_user: Callable[[Request], object],
                 verify: Callable[[Request, str, str], Awaitable[bool]]):
        self.registry = stage_registry(stage)
        self.settings = settings
        self.session_user = session_user
        self.verify = verify
        self._verified: dict[bytes, float] = {}

    async def page(self, request: Request) -> Response:
        if self.settings.login_to_view and self.session_user(request) is None and not await self._basic_ok(request):
            return PlainTextResponse("log in first: Prometheus sends basic_auth with a [web] users name and password",
                                     status_code=401, headers={"WWW-Authenticate": 'Basic realm="setbridge"'})
        body = await run_in_threadpool(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def _basic_ok(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            name, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        user = self.settings.users.get(name)
        key = hashlib.sha256(f"{name}\0{password}".encode()).digest()
        now = time.monotonic()
        if user is not None and self._verified.get(key, 0.0) > now:
            return True
        if not await self.verify(request, name, password) or user is None:
            return False
        if len(self._verified) > 100:
            self._verified.clear()
        self._verified[key] = now + self.REMEMBER_S
        return True
