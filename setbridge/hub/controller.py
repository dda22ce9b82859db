"""The set controller: the state machine idle / standby / rolling, with seq, epoch and take.

Thread-safe. Actions are applied in batches (:meth:`SetController.apply_many`): the batch's
resulting state is written to disk first and only then becomes the state in memory, so a
failed write (a full disk) refuses the whole batch and changes nothing. Then the newest
:class:`~setbridge.messages.SetState` goes to ``on_state`` (once per batch: the retained state
only needs the latest) and one :class:`~setbridge.messages.SetEvent` per accepted action to
``on_event``, in order, while the controller's lock is held.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..actions import REFUSALS, TRANSITIONS
from ..messages import SetEvent, SetState, new_id, now
from ..ratelog import RateLimitedLog
from .state_store import StateStore, StoredState, recovery_state

log = logging.getLogger(__name__)

QUIET_BATCH = 4
"""Batches larger than this are logged as one summary line."""
POST_ROLL_END = "post-roll-end"
RESTORE = "restore"
DISK_TROUBLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
"""Write errors of a disk that was fine: full, over quota, remounted read-only, failing."""


@dataclass(frozen=True)
class Outcome:
    """What an action did: ``ok`` False with ``error`` when refused."""

    ok: bool
    state: str
    seq: int
    changed: bool = False
    error: str | None = None
    event: SetEvent | None = None
    transient: bool = False
    """Refused for a passing reason (the state could not be saved): the same action may succeed later."""


@dataclass(frozen=True)
class Action:
    """One action to apply; ``detail`` (source, phrase, confidence, transaction) goes into its event."""

    action: str
    cause: str
    detail: dict[str, object] = field(default_factory=dict)


@dataclass
class _Plan:
    """A batch worked out in memory, not yet written or visible."""

    before: StoredState
    cause: str
    post_roll: bool
    state: str = ""
    seq: int = 0
    take: int = 0
    restart_timer: bool = False
    post_roll_cause: str = ""
    quiet: bool = False
    """Many actions at once (a burst): one summary log line instead of one per action."""
    changes: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state, self.seq, self.take = self.before.state, self.before.seq, self.before.take

    def stored(self) -> StoredState:
        """The state after the batch (the same object when nothing changed)."""
        b = self.before
        if (self.state, self.seq, self.take) == (b.state, b.seq, b.take):
            return b
        return b.model_copy(update={"state": self.state, "seq": self.seq, "take": self.take})


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
        self.save_failures = RateLimitedLog(log, "%(n)d action(s) refused in %(s).1f s: %(who)s", level=logging.ERROR)
        """Actions refused because the state could not be saved (logged at once, then once per 5 s)."""
        restored = store.load()
        self.epoch = restored.epoch + 1
        stored = restored.model_copy(update={"epoch": self.epoch})
        try:
            store.save(stored)
        except OSError as exc:
            if exc.errno not in DISK_TROUBLE:
                raise  # a state_dir this user cannot write at all: a configuration to fix
            # Run on, so that the lights keep the restored state, and refuse every action until the
            # disk takes writes again. The unsaved epoch comes from the clock: never one published before.
            self.epoch = max(self.epoch, recovery_state().epoch)
            stored = restored.model_copy(update={"epoch": self.epoch})
            log.error("cannot save the set state to %s (%s); starting %s at epoch %d seq %d, and every action is "
                      "refused until it can be saved (free space on that disk)", store.path, exc.strerror,
                      stored.state, self.epoch, stored.seq)
        self._current: tuple[StoredState, str] = (stored, RESTORE)
        """The state and its cause, swapped as one object so readers never need the lock."""

    @property
    def stored(self) -> StoredState:
        return self._current[0]

    @property
    def state(self) -> str:
        return self._current[0].state

    @property
    def seq(self) -> int:
        return self._current[0].seq

    @property
    def take(self) -> int:
        return self._current[0].take

    @property
    def post_roll_pending(self) -> bool:
        return self._post_roll is not None

    def snapshot(self) -> SetState:
        """The current state as a payload (published retained on every (re)connect). Lock-free."""
        s, cause = self._current
        return SetState(set=self.set_id, state=s.state, epoch=self.epoch, seq=s.seq, take=s.take, cause=cause)

    def restore(self) -> SetEvent | None:
        """Announce the state restored at start-up (cause ``restore``) with a fresh seq."""
        return self.apply_many([Action(RESTORE, RESTORE)])[0].event

    def apply(self, action: str, cause: str, **detail: object) -> Outcome:
        """Apply ``action`` (roll/cut/standby/idle); ``detail`` (source, phrase, confidence,
        transaction) is carried into the event."""
        return self.apply_many([Action(action, cause, detail)])[0]

    def apply_many(self, actions: Sequence[Action]) -> list[Outcome]:
        """Apply ``actions`` in order with one write to disk; one outcome per action."""
        with self._lock:
            before, cause = self._current
            plan = _Plan(before, cause, self._post_roll is not None, quiet=len(actions) > QUIET_BATCH)
            for item in actions:
                plan.outcomes.append(self._step(plan, item))
            stored = plan.stored()
            if stored is not before:
                try:
                    self._store.save(stored)
                except OSError as exc:
                    error = (f"cannot save the set state to {self._store.path} ({exc.strerror or exc}); "
                             "nothing changed: free space in [hub] state_dir or make it writable")
                    self.save_failures.count(error, len(actions))
                    return [Outcome(False, before.state, before.seq, error=error, transient=True) for _ in actions]
            self._current = (stored, plan.cause)
            if plan.quiet:
                log.info("%s: %d actions at once, %d changes: %s seq=%d..%d", self.set_id, len(actions), plan.changes,
                         stored.state, before.seq, stored.seq)
            if not plan.post_roll:
                self._cancel_post_roll()
            elif plan.restart_timer:
                self._start_post_roll(self._post_roll_s, plan.post_roll_cause)
            if stored.seq != before.seq:
                self._on_state(self.snapshot())
            for outcome in plan.outcomes:
                if outcome.event is not None:
                    self._on_event(outcome.event)
            return plan.outcomes

    def close(self) -> None:
        """Stop a pending post-roll timer (the state stays as it is)."""
        with self._lock:
            self._cancel_post_roll()

    def _step(self, plan: _Plan, item: Action) -> Outcome:
        current, action = plan.state, item.action
        if action == RESTORE:
            target = current
        elif action == POST_ROLL_END:
            if not plan.post_roll:
                return Outcome(True, current, plan.seq)  # a roll or idle came first
            plan.post_roll = False
            target = "idle"
        elif (action, current) in REFUSALS:
            return Outcome(False, current, plan.seq, error=REFUSALS[(action, current)])
        else:
            target = TRANSITIONS[(action, current)]
            if action == "cut" and current == "rolling" and self._post_roll_s > 0:
                if not plan.post_roll:
                    plan.post_roll = plan.restart_timer = True
                    plan.post_roll_cause = item.cause
                target = "rolling"  # stays rolling until the post-roll ends
            elif action in ("roll", "idle"):
                plan.post_roll = False
        changed = target != current
        if changed or action == RESTORE:
            plan.state, plan.seq = target, plan.seq + 1
            plan.take += action == "roll"
            plan.cause = item.cause
        fields: dict[str, Any] = {k: v for k, v in item.detail.items() if v is not None}
        fields.update(type=action, changed=changed, state=plan.state, cause=item.cause, epoch=self.epoch, seq=plan.seq,
                      take=plan.take)
        try:  # pydantic's validator is quicker than model_construct (which inspects default factories)
            event = SetEvent.model_validate(fields)
        except ValidationError:  # a trigger's detail of an unexpected type: carried as given
            event = SetEvent.model_construct(event_id=new_id(), ts=now(), **fields)
        if plan.quiet:
            plan.changes += changed
        else:
            (log.info if changed or action == RESTORE else log.debug)(
                "%s %s (%s): %s seq=%d", self.set_id, action, item.cause, plan.state, plan.seq)
        return Outcome(True, target, plan.seq, changed=changed, event=event)

    def _start_post_roll(self, delay_s: float, cause: str) -> None:
        self._cancel_post_roll()
        timer = threading.Timer(delay_s, lambda: self._end_post_roll(timer, cause))
        timer.daemon = True
        self._post_roll = timer
        timer.start()

    def _end_post_roll(self, timer: threading.Timer, cause: str) -> None:
        with self._lock:
            if self._post_roll is not timer:
                return  # cancelled, or replaced by a newer post-roll
            if not self.apply_many([Action(POST_ROLL_END, cause)])[0].ok:
                self._start_post_roll(1.0, cause)  # the state could not be saved: try again shortly

    def _cancel_post_roll(self) -> None:
        if self._post_roll is not None:
            self._post_roll.cancel()
            self._post_roll = None
