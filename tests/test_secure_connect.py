"""The hub connects with a username/password and over TLS to a real Mosquitto."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import make_settings

from setbridge.broker.certs import make_certs
from setbridge.sim.broker import PrivateBroker, free_port
from setbridge.hub import Hub

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")]


def test_hub_over_tls_with_password(tmp_path):
    certs = tmp_path / "certs"
    make_certs(certs, "stage-t", ["127.0.0.1"])  # what `setbridge broker certs` makes
    passwd = certs / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "hub-t", "pw-ok"], check=True, capture_output=True)
    tls_port = free_port()
    extra = (f"password_file {passwd}\n"
             f"listener {tls_port} 127.0.0.1\ncafile {certs / 'ca.crt'}\ncertfile {certs / 'server.crt'}\n"
             f"keyfile {certs / 'server.key'}\n")
    with PrivateBroker(extra_config=extra, anonymous=False, workdir=tmp_path / "broker") as broker:
        settings = make_settings(broker, tmp_path / "state", mqtt={
            "port": tls_port, "username": "hub-t", "password": "pw-ok", "tls": {"enabled": True, "ca": str(certs / "ca.crt")},
        })
        hub = Hub(settings)
        hub.start()
        try:
            assert hub.bus.wait_connected(10), "hub did not connect over TLS with its password"
            assert hub.submit("roll", cause="test").state == "rolling"
        finally:
            hub.stop()


def test_wrong_password_is_reported_and_the_hub_keeps_trying(tmp_path, caplog):
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "hub-t", "right"], check=True, capture_output=True)
    with PrivateBroker(extra_config=f"password_file {passwd}\n", anonymous=False, workdir=tmp_path / "b") as broker:
        settings = make_settings(broker, tmp_path / "state", mqtt={"username": "hub-t", "password": "wrong"})
        hub = Hub(settings)
        hub.start()
        try:
            assert not hub.bus.wait_connected(2)
            assert any("refused the connection" in r.getMessage() and "password" in r.getMessage() for r in caplog.records)
            assert hub.submit("roll", cause="button").ok  # local triggers keep working without the broker
        finally:
            hub.stop()
