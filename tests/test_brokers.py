"""The contract on more than one broker: Mosquitto with MQTT 3.1.1 and MQTT 5 clients, and amqtt
(MQTT 3.1.1 only). A known broker limit is a documented skip (see docs/deploy.md), not a failure."""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import make_settings, running_hub
from firmware_helpers import running_light
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from setbridge.sim.amqtt_broker import AmqttBroker, find_amqtt
from setbridge.sim.broker import PrivateBroker
from setbridge.bus import Bus
from setbridge.commands.stage_health import collect
from setbridge.topics import Topics

pytestmark = pytest.mark.integration

LIMITS = {
    ("amqtt", "5"): "amqtt speaks MQTT 3.1.1 only: it refuses an MQTT 5 CONNECT (Unsupported protocol version)",
}


@pytest.fixture(scope="module")
def amqtt_broker() -> Iterator[AmqttBroker]:
    if find_amqtt() is None:
        pytest.skip("amqtt is not installed (pip install amqtt; it comes with setbridge[test])")
    with AmqttBroker() as b:
        yield b


@pytest.fixture(params=[("mosquitto", "3.1.1"), ("mosquitto", "5"), ("amqtt", "3.1.1"), ("amqtt", "5")],
                ids=lambda p: f"{p[0]}-mqtt{p[1]}")
def target(request, broker: PrivateBroker) -> tuple[object, str, str]:
    """(broker, broker name, protocol of the hub and the clients)."""
    name, protocol = request.param
    if (name, protocol) in LIMITS:
        pytest.skip(f"known broker limit: {LIMITS[(name, protocol)]}")
    chosen = broker if name == "mosquitto" else request.getfixturevalue("amqtt_broker")
    return chosen, name, protocol


