"""The web board's model of the stage: the lights' ordering and link rules, bad input, bounds."""

from __future__ import annotations

import json

from setbridge.topics import Topics
from setbridge.web import stage as stage_module
from setbridge.web.stage import Stage

T = Topics("sb")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def msg(**fields) -> bytes:
    return json.dumps({"v": 1, **fields}).encode()


def state(state="idle", epoch=1, seq=1, take=0) -> bytes:
    return msg(set="a", state=state, epoch=epoch, seq=seq, take=take, cause="request", ts=1.0)


def beat(state="idle", epoch=1, seq=1) -> bytes:
    return msg(state=state, epoch=epoch, seq=seq, ts=1.0)


def make() -> tuple[Stage, Clock]:
    clock = Clock()
    s = Stage(T, link_timeout_s=2.5, clock=clock)
    s.broker(True)
    s.handle(T.hub_status("h"), msg(state="online", hub="h", set="a", version="1"))
    return s, clock


def test_only_a_heartbeat_proves_the_hub_alive():
    s, clock = make()
    s.handle(T.set_state("a"), state("rolling", seq=5), retained=True)
    assert s.light_view("a")["state"] == "rolling"
    assert s.showing("a") == "link-lost"  # a retained state may come from a dead hub
    s.handle(T.set_heartbeat("a"), beat("rolling", seq=5))
    assert s.showing("a") == "rolling"
    clock.t += 2.4
    assert s.showing("a") == "rolling"
    clock.t += 0.2
    assert s.light_view("a")["showing"] == "link-lost" and s.light_view("a")["lost"] == "no heartbeat"


def test_newer_epoch_wins_and_stale_seq_is_ignored():
    s, clock = make()
    s.handle(T.set_state("a"), state("rolling", epoch=3, seq=10))
    s.handle(T.set_heartbeat("a"), beat("rolling", epoch=3, seq=10))
    assert s.handle(T.set_state("a"), state("idle", epoch=3, seq=9)) is None  # stale: dropped
    assert s.showing("a") == "rolling"
    s.handle(T.set_state("a"), state("idle", epoch=2, seq=1))  # another epoch wins (a hub restart)
    assert s.light_view("a")["state"] == "idle"
    # a stale heartbeat does not refresh the link
    clock.t += 2.0
    s.handle(T.set_heartbeat("a"), beat("rolling", epoch=2, seq=0))
    clock.t += 1.0
    assert s.showing("a") == "link-lost"


def test_a_heartbeat_carries_a_missed_change():
    s, _ = make()
    s.handle(T.set_state("a"), state("idle", seq=1))
    s.handle(T.set_heartbeat("a"), beat("rolling", seq=2))
    assert s.showing("a") == "rolling"


def test_hub_offline_and_broker_down_show_link_lost_at_once():
    s, _ = make()
    s.handle(T.set_state("a"), state("rolling"))
    s.handle(T.set_heartbeat("a"), beat("rolling"))
    assert s.showing("a") == "rolling"
    s.handle(T.hub_status("h"), msg(state="offline", hub="h", set="a", version="1"))
    assert s.light_view("a")["lost"] == "hub offline"
    s.handle(T.hub_status("h"), msg(state="online", hub="h", set="a", version="1"))
    assert s.showing("a") == "rolling"
    s.broker(False)
    assert s.light_view("a")["lost"] == "broker"


def test_bad_payloads_are_ignored_without_harm():
    s, _ = make()
    s.handle(T.set_state("a"), state("rolling"))
    for raw in (b"", b"junk", b"[1]", msg(state="rolling"), msg(set="a", state="party", epoch=1, seq=9, take=1,
                                                                  cause="x"), b"{" * 100000, msg(v=2)):
        assert s.handle(T.set_state("a"), raw) is None
        assert s.handle(T.set_heartbeat("a"), raw) is None
        s.handle(T.light_status("l1"), raw)
        s.handle(T.offload_card("A001"), raw)
    assert s.light_view("a")["state"] == "rolling"
    assert s.rejected > 0
    board = s.board()
    assert board["cards"] == [] and [set_["set"] for set_ in board["sets"]] == ["a"]


def test_made_up_ids_cannot_grow_the_process_without_bound(monkeypatch):
    monkeypatch.setattr(stage_module, "MAX_SETS", 5)
    monkeypatch.setattr(stage_module, "MAX_LIGHTS", 5)
    s, _ = make()
    for i in range(50):
        s.handle(T.set_heartbeat(f"s{i}"), beat())
        s.handle(T.light_status(f"l{i}"), msg(state="online", set="a"))
    assert len(s.sets) == 5 and len(s.lights) == 5


def test_past_the_card_bound_the_newest_cards_are_kept_and_shown_first(monkeypatch):
    monkeypatch.setattr(stage_module, "MAX_CARDS", 5)
    s, _ = make()
    card = lambda roll, ts: msg(roll=roll, status="verified", ts=ts, event_id=roll)  # noqa: E731
    for i in range(50):
        s.handle(T.offload_card(f"JUNK{i:02d}"), card(f"JUNK{i:02d}", 1000.0 + i))
    s.handle(T.offload_card("OLD"), card("OLD", 10.0))  # older than every card shown: not shown
    s.handle(T.offload_card("A001R1"), card("A001R1", 2000.0))
    assert [c["roll"] for c in s.board()["cards"]] == ["A001R1", "JUNK49", "JUNK48", "JUNK47", "JUNK46"]


