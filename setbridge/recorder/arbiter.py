"""Arbitration: the recorder is the authority for "recording", voice is the early warning.

Sits between the triggers and the set controller when a recorder source (rec-run timecode, a
record tally) is configured; the table in the README and docs/mqtt.md says the same:

- a voice cut while the recorder records is overruled (an event with ``overruled`` true, no change);
- a voice roll lights red at once; if the recorder has not started within ``confirm_s`` the set
  goes back to the state it had, with an event (cause ``unconfirmed``) that says why;
- the recorder starting rolls and stopping cuts (post-roll applies), cause ``timecode`` or ``tally``;
- buttons and requests act as always (they never pass through here);
- a source at fault has no say: voice acts alone until it is back;
- a rolling state restored at start that the recorder does not confirm once its sources have had
  time to report goes idle (cause the source's, with a ``reason``), once; a source at fault or a
  recorder that records leaves it rolling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..hub.controller import Outcome
from ..messages import SetEvent, SetState

log = logging.getLogger(__name__)

UNCONFIRMED = "unconfirmed"
"""The cause of a revert: a voice roll the recorder never confirmed."""

RECHECK_S = 0.2
"""How often a restored rolling state is looked at again while a source has not yet reported."""


@dataclass
class _Source:
    recording: bool = False
    healthy: bool = True
    reason: str | None = None


class Arbiter:
    """Decides what a voice trigger and a recorder source do; see the module docstring. Thread-safe."""

    def __init__(self, submit: Callable[..., Outcome], snapshot: Callable[[], SetState],
                 publish_event: Callable[[SetEvent], None], confirm_s: float,
                 on_change: Callable[[], None] = lambda: None):
        self._submit = submit
        self._snapshot = snapshot
        self._publish_event = publish_event
        self.confirm_s = confirm_s
        self._on_change = on_change
        self._sources: dict[str, _Source] = {}
        self._lock = threading.Lock()
        self._confirm: threading.Timer | None = None
        self._restored: threading.Timer | None = None
        self._stopped = False
        self.overruled = 0
        """Voice cuts overruled since start."""
        self.reverted = 0
        """Voice rolls reverted since start."""

    # -- the recorder sources ----------------------------------------------------------------
    def add_source(self, name: str) -> None:
        self._sources[name] = _Source()

    def recording(self) -> bool:
        """The recorder records, as far as the healthy sources say."""
        return any(s.recording for s in self._sources.values() if s.healthy)

    def authority(self) -> bool:
        """At least one source is healthy: the recorder has a say."""
        return any(s.healthy for s in self._sources.values())

    def health(self) -> tuple[str, str | None]:
        """``ok`` or ``fault`` with the reasons of the sources at fault."""
        reasons = [f"{name}: {s.reason}" for name, s in self._sources.items() if not s.healthy]
        return ("fault", "; ".join(reasons)) if reasons else ("ok", None)

    def source_health(self, name: str, healthy: bool, reason: str | None = None) -> None:
        source = self._sources[name]
        if (source.healthy, source.reason) == (healthy, reason):
            return
        source.healthy, source.reason = healthy, reason
        (log.info if healthy else log.warning)("recorder source %s %s", name, "ok" if healthy else f"at fault: {reason}")
        self._on_change()

    def source_changed(self, name: str, recording: bool, cause: str, **detail: object) -> None:
        """A source says the recorder started or stopped: roll or cut unless another still records."""
        with self._lock:
            before = self.recording()
            self._sources[name].recording = recording
            after = self.recording()
            if after:
                self._cancel_confirm()
        self._on_change()
        if before != after:
            outcome = self._submit("roll" if after else "cut", cause=cause, **detail)
            if not outcome.ok:
                log.warning("recorder %s via %s refused: %s", "start" if after else "stop", name, outcome.error)

    # -- voice ---------------------------------------------------------------------------------
    def voice(self, action: str, cause: str = "voice", **detail: object) -> Outcome:
        """A voice trigger, decided against the recorder (the voice listener's ``submit``)."""
        if not self.authority():
            return self._submit(action, cause=cause, **detail)
        if action == "cut" and self.recording():
            return self._overrule(action, cause, detail)
        previous = self._snapshot()
        outcome = self._submit(action, cause=cause, **detail)
        if action == "roll" and outcome.changed and not self.recording():
            self._start_confirm(previous.state, outcome.seq)
        return outcome

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._cancel_confirm()
            if self._restored is not None:
                self._restored.cancel()

    # -- a rolling state restored at start -----------------------------------------------------
    def check_restored(self, window_s: float, reported: Callable[[str], bool]) -> None:
        """At start: if the set is rolling (restored from disk), look again after ``window_s`` and, once
        every healthy source has ``reported(name)``, take it idle unless the recorder records."""
        state = self._snapshot()
        if state.state == "rolling":
            self._later_restored(window_s, state.seq, window_s, reported)

    def _later_restored(self, delay_s: float, seq: int, window_s: float, reported: Callable[[str], bool]) -> None:
        with self._lock:
            if self._stopped:
                return
            timer = threading.Timer(delay_s, self._restored_due, args=(seq, window_s, reported))
            timer.daemon = True
            self._restored = timer
            timer.start()

    def _restored_due(self, seq: int, window_s: float, reported: Callable[[str], bool]) -> None:
        with self._lock:
            if self._stopped:
                return
            state = self._snapshot()
            if state.state != "rolling" or state.seq != seq:
                return  # someone acted since the start: theirs is the last word
            if self.recording():
                log.info("restored rolling state kept: the recorder is recording")
                return
            healthy = [name for name, s in self._sources.items() if s.healthy]
            if not healthy:
                log.warning("restored rolling state kept: the recorder source is at fault (%s)", self.health()[1])
                return
            waiting = [name for name in healthy if not reported(name)]
            if not waiting:
                reason = (f"the set was restored as rolling at start, but the recorder ({', '.join(healthy)}) "
                          f"was not recording {window_s:g} s later")
                log.warning("restored rolling state ended: %s", reason)
                outcome = self._submit("idle", cause=healthy[0], reason=reason)
                if not outcome.ok:
                    log.warning("restored rolling state could not go idle: %s", outcome.error)
                return
        self._later_restored(RECHECK_S, seq, window_s, reported)  # a source that has not heard enough yet

    def _overrule(self, action: str, cause: str, detail: dict[str, object]) -> Outcome:
        state = self._snapshot()
        reason = "the recorder is still recording"
        self.overruled += 1
        log.info("voice %s overruled: %s (%r)", action, reason, detail.get("phrase"))
        fields = {k: v for k, v in detail.items() if v is not None}
        event = SetEvent.model_validate({**fields, "type": action, "changed": False, "state": state.state,
                                         "cause": cause, "epoch": state.epoch, "seq": state.seq,
                                         "take": state.take, "overruled": True, "reason": reason})
        self._publish_event(event)
        return Outcome(False, state.state, state.seq, error=f"overruled: {reason}", event=event)

    def _start_confirm(self, previous: str, seq: int) -> None:
        with self._lock:
            self._cancel_confirm()
            timer = threading.Timer(self.confirm_s, self._unconfirmed, args=(previous, seq))
            timer.daemon = True
            self._confirm = timer
            timer.start()

    def _cancel_confirm(self) -> None:
        if self._confirm is not None:
            self._confirm.cancel()
            self._confirm = None

    def _unconfirmed(self, previous: str, seq: int) -> None:
        with self._lock:
            if self._confirm is None or self.recording() or not self.authority():
                return
            self._confirm = None
        state = self._snapshot()
        if state.state != "rolling" or state.seq != seq:
            return  # something else happened since the roll (a cut, another roll): leave it
        reason = f"the recorder did not start within {self.confirm_s:g} s of the voice roll"
        self.reverted += 1
        log.warning("voice roll reverted to %s: %s", previous, reason)
        self._submit("idle", cause=UNCONFIRMED, reason=reason)
        if previous == "standby":
            self._submit("standby", cause=UNCONFIRMED, reason=reason)
