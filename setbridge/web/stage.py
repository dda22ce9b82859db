"""What the bus says about the stage: sets, hubs, lights and offload cards, for the web pages.

:class:`Stage` is fed every message the web process hears (from paho's thread) and answers
snapshots as plain JSON-ready dicts. It applies the lights' rules (``firmware/light/rules.py``):

- a set state or heartbeat is applied only if newer: another ``epoch`` wins, within an epoch
  a higher ``seq`` wins;
- only a heartbeat proves the hub alive (a retained state may come from a dead hub); a
  heartbeat with the applied ``epoch``/``seq`` confirms what is shown;
- a set shows ``link-lost`` while the broker is unreachable, its hub said ``offline``, no state
  is known, or the last heartbeat is older than ``link_timeout_s``.

It never raises on bad input: a payload that does not parse is counted and logged once per
topic, and the rest of the stage is unaffected.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..errors import PayloadError
from ..messages import Heartbeat, HubStatus, LightState, LightStatus, SetEvent, SetState, parse_payload
from ..offload.models import OffloadEvent
from ..topics import Topics

log = logging.getLogger(__name__)

LINK_LOST = "link-lost"
VOICE_KEPT = 5
"""Voice triggers kept per set for the board."""
MAX_SETS, MAX_LIGHTS, MAX_CARDS = 200, 2000, 500
"""Bounds, so a flood of made-up ids cannot grow the web process without limit."""


@dataclass
class SetView:
    """One set as the bus describes it."""

    set_id: str
    state: str | None = None
    epoch: int | None = None
    seq: int | None = None
    take: int | None = None
    cause: str | None = None
    changed_ts: float | None = None
    """The hub's timestamp of the last change (``ts`` of the set state)."""
    beat_mono: float | None = None
    """``time.monotonic()`` of the last heartbeat that confirmed the applied state."""
    beat_wall: float | None = None
    voice: deque = field(default_factory=lambda: deque(maxlen=VOICE_KEPT))

    def apply(self, epoch: int, seq: int, state: str) -> str:
        """``applied``, ``same`` or ``stale``, by the epoch/seq rule."""
        if self.epoch is None or epoch != self.epoch or seq > (self.seq or 0):
            if self.epoch is not None and epoch != self.epoch:
                log.info("set %s: new hub epoch %d (was %d)", self.set_id, epoch, self.epoch)
            self.epoch, self.seq, self.state = epoch, seq, state
            return "applied"
        if seq == self.seq:
            return "same"
        return "stale"


