"""The CLI as a user runs it: real processes against the real broker and hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import write_config

pytestmark = pytest.mark.integration

SETBRIDGE = [sys.executable, "-m", "setbridge"]


def run(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(SETBRIDGE + list(args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_send_prints_the_resulting_state(hub, settings, tmp_path):
    cfg = write_config(tmp_path / "c.toml", settings)
    out = run("send", "roll", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "rolling" in out.stdout
    assert hub.state == "rolling"
    refused = run("send", "standby", "--config", str(cfg))
    assert refused.returncode == 1 and "cut first" in refused.stderr


def test_send_without_a_hub_fails_in_time(settings, tmp_path):
    cfg = write_config(tmp_path / "c.toml", settings)
    out = run("send", "roll", "--config", str(cfg), "--timeout", "1")
    assert out.returncode != 0 and "no answer" in out.stderr


def test_send_without_a_broker_says_which(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 1\n')
    out = run("send", "roll", "--config", str(cfg), "--timeout", "1")
    assert out.returncode != 0 and "127.0.0.1:1" in out.stderr


def test_watch_shows_state_and_hub(hub, settings, tmp_path):
    cfg = write_config(tmp_path / "c.toml", settings)
    hub.submit("roll", cause="test")
    out = run("watch", "--config", str(cfg), "--count", "2")
    assert out.returncode == 0
    assert "ROLLING" in out.stdout and "hub hub-t: online" in out.stdout
    js = run("watch", "--config", str(cfg), "--count", "2", "--json")
    lines = [json.loads(line) for line in js.stdout.splitlines()]
    assert {line["payload"].get("state") for line in lines} >= {"rolling"}


def test_config_check_prints_effective_config_without_secrets(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mqtt]\nusername = "hub"\npassword = "s3cret"\n[hub]\nset = "stage-b"\n')
    out = run("config", "check", "--config", str(cfg), env={"SETBRIDGE_MQTT__PORT": "18830"})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["hub"]["set"] == "stage-b" and data["mqtt"]["port"] == 18830
    assert "s3cret" not in out.stdout


def test_config_check_names_each_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[hub]\nset = "Stage A"\nheartbeat_s = 0\n[mqtt]\nprot = 1\n')
    out = run("config", "check", "--config", str(cfg))
    assert out.returncode == 1
    errors = out.stderr.strip().splitlines()
    assert len(errors) == 3
    assert any("hub.set" in e for e in errors)
    assert any("hub.heartbeat_s" in e and "greater than 0" in e for e in errors)
    assert any("mqtt.prot" in e and "unknown key" in e for e in errors)


def test_config_check_rejects_a_missing_file_and_broken_toml(tmp_path):
    missing = run("config", "check", "--config", str(tmp_path / "none.toml"))
    assert missing.returncode == 1 and "not found" in missing.stderr
    broken = tmp_path / "b.toml"
    broken.write_text("[hub\n")
    out = run("config", "check", "--config", str(broken))
    assert out.returncode == 1 and "b.toml" in out.stderr and "Traceback" not in out.stderr


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("setbridge ")


def test_hub_refuses_an_unwritable_state_dir_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[hub]\nstate_dir = "{blocker / "state"}"\n')
    out = run("hub", "--config", str(cfg))
    assert out.returncode == 1
    assert "hub.state_dir" in out.stderr and "Traceback" not in out.stderr
