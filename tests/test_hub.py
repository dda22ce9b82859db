"""The hub against a real Mosquitto: retained state, seq across restarts, last will,
requests, heartbeats and reconnects."""

from __future__ import annotations

import json
import time

from helpers import Message, running_hub, wait_until

from setbridge.hub import Hub


def is_state(state: str, **fields):
    def match(m: Message) -> bool:
        return (m.topic.endswith("/state") and "/set/" in m.topic and m.data is not None
                and m.data.get("state") == state and all(m.data.get(k) == v for k, v in fields.items()))
    return match


def test_late_subscriber_gets_retained_state(hub, topics, probe_factory):
    early = probe_factory(topics.set_state(hub.set_id))
    outcome = hub.submit("roll", cause="test")
    assert outcome.ok and outcome.state == "rolling"
    early.wait_for(is_state("rolling"))
    late = probe_factory(topics.set_state(hub.set_id))
    message = late.wait_for(is_state("rolling"))
    data, retained = message.data, message.retained
    assert retained
    assert data["v"] == 1 and data["take"] == 1 and data["cause"] == "test" and data["seq"] == outcome.seq


def test_hub_status_birth_is_retained(hub, topics, probe_factory):
    p = probe_factory(topics.hub_status("hub-t"))
    message = p.wait_for(lambda m: m.data and m.data["state"] == "online")
    data, retained = message.data, message.retained
    assert retained and data["set"] == "stage-t" and data["audio"] == "off"


