"""``setbridge forget-set``: a set whose hub is gone for good leaves retained messages behind (a
ghost on the board); the command clears them, never a live set's, and says when the broker
does not let its user clear them. Real Mosquitto, real hub processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest
from helpers.broker import generated_broker, password
from helpers import HubProcess, Probe, make_settings, running_hub, write_config
from paho.mqtt.enums import CallbackAPIVersion

from setbridge.topics import Topics

pytestmark = pytest.mark.integration


def forget(cfg, set_id: str, *extra: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "setbridge", "forget-set", set_id, "--config", str(cfg), *extra],
                          capture_output=True, text=True, timeout=60, input=stdin)


def retained(port: int, topic_filter: str, user: str | None = None) -> dict[str, bytes]:
    """What a new subscriber gets at once: topic → retained payload (empty ones are not kept)."""
    probe = Probe(port, topic_filter, user=user, password=password(user) if user else None, client_id=user, qos=0)
    try:
        # The broker sends a subscription's retained messages before it handles the next packet: once a
        # second subscription is answered (granted or not), every QoS 0 retained message of the first is in.
        probe.subscribe(f"{topic_filter.removesuffix('#')}end-of-retained")
        return {m.topic: m.payload for m in probe.seen if m.retained and m.payload}
    finally:
        probe.close()


def test_a_ghost_set_is_forgotten_and_a_live_one_is_not(broker, settings, tmp_path):
    base = settings.mqtt.base_topic
    t = Topics(base)
    ghost = HubProcess(write_config(tmp_path / "ghost.toml", settings, hub={"id": "hub-g", "set": "stage-g",
                                                                          "state_dir": str(tmp_path / "g")}))
    ghost.start()
    deadline = time.monotonic() + 20
    while t.set_state("stage-g") not in retained(broker.port, f"{base}/#"):
        assert time.monotonic() < deadline, "the hub did not start"
        time.sleep(0.1)
    ghost.kill()  # gone for good: its last will says offline; its state stays retained
    with running_hub(broker, tmp_path / "live", hub={"id": "hub-l", "set": "stage-l"}, mqtt={"base_topic": base}):
        before = retained(broker.port, f"{base}/#")
        assert t.set_state("stage-g") in before and t.hub_status("hub-g") in before
        cfg = write_config(tmp_path / "tools.toml", make_settings(broker, tmp_path / "t", mqtt={"base_topic": base}))
        dry = forget(cfg, "stage-g", "--dry-run")
        assert dry.returncode == 0 and f"would clear {t.set_state('stage-g')}" in dry.stdout
        assert t.set_state("stage-g") in retained(broker.port, f"{base}/#"), "a dry run changes nothing"
        live = forget(cfg, "stage-l")
        assert live.returncode == 1 and "set stage-l is alive" in live.stderr
        out = forget(cfg, "stage-g")
        assert out.returncode == 0, out.stderr
        assert "set stage-g forgotten: 2 retained message(s) cleared" in out.stdout
        after = retained(broker.port, f"{base}/#")
        assert t.set_state("stage-g") not in after and t.hub_status("hub-g") not in after
        assert t.set_state("stage-l") in after and t.hub_status("hub-l") in after, "the live set is untouched"
        again = forget(cfg, "stage-g")
        assert again.returncode == 0 and "nothing to forget" in again.stdout
        for wildcard in ("+", "#", "stage-l/#", "Stage-L"):
            refused = forget(cfg, wildcard)
            assert refused.returncode == 1 and "is not a set id" in refused.stderr
        assert t.set_state("stage-l") in retained(broker.port, f"{base}/#"), "no wildcard ever clears a live set"


@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")
def test_a_user_that_may_not_clear_is_told_which_role_may(tmp_path):
    users = {"hub-1": "hub", "tools": "integrator", "admin": "hub"}
    with generated_broker(users) as broker:
        base = "setbridge"
        hub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub-1")
        hub.username_pw_set("hub-1", password("hub-1"))
        hub.connect("127.0.0.1", broker.port)
        hub.loop_start()
        hub.publish(f"{base}/set/old/state", '{"v":1,"set":"old","state":"idle","epoch":1,"seq":1,"take":0,'
                                             '"cause":"restore","ts":1.0}', qos=1, retain=True).wait_for_publish(5)
        hub.disconnect()
        hub.loop_stop()
        cfg = tmp_path / "c.toml"
        # heartbeat_s: how long forget-set listens for the set's heartbeats (2 of them, plus 1 s)
        cfg.write_text(f'[hub]\nheartbeat_s = 0.2\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n[mqtt.tools]\nusername = "tools"\n'
                       f'password = "{password("tools")}"\n')
        refused = forget(cfg, "old")
        assert refused.returncode == 4 and "role hub" in refused.stderr
        assert f"{base}/set/old/state" in retained(broker.port, f"{base}/#", user="admin")
        done = forget(cfg, "old", "--username", "admin", stdin=password("admin") + "\n")
        assert done.returncode == 0, done.stderr
        assert f"{base}/set/old/state" not in retained(broker.port, f"{base}/#", user="admin")
