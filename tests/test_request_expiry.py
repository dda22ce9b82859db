"""Requests expire: one held up (in a broker's queue during a network cut, past its deadline) is
refused with a reason and never executed late, against a real Mosquitto and hub."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from setbridge.expiry import expires_at, expiring, refusal
from setbridge.messages import SetRequest

from test_requests import ask


def test_a_request_older_than_request_max_age_is_refused_and_changes_nothing(hub, topics, probe_factory):
    p = probe_factory(topics.set_response("stage-t"))
    old = time.time() - 37
    answer = ask(p, topics, {"v": 1, "action": "roll", "transaction": "late-1", "sent_at": old}, "late-1")
    assert answer["ok"] is False and answer["error"].startswith("sent_at: the request is 3")
    assert "request_max_age_s" in answer["error"] and answer["state"] == "idle" and hub.state == "idle"


def test_a_request_past_its_deadline_is_refused(hub, topics, probe_factory):
    p = probe_factory(topics.set_response("stage-t"))
    answer = ask(p, topics, {"v": 1, "action": "roll", "transaction": "late-2", "deadline": time.time() - 1}, "late-2")
    assert answer["ok"] is False and answer["error"].startswith("deadline: the request expired")
    assert hub.state == "idle"


def test_a_fresh_request_runs_and_an_expired_transaction_stays_free_for_a_retry(hub, topics, probe_factory):
    p = probe_factory(topics.set_response("stage-t"))
    stale, _ = expiring("roll", "tx-9", "cart", 5.0, now=time.time() - 60)
    assert ask(p, topics, stale.to_bytes(), "tx-9")["ok"] is False
    fresh, _ = expiring("roll", "tx-9", "cart", 5.0)
    p.publish(topics.set_request("stage-t"), fresh.to_bytes())
    answer = p.wait_for(lambda m: m.data is not None and m.data.get("transaction") == "tx-9" and m.data["ok"]).data
    assert answer["state"] == "rolling" and hub.state == "rolling"


def test_a_request_dated_far_ahead_is_a_clock_set_wrong(hub, topics, probe_factory):
    p = probe_factory(topics.set_response("stage-t"))
    answer = ask(p, topics, {"v": 1, "action": "roll", "transaction": "fut", "sent_at": time.time() + 3600}, "fut")
    assert answer["ok"] is False and "NTP" in answer["error"] and hub.state == "idle"


@pytest.mark.parametrize("field", ["sent_at", "deadline"])
@pytest.mark.parametrize("value", ["12", True, None])
def test_wrong_typed_age_fields_are_refused_by_name(hub, topics, probe_factory, field, value):
    p = probe_factory(topics.set_response("stage-t"))
    if value is None:  # null is "not given": the request runs
        assert ask(p, topics, {"v": 1, "action": "roll", "transaction": "w", field: None}, "w")["ok"] is True
        return
    answer = ask(p, topics, {"v": 1, "action": "roll", "transaction": "w", field: value}, "w")
    assert answer["ok"] is False and answer["error"].startswith(f"{field}:") and hub.state == "idle"


def test_the_hub_refuses_what_expired_in_its_own_queue():
    message = mqtt.MQTTMessage(topic=b"x/set/s/request")
    message.properties = _props(PacketTypes.PUBLISH, MessageExpiryInterval=2)
    at = expires_at(message, received=1000.0)
    assert at == 1002.0
    request = SetRequest(action="roll")
    assert refusal(request, at, now=1001.9, max_age_s=5) is None
    assert refusal(request, at, now=1002.1, max_age_s=5).startswith("message expiry:")


def _props(packet: int, **values: int) -> Properties:
    props = Properties(packet)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def test_send_dates_its_request_and_gives_it_a_message_expiry(hub, broker, settings, topics, tmp_path):
    from helpers import Probe, write_config
    from test_cli import run

    watcher = Probe(broker.port, topics.set_request("stage-t"), v5=True)
    try:
        out = run("send", "roll", "--config", str(write_config(tmp_path / "c.toml", settings)), "--timeout", "3")
        assert out.returncode == 0, out.stderr
        sent = watcher.wait_for(lambda m: True, what="the request setbridge send published")
    finally:
        watcher.close()
    request = SetRequest.model_validate_json(sent.payload)
    assert request.sent_at is not None and abs(request.sent_at - time.time()) < 10
    assert request.deadline == pytest.approx(request.sent_at + 3)
    assert sent.properties["MessageExpiryInterval"] in (2, 3)  # what is left of 3 s when it arrives
