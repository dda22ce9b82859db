"""The bus's paho client reads in chunks, writes many packets at once and wakes its loop once per
batch: against a real Mosquitto, every message still arrives once, whole and in order."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

from setbridge.bus import INFLIGHT, Bus
from setbridge.bus_client import READ_CHUNK, BufferedClient
from setbridge.config import MqttSettings
from setbridge.sim.broker import PrivateBroker

from helpers import wait_until


def _settings(broker: PrivateBroker, protocol: str = "5") -> MqttSettings:
    return MqttSettings(host="127.0.0.1", port=broker.port, base_topic=f"t{uuid.uuid4().hex[:8]}",
                        protocol=protocol, reconnect_max_s=1)


def _receiver(broker: PrivateBroker, topic: str) -> tuple[BufferedClient, list[bytes], threading.Event]:
    got: list[bytes] = []
    subscribed = threading.Event()
    c = BufferedClient(CallbackAPIVersion.VERSION2, client_id=f"rx-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, 1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_message = lambda cl, u, m: got.append(bytes(m.payload))
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    assert subscribed.wait(10), "the receiver could not subscribe"
    return c, got, subscribed


def _sender(settings: MqttSettings) -> Bus:
    """A connected bus (the BufferedClient underneath) that publishes."""
    bus = Bus(settings, f"tx-{uuid.uuid4().hex[:6]}")
    bus.start()
    assert bus.wait_connected(10)
    return bus


def _stop(c: mqtt.Client) -> None:
    c.disconnect()
    c.loop_stop()


def test_a_burst_from_threads_arrives_once_and_in_order(broker: PrivateBroker) -> None:
    """Small and large messages (larger than one read), from several threads at once, QoS 0 and 1:
    each is received exactly once, each thread's in order, and every QoS 1 one is acknowledged."""
    settings = _settings(broker)
    topic = f"{settings.base_topic}/burst"
    rx, got, _ = _receiver(broker, topic)
    bus = _sender(settings)
    big = b"x" * (READ_CHUNK * 3 + 17)
    deliveries = []
    lock = threading.Lock()

    def sender(n: int) -> None:
        for i in range(500):
            body = f"{n}:{i}:".encode() + (big if i % 100 == 7 else b"")
            d = bus.publish(topic, body, qos=1)
            with lock:
                deliveries.append(d)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_until(lambda: len(got) >= 2000, timeout=60, what="2,000 messages at the receiver")
    assert all(d.wait(30) for d in deliveries), "a QoS 1 publish was never acknowledged"
    assert len(got) == 2000
    for n in range(4):
        mine = [m for m in got if m.startswith(f"{n}:".encode())]
        assert [int(m.split(b":")[1]) for m in mine] == list(range(500))
        assert all(m.endswith(big) == (int(m.split(b":")[1]) % 100 == 7) for m in mine)
    bus.stop()
    _stop(rx)


def test_qos0_publishes_are_reported_written(broker: PrivateBroker) -> None:
    """A QoS 0 message (heartbeats) counts as delivered once it is written."""
    settings = _settings(broker, protocol="3.1.1")
    topic = f"{settings.base_topic}/beat"
    rx, got, _ = _receiver(broker, topic)
    bus = _sender(settings)
    deliveries = [bus.publish(topic, f"{i}".encode(), qos=0) for i in range(300)]
    assert all(d.wait(10) for d in deliveries)
    wait_until(lambda: len(got) >= 300, timeout=30, what="300 QoS 0 messages")
    assert [int(m) for m in got] == list(range(300))
    bus.stop()
    _stop(rx)


