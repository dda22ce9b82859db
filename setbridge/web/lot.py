"""The central board of a lot: every stage, as the central broker shows it under
``{base}/stage/{stage}`` (:mod:`setbridge.lot`).

Each stage is a :class:`~setbridge.web.stage.Stage` of its own (the same rules as a stage's own
board). On top, a stage is **unreachable** while none of its sets has a heartbeat within the link
timeout, or its bridge says ``0``: the board then shows "UNREACHABLE since …" and never its last
known state, since a stage cut off while rolling may have cut long ago. The day of each stage is
kept as a timeline of takes (roll → end), from its events, each event counted once; with a
:class:`~setbridge.web.takes.TakeLog` the events are stored there too (set ``{stage}/{set}``), so the
timeline and ``/takes`` survive a restart of the board.

>>> board = LotBoard("setbridge")
>>> board.handle("setbridge/stage/stage-a/set/main/state", payload)
>>> board.snapshot()["stages"][0]["reachable"]
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .. import lot
from ..errors import PayloadError
from ..codec import parse_payload
from ..messages import SetEvent
from ..topics import Topics
from .stage import Stage
from .takes import TakeLog

log = logging.getLogger(__name__)

MAX_STAGES = 100
"""Stages kept at most (a bridge user can only write its own stage; this bounds made-up ones)."""
EVENTS_KEPT = 10_000
"""Event ids remembered per stage to count a redelivered event once."""


class StageRecord:
    """One stage: its :class:`Stage`, its bridge's word and the day's takes."""

    def __init__(self, name: str, base: str, link_timeout_s: float, clock: Callable[[], float],
                 wall: Callable[[], float], take_log: TakeLog | None = None):
        self.name = name
        self.take_log = take_log
        self.stage = Stage(Topics(lot.stage_base(base, name)), link_timeout_s=link_timeout_s, clock=clock, wall=wall)
        self.bridge: str | None = None
        """``1`` or ``0`` as the stage broker's bridge last said, or None."""
        self.bridge_since: float | None = None
        self.seen_events: OrderedDict[str, None] = OrderedDict()
        self.takes: dict[str, list[dict[str, Any]]] = {}
        """Set → the takes seen (``start``, ``end`` wall times; ``end`` None while rolling)."""

    def event(self, set_id: str, event: SetEvent) -> None:
        if self.take_log is not None:
            try:
                self.take_log.record(f"{self.name}/{set_id}", event)
            except Exception:  # a full or broken disk must not stop the board
                log.exception("take log: could not store event %s of %s/%s", event.event_id, self.name, set_id)
        if event.event_id in self.seen_events:
            return
        self.seen_events[event.event_id] = None
        if len(self.seen_events) > EVENTS_KEPT:
            self.seen_events.popitem(last=False)
        takes = self.takes.setdefault(set_id, [])
        if event.state == "rolling" and event.changed:
            takes.append({"start": event.ts, "end": None, "take": event.take, "cause": event.cause})
        elif event.changed and takes and takes[-1]["end"] is None:
            takes[-1]["end"] = event.ts
        del takes[:-500]


