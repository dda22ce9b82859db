"""The set controller: the state machine idle / standby / rolling, with seq, epoch and take.

Thread-safe; every accepted action yields a :class:`~setbridge.messages.SetEvent` handed
to ``on_event`` (and, when the state changed, a new :class:`~setbridge.messages.SetState`
to ``on_state``), in order, while the controller's lock is held.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..messages import SetEvent, SetState
from .state_store import StateStore, StoredState

log = logging.getLogger(__name__)

# (action, current state) -> new state; a missing pair is refused with the reason in REFUSALS.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("roll", "idle"): "rolling",
    ("roll", "standby"): "rolling",
    ("roll", "rolling"): "rolling",
    ("cut", "rolling"): "idle",
    ("cut", "idle"): "idle",
    ("cut", "standby"): "standby",
    ("standby", "idle"): "standby",
    ("standby", "standby"): "standby",
    ("idle", "idle"): "idle",
    ("idle", "standby"): "idle",
    ("idle", "rolling"): "idle",
}
REFUSALS = {("standby", "rolling"): "the set is rolling; send cut first"}


@dataclass(frozen=True)
class Outcome:
    """What an action did: ``ok`` False with ``error`` when refused."""

    ok: bool
    state: str
    seq: int
    changed: bool = False
    error: str | None = None
    event: SetEvent | None = None


class SetController:
    """Applies actions to one set and persists seq so it rises across restarts."""

    def __init__(
        self,
        set_id: str,
        store: StateStore,
        on_state: Callable[[SetState], None],
        on_event: Callable[[SetEvent], None],
        post_roll_s: float = 0.0,
    ):
        self.set_id = set_id
        self._store = store
        self._on_state = on_state
        self._on_event = on_event
        self._post_roll_s = post_roll_s
        self._lock = threading.RLock()
        self._post_roll: threading.Timer | None = None
        restored = store.load()
        self.epoch = restored.epoch + 1
        self._stored = StoredState(epoch=self.epoch, seq=restored.seq, state=restored.state, take=restored.take)
        self._cause = "restore"
        store.save(self._stored)

    @property
    def state(self) -> str:
        return self._stored.state

    @property
    def seq(self) -> int:
        return self._stored.seq

    @property
    def take(self) -> int:
        return self._stored.take

    @property
    def post_roll_pending(self) -> bool:
        return self._post_roll is not None

    def snapshot(self) -> SetState:
        """The current state as a payload (published retained on every (re)connect)."""
        with self._lock:
            s = self._stored
            return SetState(set=self.set_id, state=s.state, epoch=self.epoch, seq=s.seq, take=s.take, cause=self._cause)

    def restore(self) -> SetEvent:
        """Announce the state restored at start-up (cause ``restore``) with a fresh seq."""
        with self._lock:
            return self._commit("restore", self._stored.state, "restore", {})

    def apply(self, action: str, cause: str, **detail: object) -> Outcome:
        """Apply ``action`` (roll/cut/standby/idle); ``detail`` (source, phrase, confidence,
        transaction) is carried into the event."""
        with self._lock:
            current = self._stored.state
            if (action, current) in REFUSALS:
                return Outcome(False, current, self._stored.seq, error=REFUSALS[(action, current)])
            target = TRANSITIONS[(action, current)]
            if action == "cut" and current == "rolling" and self._post_roll_s > 0:
                if self._post_roll is None:
                    self._post_roll = threading.Timer(self._post_roll_s, self._end_post_roll, args=(cause,))
                    self._post_roll.daemon = True
                    self._post_roll.start()
                target = "rolling"  # stays rolling until the post-roll ends
            elif action in ("roll", "idle") and self._post_roll is not None:
                self._cancel_post_roll()
            event = self._commit(action, target, cause, detail)
            return Outcome(True, target, self._stored.seq, changed=event.changed, event=event)

    def close(self) -> None:
        """Stop a pending post-roll timer (the state stays as it is)."""
        with self._lock:
            self._cancel_post_roll()

    def _end_post_roll(self, cause: str) -> None:
        with self._lock:
            if self._post_roll is None:
                return
            self._post_roll = None
            self._commit("post-roll-end", "idle", cause, {})

    def _cancel_post_roll(self) -> None:
        if self._post_roll is not None:
            self._post_roll.cancel()
            self._post_roll = None

    def _commit(self, event_type: str, target: str, cause: str, detail: dict) -> SetEvent:
        s = self._stored
        changed = target != s.state
        if changed or event_type == "restore":
            if event_type == "roll":
                s.take += 1
            s.state = target
            s.seq += 1
            self._cause = cause
            self._store.save(s)
            self._on_state(self.snapshot())
        event = SetEvent(
            type=event_type, changed=changed, state=s.state, cause=cause, epoch=self.epoch, seq=s.seq, take=s.take,
            **{k: v for k, v in detail.items() if v is not None},
        )
        log.info("%s %s (%s): %s seq=%d", self.set_id, event_type, cause, s.state, s.seq)
        self._on_event(event)
        return event
