"""Integrators on the generated broker with a real hub process: one integrator never reads another's
MQTT 5 answers, and one integrator's flood of requests never makes the hub forget another's
transaction (a retried cut must not cut a new take)."""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from pathlib import Path

import pytest
from broker_helpers import User, generated_broker, password
from conftest import HubProcess, make_settings, write_config
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")]

USERS = {"hub-1": "hub", "editorial": "integrator", "script": "integrator", "wall": "monitor"}
SET = "main"


def start_hub(broker, tmp_path: Path) -> HubProcess:
    settings = make_settings(broker, tmp_path / "state", hub={"id": "hub-1", "set": SET, "heartbeat_s": 1.0},
                             mqtt={"base_topic": "setbridge", "username": "hub-1", "password": password("hub-1")})
    hub = HubProcess(write_config(tmp_path / "setbridge.toml", settings)).start()
    wall = User(broker.port, "wall")
    try:
        wall.subscribe("setbridge/hub/hub-1/status")
        assert wall.wait_for("setbridge/hub/hub-1/status", b'"online"', timeout=30), "the hub did not come online"
    finally:
        wall.close()
    return hub


def ask(user: User, action: str, tx: str, source: str, response_topic: str | None = None) -> None:
    props = None
    if response_topic:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = response_topic
    body = json.dumps({"v": 1, "action": action, "transaction": tx, "source": source})
    user.c.publish(f"setbridge/set/{SET}/request", body, qos=1, properties=props).wait_for_publish(5)


def answer(user: User, topic: str, tx: str, timeout: float = 10) -> dict:
    assert user.wait_for(topic, f'"transaction":"{tx}"'.encode(), timeout=timeout), f"no answer to {tx} on {topic}"
    return next(json.loads(p) for t, p in user.received if t == topic and json.loads(p).get("transaction") == tx)


def test_an_integrators_v5_answers_are_read_by_it_alone(tmp_path):
    with generated_broker(USERS) as broker:
        hub = start_hub(broker, tmp_path)
        editorial = User(broker.port, "editorial", v5=True)
        script = User(broker.port, "script", v5=True)
        wall = User(broker.port, "wall")
        try:
            mine = f"setbridge/set/{SET}/response/editorial/{uuid.uuid4().hex[:6]}"
            editorial.subscribe(f"setbridge/set/{SET}/response/editorial/#")
            for snoop in (script, wall):  # every topic they may try, wildcards included
                snoop.subscribe("setbridge/#")
                snoop.subscribe(f"setbridge/set/{SET}/response/editorial/#")
            ask(editorial, "roll", "e-1", "editorial", response_topic=mine)
            assert answer(editorial, mine, "e-1")["state"] == "rolling"
            ask(editorial, "cut", "e-2", "editorial")  # 3.1.1-style: the shared topic, seen by all
            shared = f"setbridge/set/{SET}/response"
            answer(script, shared, "e-2")
            answer(wall, shared, "e-2")
            for snoop in (script, wall):
                assert not [t for t, _ in snoop.received if t.startswith(shared + "/")], (
                    f"{snoop.user} read editorial's private answer")
        finally:
            for u in (editorial, script, wall):
                u.close()
            hub.terminate()


def test_a_flood_from_one_source_never_makes_the_hub_forget_anothers_transaction(tmp_path):
    """10,001 no-op requests from one integrator, then another's retried cut gets its first answer
    and does not cut the take rolling now."""
    n = 10_001
    with generated_broker(USERS) as broker:
        hub = start_hub(broker, tmp_path)
        editorial = User(broker.port, "editorial")
        script = User(broker.port, "script")
        shared = f"setbridge/set/{SET}/response"
        try:
            editorial.subscribe(shared)
            editorial.subscribe(f"setbridge/set/{SET}/state")
            ask(editorial, "roll", "take-1-roll", "editorial")
            answer(editorial, shared, "take-1-roll")
            ask(editorial, "cut", "take-1-cut", "editorial")
            first = answer(editorial, shared, "take-1-cut")
            assert first["ok"] and first["state"] == "idle"

            answered = threading.Semaphore(0)
            script.c.on_message = lambda c, u, m: answered.release()
            script.subscribe(shared)
            window, run = 500, uuid.uuid4().hex[:6]
            for i in range(n):  # at most `window` unanswered, so none is answered busy
                if i >= window:
                    assert answered.acquire(timeout=30), f"the hub stopped answering after {i} requests"
                body = json.dumps({"v": 1, "action": "idle", "transaction": f"{run}-{i}", "source": "script"})
                script.c.publish(f"setbridge/set/{SET}/request", body, qos=1)
            answer(editorial, shared, f"{run}-{n - 1}", timeout=60)

            ask(editorial, "roll", "take-2-roll", "editorial")
            assert answer(editorial, shared, "take-2-roll")["state"] == "rolling"
            editorial.received.clear()
            ask(editorial, "cut", "take-1-cut", "editorial")  # a late retry of the first cut
            ask(editorial, "roll", "probe-roll", "editorial")  # answered after the retry: the state by then
            probe = answer(editorial, shared, "probe-roll")
            retried = answer(editorial, shared, "take-1-cut")
            assert retried == first, "the retried cut was run again instead of getting its first answer"
            assert probe["state"] == "rolling" and probe["changed"] is False, "the retried cut cut the new take"
        finally:
            editorial.close()
            script.close()
            hub.terminate()
