"""The studio lot on real brokers with the generated configs: stage Mosquittos bridged to a central
one (Mosquitto's own bridge), a link between them that is cut, stages that stand alone."""

from __future__ import annotations

import pytest
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager


from helpers.broker import as_user, password
from helpers import at, Probe, wait_until
from helpers.lot import Lot, Stage, central, lot, state_of
from setbridge.expiry import expiring

pytestmark = pytest.mark.integration


def test_a_roll_at_a_stage_is_seen_at_the_centre_under_its_stage():
    with lot("stage-a", "stage-b") as the_lot:
        office = the_lot.user()
        office.subscribe(f"{central('+', '#')}")
        a = the_lot.stages["stage-a"]
        office.wait_for(at(central("stage-a", "set/main/state"), b'"idle"'), 10)  # retained, sent on connect
        a.hub.submit("roll", "button")
        office.wait_for(at(central("stage-a", "set/main/state"), b'"rolling"'), 10)
        office.wait_for(at(central("stage-a", "set/main/event"), b'"roll"'), 10)
        office.wait_for(at(central("stage-a", "bridge"), b"1"), 10)  # the bridge's own notification
        assert state_of(office, central("stage-b", "set/main/state"))["state"] == "idle"
        assert not any(msg.topic.startswith(f"{central('stage-a', '')}set/main/request") for msg in office.seen)


def test_a_roll_from_the_centre_reaches_the_stage_lights_and_its_answer_comes_back():
    from helpers.firmware import running_light  # the real firmware, under the MicroPython Unix port

    with lot("stage-a") as the_lot:
        a = the_lot.stages["stage-a"]
        (a.dir / "light").mkdir()
        with running_light(a.settings, a.dir / "light", "sim-1", light_password=password("sim-1")) as light:
            light.wait_showing("idle", timeout=10)
            answers = central("stage-a", "set/main/response/office")
            office = Probe(the_lot.centre.port, answers, v5=True, user="office", password=password("office"),
                           client_id="office")
            try:
                request, expiry_s = expiring("roll", "office-1", "production-office", 5.0)
                office.publish(central("stage-a", "set/main/request"), request.to_bytes(), ResponseTopic=answers,
                               CorrelationData=b"corr-42", MessageExpiryInterval=expiry_s)
                light.wait_showing("rolling", timeout=5)
                message = office.wait_for(lambda m: m.topic == answers, what="the answer at the centre")
                answer = message.data
                assert message.correlation == b"corr-42"
                assert answer["ok"] is True and answer["state"] == "rolling" and answer["transaction"] == "office-1"
                assert a.hub.state == "rolling"
            finally:
                office.close()


def test_stage_a_bridge_user_cannot_write_stage_b_topics_nor_read_its_requests():
    with lot("stage-a", "stage-b", hubs=False) as the_lot:
        wall = the_lot.user("wall")
        wall.subscribe(central("+", "#"))
        wall.wait_for(at(central("stage-b", "bridge"), b"1"), 10)
        # Stage A's bridge user, as a hijacked stage Pi would use it. It would take over the bridge's
        # session, and the bridge, reconnecting, take it back: the link is cut so the rogue keeps it.
        the_lot.stages["stage-a"].link.cut()
        rogue = as_user(the_lot.centre.port, "stage-a")
        the_lot.users.append(rogue)
        assert rogue.accepted
        rogue.subscribe(central("stage-b", "set/+/request"))
        rogue.publish(central("stage-b", "set/main/state"), '{"v": 1, "state": "rolling"}', retain=True)
        rogue.publish(central("stage-b", "light/sim-1/state"), '{"v": 1, "showing": "idle"}', retain=True)
        rogue.publish(central("stage-a", "set/main/state"), '{"v": 1, "state": "probe"}')  # its own: allowed
        office = the_lot.user("office")
        office.publish(central("stage-b", "set/main/request"), '{"v": 1, "action": "roll"}')
        wall.wait_for(at(central("stage-a", "set/main/state"), b"probe"), 10)
        assert not any(msg.topic.startswith(central("stage-b", "set/main/state")) and b"rolling" in msg.payload
                       for msg in wall.seen)
        assert not any(msg.topic == central("stage-b", "light/sim-1/state") for msg in wall.seen)
        assert not rogue.seen  # stage B's requests are not for stage A


