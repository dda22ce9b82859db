"""The broker's roles stay the authority: ``setbridge web`` on a secured broker made by
``setbridge broker config``, as a monitor user, and as an integrator user only for control."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from conftest import make_settings, wait_until
from setbridge.sim.broker import PrivateBroker, free_port
from setbridge.errors import SetbridgeError
from setbridge.hub import Hub
from setbridge.web.app import WebApp
from web_helpers import Client, read_events, serving, web_section

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")]

USERS = {"hub-w": "hub", "web": "monitor", "web-control": "integrator", "wall": "monitor"}


@pytest.fixture(scope="module")
def secured():
    d = Path(tempfile.mkdtemp(prefix="setbridge-web-acl-"))
    d.chmod(0o755)
    port = free_port()
    run = [sys.executable, "-m", "setbridge", "broker"]
    subprocess.run(run + ["config", "--out", str(d), "--port", str(port), "--bind", "127.0.0.1"], check=True,
                   capture_output=True)
    for name, role in USERS.items():
        subprocess.run(run + ["add-user", name, "--role", role, "--password", f"pw-{name}", "--dir", str(d)],
                       check=True, capture_output=True)
    broker = PrivateBroker(port=port, workdir=d, config_file=d / "setbridge.conf").start()
    yield broker
    broker.stop()
    shutil.rmtree(d, ignore_errors=True)


def settings_for(secured, tmp_path, control_user: str | None):
    web = web_section(data_dir=str(tmp_path / "web"), mqtt_username="web", mqtt_password="pw-web")
    if control_user:
        web.update(control_username=control_user, control_password=f"pw-{control_user}")
    return make_settings(secured, tmp_path / "state", mqtt={"base_topic": "setbridge", "username": "hub-w",
                                                             "password": "pw-hub-w"}, web=web)


def test_web_views_as_a_monitor_and_controls_only_through_an_integrator(secured, tmp_path):
    settings = settings_for(secured, tmp_path, "web-control")
    hub = Hub(settings)
    hub.start()
    try:
        with serving(settings) as url, Client(base_url=url) as ad:
            read_events(f"{url}/light/stage-t/events", lambda seen: seen[-1][1]["showing"] == "idle")
            ad.login("ad")
            token = ad.page_csrf()
            r = ad.post("/set/stage-t/roll", data={"csrf": token}, headers={"Accept": "application/json"})
            assert r.status_code == 200 and r.json()["message"] == "stage-t: rolling"
            ad.post("/set/stage-t/cut", data={"csrf": token})
            # the monitor's persistent session feeds the log on this broker too
            wait_until(lambda: len(httpx.get(url + "/takes.csv").text.splitlines()) >= 2, timeout=10,
                       what="the take in the log")
    finally:
        hub.stop()


def test_a_monitor_user_given_as_control_user_cannot_roll_the_set(secured, tmp_path):
    settings = settings_for(secured, tmp_path, "wall")  # a monitor, not an integrator
    hub = Hub(settings)
    hub.start()
    try:
        with serving(settings) as url, Client(base_url=url) as ad:
            read_events(f"{url}/light/stage-t/events", lambda seen: seen[-1][1]["showing"] == "idle")
            ad.login("ad")
            r = ad.post("/set/stage-t/roll", data={"csrf": ad.page_csrf()}, headers={"Accept": "application/json"})
            assert r.status_code == 409 and "no hub answered" in r.json()["message"]
            assert hub.state == "idle"  # the broker's ACL dropped the request
    finally:
        hub.stop()


def test_the_web_process_never_logs_in_as_the_hub(secured, tmp_path):
    settings = settings_for(secured, tmp_path, None)
    settings.web.mqtt_username = "hub-w"
    with pytest.raises(SetbridgeError, match="users of their own"):
        WebApp(settings)
    settings.web.mqtt_username, settings.web.control_username = "web", "web"
    with pytest.raises(SetbridgeError, match="users of their own"):
        WebApp(settings)
