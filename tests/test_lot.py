"""The studio lot on real brokers with the generated configs: stage Mosquittos bridged to a central
one (Mosquitto's own bridge), a link between them that is cut, stages that stand alone."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker_helpers import User, password
from conftest import wait_until
from lot_helpers import central, lot
from setbridge.expiry import expiring


def state_of(user: User, topic: str) -> dict | None:
    """The latest JSON payload ``user`` has seen on ``topic``."""
    for t, p in reversed(user.received):
        if t == topic and p:
            return json.loads(p)
    return None


def test_a_roll_at_a_stage_is_seen_at_the_centre_under_its_stage():
    with lot("stage-a", "stage-b") as the_lot:
        office = the_lot.user()
        office.subscribe(f"{central('+', '#')}")
        a = the_lot.stages["stage-a"]
        assert office.wait_for(central("stage-a", "set/main/state"), b'"idle"')  # retained, sent on connect
        a.hub.submit("roll", "button")
        assert office.wait_for(central("stage-a", "set/main/state"), b'"rolling"')
        assert office.wait_for(central("stage-a", "set/main/event"), b'"roll"')
        assert office.wait_for(central("stage-a", "bridge"), b"1")  # the bridge's own notification
        assert state_of(office, central("stage-b", "set/main/state"))["state"] == "idle"
        assert not any(t.startswith(f"{central('stage-a', '')}set/main/request") for t, _ in office.received)


def _v5(port: int, user: str) -> tuple[mqtt.Client, list[mqtt.MQTTMessage]]:
    got: list[mqtt.MQTTMessage] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password(user))
    c.on_message = lambda cl, u, m: got.append(m)
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got


def test_a_roll_from_the_centre_reaches_the_stage_lights_and_its_answer_comes_back():
    from firmware_helpers import running_light  # the real firmware, under the MicroPython Unix port

    with lot("stage-a") as the_lot:
        a = the_lot.stages["stage-a"]
        (a.dir / "light").mkdir()
        with running_light(a.settings, a.dir / "light", "sim-1", light_password=password("sim-1")) as light:
            light.wait_showing("idle", timeout=10)
            c, got = _v5(the_lot.centre.port, "office")
            try:
                answers = central("stage-a", "set/main/response/office")
                c.subscribe(answers, 1)
                time.sleep(0.3)
                request, expiry_s = expiring("roll", "office-1", "production-office", 5.0)
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic, props.CorrelationData = answers, b"corr-42"
                props.MessageExpiryInterval = expiry_s
                c.publish(central("stage-a", "set/main/request"), request.to_bytes(), qos=1, properties=props)
                light.wait_showing("rolling", timeout=5)
                wait_until(lambda: got, 5, "the answer at the centre")
                answer = json.loads(got[0].payload)
                assert got[0].topic == answers and got[0].properties.CorrelationData == b"corr-42"
                assert answer["ok"] is True and answer["state"] == "rolling" and answer["transaction"] == "office-1"
                assert a.hub.state == "rolling"
            finally:
                c.disconnect()
                c.loop_stop()


def test_stage_a_bridge_user_cannot_write_stage_b_topics_nor_read_its_requests():
    with lot("stage-a", "stage-b", hubs=False) as the_lot:
        wall = the_lot.user("wall")
        wall.subscribe(central("+", "#"))
        assert wall.wait_for(central("stage-b", "bridge"), b"1")
        # Stage A's bridge user, as a hijacked stage Pi would use it (it takes over the bridge's session).
        rogue = User(the_lot.centre.port, "stage-a")
        the_lot.users.append(rogue)
        assert rogue.accepted
        rogue.subscribe(central("stage-b", "set/+/request"))
        rogue.publish(central("stage-b", "set/main/state"), '{"v": 1, "state": "rolling"}', retain=True)
        rogue.publish(central("stage-b", "light/sim-1/state"), '{"v": 1, "showing": "idle"}', retain=True)
        rogue.publish(central("stage-a", "set/main/state"), '{"v": 1, "state": "probe"}')  # its own: allowed
        office = the_lot.user("office")
        office.publish(central("stage-b", "set/main/request"), '{"v": 1, "action": "roll"}')
        assert wall.wait_for(central("stage-a", "set/main/state"), b"probe")
        assert not any(t.startswith(central("stage-b", "set/main/state")) and b"rolling" in p
                       for t, p in wall.received)
        assert not any(t == central("stage-b", "light/sim-1/state") for t, _ in wall.received)
        assert not rogue.received  # stage B's requests are not for stage A


def test_the_same_light_id_on_two_stages_stays_two_lights_at_the_centre():
    from firmware_helpers import running_light

    with lot("stage-a", "stage-b") as the_lot:
        office = the_lot.user()
        office.subscribe(central("+", "light/+/state"))
        a, b = the_lot.stages["stage-a"], the_lot.stages["stage-b"]
        for s in (a, b):
            (s.dir / "light").mkdir()
        with running_light(a.settings, a.dir / "light", "sim-1", light_password=password("sim-1")) as la, \
                running_light(b.settings, b.dir / "light", "sim-1", light_password=password("sim-1")) as lb:
            la.wait_showing("idle", timeout=10)
            lb.wait_showing("idle", timeout=10)
            assert office.wait_for(central("stage-b", "light/sim-1/state"), b'"idle"')
            a.hub.submit("roll", "button")
            la.wait_showing("rolling")
            assert office.wait_for(central("stage-a", "light/sim-1/state"), b'"rolling"')
            assert state_of(office, central("stage-b", "light/sim-1/state"))["showing"] == "idle"
            assert lb.shows()[-1] == "idle"
