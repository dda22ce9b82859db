"""The record tally (gpiozero's MockFactory for the header) through the real hub and broker, and
the take log's timecode in and out."""

from __future__ import annotations

import datetime as dt
import sqlite3

import numpy as np
import pytest

from helpers import on, running_hub, wait_until

from setbridge.messages import SetEvent
from setbridge.web.takes import TakeLog, to_csv


def test_tally_rolls_a_glitch_does_not_cut_and_opening_cuts_after_the_hold_off(broker, tmp_path, factory,
                                                                                probe_factory):
    with running_hub(broker, tmp_path / "state", timecode={"tally_pin": 23, "hold_off_s": 0.3}) as hub:
        probe = probe_factory(f"{hub.settings.mqtt.base_topic}/#")
        tally = factory.pin(23)
        tally.drive_low()  # closed to ground: recording
        roll = probe.wait_for(on("/event", type="roll", cause="tally")).data
        assert roll["changed"] and hub.state == "rolling"
        probe.wait_for(lambda m: "/hub/" in m.topic and m.data.get("recorder") == "recording" and m.data["timecode"] == "ok")
        assert hub.recorder is not None
        outcome = hub.recorder.voice("cut", cause="voice", phrase="컷", confidence=0.9)
        assert not outcome.ok and hub.state == "rolling"
        overruled = probe.wait_for(on("/event", type="cut", cause="voice")).data
        assert overruled["overruled"] is True and "timecode" not in overruled  # no timecode source: no stamp
        tally.drive_high()
        tally.drive_low()  # a glitch shorter than the hold-off
        tally.drive_high()
        cut = probe.wait_for(on("/event", type="cut", cause="tally")).data
        assert cut["changed"] and hub.state == "idle"
        assert cut["ts"] - overruled["ts"] >= 0.3


def test_buttons_act_while_the_recorder_records(broker, tmp_path, factory):
    with running_hub(broker, tmp_path / "state", timecode={"tally_pin": 23}) as hub:
        factory.pin(23).drive_low()
        wait_until(lambda: hub.state == "rolling")
        assert hub.submit("cut", cause="button").changed
        assert hub.state == "idle"


def event(kind: str, state: str, cause: str, seq: int, take: int, changed: bool = True, **extra) -> SetEvent:
    return SetEvent(type=kind, changed=changed, state=state, cause=cause, epoch=1, seq=seq, take=take, **extra)


def test_takes_carry_the_recorders_codes_and_ignore_overruled_cuts(tmp_path):
    log = TakeLog(tmp_path / "takes.sqlite")
    events = [
        event("roll", "rolling", "voice", 1, 1, timecode="10:00:04:11", fps=25.0, phrase="녹음 시작"),
        event("roll", "rolling", "timecode", 2, 1, changed=False, timecode="10:00:05:00", fps=25.0),
        event("cut", "rolling", "voice", 2, 1, changed=False, overruled=True, reason="recording",
              timecode="10:00:07:00", fps=25.0),
        event("cut", "idle", "timecode", 3, 1, timecode="10:00:09:24", fps=25.0),
    ]
    for e in events:
        log.record("stage-a", e)
    [take] = log.takes(dt.date.today())
    assert (take.tc_in, take.tc_out, take.fps) == ("10:00:05:00", "10:00:09:24", 25.0)
    assert take.cut is not None and take.cut.cause == "timecode"
    csv = to_csv([take]).splitlines()
    assert csv[0].endswith("tc_in,tc_out,fps") and csv[1].endswith("10:00:05:00,10:00:09:24,25.0")
    log.close()


