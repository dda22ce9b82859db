"""``setbridge status`` reads the stage's health from the real bus."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import write_config


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
    assert out.returncode == 1 and "no hub has announced itself for set stage-t" in out.stderr


def test_offline_hub_and_lights_are_named(hub, settings, tmp_path, probe_factory):
    probe = probe_factory(f"{settings.mqtt.base_topic}/#")
    base = settings.mqtt.base_topic
    probe.publish(f"{base}/light/door-1/status", {"v": 1, "state": "offline", "set": "stage-t"}, retain=True)
    probe.publish(f"{base}/light/door-2/status", {"v": 1, "state": "online", "set": "stage-t"}, retain=True)
    probe.publish(f"{base}/light/door-2/state", {"v": 1, "showing": "link-lost"}, retain=True)
    probe.publish(f"{base}/light/other/status", {"v": 1, "state": "offline", "set": "stage-z"}, retain=True)
    cfg = write_config(tmp_path / "c.toml", settings)
    as_json, text = statuses(cfg, ("--json",), ())
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert set(report["lights"]) == {"door-1", "door-2"}
    assert "light door-1 is offline" in report["problems"] and "light door-2 shows link-lost" in report["problems"]
    assert text.returncode == 1
    assert "light door-2: online, silent for 3 s, shows link-lost, seen now" in text.stdout
    assert "light door-2: no alive message for 3 s; it is frozen or hung" in text.stderr
    hub.stop()
    out = status(cfg)
    assert out.returncode == 1 and "hub hub-t for set stage-t is offline" in out.stderr


def test_unreachable_broker_is_one_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 1\n')
    out = status(cfg, "--timeout", "1")
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1 and "127.0.0.1:1" in out.stderr
