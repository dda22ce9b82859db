"""Set actions and the set's state machine, in one place: which action leads where from which
state, which are refused, and when a voice trigger may fire.

>>> next_state("roll", "idle")
'rolling'
>>> voice_allowed("cut", "idle")  # nothing to cut: voice stays quiet
False
"""

from __future__ import annotations

from typing import Literal, get_args

Action = Literal["roll", "cut", "standby", "idle"]
"""What a trigger (voice, button, request, the CLI) asks of the set."""
State = Literal["idle", "standby", "rolling"]
"""The set's state."""
HubEventType = Literal["restore", "post-roll-end"]
"""What the hub does by itself: restore the saved state at start, end a post-roll."""
EventType = Literal[Action, HubEventType]
"""The ``type`` of a set event."""
ACTIONS: tuple[Action, ...] = get_args(Action)
STATES: tuple[State, ...] = get_args(State)
PANEL_ACTIONS: tuple[Action, ...] = ("roll", "cut", "standby")
"""The buttons a stage panel offers; ``idle`` (leave standby) is for integrators and the CLI."""

TRANSITIONS: dict[tuple[str, str], State] = {
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
"""(action, current state) → new state; a missing pair is refused with the reason in REFUSALS."""
REFUSALS: dict[tuple[str, str], str] = {("standby", "rolling"): "the set is rolling; send cut first"}


def next_state(action: str, state: str) -> State | None:
    """Where ``action`` leads from ``state``; None when it is refused."""
    return TRANSITIONS.get((action, state))


def voice_allowed(action: str, state: str) -> bool:
    """Whether a voice trigger for ``action`` may fire in ``state``: only when it changes the
    state, and while rolling only a cut (a misheard word never ends a take any other way)."""
    target = next_state(action, state)
    return target is not None and target != state and (state != "rolling" or action == "cut")
