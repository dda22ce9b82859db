"""A retained request or report is never executed: the hub clears it and logs one line (real
Mosquitto); a retained light command is never run by the light (the real firmware)."""

from __future__ import annotations

import logging
import uuid

from broker_helpers import User
from conftest import Probe, make_settings, wait_until

from setbridge.sim.lights import SimLight, find_micropython
from setbridge.hub import Hub
from setbridge.commands.provision import light_config

ROLL = {"v": 1, "action": "roll", "transaction": "retained-roll", "source": "careless-integrator"}


def started(settings) -> Hub:
    hub = Hub(settings)
    hub.start()
    assert hub.bus.wait_connected(5)
    return hub


def assert_nothing_retained(port: int, topic: str) -> None:
    """Subscribe afresh; a marker published after the SUBACK comes after any retained message."""
    probe = Probe(port, topic)
    try:
        marker = uuid.uuid4().hex
        probe.publish(topic, {"marker": marker})
        probe.wait_for(lambda t, d, r: d is not None and d.get("marker") == marker)
        retained = [item for item in probe.seen if item[2]]
        assert not retained, f"still retained on {topic}: {retained}"
    finally:
        probe.close()


def test_a_retained_roll_before_start_never_rolls_and_is_cleared(broker, tmp_path, caplog):
    settings = make_settings(broker, tmp_path / "state")
    request_topic = f"{settings.mqtt.base_topic}/set/{settings.hub.set}/request"
    watcher = Probe(broker.port, f"{settings.mqtt.base_topic}/#")
    watcher.publish(request_topic, ROLL, retain=True)
    caplog.set_level(logging.WARNING, logger="setbridge.bus")
    hub = started(settings)
    try:
        watcher.wait_for(lambda t, d, r: t == request_topic and d is None and not r)  # the hub's clear
        watcher.wait_for(lambda t, d, r: t.endswith("/set/stage-t/state") and d is not None)
        assert_nothing_retained(broker.port, request_topic)
        assert hub.state == "idle" and hub.controller.take == 0
        responses = [d for t, d, _ in watcher.seen if t.endswith("/response")]
        assert responses == [], "a retained request must not be answered as if executed"
        lines = [r.getMessage() for r in caplog.records if "retained" in r.getMessage()]
        assert len(lines) == 1 and request_topic in lines[0]
    finally:
        hub.stop()
        watcher.close()


def test_a_retained_roll_never_runs_live_nor_across_restarts(broker, tmp_path):
    settings = make_settings(broker, tmp_path / "state")
    request_topic = f"{settings.mqtt.base_topic}/set/{settings.hub.set}/request"
    watcher = Probe(broker.port, f"{settings.mqtt.base_topic}/set/#")
    hub = started(settings)
    try:
        watcher.wait_for(lambda t, d, r: t.endswith("/state") and d is not None)
        watcher.publish(request_topic, ROLL, retain=True)  # Mosquitto passes the retain flag on live
        watcher.wait_for(lambda t, d, r: t == request_topic and d is None)
        assert_nothing_retained(broker.port, request_topic)
        assert hub.submit("roll", cause="test").ok and hub.submit("cut", cause="test").state == "idle"
    finally:
        hub.stop()
    watcher.publish(request_topic, {**ROLL, "transaction": "while-down"}, retain=True)
    for restart in range(2):
        clears = sum(1 for t, d, _ in watcher.seen if t == request_topic and d is None)
        hub = started(settings)
        try:
            epoch = hub.controller.epoch
            watcher.wait_for(lambda t, d, r: t.endswith("/state") and d is not None and d["epoch"] == epoch)  # noqa: B023 - used within the iteration
            if restart == 0:  # the first restart finds the retained roll and clears it
                watcher.wait_for(lambda t, d, r: t == request_topic and d is None
                                 and sum(1 for t2, d2, _ in watcher.seen if t2 == request_topic and d2 is None) > clears)  # noqa: B023
            assert_nothing_retained(broker.port, request_topic)
            assert hub.state == "idle" and hub.controller.take == 1
        finally:
            hub.stop()
    answered = [d for t, d, _ in watcher.seen if t.endswith("/response")]
    assert answered == [], f"retained requests were answered as if executed: {answered}"
    watcher.close()


def test_a_retained_light_command_is_never_run_and_its_sender_can_clear_it(broker, tmp_path):
    """An integrator's retained ``identify`` reaches the light (the real firmware) at every connect:
    the light ignores it. The hub does not read light commands (a flood of them must not reach it);
    an empty retained payload from the sender clears it."""
    find_micropython()
    settings = make_settings(broker, tmp_path / "state")
    cmd_topic = f"{settings.mqtt.base_topic}/light/door-r/cmd"
    sender = Probe(broker.port, cmd_topic)
    sender.publish(cmd_topic, {"v": 1, "action": "identify", "duration_s": 30}, retain=True)
    hub = started(settings)
    light = SimLight("door-r", light_config(settings, "door-r"), tmp_path)
    try:
        light.start()
        light.wait_showing("idle", timeout=15)
        wait_until(lambda: any("must not be retained" in line for line in light.logs()), what="the light's refusal")
        assert "identify" not in light.shows()
        sender.publish(cmd_topic, b"", retain=True)
        assert_nothing_retained(broker.port, cmd_topic)
    finally:
        light.stop()
        hub.stop()
        sender.close()

ODD = {"binary": b"\x00\xff\xfe\x1b[2J", "wrong version": b'{"v": 2, "action": "roll"}',
       "not JSON": b"roll now", "huge": b'{"v": 1, "action": "roll", "pad": "' + b"x" * 100_000 + b'"}'}


def test_odd_retained_requests_and_reports_are_cleared_once_and_never_loop(broker, tmp_path, caplog):
    settings = make_settings(broker, tmp_path / "state")
    base = settings.mqtt.base_topic
    topics = (f"{base}/set/{settings.hub.set}/request", f"{base}/offload/report")
    watcher = Probe(broker.port, f"{base}/#")
    raw = User(broker.port, "raw-watcher")  # sees payloads as bytes: a clear is exactly b""
    raw.subscribe(f"{base}/#")
    caplog.set_level(logging.WARNING)
    hub = started(settings)

    def clears(topic: str) -> int:
        return sum(1 for t, p in list(raw.received) if t == topic and p == b"")

    try:
        watcher.wait_for(lambda t, d, r: t.endswith("/set/stage-t/state") and d is not None)
        for payload in ODD.values():
            for topic in topics:
                before = clears(topic)
                watcher.publish(topic, payload, retain=True)
                with raw._cond:
                    assert raw._cond.wait_for(lambda: clears(topic) > before, 10), f"{topic} was not cleared"  # noqa: B023
                assert_nothing_retained(broker.port, topic)
        assert hub.state == "idle" and hub.controller.take == 0
        watcher.wait_for(lambda t, d, r: len([1 for t2, d2, _ in watcher.seen if t2.endswith("/offload/error")
                                              and d2 and d2["reason"].startswith("retained:")]) >= len(ODD))
    finally:
        hub.stop()
        watcher.close()
        raw.close()
    # once each: the hub's own clear comes back to it and is ignored
    cleared = [r.getMessage() for r in caplog.records if "ignored a retained command" in r.getMessage()]
    assert len(cleared) == len(ODD) and all(topics[0] in line for line in cleared), cleared
    answered = [d for t, d, _ in watcher.seen if t.endswith("/offload/error") and d["reason"].startswith("retained:")]
    assert len(answered) == len(ODD)
    assert not [d for t, d, _ in watcher.seen if t.endswith("/response") or t.endswith("/offload/event")]
