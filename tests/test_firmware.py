"""The recording-light firmware, run under the MicroPython Unix port against a real broker."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from setbridge.config import Settings
from setbridge.hub import Hub
from setbridge.topics import Topics

from helpers import HubProcess, Probe, running_hub
from helpers.firmware import ScriptedHub, running_light

LINK_LOST_DEADLINE_S = 3.0
"""The contract: a light shows "link lost" within 3 s of losing the hub, broker or Wi-Fi."""


@pytest.fixture
def scripted(settings: Settings) -> Iterator[ScriptedHub]:
    h = ScriptedHub(settings)
    h.status("online")
    yield h
    h.close()


def test_follows_standby_roll_and_cut_from_the_real_hub(hub: Hub, settings: Settings, tmp_path: Path) -> None:
    with running_light(settings, tmp_path) as light:
        light.wait_showing("idle")
        for action, expected in (("standby", "standby"), ("roll", "rolling"), ("cut", "idle"), ("roll", "rolling")):
            mark = light.mark()
            hub.submit(action, cause="test")
            event = light.wait_showing(expected, after=mark)
            assert event.data["seq"] == hub.controller.seq
            assert event.data["epoch"] == hub.controller.epoch


def test_light_announces_itself_and_what_it_shows(hub: Hub, settings: Settings, topics: Topics,
                                                  probe_factory, tmp_path: Path) -> None:
    probe: Probe = probe_factory(f"{topics.base}/light/#")
    with running_light(settings, tmp_path) as light:
        probe.wait_for(lambda m: m.topic == topics.light_status("door-1") and m.data["state"] == "online"
                       and m.data["set"] == settings.hub.set and m.data["fw"])
        probe.wait_for(lambda m: m.topic == topics.light_state("door-1") and m.data["showing"] == "idle"
                       and m.data["epoch"] == hub.controller.epoch)
        hub.submit("roll", cause="test")
        probe.wait_for(lambda m: m.topic == topics.light_state("door-1") and m.data["showing"] == "rolling"
                       and m.data["seq"] == hub.controller.seq)
        light.proc.kill()
        light.proc.wait()
    probe.wait_for(lambda m: m.topic == topics.light_status("door-1") and m.data["state"] == "offline", timeout=30)


def test_stale_and_out_of_order_states_are_ignored(scripted: ScriptedHub, settings: Settings, tmp_path: Path) -> None:
    scripted.state("rolling", epoch=4, seq=10)
    with running_light(settings, tmp_path) as light:
        light.wait_showing("rolling")
        scripted.state("idle", epoch=4, seq=9, beat=False)  # older
        scripted.state("idle", epoch=4, seq=10, beat=False)  # a replay of the current seq
        scripted.raw(scripted.topics.set_heartbeat(settings.hub.set),
                     json.dumps({"v": 1, "state": "idle", "epoch": 4, "seq": 3}))
        scripted.state("standby", epoch=4, seq=11)
        light.wait_showing("standby")
        assert light.shows()[-2:] == ["rolling", "standby"]
        assert any("stale" in line for line in light.logs())


def test_a_new_hub_epoch_is_accepted_even_with_a_lower_seq(scripted: ScriptedHub, settings: Settings,
                                                           tmp_path: Path) -> None:
    scripted.state("rolling", epoch=7, seq=40)
    with running_light(settings, tmp_path) as light:
        light.wait_showing("rolling")
        scripted.state("idle", epoch=8, seq=2)
        event = light.wait_showing("idle")
        assert (event.data["epoch"], event.data["seq"]) == (8, 2)


def test_an_epoch_or_seq_no_json_consumer_can_hold_is_refused(scripted: ScriptedHub, settings: Settings,
                                                              tmp_path: Path) -> None:
    """Above 2**53 - 1 a JavaScript page reads another number than the light: such a state never wins."""
    scripted.state("rolling", epoch=4, seq=10)
    with running_light(settings, tmp_path) as light:
        light.wait_showing("rolling")
        before = len(light.logs())
        scripted.state("idle", epoch=10**23, seq=1, beat=False)
        scripted.state("idle", epoch=4, seq=2**53, beat=False)
        scripted.state("standby", epoch=2**53 - 1, seq=2**53 - 1)  # the largest safe integers are fine
        event = light.wait_showing("standby")
        assert (event.data["epoch"], event.data["seq"]) == (2**53 - 1, 2**53 - 1)
        assert light.shows()[-2:] == ["rolling", "standby"]
        assert sum("ignored" in line and "2**53" in line for line in light.logs()[before:]) >= 2


def test_a_missed_state_is_taken_from_the_heartbeat(scripted: ScriptedHub, settings: Settings,
                                                    tmp_path: Path) -> None:
    scripted.state("idle", epoch=1, seq=1)
    with running_light(settings, tmp_path) as light:
        light.wait_showing("idle")
        scripted.current = {"v": 1, "state": "rolling", "epoch": 1, "seq": 2, "ts": 0}
        assert light.wait_showing("rolling").data["seq"] == 2


def test_killed_hub_means_link_lost_within_3_s(hub_process: HubProcess, settings: Settings, topics: Topics,
                                               probe_factory, tmp_path: Path) -> None:
    probe: Probe = probe_factory(topics.light_state("door-1"))
    hub_process.start()
    with running_light(settings, tmp_path) as light:
        light.wait_showing("idle", timeout=15)
        mark = light.mark()
        killed = time.monotonic()
        hub_process.kill()
        event = light.wait_showing("link-lost", after=mark, timeout=10)
        assert event.t - killed <= LINK_LOST_DEADLINE_S
        assert event.data["lost"] == "hub"
        probe.wait_for(lambda m: m.data["showing"] == "link-lost")  # published: the broker is still up
        hub_process.start()
        light.wait_showing("idle", after=mark, timeout=15)


def test_frozen_hub_means_link_lost_within_3_s(hub_process: HubProcess, settings: Settings,
                                               tmp_path: Path) -> None:
    """A frozen hub closes no socket, so no last will: only the heartbeat timeout can tell."""
    hub_process.start()
    with running_light(settings, tmp_path) as light:
        light.wait_showing("idle", timeout=15)
        mark = light.mark()
        frozen = time.monotonic()
        hub_process.proc.send_signal(signal.SIGSTOP)
        event = light.wait_showing("link-lost", after=mark, timeout=10)
        assert event.t - frozen <= LINK_LOST_DEADLINE_S
        hub_process.proc.send_signal(signal.SIGCONT)
        light.wait_showing("idle", after=mark, timeout=15)


def test_hub_going_offline_means_link_lost_at_once(hub: Hub, settings: Settings, tmp_path: Path) -> None:
    with running_light(settings, tmp_path) as light:
        light.wait_showing("idle")
        mark = light.mark()
        hub.stop()  # publishes the retained offline status
        light.wait_showing("link-lost", after=mark, timeout=LINK_LOST_DEADLINE_S)


def test_silent_heartbeats_mean_link_lost_then_recovery(scripted: ScriptedHub, settings: Settings,
                                                        tmp_path: Path) -> None:
    scripted.state("rolling", epoch=2, seq=5)
    with running_light(settings, tmp_path) as light:
        light.wait_showing("rolling")
        mark = light.mark()
        scripted.beating.clear()
        stopped = time.monotonic()
        event = light.wait_showing("link-lost", after=mark, timeout=10)
        assert event.t - stopped <= LINK_LOST_DEADLINE_S
        scripted.beating.set()
        light.wait_showing("rolling", after=mark)


def test_broker_restart_means_link_lost_then_the_retained_state(own_broker, tmp_path: Path) -> None:
    with running_hub(own_broker, tmp_path / "state") as hub:
        hub.submit("roll", cause="test")
        with running_light(hub.settings, tmp_path) as light:
            light.wait_showing("rolling")
            mark = light.mark()
            stopped = time.monotonic()
            own_broker.restart(down_s=0.5)
            event = light.wait_showing("link-lost", after=mark, timeout=10)
            assert event.t - stopped <= LINK_LOST_DEADLINE_S  # the hub's will may come first
            light.wait_showing("link-lost", after=mark, timeout=10, lost="broker")
            light.wait_showing("rolling", after=mark, timeout=20)
            assert light.running


def test_wifi_drop_means_link_lost_then_the_retained_state(hub: Hub, settings: Settings, tmp_path: Path) -> None:
    hub.submit("standby", cause="test")
    with running_light(settings, tmp_path) as light:
        light.wait_showing("standby")
        mark = light.mark()
        light.drop_wifi()
        dropped = time.monotonic()
        event = light.wait_showing("link-lost", after=mark, timeout=10)
        assert event.t - dropped <= LINK_LOST_DEADLINE_S
        assert event.data["lost"] == "wifi"
        hub.submit("roll", cause="test")  # changes while the light is away
        light.restore_wifi()
        light.wait_showing("rolling", after=mark, timeout=15)


MALFORMED: list[bytes] = [
    b"",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'"a string"',
    b'{"v": 2, "state": "idle", "epoch": 9, "seq": 99}',
    b'{"v": 1, "state": "party", "epoch": 9, "seq": 99}',
    b'{"v": 1, "state": "idle", "epoch": "9", "seq": 99}',
    b'{"v": 1, "state": "idle", "epoch": 9, "seq": true}',
    b'{"v": 1, "state": "idle", "epoch": 9, "seq": -1}',
    b'{"v": 1, "state": "idle"}',
    b'{"v": 1, "state": "idle", "epoch": 9, "seq": 99, "pad": "' + b"x" * 2000 + b'"}',
    b"[" * 3000,
    b'{"v": 1, "state": "idle", "epoch": 9, "seq": 99, "pad": "' + b"x" * 200_000 + b'"}',
]


def test_malformed_and_oversized_messages_change_nothing(scripted: ScriptedHub, settings: Settings,
                                                         tmp_path: Path) -> None:
    scripted.state("rolling", epoch=3, seq=20)
    topics = scripted.topics
    with running_light(settings, tmp_path) as light:
        light.wait_showing("rolling")
        before = len(light.logs())
        for payload in MALFORMED:
            scripted.raw(topics.set_state(settings.hub.set), payload)
            scripted.raw(topics.set_heartbeat(settings.hub.set), payload)
            scripted.raw(topics.hub_status(settings.hub.id), payload)
            scripted.raw(topics.light_cmd("door-1"), payload)
        scripted.raw(topics.light_cmd("door-1"), b'{"v": 1, "action": "explode"}')
        scripted.raw(topics.light_cmd("door-1"), b'{"v": 1, "action": "identify", "duration_s": 1e9}')
        scripted.state("standby", epoch=3, seq=21)
        light.wait_showing("standby")
        assert light.shows()[-2:] == ["rolling", "standby"]
        assert light.running
        ignored = [line for line in light.logs()[before:] if "ignored" in line]
        assert len(ignored) >= 4 * len(MALFORMED)


def test_identify_flashes_then_returns_and_is_refused_while_rolling(hub: Hub, settings: Settings,
                                                                    topics: Topics, probe_factory,
                                                                    tmp_path: Path) -> None:
    probe: Probe = probe_factory(topics.light_state("door-1"))
    with running_light(settings, tmp_path) as light:
        light.wait_showing("idle")
        mark = light.mark()
        probe.publish(topics.light_cmd("door-1"), {"v": 1, "action": "identify", "duration_s": 0.5})
        light.wait_showing("identify", after=mark)
        probe.wait_for(lambda m: m.data["showing"] == "identify")
        light.wait_showing("idle", after=mark + 1)
        hub.submit("roll", cause="test")
        light.wait_showing("rolling", after=mark)
        mark = light.mark()
        probe.publish(topics.light_cmd("door-1"), {"v": 1, "action": "identify", "duration_s": 5})
        hub.submit("cut", cause="test")
        light.wait_showing("idle", after=mark)
        assert "identify" not in light.shows()[-2:]
        assert any("ignored identify: the set is rolling" in line for line in light.logs())


def test_test_command_cycles_then_returns(hub: Hub, settings: Settings, topics: Topics, probe_factory,
                                          tmp_path: Path) -> None:
    probe: Probe = probe_factory(topics.light_state("door-1"))
    with running_light(settings, tmp_path, output={"type": "neopixel", "pin": 4, "count": 3},
                       trace_outputs=True) as light:
        light.wait_showing("idle")
        mark = light.mark()
        probe.publish(topics.light_cmd("door-1"), {"v": 1, "action": "test", "duration_s": 1})
        light.wait_showing("test", after=mark)
        light.wait_showing("idle", after=mark)
        colours = {tuple(e.data["value"]) for e in light.events[mark:] if e.kind == "pixels"}
        assert {(127, 0, 0), (0, 0, 127)} <= colours  # rolling red and link-lost blue were shown


def test_an_active_low_relay_is_off_when_idle_and_held_on_while_rolling(hub: Hub, settings: Settings,
                                                                       tmp_path: Path) -> None:
    with running_light(settings, tmp_path, output={"type": "relay", "pin": 26, "active_low": True},
                       trace_outputs=True) as light:
        light.wait_showing("idle")
        pins = [e.data["value"] for e in light.events if e.kind == "pin"]
        assert pins[-1] == 1  # high = off on an active-low relay board (before: the link-lost blink)
        mark = light.mark()
        hub.submit("roll", cause="test")
        light.wait_showing("rolling", after=mark)
        hub.submit("cut", cause="test")
        light.wait_showing("idle", after=mark)
        during = [e.data["value"] for e in light.events[mark:] if e.kind == "pin"]
        assert during == [0, 1]  # switched on once for the take, off once at the cut: no flicker