@pytest.mark.integration
def test_the_send_window_is_what_the_broker_allows(tmp_path: Path) -> None:
    """MQTT 5: the hub never has more unacknowledged publishes than the broker's Receive Maximum
    (Mosquitto's max_inflight_messages) and still delivers everything; without one it uses
    its own limit."""
    with PrivateBroker(workdir=tmp_path / "b5", extra_config="max_inflight_messages 5") as narrow:
        settings = _settings(narrow)
        topic = f"{settings.base_topic}/narrow"
        rx, got, _ = _receiver(narrow, topic)
        bus = _sender(settings)
        assert bus.send_window == 5
        deliveries = [bus.publish(topic, f"{i}".encode(), qos=1) for i in range(400)]
        assert all(d.wait(30) for d in deliveries)
        wait_until(lambda: len(got) >= 400, timeout=30, what="400 messages through a window of 5")
        assert [int(m) for m in got] == list(range(400))
        bus.stop()
        _stop(rx)
    with PrivateBroker(workdir=tmp_path / "b0", extra_config="max_inflight_messages 0") as wide:  # none announced
        bus = _sender(_settings(wide))
        assert bus.send_window == INFLIGHT
        bus.stop()


def _collect(c: mqtt.Client, topic: str, sink: list[tuple[object, ...]]) -> None:
    subscribed = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, 1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_message = lambda cl, u, m: sink.append((m.topic, bytes(m.payload), m.qos, m.retain, m.mid > 0,
                                                 str(m.properties) if m.properties is not None else None))


def test_received_messages_are_the_ones_paho_decodes(broker: PrivateBroker) -> None:
    """QoS 0 and 1, retained, empty and non-ASCII, with and without MQTT 5 properties: the client
    hands its handlers the same messages paho's own decoder does, on 3.1.1 and on 5."""
    base = f"t{uuid.uuid4().hex[:8]}"
    for protocol in (mqtt.MQTTv5, mqtt.MQTTv311):
        plain: list[tuple[object, ...]] = []
        tuned: list[tuple[object, ...]] = []
        clients = []
        for cls, sink in ((mqtt.Client, plain), (BufferedClient, tuned)):
            c = cls(CallbackAPIVersion.VERSION2, client_id=f"rx-{uuid.uuid4().hex[:6]}", protocol=protocol)
            ready = threading.Event()
            _collect(c, f"{base}/#", sink)
            c.on_subscribe = lambda *a, ready=ready: ready.set()
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            assert ready.wait(10)
            clients.append(c)
        tx = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tx-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
        tx.connect("127.0.0.1", broker.port)
        tx.loop_start()
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{base}/answers"
        props.CorrelationData = b"\x00\x01"
        props.UserProperty = ("k", "v")
        sent = [
            (f"{base}/a", b'{"v":1}', 1, False, None),
            (f"{base}/b", b"", 0, False, None),
            (f"{base}/\u00e9t\u00e9", "caf\u00e9".encode(), 1, False, None),
            (f"{base}/r", b"kept", 1, True, None),
            (f"{base}/p", b"with properties", 1, False, props),
            (f"{base}/q0", b"x" * 70000, 0, False, None),
        ]
        for topic, payload, qos, retain, properties in sent:
            tx.publish(topic, payload, qos=qos, retain=retain, properties=properties).wait_for_publish(10)
        expected = len(sent)
        wait_until(lambda p=plain, t=tuned, n=expected: len(p) >= n and len(t) >= n,  # type: ignore[misc]
                   timeout=20, what="every message at both receivers")
        assert tuned == plain
        tx.publish(f"{base}/r", b"", qos=1, retain=True).wait_for_publish(10)
        for c in (*clients, tx):
            _stop(c)


