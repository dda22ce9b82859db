"""MQTT 5 request/response against a real Mosquitto and hub: answered on the request's Response
Topic with its Correlation Data; 3.1.1 clients keep the shared topic; a 3.1.1 hub still works."""

from __future__ import annotations

import pytest
import json
import queue
import threading
import uuid

import paho.mqtt.client as mqtt
from conftest import make_settings, running_hub
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

pytestmark = pytest.mark.integration


class V5Client:
    """A paho MQTT 5 client that records (topic, payload, correlation data) under its filters."""

    def __init__(self, port: int, *filters: str):
        self.got: queue.Queue[tuple[str, dict, bytes | None]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"v5-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(f_, 1) for f_ in filters])
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = lambda c, u, m: self.got.put(
            (m.topic, json.loads(m.payload), getattr(m.properties, "CorrelationData", None)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(5)

    def request(self, topic: str, payload: dict, response_topic: str | None, correlation: bytes | None) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if response_topic:
            props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
        self.client.publish(topic, json.dumps(payload), qos=1, properties=props).wait_for_publish(5)

    def next(self, timeout: float = 5.0) -> tuple[str, dict, bytes | None]:
        return self.got.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_v5_request_is_answered_on_its_response_topic_with_its_correlation_data(hub, broker, topics, probe_factory):
    shared = probe_factory(topics.set_response("stage-t"))
    mine = f"{topics.set_response('stage-t')}/node-red/{uuid.uuid4().hex[:6]}"
    client = V5Client(broker.port, mine)
    try:
        correlation = b"\x00\xffcorr-1"
        client.request(topics.set_request("stage-t"), {"v": 1, "action": "roll"}, mine, correlation)
        topic, answer, back = client.next()
        assert topic == mine and back == correlation
        assert answer["ok"] is True and answer["state"] == "rolling"
        # A 3.1.1 request right after is answered on the shared topic, and only it is there.
        shared.publish(topics.set_request("stage-t"), {"v": 1, "action": "cut", "transaction": "v1"})
        shared.wait_for(lambda t, d, r: d and d.get("transaction") == "v1")
        assert [d.get("transaction") for _, d, _ in shared.seen] == ["v1"]
        # A malformed v5 request without a transaction is still answered, matched by its correlation data.
        client.request(topics.set_request("stage-t"), {"v": 1, "action": "jump"}, mine, b"corr-2")
        topic, answer, back = client.next()
        assert back == b"corr-2" and answer["ok"] is False and answer["error"].startswith("action:")
    finally:
        client.close()


def test_a_response_topic_outside_the_set_is_refused_and_answered_on_the_shared_topic(hub, broker, topics, probe_factory):
    shared = probe_factory(topics.set_response("stage-t"))
    elsewhere = f"{topics.base}/light/door-1/cmd"
    client = V5Client(broker.port, elsewhere, topics.set_response("stage-t"))
    try:
        client.request(topics.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": "x"}, elsewhere, b"c")
        _, answer, _ = shared.wait_for(lambda t, d, r: d and d.get("transaction") == "x")
        assert answer["ok"] is False and "not under" in answer["error"] and answer["state"] == "idle"
        assert hub.state == "idle"
        topic, _, back = client.next()
        assert topic == topics.set_response("stage-t") and back == b"c"
        assert client.got.empty(), "nothing may be published on the named foreign topic"
    finally:
        client.close()


def test_a_v5_retry_gets_its_first_answer_on_the_new_response_topic(hub, broker, topics):
    first, second = (f"{topics.set_response('stage-t')}/{n}" for n in ("try-1", "try-2"))
    client = V5Client(broker.port, f"{topics.set_response('stage-t')}/#")
    try:
        client.request(topics.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": 7}, first, b"a")
        t1, a1, c1 = client.next()
        hub.submit("cut", cause="test")
        client.request(topics.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": 7}, second, b"b")
        t2, a2, c2 = client.next()
        assert (t1, c1, t2, c2) == (first, b"a", second, b"b")
        assert a2 == a1 and hub.state == "idle"
    finally:
        client.close()


def test_a_hub_on_mqtt_3_1_1_answers_on_the_shared_topic(broker, tmp_path, probe_factory):
    with running_hub(broker, tmp_path / "s", mqtt={"protocol": "3.1.1"}) as hub:
        assert not hub.bus.mqtt5
        base = hub.settings.mqtt.base_topic
        _shared = probe_factory(f"{base}/set/stage-t/response")
        client = V5Client(broker.port, f"{base}/set/stage-t/response/#")
        try:
            client.request(f"{base}/set/stage-t/request", {"v": 1, "action": "roll", "transaction": "old"},
                           f"{base}/set/stage-t/response/me", b"c")
            topic, answer, back = client.next()
            assert topic == f"{base}/set/stage-t/response" and answer["transaction"] == "old" and back is None
            assert hub.state == "rolling"
        finally:
            client.close()


def test_on_the_generated_broker_an_integrator_reads_its_v5_answers(tmp_path):
    """The ACL `setbridge broker config` writes lets the hub answer below the response topic and
    an integrator subscribe to its own response topic there."""
    from broker_helpers import generated_broker, password

    from setbridge.hub import Hub

    users = {"hub-1": "hub", "editorial": "integrator", "wall": "monitor"}
    with generated_broker(users) as broker:
        settings = make_settings(broker, tmp_path / "state", hub={"id": "hub-1", "set": "main"},
                                 mqtt={"base_topic": "setbridge", "username": "hub-1", "password": password("hub-1")})
        hub = Hub(settings)
        hub.start()
        try:
            assert hub.bus.wait_connected(10)
            mine = "setbridge/set/main/response/editorial/1"
            client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            client.username_pw_set("editorial", password("editorial"))
            got: queue.Queue = queue.Queue()
            subscribed = threading.Event()
            client.on_connect = lambda c, u, f, rc, p: c.subscribe(mine, 1)
            client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set() if not rcs[0].is_failure else None
            client.on_message = lambda c, u, m: got.put((m.topic, json.loads(m.payload), m.properties.CorrelationData))
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            try:
                assert subscribed.wait(10), "the ACL refused the integrator's subscription to its response topic"
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic, props.CorrelationData = mine, b"e-1"
                client.publish("setbridge/set/main/request", json.dumps({"v": 1, "action": "roll"}), qos=1,
                               properties=props).wait_for_publish(10)
                topic, answer, corr = got.get(timeout=10)
                assert (topic, corr, answer["state"]) == (mine, b"e-1", "rolling")
            finally:
                client.disconnect()
                client.loop_stop()
        finally:
            hub.stop()