class Client:
    """A paho client of either protocol that records (topic, payload, retained, correlation data)."""

    def __init__(self, port: int, protocol: str, *filters: str):
        self.v5 = protocol == "5"
        self.got: list[tuple[str, dict | None, bool, bytes | None]] = []
        self._cond = threading.Condition()
        cid = f"contract-{uuid.uuid4().hex[:8]}"
        self.c = (mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5) if self.v5 else
                  mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311))
        subscribed = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe([(f_, 1) for f_ in filters]) if filters else subscribed.set()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert subscribed.wait(10), "could not subscribe"

    def _on_message(self, c, u, m: mqtt.MQTTMessage) -> None:
        try:
            data = json.loads(m.payload)
        except ValueError:
            data = None
        with self._cond:
            self.got.append((m.topic, data, bool(m.retain), getattr(m.properties, "CorrelationData", None)))
            self._cond.notify_all()

    def wait_for(self, pred, timeout: float = 10.0):
        with self._cond:
            found: list = []
            ok = self._cond.wait_for(lambda: found.extend(m for m in self.got if pred(*m)) or found, timeout)
        assert ok, f"no matching message within {timeout} s; saw {self.got[-8:]}"
        return found[0]

    def publish(self, topic: str, payload: dict | bytes, retain: bool = False, response_topic: str | None = None,
                correlation: bytes | None = None) -> None:
        props = None
        if response_topic:
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = response_topic
            props.CorrelationData = correlation or b""
        data = json.dumps(payload) if isinstance(payload, dict) else payload
        self.c.publish(topic, data, qos=1, retain=retain, properties=props).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_the_contract_holds(target, tmp_path: Path):
    b, name, protocol = target
    base = f"c{uuid.uuid4().hex[:8]}"
    t = Topics(base)
    # A retained request left before the hub starts: never executed, cleared.
    early = Client(b.port, protocol)
    early.publish(t.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": "stale"}, retain=True)
    early.close()
    with running_hub(b, tmp_path / "s", mqtt={"base_topic": base, "protocol": protocol}) as hub:
        assert hub.bus.mqtt5 is (protocol == "5")
        first = Client(b.port, protocol, t.hub_status("hub-t"), t.set_state("stage-t"))
        first.wait_for(lambda t_, d, r, c: t_ == t.set_state("stage-t") and d is not None)
        first.close()
        late = Client(b.port, protocol, f"{base}/#")
        try:
            _, status, retained, _ = late.wait_for(lambda t_, d, r, c: t_ == t.hub_status("hub-t") and d
                                                   and d["state"] == "online")
            assert retained, "a late subscriber gets the hub status as retained"
            _, state, retained, _ = late.wait_for(lambda t_, d, r, c: t_ == t.set_state("stage-t") and d is not None)
            assert retained and state["state"] == "idle", "the retained request must not have run"
            _, beat, retained, _ = late.wait_for(lambda t_, d, r, c: t_ == t.set_heartbeat("stage-t") and d)
            assert not retained and beat["state"] == "idle"

            # Request/response with an exact echo, and a retry that changes nothing.
            late.publish(t.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": 1795399504123, "x": 1})
            _, first, _, _ = late.wait_for(lambda t_, d, r, c: t_ == t.set_response("stage-t") and d
                                           and d.get("transaction") == 1795399504123)
            assert first["ok"] is True and first["state"] == "rolling"
            _, live, retained, _ = late.wait_for(lambda t_, d, r, c: t_ == t.set_state("stage-t") and d
                                                 and d["state"] == "rolling")
            assert not retained, "3.1.1 clears the flag on live delivery; v5 without retain-as-published too"
            hub.submit("cut", cause="test")
            late.publish(t.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": 1795399504123, "x": 1})
            answers = lambda: [d for t_, d, r, c in late.got if t_ == t.set_response("stage-t")]  # noqa: E731
            late.wait_for(lambda *m: len(answers()) >= 2)
            assert answers()[1] == first and hub.state == "idle"

            if protocol == "5":
                mine = f"{t.set_response('stage-t')}/me"
                late.publish(t.set_request("stage-t"), {"v": 1, "action": "roll"}, response_topic=mine,
                             correlation=b"\x01c")
                _, answer, _, corr = late.wait_for(lambda t_, d, r, c: t_ == mine)
                assert corr == b"\x01c" and answer["state"] == "rolling"
        finally:
            late.close()
        # The stale retained request was cleared from the broker.
        again = Client(b.port, protocol, t.set_request("stage-t"), t.set_request("stage-t") + "/probe")
        try:
            again.publish(t.set_request("stage-t") + "/probe", b"{}")
            again.wait_for(lambda t_, d, r, c: t_.endswith("/probe"))  # retained messages come first
            assert not [m for m in again.got if m[0] == t.set_request("stage-t") and m[1]], again.got
        finally:
            again.close()


def test_a_frozen_light_is_reported_on_amqtt_which_never_drops_silent_clients(tmp_path):
    if find_amqtt() is None:
        pytest.skip("amqtt is not installed (pip install amqtt; it comes with setbridge[test])")
    with AmqttBroker() as amqtt:  # a broker of its own: see docs/deploy.md on amqtt's retained delivery
        settings = make_settings(amqtt, tmp_path / "state", hub={"heartbeat_s": 0.5}, mqtt={"protocol": "3.1.1"})
        m = settings.mqtt
        with running_hub(amqtt, tmp_path / "s", hub={"heartbeat_s": 0.5},
                         mqtt={"base_topic": m.base_topic, "protocol": "3.1.1"}):
            watch = Client(amqtt.port, "3.1.1", f"{m.base_topic}/light/+/alive")
            with running_light(settings, tmp_path, "door-1", alive_s=0.5,
                               mqtt={"host": m.host, "port": m.port, "base_topic": m.base_topic, "keepalive_s": 2}) as light:
                # the light's own alive message (amqtt has been seen to hand a new subscriber a retained
                # message of another topic first)
                watch.wait_for(lambda topic, *rest: topic.endswith("/light/door-1/alive"), timeout=20)
                assert light.proc is not None
                os.kill(light.proc.pid, signal.SIGSTOP)  # keepalive 2 s: Mosquitto would drop it after 3 s
                try:
                    threading.Event().wait(4.0)  # longer than 1.5 x keepalive: amqtt still holds it "online"
                    bus = Bus(m, client_id=f"status-{uuid.uuid4().hex[:6]}")
                    bus.start()
                    assert bus.wait_connected(10)
                    try:
                        health = collect(bus, Topics(m.base_topic), "stage-t", wait_s=3.0)
                    finally:
                        bus.stop()
                finally:
                    os.kill(light.proc.pid, signal.SIGCONT)
            watch.close()
    assert health.lights["door-1"]["status"]["state"] == "online", "amqtt did not enforce keepalive"
    assert any("light door-1: no alive message" in p for p in health.problems()), health.problems()
