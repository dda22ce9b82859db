"""Arbitration rule by rule, on the real set controller (no broker: what is published is collected)."""

from __future__ import annotations

import threading

from helpers import wait_until

from setbridge.hub.controller import SetController
from setbridge.hub.state_store import StateStore
from setbridge.recorder.arbiter import Arbiter


class Set:
    """A controller, and an arbiter in front of it with one recorder source, ``timecode``."""

    def __init__(self, tmp_path, confirm_s: float = 0.3, post_roll_s: float = 0.0):
        self.events: list = []
        self.lock = threading.Lock()
        self.controller = SetController("main", StateStore(tmp_path, "main"), lambda s: None, self._event,
                                        post_roll_s=post_roll_s)
        self.arbiter = Arbiter(self.controller.apply, self.controller.snapshot, self._event, confirm_s)
        self.arbiter.add_source("timecode")

    def _event(self, event) -> None:
        with self.lock:
            self.events.append(event)

    def recorder(self, recording: bool) -> None:
        self.arbiter.source_changed("timecode", recording, cause="timecode", timecode="01:00:00:00", fps=25.0)

    @property
    def state(self) -> str:
        return self.controller.state


def test_the_recorder_starting_rolls_and_stopping_cuts(tmp_path):
    s = Set(tmp_path)
    s.recorder(True)
    assert s.state == "rolling" and s.events[-1].cause == "timecode" and s.events[-1].timecode == "01:00:00:00"
    s.recorder(False)
    assert s.state == "idle" and s.events[-1].type == "cut" and s.events[-1].cause == "timecode"


def test_post_roll_applies_to_the_recorders_cut(tmp_path):
    s = Set(tmp_path, post_roll_s=0.2)
    s.recorder(True)
    s.recorder(False)
    assert s.state == "rolling"
    wait_until(lambda: s.state == "idle", timeout=2)


def test_a_voice_cut_while_recording_is_overruled_and_one_after_the_stop_acts(tmp_path):
    s = Set(tmp_path)
    s.recorder(True)
    outcome = s.arbiter.voice("cut", phrase="컷", confidence=0.9)
    assert not outcome.ok and s.state == "rolling"
    event = s.events[-1]
    assert (event.type, event.changed, event.overruled, event.phrase) == ("cut", False, True, "컷")
    assert s.arbiter.overruled == 1
    s.controller.apply("cut", "button")  # a person's cut acts, recorder or not
    assert s.state == "idle"


def test_an_unconfirmed_voice_roll_reverts_to_idle(tmp_path):
    s = Set(tmp_path)
    assert s.arbiter.voice("roll", phrase="녹음 시작").changed
    assert s.state == "rolling"
    wait_until(lambda: s.state == "idle", timeout=2)
    revert = s.events[-1]
    assert revert.cause == "unconfirmed" and "did not start within 0.3 s" in revert.reason


def test_an_unconfirmed_voice_roll_from_standby_goes_back_to_standby(tmp_path):
    s = Set(tmp_path)
    s.controller.apply("standby", "button")
    s.arbiter.voice("roll")
    wait_until(lambda: s.state == "standby" and s.events[-1].cause == "unconfirmed", timeout=2)


def test_a_voice_roll_the_recorder_confirms_stays(tmp_path):
    s = Set(tmp_path)
    s.arbiter.voice("roll")
    s.recorder(True)
    threading.Event().wait(0.5)  # past confirm_s
    assert s.state == "rolling" and all(e.cause != "unconfirmed" for e in s.events)
    roll_by_recorder = s.events[-1]
    assert (roll_by_recorder.type, roll_by_recorder.changed, roll_by_recorder.cause) == ("roll", False, "timecode")


def test_a_cut_before_confirm_s_is_not_undone_later(tmp_path):
    s = Set(tmp_path)
    s.arbiter.voice("roll")
    s.controller.apply("cut", "button")
    s.controller.apply("standby", "button")
    threading.Event().wait(0.5)
    assert s.state == "standby" and all(e.cause != "unconfirmed" for e in s.events)


def test_a_faulty_source_has_no_say(tmp_path):
    s = Set(tmp_path)
    s.recorder(True)
    s.arbiter.source_health("timecode", False, "signal does not decode")
    assert s.arbiter.health() == ("fault", "timecode: signal does not decode")
    assert s.arbiter.voice("cut").changed and s.state == "idle"  # voice acts alone
    s.arbiter.voice("roll")
    threading.Event().wait(0.5)
    assert s.state == "rolling"  # no revert without a recorder to confirm


def test_a_fault_never_cuts(tmp_path):
    s = Set(tmp_path)
    s.recorder(True)
    s.arbiter.source_health("timecode", False, "audio input at fault")
    assert s.state == "rolling"