def test_a_message_published_before_the_connection_is_sent_once_connected(broker: PrivateBroker) -> None:
    """QoS 1 without a connection: kept, sent after the connection comes, and reported published."""
    topic = f"t{uuid.uuid4().hex[:8]}/early"
    rx, got, _ = _receiver(broker, topic)
    tx = BufferedClient(CallbackAPIVersion.VERSION2, client_id=f"tx-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    early = tx.publish(topic, b"early", qos=1)
    assert early.rc == mqtt.MQTT_ERR_NO_CONN  # as with paho: kept, not refused
    tx.connect("127.0.0.1", broker.port)
    tx.loop_start()
    later = tx.publish(topic, b"later", qos=1)
    later.wait_for_publish(10)
    assert later.is_published()
    wait_until(lambda: len(got) >= 2, timeout=10, what="both messages")
    assert sorted(got) == [b"early", b"later"]  # paho sends the kept one after the CONNACK
    _stop(tx)
    _stop(rx)


def test_a_heartbeat_goes_ahead_of_a_burst_of_answers(broker: PrivateBroker) -> None:
    """QoS 0 publishes (heartbeats) queued behind hundreds of QoS 1 ones (answers) leave first."""
    base = f"t{uuid.uuid4().hex[:8]}"
    rx, order, _ = _receiver(broker, f"{base}/out/#")
    tx = BufferedClient(CallbackAPIVersion.VERSION2, client_id=f"tx-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    held, release, ready = threading.Event(), threading.Event(), threading.Event()

    def hold(*_: object) -> None:  # keeps the network loop busy while the burst is queued
        held.set()
        release.wait(30)

    tx.message_callback_add(f"{base}/hold", hold)
    tx.on_subscribe = lambda *a: ready.set()
    tx.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{base}/hold", 0)
    tx.connect("127.0.0.1", broker.port)
    tx.loop_start()
    assert ready.wait(10)
    other = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"o-{uuid.uuid4().hex[:6]}")
    other.connect("127.0.0.1", broker.port)
    other.loop_start()
    other.publish(f"{base}/hold", b"x", qos=0)
    assert held.wait(10)
    answers = [tx.publish(f"{base}/out/answer", f"a{i}".encode(), qos=1) for i in range(300)]
    tx.publish(f"{base}/out/beat", b"beat", qos=0)
    answers += [tx.publish(f"{base}/out/answer", f"a{i}".encode(), qos=1) for i in range(300, 400)]
    release.set()
    wait_until(lambda: len(order) >= 401, timeout=30, what="the burst and the heartbeat")
    assert order[0] == b"beat"
    assert [m for m in order if m != b"beat"] == [f"a{i}".encode() for i in range(400)]
    for c in (tx, other, rx):
        _stop(c)


def test_nothing_goes_ahead_of_a_connect_a_subscribe_or_a_packet_half_written() -> None:
    """The reordering rule on the client's own queue: heartbeats pass publishes and acknowledgements
    only, so a CONNECT queued on a reconnect still goes first."""
    c = BufferedClient(CallbackAPIVersion.VERSION2, client_id="queue")

    def packet(command: int, qos: int, name: str, pos: int = 0) -> dict[str, object]:
        return {"command": command, "qos": qos, "pos": pos, "name": name, "mid": 0, "to_process": 1,
                "packet": b"", "info": None}

    cases = [
        ([packet(0x32, 1, "answer"), packet(0x40, 0, "puback"), packet(0x30, 0, "beat")], ["beat", "answer", "puback"]),
        ([packet(0x10, 0, "connect"), packet(0x30, 0, "beat")], ["connect", "beat"]),
        ([packet(0x32, 1, "half", pos=3), packet(0x32, 1, "b"), packet(0x30, 0, "beat1"), packet(0x82, 1, "subscribe"),
          packet(0x32, 1, "c"), packet(0x30, 0, "beat2")], ["half", "beat1", "b", "subscribe", "beat2", "c"]),
    ]
    for queued, expected in cases:
        c._out_packet.clear()
        c._out_packet.extend(queued)
        c._hoist_qos0()
        assert [p["name"] for p in c._out_packet] == expected


def test_a_subscription_acknowledged_before_subscribe_returns_still_counts(broker: PrivateBroker) -> None:
    """The broker's SUBACK can reach the network thread before ``subscribe`` has noted its message id:
    ``wait_subscribed`` must not wait for it forever (a hub would skip its claim check after 5 s)."""
    bus = Bus(_settings(broker), client_id=f"sub-{uuid.uuid4().hex[:6]}")
    bus.start()
    try:
        assert bus.wait_connected(10)
        for n in range(300):
            bus.subscribe(f"{bus.settings.base_topic}/sub/{n}", lambda message: None)
            assert bus.wait_subscribed(2), f"subscription {n + 1} is still waiting for an acknowledgement that came"
    finally:
        bus.stop()