class LotBoard:
    """Every stage of the lot; fed every message under ``{base}/stage/+/#`` (from paho's thread)."""

    def __init__(self, base: str, link_timeout_s: float = 2.5, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, takes: TakeLog | None = None):
        self.base = base
        self.takes = takes
        self.link_timeout_s = link_timeout_s
        self._clock, self._wall = clock, wall
        self.stages: dict[str, StageRecord] = {}
        self.broker_connected = False
        self._lock = threading.Lock()

    def broker(self, connected: bool) -> None:
        with self._lock:
            self.broker_connected = connected
            for record in self.stages.values():
                record.stage.broker(connected)

    def _record(self, name: str) -> StageRecord | None:
        record = self.stages.get(name)
        if record is None and len(self.stages) < MAX_STAGES and lot.STAGE_ID.match(name):
            record = self.stages[name] = StageRecord(name, self.base, self.link_timeout_s, self._clock, self._wall,
                                                     self.takes)
            record.stage.broker(self.broker_connected)
        return record

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> str | None:
        """Apply one message; the stage it changed, or None."""
        found = lot.stage_of(self.base, topic)
        if found is None:
            return None
        name, below = found
        with self._lock:
            record = self._record(name)
            if record is None:
                return None
            if below == "bridge":
                word = payload.decode(errors="replace")[:1]
                if word in ("0", "1") and word != record.bridge:
                    record.bridge, record.bridge_since = word, self._wall()
                return name
            parts = below.split("/")
            if len(parts) == 3 and parts[0] == "set" and parts[2] == "event" and payload:
                try:
                    record.event(parts[1], parse_payload(SetEvent, payload))
                except PayloadError:
                    pass
        return name if record.stage.handle(topic, payload, retained) is not None else None

    def snapshot(self) -> dict[str, Any]:
        """Every stage, grouped, JSON-ready: whether it is reachable (and since when not), its sets
        (without a state when unreachable), its lights and today's timeline."""
        with self._lock:
            records = [self.stages[name] for name in sorted(self.stages)]
            now = self._wall()
        midnight = dt.datetime.combine(dt.date.fromtimestamp(now), dt.time()).timestamp()
        stages = [self._stage(r, now, midnight) for r in records]
        return {"now": now, "broker": self.broker_connected, "day_start": midnight, "stages": stages}

    def _stage(self, record: StageRecord, now: float, midnight: float) -> dict[str, Any]:
        board = record.stage.board()
        sets = board["sets"]
        lights = [light for st in sets for light in st["lights"]] + board["other_lights"]
        beats = [st["beat_wall"] for st in sets if st.get("beat_wall")]
        # Heard from: a heartbeat, or a light's alive (both cross the bridge every second).
        heard = any(not st["lost"] for st in sets) or any(light["alive"] for light in lights) or (
            record.bridge == "1" and any(st["lost"] == "hub offline" for st in sets))  # news the bridge carried
        reachable = heard and record.bridge != "0"
        since = None
        if not reachable:
            seen = [*beats, *(light["seen"] for light in lights if light.get("seen"))]
            since = max(seen) if seen else record.bridge_since
            if record.bridge == "0" and record.bridge_since and (since is None or record.bridge_since < since):
                since = record.bridge_since
        condition = ("unreachable" if not reachable else "hub down" if any(st["lost"] for st in sets) or not sets
                     else "light down" if any(light["alive"] is False or light["online"] is False for light in lights)
                     else "ok")
        out_sets = []
        for s in sets:
            entry = {"set": s["set"], "take": s["take"], "lights": s["lights"], "lost": s["lost"] if reachable else "stage",
                     "state": s["state"] if reachable else None,
                     "showing": s["showing"] if reachable else "link-lost"}
            takes = self._timeline(record, s["set"], now, midnight)
            entry["timeline"] = [{
                "start": t["start"], "end": t["end"], "take": t["take"], "cause": t["cause"],
                "x": round(max(0.0, t["start"] - midnight)),  # seconds into the day: the timeline's axis
                "w": max(60, round((t["end"] or now) - max(t["start"], midnight))),
                "duration_s": round((t["end"] or now) - t["start"], 1)} for t in takes]
            out_sets.append(entry)
        return {"stage": record.name, "reachable": reachable, "since": since, "bridge": record.bridge,
                "condition": condition, "sets": out_sets}

    def _timeline(self, record: StageRecord, set_id: str, now: float, midnight: float) -> list[dict[str, Any]]:
        """Today's takes of one set: from the take log when there is one, else from memory."""
        if self.takes is None:
            return [t for t in record.takes.get(set_id, []) if (t["end"] or now) >= midnight]
        day = dt.date.fromtimestamp(midnight)
        return [{"start": t.started, "end": t.ended_at, "take": t.take, "cause": t.roll.cause if t.roll else "?"}
                for t in self.takes.takes(day, f"{record.name}/{set_id}")]
