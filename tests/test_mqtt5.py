"""MQTT 5 request/response against a real Mosquitto and hub: answered on the request's Response
Topic with its Correlation Data; 3.1.1 clients keep the shared topic; a 3.1.1 hub still works."""

from __future__ import annotations

import pytest
import uuid

from helpers import Message, Probe, make_settings, running_hub

pytestmark = pytest.mark.integration


def _fields(message: Message) -> tuple[str, object, bytes | None]:
    return message.topic, message.data, message.correlation


def nth(probe: Probe, n: int, timeout: float = 5.0) -> Message:
    """The probe's message number ``n`` (from 0), in the order it arrived."""
    probe.wait_for(lambda _: len(probe.seen) > n, timeout, what=f"message {n + 1}")
    return probe.seen[n]


def test_a_v5_request_is_answered_on_its_response_topic_with_its_correlation_data(hub, broker, topics, probe_factory):
    shared = probe_factory(topics.set_response("stage-t"))
    mine = f"{topics.set_response('stage-t')}/node-red/{uuid.uuid4().hex[:6]}"
    client = Probe(broker.port, mine, v5=True)
    try:
        correlation = b"\x00\xffcorr-1"
        client.publish(topics.set_request("stage-t"), {"v": 1, "action": "roll"}, ResponseTopic=mine, CorrelationData=correlation)
        topic, answer, back = _fields(nth(client, 0))
        assert topic == mine and back == correlation
        assert answer["ok"] is True and answer["state"] == "rolling"
        # A 3.1.1 request right after is answered on the shared topic, and only it is there.
        shared.publish(topics.set_request("stage-t"), {"v": 1, "action": "cut", "transaction": "v1"})
        shared.wait_for(lambda m: m.data and m.data.get("transaction") == "v1")
        assert [msg.data.get("transaction") for msg in shared.seen] == ["v1"]
        # A malformed v5 request without a transaction is still answered, matched by its correlation data.
        client.publish(topics.set_request("stage-t"), {"v": 1, "action": "jump"}, ResponseTopic=mine, CorrelationData=b"corr-2")
        topic, answer, back = _fields(nth(client, 1))
        assert back == b"corr-2" and answer["ok"] is False and answer["error"].startswith("action:")
    finally:
        client.close()


def test_a_response_topic_outside_the_set_is_refused_and_answered_on_the_shared_topic(hub, broker, topics, probe_factory):
    shared = probe_factory(topics.set_response("stage-t"))
    elsewhere = f"{topics.base}/light/door-1/cmd"
    client = Probe(broker.port, elsewhere, topics.set_response("stage-t"), v5=True)
    try:
        client.publish(topics.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": "x"}, ResponseTopic=elsewhere, CorrelationData=b"c")
        answer = shared.wait_for(lambda m: m.data and m.data.get("transaction") == "x").data
        assert answer["ok"] is False and "not under" in answer["error"] and answer["state"] == "idle"
        assert hub.state == "idle"
        topic, _, back = _fields(nth(client, 0))
        assert topic == topics.set_response("stage-t") and back == b"c"
        assert len(client.seen) == 1, "nothing may be published on the named foreign topic"
    finally:
        client.close()


def test_a_v5_retry_gets_its_first_answer_on_the_new_response_topic(hub, broker, topics):
    first, second = (f"{topics.set_response('stage-t')}/{n}" for n in ("try-1", "try-2"))
    client = Probe(broker.port, f"{topics.set_response('stage-t')}/#", v5=True)
    try:
        client.publish(topics.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": 7}, ResponseTopic=first, CorrelationData=b"a")
        t1, a1, c1 = _fields(nth(client, 0))
        hub.submit("cut", cause="test")
        client.publish(topics.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": 7}, ResponseTopic=second, CorrelationData=b"b")
        t2, a2, c2 = _fields(nth(client, 1))
        assert (t1, c1, t2, c2) == (first, b"a", second, b"b")
        assert a2 == a1 and hub.state == "idle"
    finally:
        client.close()


def test_a_hub_on_mqtt_3_1_1_answers_on_the_shared_topic(broker, tmp_path, probe_factory):
    with running_hub(broker, tmp_path / "s", mqtt={"protocol": "3.1.1"}) as hub:
        assert not hub.bus.mqtt5
        base = hub.settings.mqtt.base_topic
        _shared = probe_factory(f"{base}/set/stage-t/response")
        client = Probe(broker.port, f"{base}/set/stage-t/response/#", v5=True)
        try:
            client.publish(f"{base}/set/stage-t/request", {"v": 1, "action": "roll", "transaction": "old"},
                           ResponseTopic=f"{base}/set/stage-t/response/me", CorrelationData=b"c")
            topic, answer, back = _fields(nth(client, 0))
            assert topic == f"{base}/set/stage-t/response" and answer["transaction"] == "old" and back is None
            assert hub.state == "rolling"
        finally:
            client.close()


def test_on_the_generated_broker_an_integrator_reads_its_v5_answers(tmp_path):
    """The ACL `setbridge broker config` writes lets the hub answer below the response topic and
    an integrator subscribe to its own response topic there."""
    from helpers.broker import generated_broker, password

    from setbridge.hub import Hub

    users = {"hub-1": "hub", "editorial": "integrator", "wall": "monitor"}
    with generated_broker(users) as broker:
        settings = make_settings(broker, tmp_path / "state", hub={"id": "hub-1", "set": "main"},
                                 mqtt={"base_topic": "setbridge", "username": "hub-1", "password": password("hub-1")})
        hub = Hub(settings)
        hub.start()
        try:
            assert hub.bus.wait_connected(10) and hub.bus.wait_subscribed(10)  # else the request can come first
            mine = "setbridge/set/main/response/editorial/1"
            # the ACL refusing the integrator's subscription to its response topic fails here
            client = Probe(broker.port, mine, v5=True, user="editorial", password=password("editorial"))
            try:
                client.publish("setbridge/set/main/request", {"v": 1, "action": "roll"},
                               ResponseTopic=mine, CorrelationData=b"e-1")
                topic, answer, corr = _fields(nth(client, 0, timeout=10))
                assert (topic, corr, answer["state"]) == (mine, b"e-1", "rolling")
            finally:
                client.close()
        finally:
            hub.stop()
