"""The generated Mosquitto config, run by a real broker: each role can do exactly what it may."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker_helpers import setbridge

from setbridge.sim.broker import PrivateBroker, free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")]

USERS = {"hub-1": "hub", "sim-1": "light", "sim-2": "light", "editorial": "integrator", "wall": "monitor",
         "watcher": "hub"}
"""One connection per user (the broker sets client id = user name): observers log in as ``watcher``."""


@pytest.fixture(scope="module")
def secured():
    # A folder the broker's own user can reach (pytest's tmp folders are private to root).
    d = Path(tempfile.mkdtemp(prefix="setbridge-acl-"))
    d.chmod(0o755)
    port = free_port()
    setbridge("broker", "config", "--out", str(d), "--port", str(port), "--bind", "127.0.0.1")
    for name, role in USERS.items():
        setbridge("broker", "add-user", name, "--role", role, "--password", f"pw-{name}", "--dir", str(d))
    broker = PrivateBroker(port=port, workdir=d, config_file=d / "setbridge.conf").start()
    yield broker
    broker.stop()
    shutil.rmtree(d, ignore_errors=True)


class Client:
    """A real paho client logged in as ``user``; records what it receives."""

    def __init__(self, port: int, user: str | None, password: str | None = None):
        self.received: list[str] = []
        self.got = threading.Condition()
        self.result: mqtt.ReasonCode | None = None
        done = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user or 'anon'}-{uuid.uuid4().hex[:6]}")
        if user:
            self.c.username_pw_set(user, password if password is not None else f"pw-{user}")

        def on_connect(c, u, f, rc, p):
            self.result = rc
            done.set()

        def on_message(c, u, msg):
            with self.got:
                self.received.append(msg.topic)
                self.got.notify_all()
        self.c.on_connect, self.c.on_message = on_connect, on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        done.wait(5)

    @property
    def accepted(self) -> bool:
        return self.result is not None and not self.result.is_failure

    def subscribe(self, topic: str) -> None:
        ok = threading.Event()
        self.c.on_subscribe = lambda *a: ok.set()
        self.c.subscribe(topic, 1)
        assert ok.wait(5)

    def publish(self, topic: str, payload: str = '{"v": 1}', retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def wait_for(self, topic: str, timeout: float = 5) -> bool:
        with self.got:
            return self.got.wait_for(lambda: topic in self.received, timeout)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def login(secured):
    clients: list[Client] = []

    def make(user: str | None, password: str | None = None) -> Client:
        c = Client(secured.port, user, password)
        clients.append(c)
        return c
    yield make
    for c in clients:
        c.close()


def may_publish(login, user: str, topic: str) -> bool:
    """Whether the broker lets ``user``'s publish on ``topic`` through to a hub-role observer.

    The user then publishes to a topic it may use; messages from one connection arrive in order,
    so once that marker is seen, a forbidden publish would have arrived already."""
    observer = login("watcher")
    observer.subscribe("setbridge/#")
    sender = login(user)
    assert sender.accepted
    marker = {"hub": "setbridge/x/marker", "light": f"setbridge/light/{user}/state",
              "integrator": "setbridge/set/main/request"}[USERS[user]]
    sender.publish(topic)
    sender.publish(marker)
    assert observer.wait_for(marker), f"{user}'s marker on {marker} never arrived"
    return topic in observer.received


def test_anonymous_and_wrong_passwords_are_refused(login):
    assert not login(None).accepted
    assert not login("hub-1", "wrong").accepted
    assert not login("nobody", "pw").accepted


def test_hub_may_write_everything(login):
    assert may_publish(login, "hub-1", "setbridge/set/main/state")
    assert may_publish(login, "hub-1", "setbridge/offload/event")


def test_light_writes_only_its_own_topics(login):
    assert may_publish(login, "sim-1", "setbridge/light/sim-1/status")
    assert may_publish(login, "sim-1", "setbridge/light/sim-1/alive")
    assert not may_publish(login, "sim-1", "setbridge/light/sim-2/alive")
    assert not may_publish(login, "sim-1", "setbridge/set/main/state")
    assert not may_publish(login, "sim-1", "setbridge/set/main/request")
    assert not may_publish(login, "sim-1", "setbridge/light/sim-2/state")
    assert not may_publish(login, "sim-1", "setbridge/offload/event")


def test_light_reads_what_it_follows_and_nothing_else(login):
    light = login("sim-1")
    light.subscribe("setbridge/#")
    hub = login("hub-1")
    for topic in ("setbridge/offload/event", "setbridge/light/sim-2/cmd", "setbridge/set/main/state",
                  "setbridge/set/main/heartbeat", "setbridge/hub/hub-1/status", "setbridge/light/sim-1/cmd"):
        hub.publish(topic)
    assert light.wait_for("setbridge/light/sim-1/cmd")
    assert {"setbridge/set/main/state", "setbridge/set/main/heartbeat", "setbridge/hub/hub-1/status"} <= set(light.received)
    assert "setbridge/offload/event" not in light.received and "setbridge/light/sim-2/cmd" not in light.received


def test_integrator_asks_but_cannot_set_state_or_impersonate_a_light(login):
    assert may_publish(login, "editorial", "setbridge/offload/report")
    assert may_publish(login, "editorial", "setbridge/light/sim-1/cmd")
    assert not may_publish(login, "editorial", "setbridge/set/main/state")
    assert not may_publish(login, "editorial", "setbridge/light/sim-1/state")
    assert not may_publish(login, "editorial", "setbridge/light/sim-1/status")
    assert not may_publish(login, "editorial", "setbridge/light/sim-1/alive")
    assert not may_publish(login, "editorial", "setbridge/hub/hub-1/status")


def test_monitor_reads_everything_and_writes_nothing(login):
    hub = login("hub-1")
    hub.publish("setbridge/set/mon/state", retain=True)
    wall = login("wall")
    wall.subscribe("setbridge/#")
    assert wall.wait_for("setbridge/set/mon/state")
    observer = login("watcher")
    observer.subscribe("setbridge/#")
    wall.publish("setbridge/set/main/request")
    hub.publish("setbridge/x/after")
    assert observer.wait_for("setbridge/x/after")
    observer_saw = list(observer.received)
    assert "setbridge/set/main/request" not in observer_saw


def test_add_user_twice_changes_nothing(secured, tmp_path):
    d = Path(secured.workdir)
    acl = (d / "setbridge.acl").read_text()
    # The installed command, as a child process (the fixtures run the same code in this process).
    subprocess.run([sys.executable, "-m", "setbridge", "broker", "add-user", "sim-1", "--role", "light",
                    "--password", "pw-sim-1", "--dir", str(d)], check=True, capture_output=True)
    assert (d / "setbridge.acl").read_text() == acl


def test_bad_role_and_name_are_one_line_errors(secured):
    for args, says in ((["nope!", "--role", "light"], "user name"), (["x", "--role", "admin"], "--role")):
        out = subprocess.run([sys.executable, "-m", "setbridge", "broker", "add-user", *args, "--dir", str(secured.workdir)],
                             capture_output=True, text=True)
        assert out.returncode != 0 and "Traceback" not in out.stderr
        assert says in out.stderr.strip().splitlines()[-1]


def test_wrong_role_publishers_leave_nothing_live_or_retained(login):
    """A monitor writing the set state, an integrator a retained state or a heartbeat, a light a
    request: none reaches a subscriber, and none is kept retained for the next one."""
    live = login("watcher")
    live.subscribe("setbridge/#")
    forged = (("wall", "setbridge/set/forged/state"), ("editorial", "setbridge/set/forged/state"),
              ("editorial", "setbridge/set/forged/heartbeat"), ("sim-1", "setbridge/set/forged/request"),
              ("editorial", "setbridge/hub/forged/status"))
    for user, topic in forged:
        c = login(user)
        c.c.publish(topic, '{"v": 1, "state": "rolling", "epoch": 999, "seq": 999999}', qos=1, retain=True).wait_for_publish(5)
        c.close()
    hub = login("hub-1")
    hub.publish("setbridge/set/forged/marker")
    assert live.wait_for("setbridge/set/forged/marker")
    assert [t for t in live.received if "/forged/" in t] == ["setbridge/set/forged/marker"]
    late = login("watcher")  # a new subscriber (replacing the first): retained messages would come at once
    late.subscribe("setbridge/+/forged/#")
    hub.publish("setbridge/set/forged/marker2")
    assert late.wait_for("setbridge/set/forged/marker2")
    assert late.received == ["setbridge/set/forged/marker2"]