class Stage:
    """Thread-safe model of the stage. ``handle()`` returns the set id a message concerns
    (``""`` for stage-wide news such as a card), or None when nothing changed."""

    def __init__(self, topics: Topics, link_timeout_s: float = 2.5, clock=time.monotonic, wall=time.time):
        self.topics = topics
        self.link_timeout_s = link_timeout_s
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self.sets: dict[str, SetView] = {}
        self.hubs: dict[str, dict[str, Any]] = {}
        self.lights: dict[str, dict[str, Any]] = {}
        self.cards: dict[str, dict[str, Any]] = {}
        self.broker_connected = False
        self.broker_since: float | None = None
        """Wall time the broker connection last went up or down."""
        self.rejected = 0
        self._warned: set[str] = set()

    # -- inputs ----------------------------------------------------------------------------
    def broker(self, connected: bool) -> None:
        with self._lock:
            self.broker_connected = connected
            self.broker_since = self._wall()

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> str | None:
        try:
            with self._lock:
                return self._handle(self.topics.split(topic), payload, retained)
        except PayloadError as exc:
            self.rejected += 1
            if topic not in self._warned and len(self._warned) < 1000:
                self._warned.add(topic)
                log.warning("ignored a message on %s: %s (further ones on this topic are not logged)", topic, exc)
            return None

    def _set(self, set_id: str) -> SetView | None:
        view = self.sets.get(set_id)
        if view is None and len(self.sets) < MAX_SETS:
            view = self.sets[set_id] = SetView(set_id)
        return view

    def _handle(self, levels: list[str], payload: bytes, retained: bool) -> str | None:
        match levels:
            case ["set", set_id, "state"]:
                if not payload:
                    return None
                msg = parse_payload(SetState, payload)
                view = self._set(set_id)
                if view is None or view.apply(msg.epoch, msg.seq, msg.state) == "stale":
                    return None
                view.take, view.cause, view.changed_ts = msg.take, msg.cause, msg.ts
                return set_id
            case ["set", set_id, "heartbeat"]:
                msg = parse_payload(Heartbeat, payload)
                view = self._set(set_id)
                if view is None:
                    return None
                result = view.apply(msg.epoch, msg.seq, msg.state)
                if result == "stale":
                    return None
                view.beat_mono, view.beat_wall = self._clock(), self._wall()
                return set_id
            case ["set", set_id, "event"]:
                msg = parse_payload(SetEvent, payload)
                if msg.cause != "voice" or (view := self._set(set_id)) is None:
                    return None
                view.voice.appendleft({"type": msg.type, "phrase": msg.phrase, "confidence": msg.confidence,
                                       "changed": msg.changed, "ts": msg.ts})
                return set_id
            case ["hub", hub, "status"]:
                if not payload:
                    self.hubs.pop(hub, None)
                    return ""
                msg = parse_payload(HubStatus, payload)
                self.hubs[hub] = msg.model_dump(mode="json")
                self._set(msg.set)
                return msg.set
            case ["light", light, kind] if kind in ("status", "state"):
                if light not in self.lights and len(self.lights) >= MAX_LIGHTS:
                    return None
                entry = self.lights.setdefault(light, {})
                if not payload:
                    entry.pop(kind, None)
                    return ""
                model = LightStatus if kind == "status" else LightState
                entry[kind] = parse_payload(model, payload).model_dump(mode="json", exclude_none=True)
                if not retained:
                    entry["seen"] = self._wall()
                return ""
            case ["offload", "card", roll]:
                if not payload:
                    return "" if self.cards.pop(roll, None) is not None else None
                if roll not in self.cards and len(self.cards) >= MAX_CARDS:
                    return None
                card = parse_payload(OffloadEvent, payload)
                self.cards[roll] = {"roll": card.roll, "status": card.status, "camera": card.camera,
                                    "copies": card.copies.model_dump(), "safe_to_wipe": card.safe_to_wipe,
                                    "ts": card.ts}
                return ""
        return None

    # -- outputs ---------------------------------------------------------------------------
    def hub_online(self, set_id: str) -> bool | None:
        """True when a hub of this set is online, False when its hubs said offline, None if unknown."""
        mine = [h for h in self.hubs.values() if h.get("set") == set_id]
        if not mine:
            return None
        return any(h.get("state") == "online" for h in mine)

    def _lost(self, view: SetView) -> str | None:
        if not self.broker_connected:
            return "broker"
        if self.hub_online(view.set_id) is False:
            return "hub offline"
        if view.state is None:
            return "no state"
        if view.beat_mono is None or self._clock() - view.beat_mono > self.link_timeout_s:
            return "no heartbeat"
        return None

    def light_view(self, set_id: str) -> dict[str, Any]:
        """What a phone recording light for ``set_id`` needs, with the server's verdict."""
        with self._lock:
            view = self.sets.get(set_id) or SetView(set_id)
            return self._light_view(view)

    def _light_view(self, view: SetView) -> dict[str, Any]:
        lost = self._lost(view)
        now = self._clock()
        return {
            "set": view.set_id, "state": view.state, "epoch": view.epoch, "seq": view.seq, "take": view.take,
            "broker": self.broker_connected, "hub_online": self.hub_online(view.set_id),
            "beat_age_s": None if view.beat_mono is None else round(now - view.beat_mono, 3),
            "showing": LINK_LOST if lost else view.state, "lost": lost,
        }

    def showing(self, set_id: str) -> str:
        return self.light_view(set_id)["showing"]

    def board(self) -> dict[str, Any]:
        """Everything the board shows, as JSON-ready data."""
        with self._lock:
            sets = []
            for set_id in sorted(self.sets):
                view = self.sets[set_id]
                entry = self._light_view(view)
                hubs = [dict(h, id=hub) for hub, h in sorted(self.hubs.items()) if h.get("set") == set_id]
                entry.update(cause=view.cause, changed_ts=view.changed_ts, beat_wall=view.beat_wall, hubs=hubs,
                             voice=list(view.voice),
                             lights=[self._light(light, e) for light, e in sorted(self.lights.items())
                                     if (e.get("status") or {}).get("set") == set_id])
                sets.append(entry)
            unassigned = [self._light(light, e) for light, e in sorted(self.lights.items())
                          if (e.get("status") or {}).get("set") not in self.sets]
            cards = sorted(self.cards.values(), key=lambda c: -(c.get("ts") or 0))
            return {"now": self._wall(), "broker": self.broker_connected, "broker_since": self.broker_since,
                    "sets": sets, "other_lights": unassigned, "cards": cards, "link_timeout_s": self.link_timeout_s}

    @staticmethod
    def _light(light: str, entry: dict[str, Any]) -> dict[str, Any]:
        status, state = entry.get("status") or {}, entry.get("state") or {}
        return {"id": light, "online": status.get("state") == "online" if status else None,
                "showing": state.get("showing"), "fw": status.get("fw"), "seen": entry.get("seen")}


def dumps(data: Any) -> str:
    """Compact JSON for the event streams."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
