"""TLS for every role on a `broker config --tls-only` broker, lights (the real firmware) included.

The CA and the broker's certificate are made by `setbridge broker certs` (its key readable by the
broker's group only); the lights pin the CA."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from broker_helpers import User, generated_broker, password, setbridge
from conftest import make_settings

from setbridge.sim.broker import free_port
from setbridge.sim.lights import SimLight, find_micropython
from setbridge.commands.provision import light_config
from setbridge.hub import Hub

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("mosquitto_passwd")),
                                reason="openssl and mosquitto_passwd are needed")]

USERS = {"hub-1": "hub", "door-1": "light", "door-2": "light", "door-3": "light", "wall": "monitor"}
BASE = "setbridge"


@pytest.fixture(scope="module")
def certs():
    d = Path(tempfile.mkdtemp(prefix="setbridge-certs-"))
    setbridge("broker", "certs", "--out", str(d), "--name", "stage-t", "--host", "127.0.0.1")
    other = d / "other"
    other.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=another CA", "-keyout", "ca.key", "-out", "ca.crt"],
                   cwd=other, check=True, capture_output=True)
    for f in other.rglob("*"):
        f.chmod(0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_broker(certs):
    port = free_port()
    with generated_broker(USERS, "--tls-only", "--tls-port", str(port), "--tls-bind", "127.0.0.1",
                          "--cafile", str(certs / "ca.crt"), "--certfile", str(certs / "server.crt"),
                          "--keyfile", str(certs / "server.key"), port=port) as broker:
        yield broker


def tls_settings(broker, tmp_path: Path, ca: Path, user: str = "hub-1"):
    return make_settings(broker, tmp_path / "state", hub={"id": "hub-1", "set": "main"},
                         mqtt={"base_topic": BASE, "username": user, "password": password(user),
                               "tls": {"enabled": True, "ca": str(ca)}})


def tls_light(settings, light_id: str, workdir: Path, ca: Path | None = None) -> SimLight:
    cfg = light_config(settings, light_id, light_password=password(light_id))
    if ca is not None:
        cfg["mqtt"]["ca"] = str(ca)
    return SimLight(light_id, cfg, workdir).start()


def failed_attempts(light: SimLight, count: int, timeout: float = 20) -> list[str]:
    """Wait until the light has logged ``count`` failed broker connects; return its logs."""
    deadline = time.monotonic() + timeout
    while True:
        logs = light.logs()
        failures = [line for line in logs if line.startswith("mqtt: ")]
        if len(failures) >= count or time.monotonic() > deadline:
            assert len(failures) >= count, f"only {len(failures)} failed attempts: {logs[-6:]}"
            return logs
        time.sleep(0.1)


def test_tls_only_writes_one_listener_and_refuses_half_configs(tls_broker, certs, tmp_path):
    conf = (Path(tls_broker.workdir) / "setbridge.conf").read_text()
    listeners = [line for line in conf.splitlines() if line.startswith("listener ")]
    assert listeners == [f"listener {tls_broker.port} 127.0.0.1"]
    assert conf.count("use_username_as_clientid true") == 1
    for args, says in ((["--tls-only"], "--tls-port"),
                       (["--tls-only", "--tls-port", "8883"], "--certfile"),
                       (["--tls-port", "8883", "--certfile", str(tmp_path / "nope.crt"), "--keyfile", "x"], "not a file")):
        out = subprocess.run([sys.executable, "-m", "setbridge", "broker", "config", "--out", str(tmp_path / "b"), *args],
                             capture_output=True, text=True)
        assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
        assert says in out.stderr.strip().splitlines()[-1]


def test_plain_mqtt_serves_this_machine_only_unless_asked(tmp_path):
    default = subprocess.run([sys.executable, "-m", "setbridge", "broker", "config", "--out", str(tmp_path / "a")],
                             capture_output=True, text=True, check=True)
    assert "listener 1883 127.0.0.1\n" in (tmp_path / "a" / "setbridge.conf").read_text()
    assert "warning" not in default.stderr
    wide = subprocess.run([sys.executable, "-m", "setbridge", "broker", "config", "--out", str(tmp_path / "b"),
                           "--bind", "0.0.0.0"], capture_output=True, text=True, check=True)
    assert "listener 1883 0.0.0.0\n" in (tmp_path / "b" / "setbridge.conf").read_text()
    assert "clear text" in wide.stderr


def test_a_plain_connection_to_a_tls_only_broker_is_refused(tls_broker, certs, tmp_path):
    plain = User(tls_broker.port, "wall")
    try:
        assert not plain.accepted, "a plain MQTT client was let in"
    finally:
        plain.close()
    secure = User(tls_broker.port, "wall", tls_ca=certs / "ca.crt")
    try:
        assert secure.accepted, "the same user over TLS should be let in"
    finally:
        secure.close()
    # the firmware configured for plain MQTT does not get in either
    settings = make_settings(tls_broker, tmp_path / "s", hub={"id": "hub-1", "set": "main"},
                             mqtt={"base_topic": BASE})
    find_micropython()
    light = SimLight("door-3", light_config(settings, "door-3", light_password=password("door-3")), tmp_path).start()
    try:
        light.wait_showing("link-lost", timeout=10, lost="broker")
        logs = failed_attempts(light, 2)
        assert not any(line.startswith("connected") for line in logs), logs
    finally:
        light.stop()


def test_lights_follow_roll_and_cut_over_tls_with_the_pinned_ca(tls_broker, certs, tmp_path):
    find_micropython()
    hub = Hub(tls_settings(tls_broker, tmp_path, certs / "ca.crt"))
    hub.start()
    lights = [tls_light(tls_settings(tls_broker, tmp_path, certs / "ca.crt"), f"door-{i}", tmp_path) for i in (1, 2)]
    try:
        assert hub.bus.wait_connected(10), "the hub did not connect over TLS"
        for light in lights:
            light.wait_showing("idle", timeout=20)
            assert light.config["mqtt"]["tls"] is True
        marks = [light.mark() for light in lights]
        hub.submit("roll", cause="test")
        for light, mark in zip(lights, marks):
            light.wait_showing("rolling", timeout=10, after=mark)
        marks = [light.mark() for light in lights]
        hub.submit("cut", cause="test")
        for light, mark in zip(lights, marks):
            light.wait_showing("idle", timeout=10, after=mark)
    finally:
        for light in lights:
            light.stop()
        hub.stop()


def test_a_light_with_the_wrong_ca_does_not_connect(tls_broker, certs, tmp_path):
    find_micropython()
    hub = Hub(tls_settings(tls_broker, tmp_path, certs / "ca.crt"))
    hub.start()
    light = tls_light(tls_settings(tls_broker, tmp_path, certs / "ca.crt"), "door-2", tmp_path,
                      ca=certs / "other" / "ca.crt")
    try:
        assert hub.bus.wait_connected(10)
        hub.submit("roll", cause="test")
        light.wait_showing("link-lost", timeout=10, lost="broker")
        logs = failed_attempts(light, 2)
        assert set(light.shows()) == {"link-lost"}, light.shows()
        assert all("TLS" in line and "certificate" in line for line in logs if line.startswith("mqtt: ")), logs[-5:]
        assert not any(line.startswith("connected") for line in logs)
    finally:
        light.stop()
        hub.stop()


def test_a_tls_light_never_falls_back_to_clear_text(tmp_path, certs):
    """Pointed at a listener that is not TLS, the light only ever sends TLS handshakes."""
    find_micropython()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(15)
    port = server.getsockname()[1]
    settings = make_settings(SimpleNamespace(port=port), tmp_path / "s", hub={"id": "hub-1", "set": "main"},
                             mqtt={"base_topic": BASE, "tls": {"enabled": True, "ca": str(certs / "ca.crt")}})
    light = tls_light(settings, "door-1", tmp_path)
    first_bytes = []
    try:
        for _ in range(2):  # the first attempt and a retry
            conn, _addr = server.accept()
            with conn:
                conn.settimeout(5)
                data = conn.recv(4096)
                first_bytes.append(data)
        light.wait_showing("link-lost", timeout=5, lost="broker")
    finally:
        light.stop()
        server.close()
    for data in first_bytes:
        assert data[:1] == b"\x16", f"not a TLS handshake: {data[:16]!r}"  # TLS record type: handshake
        assert b"MQTT" not in data and password("door-1").encode() not in data


def test_provision_writes_the_pinned_ca_and_the_light_connects_with_it(tls_broker, certs, tmp_path):
    find_micropython()
    hub_cfg = tmp_path / "hub.toml"
    hub_cfg.write_text("\n".join([
        "[hub]", 'id = "hub-1"', 'set = "main"', "[mqtt]", 'host = "127.0.0.1"', f"port = {tls_broker.port}",
        f'base_topic = "{BASE}"', 'username = "hub-1"', 'password = "x"',
        "[mqtt.tls]", "enabled = true", f'ca = "{certs / "ca.crt"}"']) + "\n")
    out = tmp_path / "light-door-1"
    result = subprocess.run([sys.executable, "-m", "setbridge", "light", "provision", "door-1", "--config", str(hub_cfg),
                             "--out", str(out), "--broker-host", "127.0.0.1", "--mqtt-password", password("door-1"),
                             "--wifi-ssid", "SetNet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["mqtt"]["tls"] is True and cfg["mqtt"]["ca"] == "ca.der" and cfg["mqtt"]["port"] == tls_broker.port
    der = ssl.PEM_cert_to_DER_cert((certs / "ca.crt").read_text())
    assert (out / "ca.der").read_bytes() == der
    assert "plain MQTT" not in result.stderr
    hub = Hub(tls_settings(tls_broker, tmp_path, certs / "ca.crt"))
    hub.start()
    light = SimLight("door-1", cfg, out).start()  # config and ca.der side by side, as on the board
    try:
        light.wait_showing("idle", timeout=20)
    finally:
        light.stop()
        hub.stop()


def test_a_light_with_tls_but_no_ca_refuses_to_start(tmp_path):
    find_micropython()
    cfg = {"id": "door-1", "mqtt": {"host": "127.0.0.1", "port": 8883, "tls": True}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    out = subprocess.run([find_micropython(), str(Path(__file__).parents[1] / "firmware" / "light" / "main.py"),
                          str(tmp_path / "c.json")], capture_output=True, text=True, timeout=10)
    assert out.returncode == 1 and "mqtt.ca is missing" in out.stdout, out.stdout
