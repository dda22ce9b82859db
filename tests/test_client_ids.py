"""On the generated broker no user can take another user's client id or session.

For every role a victim is connected (the real hub, the real light firmware under the
MicroPython Unix port, paho clients for integrator and monitor); every other user then logs in
with the victim's client id (the one it chose and the one the broker gave it), asking for a
clean and a resumed session. The victim stays connected, its last will is never sent, and it
still works afterwards. A control run without ``use_username_as_clientid`` shows that the same
attack does knock a victim off."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from broker_helpers import User, generated_broker, password
from conftest import make_settings

from setbridge.sim.lights import SimLight, find_micropython
from setbridge.commands.provision import light_config
from setbridge.hub import Hub

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")]

USERS = {"hub-1": "hub", "hub-2": "hub", "door-1": "light", "door-2": "light", "editorial": "integrator",
         "script": "integrator", "wall": "monitor", "observer": "monitor", "stage-tools": "integrator",
         "sim-1": "light", "sim-2": "light"}
BASE = "setbridge"


@pytest.fixture(scope="module")
def gen():
    with generated_broker(USERS) as broker:
        yield broker


@pytest.fixture
def users(gen):
    made: list[User] = []

    def login(user: str, **kw) -> User:
        u = User(gen.port, user, **kw)
        made.append(u)
        return u
    yield login
    for u in made:
        u.close()


def hub_settings(broker, tmp_path: Path, user: str = "hub-1", **mqtt):
    return make_settings(broker, tmp_path / "state", hub={"id": "hub-1", "set": "main"},
                         mqtt={"base_topic": BASE, "username": user, "password": password(user), **mqtt})


def attack(login, victim: str, client_ids: list[str]) -> None:
    """Every other user logs in with each of ``client_ids``: clean, resumed (3.1.1) and MQTT 5."""
    for attacker in USERS:
        if attacker in (victim, "observer", "hub-1"):
            continue
        for cid in client_ids:
            for kw in ({}, {"clean": False}, {"v5": True}):
                a = login(attacker, client_id=cid, **kw)
                assert a.accepted, f"{attacker} could not log in at all ({a.result}); the attack proves nothing"
                a.close()


def test_no_user_takes_the_hubs_client_id(gen, users, tmp_path):
    observer = users("observer")
    observer.subscribe(f"{BASE}/#")
    hub = Hub(hub_settings(gen, tmp_path))
    hub.start()
    try:
        assert hub.bus.wait_connected(10)
        assert observer.wait_for(f"{BASE}/hub/hub-1/status", b'"online"')
        mark = len(observer.received)
        attack(users, "hub-1", ["setbridge-hub-hub-1", "hub-1"])
        assert hub.submit("roll", cause="test").state == "rolling"
        assert observer.wait_for(f"{BASE}/set/main/state", b'"rolling"'), "the hub's connection no longer works"
        assert hub.bus.connections == 1, "the hub was disconnected"
        offline = [p for t, p in observer.received[mark:] if t == f"{BASE}/hub/hub-1/status" and b'"offline"' in p]
        assert not offline, "the hub's last will was sent"
    finally:
        hub.stop()


def test_no_user_takes_a_lights_client_id(gen, users, tmp_path):
    """The victim is the real firmware, logged in as its own light user."""
    find_micropython()
    observer = users("observer")
    observer.subscribe(f"{BASE}/light/door-1/#")
    hub = Hub(hub_settings(gen, tmp_path))
    hub.start()
    settings = hub_settings(gen, tmp_path, user="door-1")
    light = SimLight("door-1", light_config(settings, "door-1"), tmp_path)
    light.start()
    try:
        assert hub.bus.wait_connected(10)
        light.wait_showing("idle", timeout=15)
        assert observer.wait_for(f"{BASE}/light/door-1/status", b'"online"')
        mark, seen = light.mark(), len(observer.received)
        attack(users, "door-1", ["setbridge-light-door-1", "door-1"])
        hub.submit("roll", cause="test")
        light.wait_showing("rolling", timeout=10, after=mark)
        assert observer.wait_for(f"{BASE}/light/door-1/state", b'"rolling"'), "the light's connection no longer works"
        shows = [e.data for e in light.events[mark:] if e.kind == "show"]
        assert all(s["showing"] != "link-lost" for s in shows), f"the light lost its link: {shows}"
        logs = " | ".join(light.logs())
        assert "closed the connection" not in logs and "connection lost" not in logs, logs
        offline = [p for t, p in observer.received[seen:] if t == f"{BASE}/light/door-1/status" and b'"offline"' in p]
        assert not offline, "the light's last will was sent"
    finally:
        light.stop()
        hub.stop()


@pytest.mark.parametrize("victim", ["editorial", "wall"])
def test_no_user_takes_an_integrators_or_monitors_client_id(gen, users, victim):
    v = users(victim, client_id=f"{victim}-laptop")
    assert v.accepted
    v.subscribe(f"{BASE}/set/main/state")
    attack(users, victim, [f"{victim}-laptop", victim])
    hub = users("hub-2")
    hub.publish(f"{BASE}/set/main/state", '{"v": 1, "after": "attack"}')
    assert v.wait_for(f"{BASE}/set/main/state", b"attack"), f"{victim}'s connection no longer works"
    assert v.disconnects == 0, f"{victim} was disconnected"


def test_without_the_rule_the_same_attack_knocks_a_victim_off(users):
    """Control: the generated config minus use_username_as_clientid lets a monitor drop the hub user."""
    def edit(text: str) -> str:
        return text.replace("use_username_as_clientid true\n", "")
    with generated_broker(USERS, edit=edit) as plain:
        victim = User(plain.port, "hub-1", client_id="setbridge-hub-hub-1",
                      will=(f"{BASE}/hub/hub-1/status", '{"v": 1, "state": "offline"}'))
        observer = User(plain.port, "observer")
        try:
            assert victim.accepted
            observer.subscribe(f"{BASE}/hub/hub-1/status")
            thief = User(plain.port, "wall", client_id="setbridge-hub-hub-1")
            thief.close()
            assert victim.wait_disconnected(10), "the control attack did not disconnect the victim"
            assert observer.wait_for(f"{BASE}/hub/hub-1/status", b"offline")
        finally:
            victim.close()
            observer.close()


def test_a_second_connection_of_the_same_user_replaces_the_first(users):
    """As docs/deploy.md says: one connection per user, the newest wins."""
    first = users("script", client_id="one")
    assert first.accepted
    second = users("script", client_id="two")
    assert second.accepted
    assert first.wait_disconnected(10)


def cli(config: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "setbridge", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=timeout)


def toml(settings, tools: str | None) -> str:
    lines = ["[hub]", 'id = "hub-1"', 'set = "main"', f'state_dir = "{settings.hub.state_dir}"',
             "[mqtt]", 'host = "127.0.0.1"', f"port = {settings.mqtt.port}", f'base_topic = "{BASE}"',
             'username = "hub-1"', f'password = "{password("hub-1")}"']
    if tools:
        lines += ["[mqtt.tools]", f'username = "{tools}"', f'password = "{password(tools)}"']
    return "\n".join(lines) + "\n"


def test_the_tools_connect_with_their_own_user_and_never_replace_the_hub(gen, users, tmp_path):
    observer = users("observer")
    observer.subscribe(f"{BASE}/hub/hub-1/status")
    observer.subscribe(f"{BASE}/set/main/state")
    settings = hub_settings(gen, tmp_path)
    hub = Hub(settings)
    hub.start()
    try:
        assert hub.bus.wait_connected(10)
        assert observer.wait_for(f"{BASE}/hub/hub-1/status", b'"online"')
        mark = len(observer.received)
        refused = tmp_path / "hub-user.toml"
        refused.write_text(toml(settings, None))
        out = cli(refused, "status")
        assert out.returncode != 0 and "Traceback" not in out.stderr
        assert "hub's own broker user" in out.stderr.strip().splitlines()[-1]
        tools = tmp_path / "tools.toml"
        tools.write_text(toml(settings, "stage-tools"))
        sent = cli(tools, "send", "roll")
        assert sent.returncode == 0, sent.stderr
        assert observer.wait_for(f"{BASE}/set/main/state", b'"rolling"')
        watched = cli(tools, "watch", "--json", "--count", "1")
        assert watched.returncode == 0, watched.stderr
        assert json.loads(watched.stdout.splitlines()[0])["topic"].startswith(BASE)
        status = cli(tools, "status")
        assert "hub-1" in status.stdout, status.stdout + status.stderr
        report = cli(tools, "offload", "report", "--roll", "A001", "--status", "verified", "--files", "3",
                     "--bytes", "10", "--destination", "/mnt/a", "--destination", "/mnt/b")
        assert report.returncode == 0, report.stderr
        assert hub.bus.connections == 1, "a tool replaced the hub's connection"
        assert not [p for t, p in observer.received[mark:] if b'"offline"' in p], "the hub's last will was sent"
    finally:
        hub.stop()



def test_simulated_lights_log_in_as_their_own_users(gen, tmp_path):
    """`lights simulate --light-password` on the generated broker; with the hub's user it refuses."""
    settings = hub_settings(gen, tmp_path)
    config = tmp_path / "hub.toml"
    config.write_text(toml(settings, None))
    refused = cli(config, "lights", "simulate", "--count", "1")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "--light-password" in refused.stderr.strip().splitlines()[-1]
    hub = Hub(settings)
    hub.start()
    # sim-1 and sim-2 share one password here, as --light-password gives every light the same
    for name in ("sim-1", "sim-2"):
        subprocess.run(["mosquitto_passwd", "-b", str(Path(gen.workdir) / "setbridge.passwd"), name, "pw-sims"],
                       check=True, capture_output=True)
    gen.process.send_signal(signal.SIGHUP)  # reload the password file
    proc = subprocess.Popen([sys.executable, "-m", "setbridge", "lights", "simulate", "--count", "2",
                             "--light-password", "pw-sims", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stuck = threading.Timer(60, proc.kill)  # lights that never get in end the output instead of hanging
    stuck.start()
    try:
        assert hub.bus.wait_connected(10)
        seen: dict[str, set[str]] = {"sim-1": set(), "sim-2": set()}
        assert proc.stdout
        for line in proc.stdout:
            event = json.loads(line)
            seen[event["light"]].add(event["showing"])
            if all("idle" in shows for shows in seen.values()):
                break
        assert all("idle" in shows for shows in seen.values()), seen
    finally:
        stuck.cancel()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        hub.stop()
