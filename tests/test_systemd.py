"""The systemd unit verifies, and the hub speaks sd_notify: READY, WATCHDOG, STOPPING."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_config

pytestmark = pytest.mark.integration

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "setbridge-hub.service"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not available")
def test_unit_verifies(tmp_path):
    setbridge = Path(sys.executable).with_name("setbridge")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/setbridge/venv/bin/setbridge", str(setbridge)))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in out.stderr.splitlines() if UNIT.name in line]
    assert out.returncode == 0 and not problems, out.stderr


def test_unit_keeps_the_promises_of_the_docs():
    text = UNIT.read_text()
    for line in ("Type=notify", "Restart=always", "User=setbridge", "StateDirectory=setbridge",
                 "ConfigurationDirectory=setbridge", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "NoNewPrivileges=yes", "SupplementaryGroups=audio gpio"):
        assert line in text
    assert "WatchdogSec=" in text


def receive(sock: socket.socket, wanted: str, timeout: float) -> list[str]:
    messages, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if any(wanted in m.splitlines() for m in messages):
            return messages
    raise AssertionError(f"no {wanted} from the hub; got {messages}")


def test_hub_notifies_ready_pings_the_watchdog_and_says_stopping(settings, tmp_path):
    cfg = write_config(tmp_path / "hub.toml", settings)
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1500000"}
        env.pop("WATCHDOG_PID", None)
        hub = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config", str(cfg)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ready = receive(sock, "READY=1", timeout=20)
            assert any("STATUS=" in m and "connected" in m for m in ready)
            receive(sock, "WATCHDOG=1", timeout=5)
            hub.send_signal(signal.SIGTERM)
            receive(sock, "STOPPING=1", timeout=10)
            assert hub.wait(10) == 0
        finally:
            hub.kill()
            hub.wait()


def test_a_broker_it_cannot_reach_is_named_in_the_service_status(settings, tmp_path):
    """``systemctl status setbridge-hub`` shows the STATUS line: with no broker, it says why."""
    from setbridge.sim.broker import free_port

    closed = free_port()
    cfg = write_config(tmp_path / "hub.toml", settings, mqtt={"port": closed})
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        env = {**os.environ, "NOTIFY_SOCKET": str(path)}
        hub = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config", str(cfg)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ready = receive(sock, "READY=1", timeout=30)  # after 10 s of retrying, so the boot goes on
            status = next(m for m in ready if "STATUS=" in m)
            assert f"unreachable, retrying (refused the connection: nothing listens on port {closed}" in status
        finally:
            hub.kill()
            hub.wait()