def told(s: Stage, light: str) -> tuple[str | None, bool]:
    (a,) = s.board()["sets"]
    row = next(lt for lt in a["lights"] if lt["id"] == light)
    beats = s.beats()["lights"][light]
    assert (beats["told"], beats["mismatch"]) == (row["told"], row["mismatch"])
    return row["told"], row["mismatch"]


def test_a_light_that_lags_its_set_is_flagged_after_a_grace_one_that_contradicts_it_at_once():
    s, clock = make()
    s.handle(T.set_state("a"), state("idle", seq=1))
    s.handle(T.set_heartbeat("a"), beat("idle", seq=1))
    for light in ("slow", "liar", "busy"):
        s.handle(T.light_status(light), msg(state="online", set="a"))
    s.handle(T.light_state("slow"), msg(showing="idle", epoch=1, seq=1))
    s.handle(T.light_state("liar"), msg(showing="rolling", epoch=1, seq=1))
    s.handle(T.light_state("busy"), msg(showing="identify", epoch=1, seq=1))
    assert told(s, "slow") == ("idle", False) and told(s, "liar") == ("idle", True) and told(s, "busy") == ("idle", False)
    s.handle(T.set_state("a"), state("rolling", seq=2))
    s.handle(T.set_heartbeat("a"), beat("rolling", seq=2))
    clock.t += 1.0
    s.handle(T.set_heartbeat("a"), beat("rolling", seq=2))
    assert told(s, "slow") == ("rolling", False)  # still following: a light takes a moment
    assert told(s, "busy") == ("rolling", False)
    clock.t += 2.0
    s.handle(T.set_heartbeat("a"), beat("rolling", seq=2))
    assert told(s, "slow") == ("rolling", True) and told(s, "busy") == ("rolling", True)  # nothing hides a roll
    assert told(s, "liar") == ("rolling", False)  # says what it was told: its word cannot be checked
    clock.t += 10
    assert told(s, "slow")[0] == "link-lost"  # the board's own link is lost: no verdict on the light
    assert told(s, "slow")[1] is False


def test_board_groups_lights_by_set_and_keeps_voice_triggers():
    s, _ = make()
    s.handle(T.light_status("door-1"), msg(state="online", fw="0.1", set="a"), retained=True)
    s.handle(T.light_state("door-1"), msg(showing="rolling", epoch=1, seq=2), retained=True)
    s.handle(T.light_status("stray"), msg(state="offline", set="elsewhere"))
    for i in range(7):
        s.handle(T.set_event("a"), msg(event_id=f"e{i}", type="roll", changed=True, state="rolling", cause="voice",
                                       phrase=f"roll sound {i}", confidence=0.9, epoch=1, seq=i, take=i))
    s.handle(T.set_event("a"), msg(event_id="r", type="cut", changed=True, state="idle", cause="request",
                                   epoch=1, seq=9, take=7))
    board = s.board()
    (a,) = board["sets"]
    assert [light["id"] for light in a["lights"]] == ["door-1"]
    assert a["lights"][0]["showing"] == "rolling" and a["lights"][0]["seen"] is None  # only retained so far
    assert [light["id"] for light in board["other_lights"]] == ["stray"]
    s.handle(T.light_state("door-1"), msg(showing="idle", epoch=1, seq=3))
    assert s.board()["sets"][0]["lights"][0]["seen"] is not None
    assert [v["phrase"] for v in a["voice"]] == [f"roll sound {i}" for i in (6, 5, 4, 3, 2)]


def test_a_light_is_alive_only_while_its_alive_messages_keep_coming():
    s, clock = make()
    s.handle(T.light_status("door-1"), msg(state="online", fw="0.1", set="a"), retained=True)
    s.handle(T.light_state("door-1"), msg(showing="idle", epoch=1, seq=1), retained=True)
    (light,) = s.board()["sets"][0]["lights"]
    assert light["alive"] is None  # listened less than 3 s: not known yet
    clock.t += 3.5
    assert s.board()["sets"][0]["lights"][0]["alive"] is False  # online status, but silent: frozen or hung
    change = s.handle(T.light_alive("door-1"),
                      msg(showing="rolling", every_s=1.0, epoch=1, seq=2))
    assert change is not None and change.board  # came alive: the board hears at once
    light = s.board()["sets"][0]["lights"][0]
    assert light["alive"] is True and light["showing"] == "rolling"
    assert s.handle(T.light_alive("door-1"), msg(showing="rolling", every_s=1.0)).board is False  # nothing new
    clock.t += 3.1
    assert s.beats()["lights"]["door-1"] == {"alive": False, "showing": "idle", "told": "link-lost", "mismatch": False}
    s.handle(T.light_alive("door-1"), msg(showing="rolling", every_s=2.0))
    clock.t += 5.0
    assert s.beats()["lights"]["door-1"]["alive"] is True  # within 3 × its own every_s
