"""Hubs sharing one broker (the generated config, real hub processes): a second hub for a set that
a live hub serves refuses to start, in one line naming the other; a second hub on the broker runs
its set without offload, so every report is published once and a card's seq never falls; a
running hub that meets another hub for its set says so in its status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from broker_helpers import User, generated_broker, password
from conftest import HubProcess, make_settings, wait_until, write_config

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")]

USERS = {"hub-a": "hub", "hub-b": "hub", "wall": "monitor", "editorial": "integrator", "old-hub": "hub"}


def hub_process(broker, tmp_path: Path, hub_id: str, set_id: str, **sections: dict) -> HubProcess:
    settings = make_settings(broker, tmp_path / hub_id, hub={"id": hub_id, "set": set_id, "heartbeat_s": 0.5},
                             mqtt={"base_topic": "setbridge", "username": hub_id, "password": password(hub_id)},
                             **sections)
    return HubProcess(write_config(tmp_path / f"{hub_id}.toml", settings)).start()


def statuses(wall: User, hub_id: str) -> list[dict]:
    return [json.loads(p) for t, p in list(wall.received) if t == f"setbridge/hub/{hub_id}/status" and p]


def online(wall: User, hub_id: str, timeout: float = 30) -> dict:
    assert wall.wait_for(f"setbridge/hub/{hub_id}/status", b'"online"', timeout=timeout), f"{hub_id} never came online"
    return [s for s in statuses(wall, hub_id) if s["state"] == "online"][-1]


def test_a_second_hub_for_a_served_set_refuses_to_start_naming_the_other(tmp_path):
    with generated_broker(USERS) as broker:
        wall = User(broker.port, "wall")
        wall.subscribe("setbridge/#")
        ha = User(broker.port, "old-hub")  # a hub-role user reads Home Assistant's topics
        ha.subscribe("homeassistant/#")
        first = hub_process(broker, tmp_path, "hub-a", "main", homeassistant={"enabled": True})
        second = None
        try:
            online(wall, "hub-a")
            wait_until(lambda: any(t == "setbridge/set/main/state" for t, _ in wall.received), what="hub-a's state")
            wait_until(lambda: ha.received, what="hub-a's discovery")
            states_before = [p for t, p in wall.received if t == "setbridge/set/main/state"]
            second = hub_process(broker, tmp_path, "hub-b", "main", homeassistant={"enabled": False})
            assert second.proc is not None
            try:
                code = second.proc.wait(timeout=30)
            except Exception:
                pytest.fail("hub-b kept running beside hub-a for the same set")
            out = second.proc.stdout.read().decode() if second.proc.stdout else ""
            assert code != 0
            errors = [line for line in out.splitlines() if "hub-a already serves set main" in line]
            assert errors and "stop it, or give this hub another [hub] set" in errors[0], out[-800:]
            assert not statuses(wall, "hub-b"), "hub-b said something on its status topic"
            epochs = {json.loads(p)["epoch"] for t, p in wall.received if t == "setbridge/set/main/state"}
            assert len(epochs) == 1, "hub-b published a state of the set"
            assert [p for t, p in wall.received if t == "setbridge/set/main/state"] == states_before
            assert len(ha.received) == 1 and b"hub-a" in ha.received[0][1], "hub-b touched the set's discovery"
            assert first.proc is not None and first.proc.poll() is None
        finally:
            wall.close()
            ha.close()
            first.terminate()
            if second is not None:
                second.kill()


def test_only_one_hub_on_a_broker_relays_offload(tmp_path):
    """Two hubs for different sets: the second runs its set without offload, so a report is
    published once and the card's retained seq is the first hub's."""
    with generated_broker(USERS) as broker:
        wall = User(broker.port, "wall")
        wall.subscribe("setbridge/#")
        first = hub_process(broker, tmp_path, "hub-a", "stage-a")
        second = None
        editorial = User(broker.port, "editorial")
        try:
            online(wall, "hub-a")
            second = hub_process(broker, tmp_path, "hub-b", "stage-b")
            status = online(wall, "hub-b")
            assert status["offload"] == "off" and "hub hub-a relays offload reports" in status["offload_reason"]
            assert status.get("conflict") is None
            for n in range(3):
                editorial.publish("setbridge/offload/report",
                                  json.dumps({"v": 1, "roll": "A001", "status": "verified", "event_id": f"r{n}"}))
            wait_until(lambda: sum(t == "setbridge/offload/event" for t, _ in wall.received) >= 3, timeout=15,
                       what="the three events")
            editorial.publish("setbridge/set/stage-b/request", json.dumps({"v": 1, "action": "roll", "transaction": 1}))
            assert wall.wait_for("setbridge/set/stage-b/response", b'"ok":true'), "hub-b does not serve its set"
            events = [json.loads(p) for t, p in wall.received if t == "setbridge/offload/event"]
            assert sorted(e["event_id"] for e in events) == ["r0", "r1", "r2"], "a report was published twice"
            cards = [json.loads(p)["seq"] for t, p in wall.received if t == "setbridge/offload/card/A001"]
            assert cards == sorted(cards), f"the card's seq fell: {cards}"
            assert first.proc is not None and second.proc is not None
            assert first.proc.poll() is None and second.proc.poll() is None
        finally:
            editorial.close()
            wall.close()
            first.terminate()
            if second is not None:
                second.terminate()


def test_a_running_hub_that_meets_another_hub_for_its_set_says_so(tmp_path):
    """A hub that does not look first (an older version) comes online for the same set: the running
    hub keeps serving, names it in its status and clears that once it has gone."""
    with generated_broker(USERS) as broker:
        wall = User(broker.port, "wall")
        wall.subscribe("setbridge/#")
        hub = hub_process(broker, tmp_path, "hub-a", "main")
        old = User(broker.port, "old-hub")
        try:
            assert online(wall, "hub-a").get("conflict") is None
            old.publish("setbridge/hub/old-hub/status", json.dumps(
                {"v": 1, "state": "online", "hub": "old-hub", "set": "main", "version": "0.0.9"}), retain=True)
            wait_until(lambda: any(s.get("conflict") for s in statuses(wall, "hub-a")), timeout=10,
                       what="hub-a to name the conflict in its status")
            conflict = [s for s in statuses(wall, "hub-a") if s.get("conflict")][-1]
            assert conflict["state"] == "online" and "hub old-hub is online for set main too" in conflict["conflict"]
            old.publish("setbridge/hub/old-hub/status", json.dumps(
                {"v": 1, "state": "offline", "hub": "old-hub", "set": "main", "version": "0.0.9"}), retain=True)
            wait_until(lambda: statuses(wall, "hub-a")[-1].get("conflict") is None, timeout=10,
                       what="hub-a to clear the conflict")
        finally:
            old.close()
            wall.close()
            out_code = hub.terminate()
            assert hub.proc is not None and hub.proc.stdout is not None
            log = hub.proc.stdout.read().decode()
            assert out_code == 0 and "conflict: hub old-hub is online for set main too" in log, log[-800:]


def test_a_stale_online_status_without_heartbeats_never_keeps_a_hub_from_starting(tmp_path):
    """A hub gone without its last will (the broker restarted meanwhile) left "online" retained: no
    heartbeats come for its set, so the new hub starts, serves the set and relays offload."""
    with generated_broker(USERS) as broker:
        old = User(broker.port, "old-hub")
        old.publish("setbridge/hub/old-hub/status", json.dumps(
            {"v": 1, "state": "online", "hub": "old-hub", "set": "main", "version": "0.0.9"}), retain=True)
        old.close()
        wall = User(broker.port, "wall")
        wall.subscribe("setbridge/#")
        hub = hub_process(broker, tmp_path, "hub-a", "main")
        try:
            status = online(wall, "hub-a")
            assert status["offload"] == "ok" and status.get("conflict") is None
        finally:
            wall.close()
            hub.terminate()
            assert hub.proc is not None and hub.proc.stdout is not None
            log = hub.proc.stdout.read().decode()
            assert "hub old-hub's retained status says online for set main, but its set has sent no heartbeat" in log