def test_the_same_light_id_on_two_stages_stays_two_lights_at_the_centre():
    from helpers.firmware import running_light

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
            office.wait_for(at(central("stage-b", "light/sim-1/state"), b'"idle"'), 10)
            a.hub.submit("roll", "button")
            la.wait_showing("rolling")
            office.wait_for(at(central("stage-a", "light/sim-1/state"), b'"rolling"'), 10)
            assert state_of(office, central("stage-b", "light/sim-1/state"))["showing"] == "idle"
            assert lb.shows()[-1] == "idle"


@contextmanager
def stage_a_watched_from_the_office() -> Iterator[tuple[Lot, Stage, Probe]]:
    """A lot of one stage, ``stage-a``, with its bridge up and the office at the centre subscribed to
    all of the stage."""
    with lot("stage-a") as the_lot:
        office = the_lot.user()
        office.subscribe(central("stage-a", "#"))
        office.wait_for(at(central("stage-a", "bridge"), b"1"), 10)
        yield the_lot, the_lot.stages["stage-a"], office


def _events_at(user: Probe, stage: str) -> list[dict]:
    return [json.loads(msg.payload) for msg in user.seen if msg.topic == central(stage, "set/main/event")]


def test_a_cut_between_takes_runs_no_request_sent_during_it_and_catches_up_after():
    with stage_a_watched_from_the_office() as (the_lot, a, office):
        a.link.cut()
        # During the cut: the centre asks for a roll (as `send` does: 1 s to run, or never) and a
        # contract v1 client with no age limit at all asks too. The stage goes on alone meanwhile.
        request, _ = expiring("roll", "during-cut", "production-office", 1.0)
        office.publish(central("stage-a", "set/main/request"), request.to_bytes().decode())
        office.publish(central("stage-a", "set/main/request"),
                       '{"v": 1, "action": "roll", "transaction": "v1-no-age", "source": "old-tool"}')
        for action in ("roll", "cut", "roll", "cut"):
            assert a.hub.submit(action, "button").ok
        time.sleep(1.5)  # past the request's deadline, short of the bridge's keepalive: TCP holds the bytes
        a.link.restore()
        wait_until(lambda: len([e for e in _events_at(office, "stage-a") if e["cause"] == "button"]) >= 4, 10,
                   "the stage's four takes at the centre")
        time.sleep(1.0)  # anything held in the link has arrived by now
        causes = [(e["type"], e["cause"]) for e in _events_at(office, "stage-a")]
        assert causes.count(("roll", "button")) == 2 and causes.count(("cut", "button")) == 2
        assert not [e for e in _events_at(office, "stage-a") if e["cause"] == "request"], causes
        for m in office.seen:  # whatever the link held and let through later was refused
            if m.topic == central("stage-a", "set/main/response"):
                answer = m.data
                assert answer["ok"] is False and answer["transaction"] in ("during-cut", "v1-no-age"), answer
        assert a.hub.state == "idle"
        # The centre's retained state is the stage hub's.
        wall = the_lot.user("wall")
        wall.subscribe(central("stage-a", "set/main/state"))
        wait_until(lambda: state_of(wall, central("stage-a", "set/main/state")), 5, "the retained state")
        got = state_of(wall, central("stage-a", "set/main/state"))
        assert (got["state"], got["seq"]) == (a.hub.state, a.hub.controller.seq)


def test_only_the_bridge_delivers_requests_from_the_centre_and_they_need_an_age_limit():
    with lot("stage-a") as the_lot:
        a = the_lot.stages["stage-a"]
        crew = a.user("crew")
        crew.subscribe("setbridge/set/main/response")
        # A stage user cannot pose as the centre (the stage's ACL has no such topic)...
        crew.publish("setbridge/lot/set/main/request", '{"v": 1, "action": "roll", "transaction": "fake", "sent_at": %f}'
                     % time.time())
        # ...and a request at the centre without an age limit is refused with a reason.
        office = the_lot.user()
        office.subscribe(central("stage-a", "set/main/response"))
        office.publish(central("stage-a", "set/main/request"), '{"v": 1, "action": "roll", "transaction": "no-age"}')
        office.wait_for(at(central("stage-a", "set/main/response"), b"needs an age limit"), 10)
        request, _ = expiring("roll", "aged", "production-office", 5.0)
        office.publish(central("stage-a", "set/main/request"), request.to_bytes().decode())
        office.wait_for(at(central("stage-a", "set/main/response"), b'"aged","ok":true'), 10)
        time.sleep(0.5)  # an answer to crew would have arrived by now
        assert not crew.has_seen(at("setbridge/set/main/response", b"fake"))
        assert a.hub.state == "rolling"


