"""The contract on more than one broker: Mosquitto with MQTT 3.1.1 and MQTT 5 clients, and amqtt
(MQTT 3.1.1 only). A known broker limit is a documented skip (see docs/deploy.md), not a failure."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Probe, make_settings, on, running_hub
from helpers.firmware import running_light

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


def test_the_contract_holds(target, tmp_path: Path):
    b, name, protocol = target
    base = f"c{uuid.uuid4().hex[:8]}"
    t = Topics(base)
    # A retained request left before the hub starts: never executed, cleared.
    early = Probe(b.port, v5=protocol == "5")
    early.publish(t.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": "stale"}, retain=True)
    early.close()
    with running_hub(b, tmp_path / "s", mqtt={"base_topic": base, "protocol": protocol}) as hub:
        assert hub.bus.mqtt5 is (protocol == "5")
        first = Probe(b.port, t.hub_status("hub-t"), t.set_state("stage-t"), v5=protocol == "5")
        first.wait_for(lambda m: m.topic == t.set_state("stage-t") and m.data is not None, timeout=10)
        first.close()
        late = Probe(b.port, f"{base}/#", v5=protocol == "5")
        try:
            retained = late.wait_for(on(t.hub_status("hub-t"), state="online"), timeout=10).retained
            assert retained, "a late subscriber gets the hub status as retained"
            message = late.wait_for(lambda m: m.topic == t.set_state("stage-t") and m.data is not None, timeout=10)
            state, retained = message.data, message.retained
            assert retained and state["state"] == "idle", "the retained request must not have run"
            message = late.wait_for(lambda m: m.topic == t.set_heartbeat("stage-t") and m.data, timeout=10)
            beat, retained = message.data, message.retained
            assert not retained and beat["state"] == "idle"

            # Request/response with an exact echo, and a retry that changes nothing.
            late.publish(t.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": 1795399504123, "x": 1})
            first = late.wait_for(on(t.set_response("stage-t"), transaction=1795399504123), timeout=10).data
            assert first["ok"] is True and first["state"] == "rolling"
            retained = late.wait_for(on(t.set_state("stage-t"), state="rolling"), timeout=10).retained
            assert not retained, "3.1.1 clears the flag on live delivery; v5 without retain-as-published too"
            hub.submit("cut", cause="test")
            late.publish(t.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": 1795399504123, "x": 1})
            answers = lambda: [m.data for m in late.seen if m.topic == t.set_response("stage-t")]  # noqa: E731
            late.wait_for(lambda _: len(answers()) >= 2, timeout=10, what="the answer to the retry")
            assert answers()[1] == first and hub.state == "idle"

            if protocol == "5":
                mine = f"{t.set_response('stage-t')}/me"
                late.publish(t.set_request("stage-t"), {"v": 1, "action": "roll"}, ResponseTopic=mine,
                             CorrelationData=b"\x01c")
                message = late.wait_for(lambda m: m.topic == mine, timeout=10)
                assert message.correlation == b"\x01c" and message.data["state"] == "rolling"
        finally:
            late.close()
        # The stale retained request was cleared from the broker.
        again = Probe(b.port, t.set_request("stage-t"), t.set_request("stage-t") + "/probe", v5=protocol == "5")
        try:
            again.publish(t.set_request("stage-t") + "/probe", b"{}")
            again.wait_for(lambda m: m.topic.endswith("/probe"), timeout=10)  # retained messages come first
            assert not [m for m in again.seen if m.topic == t.set_request("stage-t") and m.data], again.seen
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
            watch = Probe(amqtt.port, f"{m.base_topic}/light/+/alive")
            with running_light(settings, tmp_path, "door-1", alive_s=0.5,
                               mqtt={"host": m.host, "port": m.port, "base_topic": m.base_topic, "keepalive_s": 2}) as light:
                # the light's own alive message (amqtt has been seen to hand a new subscriber a retained
                # message of another topic first)
                watch.wait_for(lambda m: m.topic.endswith("/light/door-1/alive"), timeout=20)
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
