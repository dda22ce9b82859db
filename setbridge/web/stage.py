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
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, Field

from .. import contract as c
from ..codec import parse_payload
from ..errors import PayloadError
from ..messages import Heartbeat, HubStatus, LightAlive, LightState, LightStatus, SetEvent, SetState
from ..messages import Payload
from ..topics import Topics

log = logging.getLogger(__name__)

LINK_LOST = "link-lost"
VOICE_KEPT = 5
TEXT_KEPT = 128
"""Longest free text (cause, phrase) kept from the bus, so one huge message cannot bloat every page."""
"""Voice triggers kept per set for the board."""
MISMATCH_GRACE_S = 3.0
"""How long a light may lag behind its set's state before the board flags it (one that says it
applied the set's own epoch/seq but shows something else is flagged at once)."""
OVERLAYS = ("identify", "test", "flash")
"""What a light may show over a set state other than rolling (never over rolling)."""
ALIVE_WINDOW_S = 3.0
"""A light without an ``alive`` message for this long (or 3 × its ``every_s``) is not alive."""
MAX_SETS, MAX_LIGHTS, MAX_CARDS = 200, 2000, 500
"""Bounds, so a flood of made-up ids cannot grow the web process without limit (past ``MAX_CARDS``
the card with the oldest ``ts`` makes room: the board shows the newest)."""


class CardCopies(BaseModel):
    required: int = 0
    verified: int = 0


class CardView(Payload):
    """The fields of ``{base}/offload/card/{roll}`` the board shows; the rest of the payload (see
    :class:`~setbridge.offload.models.OffloadEvent`) is not needed here, so additions never hide a card."""

    roll: Annotated[str, Field(max_length=64)]
    status: Annotated[str, Field(max_length=32)]
    camera: Annotated[str, Field(max_length=16)] | None = None
    copies: CardCopies = CardCopies()
    safe_to_wipe: bool = False
    ts: float | None = None


