"""The other hubs on the broker: one hub per set, one offload relay per broker.

Two hubs serving one set interleave its state (each with its own ``epoch`` and ``seq``); two hubs
relaying offload publish every report twice, from two journals whose ``seq`` fight over each
card's retained status. The roster reads every hub's retained ``{base}/hub/+/status`` and the
sets' heartbeats (a hub whose status says online is taken as alive only while its set's
heartbeats arrive, so a stale retained status never blocks a stage).

- At start (:meth:`Roster.rivals`): another hub alive for this set makes the hub refuse to start,
  in one line naming it; another hub alive that relays offload makes this hub run without offload.
- Running (:attr:`Roster.conflict`): a hub that comes online for this set, or relays offload
  while this hub does, is logged as an error and named in this hub's status until it is gone.

>>> roster = Roster("hub-1", "main", relays_offload=True, on_change=republish_status)
>>> bus.subscribe(topics.hub_status("+"), roster.on_status, qos=0)
>>> bus.subscribe(topics.set_heartbeat("+"), roster.on_heartbeat, qos=0)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..errors import PayloadError
from ..codec import parse_payload
from ..messages import HubStatus

log = logging.getLogger(__name__)

ALIVE_S = 3.0
"""A hub is alive while its set's heartbeats arrive: one within this many seconds (docs/mqtt.md)."""


class Roster:
    """Other hubs' statuses and their sets' latest heartbeats, as this hub hears them. Thread-safe."""

    def __init__(self, hub_id: str, set_id: str, relays_offload: bool, on_change: Callable[[], None] = lambda: None):
        self.hub_id = hub_id
        self.set_id = set_id
        self.relays_offload = relays_offload
        self._on_change = on_change
        self._online: dict[str, HubStatus] = {}
        self._beats: dict[str, float] = {}
        """Set → when (monotonic) its latest heartbeat arrived."""
        self._changed = threading.Condition()
        self.watching = False
        """After start: a hub coming online is a conflict to report."""
        self.conflict: str | None = None
        """Why another hub conflicts with this one now, in one line (None: none)."""

    # -- bus handlers (network thread) ----------------------------------------------------------
    def on_status(self, topic: str, payload: bytes) -> None:
        hub = topic.rsplit("/", 2)[-2]
        if hub == self.hub_id:
            return
        try:
            status = parse_payload(HubStatus, payload) if payload else None
        except PayloadError:
            status = None
        with self._changed:
            if status is not None and status.state == "online" and status.hub == hub:
                self._online[hub] = status
            else:
                self._online.pop(hub, None)
            self._changed.notify_all()
        if self.watching:
            self._update_conflict()

    def on_heartbeat(self, topic: str, payload: bytes) -> None:
        set_id = topic.rsplit("/", 2)[-2]
        with self._changed:
            self._beats[set_id] = time.monotonic()
            self._changed.notify_all()

    # -- at start -------------------------------------------------------------------------------
    def rivals(self, wait_s: float = ALIVE_S) -> tuple[HubStatus | None, HubStatus | None]:
        """The hub alive for this set, and the hub alive that relays offload (when this one would),
        waiting up to ``wait_s`` for their heartbeats. Call once the retained statuses are in."""
        for _ in range(8):  # a stale one is dropped; look again for a live one behind it
            found = self._rivals_once(wait_s)
            if found == self._candidates():
                return found
        return found

    def _rivals_once(self, wait_s: float) -> tuple[HubStatus | None, HubStatus | None]:
        since = time.monotonic()
        same_set, offload = self._candidates()
        deadline = since + wait_s
        with self._changed:
            def settled() -> bool:
                return all(self._beats.get(s.set, -1.0) >= since for s in (same_set, offload) if s is not None)
            self._changed.wait_for(settled, max(0.0, deadline - time.monotonic()))
            alive = {s.hub for s in (same_set, offload) if s is not None and self._beats.get(s.set, -1.0) >= since}
        for stale in (s for s in (same_set, offload) if s is not None and s.hub not in alive):
            with self._changed:
                if self._online.get(stale.hub) is stale:
                    del self._online[stale.hub]  # until it says online again
            log.warning("hub %s's retained status says online for set %s, but its set has sent no heartbeat in "
                        "%.0f s: taken as gone (a stale status)", stale.hub, stale.set, wait_s)
        return (same_set if same_set and same_set.hub in alive else None,
                offload if offload and offload.hub in alive else None)

    def _candidates(self) -> tuple[HubStatus | None, HubStatus | None]:
        with self._changed:
            online = sorted(self._online.values(), key=lambda s: s.hub)
        same_set = next((s for s in online if s.set == self.set_id), None)
        offload = next((s for s in online if s.offload != "off"), None) if self.relays_offload else None
        return same_set, offload

    def start_watching(self, relays_offload: bool) -> None:
        """From now on, another hub coming online for this set (or relaying offload) is a conflict."""
        self.relays_offload = relays_offload
        self.watching = True
        self._update_conflict()

    # -- running --------------------------------------------------------------------------------
    def _update_conflict(self) -> None:
        same_set, offload = self._candidates()
        if same_set is not None:
            conflict = (f"hub {same_set.hub} is online for set {self.set_id} too: two hubs interleave its state; "
                        "stop one of them or give it another [hub] set")
        elif offload is not None:
            conflict = (f"hub {offload.hub} relays offload reports on this broker too: every report is published "
                        "twice; set [offload] enabled = false on every hub but one")
        else:
            conflict = None
        if conflict == self.conflict:
            return
        self.conflict = conflict
        if conflict:
            log.error("conflict: %s", conflict)
        else:
            log.info("conflict resolved: no other hub serves set %s or relays offload", self.set_id)
        try:
            self._on_change()
        except Exception:
            log.exception("roster listener failed")
