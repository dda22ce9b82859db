"""The set controller's rules, with its real state file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from setbridge.hub.controller import SetController
from setbridge.hub.state_store import StateStore


class Recorder:
    def __init__(self):
        self.states, self.events = [], []
        self.changed = threading.Event()

    def state(self, s):
        self.states.append(s)
        self.changed.set()

    def event(self, e):
        self.events.append(e)


def make(tmp_path: Path, post_roll_s: float = 0.0) -> tuple[SetController, Recorder]:
    rec = Recorder()
    return SetController("main", StateStore(tmp_path, "main"), rec.state, rec.event, post_roll_s), rec


def test_roll_standby_cut_and_takes(tmp_path):
    c, rec = make(tmp_path)
    assert c.apply("standby", "t").state == "standby"
    assert c.apply("roll", "t").state == "rolling"
    assert c.apply("cut", "t").state == "idle"
    assert c.apply("roll", "t").state == "rolling"
    assert c.take == 2
    assert [s.seq for s in rec.states] == [1, 2, 3, 4]


def test_repeated_actions_are_reported_no_ops(tmp_path):
    c, rec = make(tmp_path)
    c.apply("roll", "t")
    again = c.apply("roll", "t")
    assert again.ok and not again.changed and again.seq == 1 and c.take == 1
    assert rec.events[-1].changed is False
    assert c.apply("cut", "t").state == "idle"
    assert not c.apply("cut", "t").changed


def test_standby_while_rolling_is_refused(tmp_path):
    c, _ = make(tmp_path)
    c.apply("roll", "t")
    out = c.apply("standby", "t")
    assert not out.ok and out.state == "rolling" and "cut" in out.error


def test_seq_and_epoch_survive_restarts(tmp_path):
    c, _ = make(tmp_path)
    c.apply("roll", "t")
    c2, rec2 = make(tmp_path)
    assert c2.epoch == c.epoch + 1 and c2.state == "rolling"
    event = c2.restore()
    assert event.type == "restore" and event.seq == c.seq + 1 and rec2.states[-1].cause == "restore"


def test_torn_state_file_does_not_stop_the_hub(tmp_path):
    (tmp_path / "set-main.json").write_text("{half")
    c, _ = make(tmp_path)
    assert c.state == "idle" and c.apply("roll", "t").ok


def test_post_roll_keeps_rolling_then_goes_idle(tmp_path):
    c, rec = make(tmp_path, post_roll_s=0.3)
    c.apply("roll", "t")
    rec.changed.clear()
    out = c.apply("cut", "voice")
    assert out.ok and out.state == "rolling" and c.post_roll_pending
    assert rec.changed.wait(3)
    assert c.state == "idle" and rec.events[-1].type == "post-roll-end" and rec.states[-1].cause == "voice"


def test_roll_during_post_roll_cancels_it(tmp_path):
    c, rec = make(tmp_path, post_roll_s=0.3)
    c.apply("roll", "t")
    c.apply("cut", "t")
    c.apply("roll", "t")
    assert not c.post_roll_pending
    threading.Event().wait(0.5)
    assert c.state == "rolling"


# (action, from state) -> the state it leads to; None: refused, the state stays.
EXPECTED = {
    ("roll", "idle"): "rolling", ("roll", "standby"): "rolling", ("roll", "rolling"): "rolling",
    ("cut", "idle"): "idle", ("cut", "standby"): "standby", ("cut", "rolling"): "idle",
    ("standby", "idle"): "standby", ("standby", "standby"): "standby", ("standby", "rolling"): None,
    ("idle", "idle"): "idle", ("idle", "standby"): "idle", ("idle", "rolling"): "idle",
}


@pytest.mark.parametrize("action, start", sorted(EXPECTED))
def test_every_action_from_every_state(tmp_path, action, start):
    c, _ = make(tmp_path)
    if start != "idle":
        c.apply("roll" if start == "rolling" else "standby", "t")
    seq = c.seq
    out = c.apply(action, "t")
    expected = EXPECTED[action, start]
    if expected is None:
        assert not out.ok and out.error and "cut" in out.error
        assert out.state == start and c.seq == seq
    else:
        assert out.ok and out.error is None and out.state == expected == c.state
        assert out.changed == (expected != start)


def test_voice_fires_only_where_the_action_changes_the_state_and_only_cut_ends_a_roll():
    from setbridge.actions import ACTIONS, STATES, voice_allowed

    allowed = {a: {s for s in STATES if voice_allowed(a, s)} for a in ACTIONS}
    assert allowed == {"roll": {"idle", "standby"}, "cut": {"rolling"}, "standby": {"idle"}, "idle": {"standby"}}
