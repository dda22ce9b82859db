"""``setbridge status`` reads the stage's health from the real bus."""

from __future__ import annotations

import json
import subprocess
import sys

import shutil

import pytest
from conftest import Probe, make_settings, running_hub, write_config

from setbridge.commands import status_codes as codes

pytestmark = pytest.mark.integration


def status(cfg, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "setbridge", "status", "--config", str(cfg), *extra],
                          capture_output=True, text=True, timeout=60)


def statuses(cfg, *variants: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """``setbridge status`` with each set of extra arguments, all run at once on the same stage
    (each listens for a few seconds; one after the other they would wait that long each)."""
    argv = [sys.executable, "-m", "setbridge", "status", "--config", str(cfg)]
    procs = [subprocess.Popen([*argv, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for extra in variants]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        outs.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return outs


def test_healthy_hub_exits_0(hub, settings, tmp_path):
    hub.submit("roll", cause="test")
    out = status(write_config(tmp_path / "c.toml", settings))
    assert out.returncode == 0, out.stderr
    assert "hub hub-t: online" in out.stdout and "rolling take 1" in out.stdout and "all is well" in out.stdout


def test_no_hub_is_named(settings, tmp_path):
    out = status(write_config(tmp_path / "c.toml", settings))
    assert out.returncode == codes.HUB_DOWN and "no hub has announced itself for set stage-t" in out.stderr


def test_offline_hub_and_lights_are_named(hub, settings, tmp_path, probe_factory):
    probe = probe_factory(f"{settings.mqtt.base_topic}/#")
    base = settings.mqtt.base_topic
    probe.publish(f"{base}/light/door-1/status", {"v": 1, "state": "offline", "set": "stage-t"}, retain=True)
    probe.publish(f"{base}/light/door-2/status", {"v": 1, "state": "online", "set": "stage-t"}, retain=True)
    probe.publish(f"{base}/light/door-2/state", {"v": 1, "showing": "link-lost"}, retain=True)
    probe.publish(f"{base}/light/other/status", {"v": 1, "state": "offline", "set": "stage-z"}, retain=True)
    cfg = write_config(tmp_path / "c.toml", settings)
    as_json, text = statuses(cfg, ("--json",), ())
    assert as_json.returncode == codes.LIGHT_NOT_ALIVE
    report = json.loads(as_json.stdout)
    assert report["code"] == codes.LIGHT_NOT_ALIVE
    assert set(report["lights"]) == {"door-1", "door-2"}
    assert "light door-1 is offline" in report["problems"] and "light door-2 shows link-lost" in report["problems"]
    assert text.returncode == codes.LIGHT_NOT_ALIVE
    assert "light door-2: online, silent for 3 s, shows link-lost, seen now" in text.stdout
    assert "light door-2: no alive message for 3 s; it is frozen or hung" in text.stderr
    hub.stop()
    out = status(cfg)
    assert out.returncode == codes.HUB_DOWN and "hub hub-t for set stage-t is offline" in out.stderr


def test_unreachable_broker_is_one_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 1\n')
    out = status(cfg, "--timeout", "1")
    assert out.returncode == codes.BROKER_UNREACHABLE and len(out.stderr.strip().splitlines()) == 1
    assert "cannot reach the MQTT broker at 127.0.0.1:1: refused the connection: nothing listens on port 1" in out.stderr


def test_a_name_that_does_not_resolve_is_said(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mqtt]\nhost = "no-such-broker.invalid"\n')
    out = status(cfg, "--timeout", "3", "--json")
    assert out.returncode == codes.BROKER_UNREACHABLE
    assert "the name no-such-broker.invalid does not resolve" in json.loads(out.stdout)["problems"][0]


@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")
def test_a_refused_login_has_its_own_code(tmp_path):
    from broker_helpers import generated_broker

    with generated_broker({"tools": "integrator"}) as broker:
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "tools"\npassword = "wrong"\n')
        out = status(cfg, "--timeout", "3")
    assert out.returncode == codes.LOGIN_REFUSED, out.stderr
    assert "refused the connection (the login)" in out.stderr


def test_an_audio_fault_has_its_own_code(hub, settings, tmp_path):
    hub.set_audio_status("fault")
    out = status(write_config(tmp_path / "c.toml", settings))
    assert out.returncode == codes.AUDIO_FAULT and "hub hub-t: audio fault" in out.stderr


def test_every_set_on_the_broker(broker, tmp_path):
    with running_hub(broker, tmp_path / "a", hub={"id": "hub-a", "set": "stage-a"}) as a:
        base = a.settings.mqtt.base_topic
        with running_hub(broker, tmp_path / "b", hub={"id": "hub-b", "set": "stage-b"}, mqtt={"base_topic": base}):
            cfg = write_config(tmp_path / "c.toml", make_settings(broker, tmp_path / "c", mqtt={"base_topic": base}))
            probe = Probe(broker.port, f"{base}/#")
            probe.publish(f"{base}/set/ghost/state", {"v": 1, "set": "ghost", "state": "idle", "epoch": 1, "seq": 1,
                                                      "take": 0, "cause": "restore"}, retain=True)
            try:
                healthy, all_sets = statuses(cfg, ("--set", "stage-a"), ("--set", "all", "--json"))
            finally:
                probe.publish(f"{base}/set/ghost/state", b"", retain=True)
                probe.close()
    assert healthy.returncode == codes.OK, healthy.stderr
    report = json.loads(all_sets.stdout)
    assert [s["set"] for s in report["sets"]] == ["ghost", "stage-a", "stage-b"]
    assert [s["code"] for s in report["sets"]] == [codes.HUB_DOWN, codes.OK, codes.OK]
    assert all_sets.returncode == codes.HUB_DOWN and "no hub has announced itself for set ghost" in all_sets.stderr


def test_the_codes_are_documented():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "deploy.md").read_text()
    for name in ("BROKER_UNREACHABLE", "LOGIN_REFUSED", "HUB_DOWN", "AUDIO_FAULT", "LIGHT_NOT_ALIVE", "OFFLOAD_FAULT"):
        assert f"| {getattr(codes, name)} |" in text, f"docs/deploy.md does not list exit code {name}"