@dataclass(frozen=True)
class Change:
    """What a message changed: ``set_id`` (None for stage-wide news such as a card), and whether
    the board needs a new snapshot (a heartbeat that only confirms the state does not)."""

    set_id: str | None
    board: bool = True


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
    applied_mono: float | None = None
    """``time.monotonic()`` when the current state was applied (a light may lag it for a moment)."""
    voice: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=VOICE_KEPT))

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
    """Thread-safe model of the stage. ``handle()`` says what a message changed, or None."""

    def __init__(self, topics: Topics, link_timeout_s: float = 2.5,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
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
        self._connected_mono: float | None = None

    # -- inputs ----------------------------------------------------------------------------
    def broker(self, connected: bool) -> None:
        with self._lock:
            self.broker_connected = connected
            self.broker_since = self._wall()
            self._connected_mono = self._clock() if connected else None

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> Change | None:
        try:
            with self._lock:
                return self._handle(c.identify(self.topics.base, topic), payload, retained)
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

    def _handle(self, found: tuple[c.TopicSpec, dict[str, str]] | None, payload: bytes,
                retained: bool) -> Change | None:
        match found:
            case (c.SET_STATE, {"set": set_id}):
                if not payload:
                    return None
                msg = parse_payload(SetState, payload)
                view = self._set(set_id)
                if view is None:
                    return None
                result = view.apply(msg.epoch, msg.seq, msg.state)
                if result == "stale":
                    return None
                if result == "applied":
                    view.applied_mono = self._clock()
                view.take, view.cause, view.changed_ts = msg.take, msg.cause[:TEXT_KEPT], msg.ts
                return Change(set_id)
            case (c.SET_HEARTBEAT, {"set": set_id}):
                beat = parse_payload(Heartbeat, payload)
                view = self._set(set_id)
                if view is None:
                    return None
                result = view.apply(beat.epoch, beat.seq, beat.state)
                if result == "stale":
                    return None
                if result == "applied":
                    view.applied_mono = self._clock()
                view.beat_mono, view.beat_wall = self._clock(), self._wall()
                return Change(set_id, board=result == "applied")
            case (c.SET_EVENT, {"set": set_id}):
                event = parse_payload(SetEvent, payload)
                if event.cause != "voice" or (view := self._set(set_id)) is None:
                    return None
                view.voice.appendleft({"type": event.type, "phrase": (event.phrase or "")[:TEXT_KEPT] or None,
                                       "confidence": event.confidence, "changed": event.changed, "ts": event.ts})
                return Change(set_id)
            case (c.HUB_STATUS, {"hub": hub}):
                if not payload:
                    self.hubs.pop(hub, None)
                    return Change(None)
                status = parse_payload(HubStatus, payload)
                self.hubs[hub] = status.model_dump(mode="json")
                self._set(status.set)
                return Change(status.set)
            case (c.LIGHT_ALIVE, {"light": light}):
                alive = parse_payload(LightAlive, payload)
                if light not in self.lights and len(self.lights) >= MAX_LIGHTS:
                    return None
                entry = self.lights.setdefault(light, {})
                was_alive, was_showing = self._alive(entry), self._showing(entry)
                entry["alive"] = {"showing": alive.showing, "every_s": alive.every_s, "at": self._clock()}
                entry["seen"] = self._wall()
                return Change(None, board=not was_alive or was_showing != alive.showing)
            case (c.LIGHT_STATUS | c.LIGHT_STATE as spec, {"light": light}):
                kind = spec.levels[-1]
                if light not in self.lights and len(self.lights) >= MAX_LIGHTS:
                    return None
                entry = self.lights.setdefault(light, {})
                if not payload:
                    entry.pop(kind, None)
                    return Change(None)
                model = LightStatus if kind == "status" else LightState
                entry[kind] = parse_payload(model, payload).model_dump(mode="json", exclude_none=True)
                if not retained:
                    entry["seen"] = self._wall()
                return Change(None)
            case (c.OFFLOAD_CARD, {"roll": roll}):
                if not payload:
                    return Change(None) if self.cards.pop(roll, None) is not None else None
                card = parse_payload(CardView, payload).model_dump(mode="json", exclude={"v"})
                if roll not in self.cards and len(self.cards) >= MAX_CARDS:
                    oldest = min(self.cards, key=lambda r: self.cards[r].get("ts") or 0)
                    if (self.cards[oldest].get("ts") or 0) > (card.get("ts") or 0):
                        return None  # older than every card shown: the newest are kept
                    del self.cards[oldest]
                self.cards[roll] = card
                return Change(None)
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
        return str(self.light_view(set_id)["showing"])

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
                             lights=[self._light(light, e, entry) for light, e in sorted(self.lights.items())
                                     if (e.get("status") or {}).get("set") == set_id])
                sets.append(entry)
            unassigned = [self._light(light, e) for light, e in sorted(self.lights.items())
                          if (e.get("status") or {}).get("set") not in self.sets]
            cards = sorted(self.cards.values(), key=lambda c: -(c.get("ts") or 0))
            return {"now": self._wall(), "broker": self.broker_connected, "broker_since": self.broker_since,
                    "sets": sets, "other_lights": unassigned, "cards": cards, "link_timeout_s": self.link_timeout_s}

    def beats(self) -> dict[str, Any]:
        """Every set's heartbeat age and link verdict, for the board's once-a-second tick."""
        with self._lock:
            now = self._clock()
            return {"broker": self.broker_connected, "sets": {
                set_id: {"beat_age_s": None if v.beat_mono is None else round(now - v.beat_mono, 3),
                         "lost": self._lost(v)} for set_id, v in self.sets.items()},
                "lights": {light: {"alive": self._alive(e), "showing": self._showing(e), **self._told(e)}
                           for light, e in self.lights.items()}}

    def _alive(self, entry: dict[str, Any]) -> bool | None:
        """A light is alive while its ``alive`` messages keep coming (docs/mqtt.md: not alive after
        3 s, or 3 × its ``every_s``, without one); None until this process has listened that long."""
        alive = entry.get("alive")
        if alive is not None:
            window = max(ALIVE_WINDOW_S, 3 * alive["every_s"])
            if self._clock() - alive["at"] <= window:
                return True
        if self._connected_mono is None or self._clock() - self._connected_mono < ALIVE_WINDOW_S:
            return None
        return False

    def _showing(self, entry: dict[str, Any]) -> str | None:
        alive = entry.get("alive")
        if alive is not None and self._clock() - alive["at"] <= max(ALIVE_WINDOW_S, 3 * alive["every_s"]):
            return str(alive["showing"])
        showing = (entry.get("state") or {}).get("showing")
        return None if showing is None else str(showing)

    def _applied(self, entry: dict[str, Any]) -> tuple[Any, Any]:
        """The (epoch, seq) the light says it applied, from its freshest message."""
        alive = entry.get("alive")
        if alive is not None and self._clock() - alive["at"] <= max(ALIVE_WINDOW_S, 3 * alive["every_s"]):
            return alive.get("epoch"), alive.get("seq")
        state = entry.get("state") or {}
        return state.get("epoch"), state.get("seq")

    def _told(self, entry: dict[str, Any], view: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the light was told to show (its set's state, as a light page would show it) and
        whether what it says it shows disagrees: at once if it says it applied the set's own
        epoch/seq, else after :data:`MISMATCH_GRACE_S` (a light takes a moment to follow)."""
        set_id = (entry.get("status") or {}).get("set")
        if view is None:
            known = self.sets.get(set_id) if set_id else None
            view = self._light_view(known) if known is not None else None
        if view is None:
            return {"told": None, "mismatch": False}
        told, says = view["showing"], self._showing(entry)
        if says is None or told is None or says == told or told == LINK_LOST:
            return {"told": told, "mismatch": False}  # the board's own link is no verdict on the light's
        if says in OVERLAYS and told != "rolling":
            return {"told": told, "mismatch": False}
        set_view = self.sets[view["set"]]
        same_state = self._applied(entry) == (set_view.epoch, set_view.seq)
        settled = set_view.applied_mono is None or self._clock() - set_view.applied_mono >= MISMATCH_GRACE_S
        return {"told": told, "mismatch": same_state or settled}

    def _light(self, light: str, entry: dict[str, Any], view: dict[str, Any] | None = None) -> dict[str, Any]:
        status = entry.get("status") or {}
        return {"id": light, "online": status.get("state") == "online" if status else None,
                "alive": self._alive(entry), "showing": self._showing(entry), "fw": status.get("fw"),
                "seen": entry.get("seen"), **self._told(entry, view)}


def dumps(data: Any) -> str:
    """Compact JSON for the event streams."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
