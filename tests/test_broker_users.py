"""`setbridge broker remove-user`, `users` and `certs`: a lost light's user is removed and the real
broker closes its connection at the reload; the CA and the broker's key are made with the right
permissions, and renewing keeps the CA the lights pin."""

from __future__ import annotations

import grp
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from broker_helpers import User, generated_broker, password, setbridge
from conftest import make_settings
from test_tls import failed_attempts

from setbridge.sim.lights import SimLight, find_micropython
from setbridge.commands.provision import light_config

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")]

BASE = "setbridge"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "setbridge", *args], capture_output=True, text=True)


def test_a_removed_light_is_closed_at_the_reload_and_cannot_come_back(tmp_path):
    """A board that was stolen: its user goes, the broker ends its connection, its retries are refused."""
    find_micropython()
    with generated_broker({"door-1": "light", "door-2": "light", "wall": "monitor"}) as broker:
        d = Path(broker.workdir)
        settings = make_settings(broker, tmp_path / "state", hub={"id": "hub-1", "set": "main"},
                                 mqtt={"base_topic": BASE})
        light = SimLight("door-1", light_config(settings, "door-1", light_password=password("door-1")), tmp_path)
        wall = User(broker.port, "wall")
        try:
            wall.subscribe(f"{BASE}/light/+/status")
            light.start()
            assert wall.wait_for(f"{BASE}/light/door-1/status", b'"online"', timeout=15)
            out = setbridge("broker", "remove-user", "door-1", "--dir", str(d))
            assert "door-1 (light) removed" in out and "closes its connections" in out
            listed = setbridge("broker", "users", "--dir", str(d))
            assert "door-1" not in listed and "door-2" in listed and "wall" in listed
            assert "user door-1" not in (d / "setbridge.acl").read_text()
            assert broker.process is not None
            mark = light.mark()
            broker.process.send_signal(signal.SIGHUP)
            light.wait_showing("link-lost", timeout=15, after=mark, lost="broker")
            refused = failed_attempts(light, 2)
            assert any("not authori" in line or "refused" in line for line in refused), refused[-5:]
            door2 = User(broker.port, "door-2")
            try:
                assert door2.accepted, "another light's user was removed too"
            finally:
                door2.close()
        finally:
            light.stop()
            wall.close()
        log = broker.log_path.read_text()
    reload = log[log.index("Reloading config."):]
    assert "Client door-1 disconnected." in reload, reload[:800]


def test_remove_user_of_an_unknown_name_is_one_line(tmp_path):
    setbridge("broker", "config", "--out", str(tmp_path))
    setbridge("broker", "add-user", "wall", "--role", "monitor", "--password", "pw", "--dir", str(tmp_path))
    out = run("broker", "remove-user", "wal", "--dir", str(tmp_path))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "no user 'wal'" in out.stderr.strip().splitlines()[-1] and "broker users" in out.stderr
    assert setbridge("broker", "users", "--dir", str(tmp_path)).split() == ["wall", "monitor"]
    subprocess.run(["mosquitto_passwd", "-b", str(tmp_path / "setbridge.passwd"), "stray", "pw"], check=True)
    assert "stray  -" in setbridge("broker", "users", "--dir", str(tmp_path))  # may log in, granted nothing
    assert "stray (no role) removed" in setbridge("broker", "remove-user", "stray", "--dir", str(tmp_path))
    assert "stray" not in (tmp_path / "setbridge.passwd").read_text()
    assert "pw" not in setbridge("broker", "users", "--dir", str(tmp_path))


def test_certs_are_made_with_the_right_permissions_and_renewed_under_the_same_ca(tmp_path):
    d = tmp_path / "certs"
    out = run("broker", "certs", "--out", str(d), "--name", "stage-a", "--host", "192.168.1.10", "--host", "stage-a.lan")
    assert out.returncode == 0, out.stderr
    assert f"--cafile {d / 'ca.crt'} --certfile {d / 'server.crt'} --keyfile {d / 'server.key'}" in out.stdout
    mode = {p.name: p.stat().st_mode & 0o777 for p in d.iterdir()}
    assert mode["ca.key"] == 0o600 and mode["ca.crt"] == 0o644 and mode["server.crt"] == 0o644
    key = d / "server.key"
    try:
        group = grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        group = None
    if group is not None and key.stat().st_uid == 0:
        assert mode["server.key"] == 0o640 and key.stat().st_gid == group
    else:
        assert mode["server.key"] == 0o600
    assert sorted(mode) == ["ca.crt", "ca.key", "server.crt", "server.key"], "a work file was left behind"
    text = subprocess.run(["openssl", "x509", "-in", str(d / "server.crt"), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    for name in ("IP Address:192.168.1.10", "DNS:stage-a.lan", "IP Address:127.0.0.1", "DNS:localhost"):
        assert name in text
    assert subprocess.run(["openssl", "verify", "-CAfile", str(d / "ca.crt"), str(d / "server.crt")],
                          capture_output=True).returncode == 0
    ca, server = (d / "ca.crt").read_bytes(), (d / "server.crt").read_bytes()
    again = run("broker", "certs", "--out", str(d), "--name", "stage-a", "--host", "192.168.1.10")
    assert again.returncode == 0 and "wrote" in again.stdout
    assert (d / "ca.crt").read_bytes() == ca, "renewing made a new CA: every light would be locked out"
    assert (d / "server.crt").read_bytes() != server
    (d / "ca.key").unlink()  # kept off the Pi, as advised
    for args, says in ((["--name", "stage-a"], "ca.key does not"), (["--host", "not a host!"], "--host")):
        bad = run("broker", "certs", "--out", str(d), *args)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
        assert says in bad.stderr.strip().splitlines()[-1]
    assert (d / "ca.crt").read_bytes() == ca