def test_a_take_log_from_before_timecode_gains_the_columns(tmp_path):
    path = tmp_path / "takes.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE events (event_id TEXT PRIMARY KEY, set_id TEXT NOT NULL, type TEXT NOT NULL, "
                     "changed INTEGER NOT NULL, state TEXT NOT NULL, cause TEXT NOT NULL, source TEXT, phrase TEXT, "
                     "confidence REAL, txn TEXT, take INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, "
                     "ts REAL NOT NULL);")
    db.close()
    log = TakeLog(path)
    log.record("stage-a", event("roll", "rolling", "button", 1, 1))
    log.record("stage-a", event("cut", "idle", "button", 2, 1, timecode="01:00:00:00", fps=24.0))
    [take] = log.takes(dt.date.today())
    assert (take.tc_in, take.tc_out) == (None, "01:00:00:00")
    log.close()


class Calls:
    """What a recorder source reported, thread-safe enough for wait_until."""

    def __init__(self):
        self.changes: list = []
        self.health: list = []


def ltc_input(mode: str, **settings):
    from setbridge.config import TimecodeSettings
    from setbridge.recorder.ltc_input import LtcInput

    calls = Calls()
    tc = TimecodeSettings(mode=mode, channel=2, **settings)
    part = LtcInput(tc, calls.changes.append, lambda ok, why: calls.health.append((ok, why)))
    part.start()
    return part, calls


def feed(part, pcm, rate: int = 48000, block_s: float = 0.05) -> None:
    tap = part.receiver()
    block = int(rate * block_s)
    for i in range(0, len(pcm), block):
        tap(pcm[i:i + block].tobytes(), rate)


@pytest.mark.integration
def test_free_run_code_that_goes_away_is_a_fault_and_its_return_clears_it():
    from helpers.timecode import quiet

    from setbridge.recorder.ltc import LtcEncoder

    part, calls = ltc_input("free-run", fault_s=0.5)
    try:
        enc = LtcEncoder(48000, 25, "08:00:00:00")
        feed(part, enc.encode(1.0))
        wait_until(lambda: calls.health == [(True, None)], what="ok")
        feed(part, quiet(48000, 1.0))
        wait_until(lambda: len(calls.health) == 2, what="the fault")
        assert not calls.health[1][0] and "free-run code is expected" in calls.health[1][1]
        feed(part, enc.encode(0.5))
        wait_until(lambda: calls.health[-1] == (True, None), what="ok again")
        assert calls.changes == []  # free run never starts or stops anything
        assert part.stamp is not None and part.stamp.timecode.startswith("08:00:0")
    finally:
        part.stop()


@pytest.mark.integration
def test_rec_run_silence_is_no_fault_but_an_audio_fault_is():
    from helpers.timecode import quiet

    from setbridge.recorder.ltc import LtcEncoder

    part, calls = ltc_input("rec-run", fault_s=0.5)
    try:
        feed(part, np.concatenate([LtcEncoder(48000, 24).encode(1.0), quiet(48000, 2.0)]))
        wait_until(lambda: [c.recording for c in calls.changes] == [True, False], what="one run")
        assert calls.health == [(True, None)]
        part.audio_fault("microphone unplugged")
        wait_until(lambda: len(calls.health) == 2, what="the fault")
        assert "its audio input is at fault (microphone unplugged)" in calls.health[1][1]
    finally:
        part.stop()


def test_a_tally_closed_too_long_is_reported_stuck(factory):
    from setbridge.config import TimecodeSettings
    from setbridge.recorder.tally import TallyInput

    calls = Calls()
    settings = TimecodeSettings(tally_pin=23, hold_off_s=0.1).model_copy(update={"stuck_s": 0.3})
    tally = TallyInput(settings, calls.changes.append, lambda ok, why: calls.health.append((ok, why)))
    tally.start()
    try:
        factory.pin(23).drive_low()
        wait_until(lambda: calls.changes == [True], what="recording")
        wait_until(lambda: calls.health and not calls.health[-1][0], what="stuck")
        assert "closed for more than 0.3 s" in calls.health[-1][1]
        assert calls.changes == [True]  # stuck is a fault, never a cut
        factory.pin(23).drive_high()
        wait_until(lambda: calls.changes == [True, False] and calls.health[-1] == (True, None), what="stopped")
    finally:
        tally.stop()


