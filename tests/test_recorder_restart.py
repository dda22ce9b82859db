"""A hub that restarts with a saved rolling state, with a recorder source: the real hub on a real
broker, the record tally on gpiozero's MockFactory, real libltc code replayed from a WAV file."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from helpers import make_settings, on, running_hub, wait_until
from helpers.firmware import running_light
from helpers.timecode import quiet, write_wav

from setbridge.hub import Hub
from setbridge.recorder.ltc import LtcEncoder

RATE = 48000


def saved_rolling(broker, state_dir: Path) -> None:
    """A hub that rolled and went away (a power cut, a restart): its state file says rolling."""
    with running_hub(broker, state_dir) as hub:
        assert hub.submit("roll", cause="button").changed
    assert hub.state == "rolling"


def restored_events(probe) -> list[dict]:
    return [msg.data for msg in list(probe.seen) if msg.topic.endswith("/event") and msg.data and "restored" in (msg.data.get("reason") or "")]


def test_a_restored_roll_the_tally_does_not_confirm_goes_idle_once(broker, tmp_path, factory, probe_factory):
    saved_rolling(broker, tmp_path / "state")
    settings = make_settings(broker, tmp_path / "state", timecode={"tally_pin": 23, "confirm_s": 0.5})
    probe = probe_factory(f"{settings.mqtt.base_topic}/#")
    hub = Hub(settings)
    with running_light(settings, tmp_path) as light:
        hub.start()
        try:
            restore = probe.wait_for(on("/event", cause="restore"), timeout=10).data
            assert restore["state"] == "rolling"
            idle = probe.wait_for(on("/event", type="idle", cause="tally"), timeout=10).data
            assert idle["changed"] and idle["state"] == "idle"
            assert "restored as rolling" in idle["reason"] and "not recording 0.5 s later" in idle["reason"]
            assert idle["ts"] - restore["ts"] >= 0.5
            wait_until(lambda: "idle" in light.shows()[light.shows().index("rolling"):] if "rolling" in light.shows()
                       else False, what=f"the light red, then idle; it showed {light.shows()}")
            time.sleep(1.0)  # two more windows: the decision is made once
            assert len(restored_events(probe)) == 1 and hub.state == "idle"
        finally:
            hub.stop()


def test_a_restored_roll_the_tally_confirms_keeps_rolling_until_the_recorder_stops(
        broker, tmp_path, factory, probe_factory):
    saved_rolling(broker, tmp_path / "state")
    settings = make_settings(broker, tmp_path / "state",
                             timecode={"tally_pin": 23, "confirm_s": 0.5, "hold_off_s": 0.3})
    probe = probe_factory(f"{settings.mqtt.base_topic}/#")
    hub = Hub(settings)
    hub.start()
    try:
        factory.pin(23).drive_low()  # the recorder records
        probe.wait_for(lambda m: "/hub/" in m.topic and m.data.get("recorder") == "recording", timeout=10)
        time.sleep(1.0)  # past the window
        assert hub.state == "rolling" and not restored_events(probe)
        factory.pin(23).drive_high()  # the recorder stops: that cuts, as always
        cut = probe.wait_for(on("/event", type="cut", cause="tally"), timeout=10).data
        assert cut["changed"] and cut["state"] == "idle"
    finally:
        hub.stop()


def test_a_person_acting_after_the_restart_has_the_last_word(broker, tmp_path, factory, probe_factory):
    saved_rolling(broker, tmp_path / "state")
    with running_hub(broker, tmp_path / "state", timecode={"tally_pin": 23, "confirm_s": 0.5}) as hub:
        probe = probe_factory(f"{hub.settings.mqtt.base_topic}/#")
        assert hub.submit("cut", cause="button").changed
        assert hub.submit("roll", cause="button").changed  # a new take, by hand
        time.sleep(1.0)
        assert hub.state == "rolling" and not restored_events(probe)


def ltc_hub(broker, tmp_path: Path, ltc: np.ndarray) -> Hub:
    wav = write_wav(tmp_path / "tc.wav", RATE, ltc)
    return Hub(make_settings(broker, tmp_path / "state", timecode={
        "mode": "rec-run", "file": str(wav), "confirm_s": 0.5, "fault_s": 1.0, "hold_off_s": 0.3}))


def test_a_restored_roll_without_code_goes_idle_once_the_input_has_been_heard(broker, tmp_path, probe_factory):
    saved_rolling(broker, tmp_path / "state")
    hub = ltc_hub(broker, tmp_path, quiet(RATE, 4.0))  # the recorder is not recording: no code
    probe = probe_factory(f"{hub.settings.mqtt.base_topic}/#")
    hub.start()
    try:
        restore = probe.wait_for(on("/event", cause="restore"), timeout=10).data
        idle = probe.wait_for(on("/event", type="idle", cause="timecode"), timeout=10).data
        assert idle["changed"] and "restored as rolling" in idle["reason"] and "(timecode)" in idle["reason"]
        assert idle["ts"] - restore["ts"] >= 1.0  # the fault window of audio heard, not just confirm_s
        time.sleep(0.6)
        assert len(restored_events(probe)) == 1 and hub.state == "idle"
    finally:
        hub.stop()


def test_a_restored_roll_with_the_recorder_recording_keeps_rolling(broker, tmp_path, probe_factory):
    saved_rolling(broker, tmp_path / "state")
    code = LtcEncoder(RATE, 25, "09:00:00:00").encode(3.0)  # recording from the start for 3 s
    hub = ltc_hub(broker, tmp_path, np.concatenate([code, quiet(RATE, 1.5)]))
    probe = probe_factory(f"{hub.settings.mqtt.base_topic}/#")
    hub.start()
    try:
        cut = probe.wait_for(on("/event", type="cut", cause="timecode"), timeout=10).data
        assert cut["changed"] and cut["timecode"].startswith("09:00:02")
        events = [msg.data for msg in list(probe.seen) if msg.topic.endswith("/event") and msg.data]
        assert [e["state"] for e in events] == ["rolling", "rolling", "idle"]  # restore, the recorder, its stop
        assert not restored_events(probe)
    finally:
        hub.stop()


def test_a_restored_roll_stays_while_the_timecode_source_is_at_fault(broker, tmp_path, probe_factory):
    saved_rolling(broker, tmp_path / "state")
    noise = np.random.default_rng(5).normal(0, 4000, RATE * 4).astype(np.int16)  # not timecode
    hub = ltc_hub(broker, tmp_path, noise)
    probe = probe_factory(f"{hub.settings.mqtt.base_topic}/#")
    hub.start()
    try:
        status = probe.wait_for(lambda m: "/hub/" in m.topic and m.data.get("timecode") == "fault", timeout=10).data
        assert "does not decode as LTC" in status["timecode_reason"]
        time.sleep(1.0)  # well past the window
        assert hub.state == "rolling" and not restored_events(probe)
        assert hub.submit("cut", cause="button").changed  # a person still acts
    finally:
        hub.stop()