def _ids(events: list[dict]) -> list[str]:
    return [e["event_id"] for e in events]


def test_a_long_cut_during_a_take_is_seen_at_the_centre_and_caught_up_once_each():
    with stage_a_watched_from_the_office() as (the_lot, a, office):
        assert a.hub.submit("roll", "button").ok
        office.wait_for(at(central("stage-a", "set/main/state"), b'"rolling"'), 10)
        time.sleep(0.3)  # the centre's acknowledgements are back (else QoS 1 sends the roll again)
        a.link.cut()
        a.link.drop()  # a router restarting: both ends see the connection go (a silent cut takes ~11 s)
        # The centre learns the link is gone from the bridge's last will.
        office.wait_for(at(central("stage-a", "bridge"), b"0"), 5)
        before = len(_events_at(office, "stage-a"))
        assert a.hub.submit("cut", "button").ok  # the stage goes on alone
        assert a.hub.submit("roll", "button").ok
        assert a.hub.submit("cut", "button").ok
        a.link.restore()
        wait_until(lambda: len(_events_at(office, "stage-a")) >= before + 3, 10, "the takes of the cut at the centre")
        time.sleep(0.5)
        events = _events_at(office, "stage-a")
        assert len(set(_ids(events))) == len(events), "an event arrived twice"
        assert [e["type"] for e in events[before:]] == ["cut", "roll", "cut"]
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)  # in order
        got = state_of(office, central("stage-a", "set/main/state"))
        assert (got["state"], got["seq"]) == ("idle", a.hub.controller.seq)
        assert [msg.payload for msg in office.seen if msg.topic == central("stage-a", "bridge")][-1] == b"1"


def test_a_stage_broker_restart_during_a_cut_loses_nothing_it_queued_for_the_centre():
    with lot("stage-a") as the_lot:
        a = the_lot.stages["stage-a"]
        office = the_lot.user()
        office.subscribe(central("stage-a", "set/main/event"))
        assert a.hub.submit("roll", "button").ok
        office.wait_for(at(central("stage-a", "set/main/event"), b'"roll"'), 10)
        a.link.cut()
        a.link.drop()  # and every connection through it closed: the bridge queues from now on
        assert a.hub.submit("cut", "button").ok
        time.sleep(0.3)
        a.broker.restart()  # persistence: the bridge's queue is on disk
        assert a.hub.bus.wait_connected(10)
        assert a.hub.submit("roll", "button").ok
        a.link.restore()
        wait_until(lambda: len(set(_ids(_events_at(office, "stage-a")))) >= 3, 10,
                   "the events queued across the restart")
        time.sleep(0.5)
        # QoS 1 is at least once: an event whose acknowledgement the cut swallowed comes again, with
        # its event_id, and a consumer (the board's take log) keeps it once.
        once = {e["event_id"]: e for e in _events_at(office, "stage-a")}
        assert [e["type"] for e in once.values() if e["cause"] == "button"] == ["roll", "cut", "roll"]


def test_offload_cards_reported_during_a_cut_reach_the_centre_once_it_returns():
    with lot("stage-a") as the_lot:
        a = the_lot.stages["stage-a"]
        office = the_lot.user()
        office.subscribe(central("stage-a", "offload/#"))
        a.link.cut()
        a.link.drop()
        cart = a.user("crew")  # the data cart reports on the stage while the office is cut off
        cart.subscribe("setbridge/offload/card/+")
        for roll in ("A001R1AA", "A002R1AA"):
            cart.publish("setbridge/offload/report",
                         json.dumps({"v": 1, "event_id": f"ev-{roll}", "roll": roll, "status": "verified"}))
            cart.wait_for(at(f"setbridge/offload/card/{roll}", b'"verified"'), 10)
        a.link.restore()
        for roll in ("A001R1AA", "A002R1AA"):
            office.wait_for(at(central("stage-a", f"offload/card/{roll}"), b'"verified"'), 10)
        events = [json.loads(msg.payload)["event_id"] for msg in office.seen if msg.topic == central("stage-a", "offload/event")]
        assert sorted(set(events)) == ["ev-A001R1AA", "ev-A002R1AA"]
        wall = the_lot.user("wall")  # a client arriving later gets the cards as retained messages
        wall.subscribe(central("stage-a", "offload/card/+"))
        wall.wait_for(at(central("stage-a", "offload/card/A002R1AA"), b'"verified"'), 10)