def test_watch_shows_the_recorder_and_an_overruled_cut():
    from setbridge.topics import Topics
    from setbridge.commands.describe import describe

    topics = Topics("sb")
    status = {"v": 1, "state": "online", "hub": "h", "set": "s", "version": "1", "audio": "ok",
              "timecode": "ok", "recorder": "recording"}
    assert describe(topics, "sb/hub/h/status", status, b"").endswith("audio ok, timecode ok (recorder recording))")
    event = {"v": 1, "type": "cut", "changed": False, "state": "rolling", "cause": "voice", "phrase": "컷",
             "confidence": 0.9, "overruled": True, "reason": "the recorder is still recording",
             "timecode": "10:00:01:02", "epoch": 1, "seq": 2, "take": 1}
    line = describe(topics, "sb/set/s/event", event, b"")
    assert line == ('set s: event cut OVERRULED by voice heard "컷" 0.90 at TC 10:00:01:02 '
                    "(the recorder is still recording)")


@pytest.mark.integration
def test_code_after_a_fault_is_healthy_before_its_start_counts():
    """Noise on the LTC channel (a fault), then the recorder's code: the start must roll."""
    from setbridge.config import TimecodeSettings
    from setbridge.recorder.ltc import LtcEncoder
    from setbridge.recorder.ltc_input import LtcInput

    order: list = []
    tc = TimecodeSettings(mode="rec-run", channel=2, fault_s=0.5)
    part = LtcInput(tc, lambda change: order.append(("change", change.recording)),
                    lambda ok, why: order.append(("health", ok)))
    part.start()
    try:
        noise = np.random.default_rng(2).normal(0, 5000, 48000).astype(np.int16)
        # blocks of 0.2 s: the first frames that decode and the start come in one block
        feed(part, np.concatenate([noise, LtcEncoder(48000, 25).encode(0.5)]), block_s=0.2)
        wait_until(lambda: ("change", True) in order, what="the start")
        assert order[:3] == [("health", True), ("health", False), ("health", True)]
        assert order.index(("change", True)) == 3
    finally:
        part.stop()


def test_metrics_count_overruled_cuts_and_show_the_recorder(broker, tmp_path, factory):
    from helpers.metrics import scrape, value

    from setbridge.hub.metrics import HubMetrics

    with running_hub(broker, tmp_path / "state", timecode={"tally_pin": 23},
                     metrics={"enabled": True, "port": 0}) as hub:
        factory.pin(23).drive_low()
        wait_until(lambda: hub.state == "rolling")
        assert hub.recorder is not None
        hub.recorder.voice("cut", phrase="컷")
        (metrics,) = [c for c in hub.components if isinstance(c, HubMetrics)]
        families = scrape(f"http://127.0.0.1:{metrics.port}/metrics")
    assert value(families, "setbridge_voice_overruled_total") == 1
    assert value(families, "setbridge_voice_rolls_reverted_total") == 0
    assert value(families, "setbridge_recorder_recording") == 1
    assert value(families, "setbridge_timecode_status", status="ok") == 1
    assert value(families, "setbridge_timecode_status", status="fault") == 0


@pytest.mark.integration
def test_code_that_never_stops_in_rec_run_is_reported_as_a_recorder_in_free_run():
    from helpers.timecode import quiet

    from setbridge.config import TimecodeSettings
    from setbridge.recorder.ltc import LtcEncoder
    from setbridge.recorder.ltc_input import LtcInput

    calls = Calls()
    tc = TimecodeSettings(mode="rec-run", channel=2).model_copy(update={"stuck_s": 0.5})
    part = LtcInput(tc, calls.changes.append, lambda ok, why: calls.health.append((ok, why)))
    part.start()
    try:
        feed(part, np.concatenate([LtcEncoder(48000, 25).encode(1.5), quiet(48000, 1.0)]))
        wait_until(lambda: len(calls.changes) == 2, what="the run's start and stop")
        assert [ok for ok, _ in calls.health] == [True, False, True]
        assert "is the recorder in free run?" in calls.health[1][1]
    finally:
        part.stop()