def test_seq_rises_across_restart_and_state_is_restored(hub_process, topics, probe_factory):
    p = probe_factory(topics.all())
    hub_process.start()
    first = p.wait_for(is_state("idle", cause="restore"), timeout=15).data
    ask = probe_factory(topics.set_response("stage-t"))
    ask.publish(topics.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": "r1"})
    rolled = p.wait_for(is_state("rolling")).data
    assert rolled["seq"] > first["seq"] and rolled["epoch"] == first["epoch"]
    assert hub_process.terminate() == 0
    p.wait_for(lambda m: m.topic.endswith("/hub/hub-t/status") and m.data and m.data["state"] == "offline")
    hub_process.start()
    restored = p.wait_for(is_state("rolling", cause="restore"), timeout=15).data
    assert restored["seq"] > rolled["seq"]
    assert restored["epoch"] > rolled["epoch"]
    assert restored["take"] == 1


def test_kill_9_leaves_retained_offline_status(hub_process, topics, probe_factory):
    p = probe_factory(topics.hub_status("hub-t"))
    hub_process.start()
    p.wait_for(lambda m: m.data and m.data["state"] == "online", timeout=15)
    hub_process.kill()
    # The broker publishes the will once it notices the dead socket (the kernel closes it at once).
    p.wait_for(lambda m: m.data and m.data["state"] == "offline", timeout=10)
    late = probe_factory(topics.hub_status("hub-t"))
    message = late.wait_for(lambda m: m.data is not None)
    data, retained = message.data, message.retained
    assert retained and data["state"] == "offline"


def request(probe, topics, payload: bytes | dict, tx: str) -> dict:
    probe.publish(topics.set_request("stage-t"), payload)
    data = probe.wait_for(lambda m: m.data and m.data.get("transaction") == tx).data
    return data


def test_requests_and_responses(hub, topics, probe_factory):
    p = probe_factory(topics.set_response("stage-t"))
    ok = request(p, topics, {"v": 1, "action": "roll", "transaction": "a", "source": "test"}, "a")
    assert ok["ok"] is True and ok["state"] == "rolling" and ok["changed"] is True
    again = request(p, topics, {"v": 1, "action": "roll", "transaction": "b"}, "b")
    assert again["ok"] is True and again["changed"] is False and again["seq"] == ok["seq"]
    refused = request(p, topics, {"v": 1, "action": "standby", "transaction": "c"}, "c")
    assert refused["ok"] is False and "cut first" in refused["error"]
    cut = request(p, topics, {"v": 1, "action": "cut", "transaction": "d"}, "d")
    assert cut["ok"] is True and cut["state"] == "idle"


def test_malformed_requests_get_one_line_errors_and_hub_survives(hub, topics, probe_factory):
    p = probe_factory(topics.set_response("stage-t"))
    unknown = request(p, topics, {"v": 1, "action": "jump", "transaction": "u"}, "u")
    assert unknown["ok"] is False and "action" in unknown["error"] and "\n" not in unknown["error"]
    version = request(p, topics, {"v": 2, "action": "roll", "transaction": "w"}, "w")
    assert version["ok"] is False and "version" in version["error"]
    big = json.dumps({"v": 1, "action": "roll", "transaction": "big", "pad": "x" * 70000}).encode()
    oversized = request(p, topics, big, "big")
    assert oversized["ok"] is False and "limit" in oversized["error"]
    typed = request(p, topics, {"v": 1, "action": 5, "transaction": "ty"}, "ty")
    assert typed["ok"] is False
    seq = hub.controller.seq
    for junk in (b"not json", b"[1,2]", b"", b"\xff\xfe", b'{"v":1}', b'"string"', b"{" * 10000):
        p.publish(topics.set_request("stage-t"), junk)
    # Answered after the junk (one client, one topic, in order): the junk changed nothing.
    after = request(p, topics, {"v": 1, "action": "standby", "transaction": "z"}, "z")
    assert after["ok"] is True and after["state"] == "standby" and after["seq"] == seq + 1


def test_heartbeat_cadence(hub, topics, probe_factory):
    p = probe_factory(topics.set_heartbeat("stage-t"))
    p.wait_for(lambda m: m.data is not None)
    start = len(p.seen)
    time.sleep(2.0)
    beats = p.seen[start:]
    assert 6 <= len(beats) <= 14, f"{len(beats)} heartbeats in 2 s at heartbeat_s=0.2"
    assert all(not m.retained and m.data["epoch"] == hub.controller.epoch for m in beats)


def test_reconnect_after_broker_restart_republishes_state(own_broker, tmp_path, probe_factory):
    with running_hub(own_broker, tmp_path / "state") as hub:
        hub.submit("roll", cause="test")
        own_broker.restart(down_s=1.0)  # the broker forgets everything (no persistence)
        wait_until(hub.bus.connected.is_set, timeout=10, what="the hub to reconnect after the broker restarted")
        # The hub republishes right after it reconnects; a newcomer after that gets the state retained.
        probe_factory(f"{hub.settings.mqtt.base_topic}/#", port=own_broker.port).wait_for(is_state("rolling"), timeout=10)
        p = probe_factory(f"{hub.settings.mqtt.base_topic}/#", port=own_broker.port)
        message = p.wait_for(is_state("rolling"), timeout=10)
        data, retained = message.data, message.retained
        assert retained and data["take"] == 1
        p.wait_for(lambda m: m.topic.endswith("/hub/hub-t/status") and m.data and m.data["state"] == "online" and m.retained)
        assert hub.submit("cut", cause="test").state == "idle"
        p.wait_for(is_state("idle"))


def test_clean_stop_publishes_offline(settings, topics, probe_factory):
    hub = Hub(settings)
    hub.start()
    assert hub.bus.wait_connected(5)
    hub.stop()
    p = probe_factory(topics.hub_status("hub-t"))
    message = p.wait_for(lambda m: m.data is not None)
    data, retained = message.data, message.retained
    assert data["state"] == "offline" and retained


def test_events_carry_cause_and_detail(hub, topics, probe_factory):
    p = probe_factory(topics.set_event("stage-t"))
    hub.submit("roll", cause="voice", phrase="roll sound", confidence=0.93)
    message = p.wait_for(lambda m: m.data and m.data["type"] == "roll")
    data, retained = message.data, message.retained
    assert not retained
    assert data["cause"] == "voice" and data["phrase"] == "roll sound" and data["confidence"] == 0.93
    assert data["changed"] is True and data["state"] == "rolling"
