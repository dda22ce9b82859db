"""The firmware's plain modules (state rules, payloads, MQTT framing), imported under CPython."""

from __future__ import annotations

import sys

import pytest

from setbridge.sim.lights import FIRMWARE_PATH

sys.path[:0] = [str(p) for p in FIRMWARE_PATH]
import mqtt  # noqa: E402
import patterns  # noqa: E402
import payloads  # noqa: E402
import rules  # noqa: E402

for _p in FIRMWARE_PATH:
    sys.path.remove(str(_p))


def state(name: str, epoch: int, seq: int) -> dict:
    return {"state": name, "epoch": epoch, "seq": seq}


@pytest.fixture
def follower() -> rules.Follower:
    f = rules.Follower(timeout_ms=2500)
    f.link_up(0)
    f.hub_status(0, True)
    return f


def test_newer_wins_stale_and_replayed_do_not(follower: rules.Follower) -> None:
    assert follower.set_state(0, state("rolling", 3, 10))
    assert not follower.set_state(10, state("idle", 3, 9))
    assert not follower.set_state(20, state("idle", 3, 10))
    assert follower.showing(30) == ("rolling", None)
    assert follower.set_state(40, state("idle", 4, 1))  # a new epoch wins with any seq
    assert follower.showing(50) == ("idle", None)


def test_link_lost_without_heartbeat_hub_or_broker(follower: rules.Follower) -> None:
    follower.set_state(0, state("rolling", 1, 1))
    assert follower.showing(2500)[0] == "rolling"
    assert follower.showing(2501)[0] == "link-lost"
    follower.set_state(3000, state("rolling", 1, 1))  # a heartbeat of the same state revives it
    assert follower.showing(3001)[0] == "rolling"
    follower.hub_status(3002, False)
    assert follower.showing(3003)[0] == "link-lost"
    follower.hub_status(3004, True)
    follower.link_down(3005, "broker")
    assert follower.showing(3006)[0] == "link-lost"


def test_nothing_is_shown_before_a_state_is_known() -> None:
    f = rules.Follower()
    f.link_up(0)
    assert f.showing(1)[0] == "link-lost"


def test_overlays_never_hide_a_roll(follower: rules.Follower) -> None:
    follower.set_state(0, state("idle", 1, 1))
    cmd = payloads.parse_cmd(b'{"v": 1, "action": "identify", "duration_s": 2}')
    assert follower.command(10, cmd)
    assert follower.showing(20)[0] == "identify"
    follower.set_state(30, state("rolling", 1, 2))
    assert follower.showing(40)[0] == "rolling"
    assert not follower.command(50, cmd)
    assert follower.showing(60)[0] == "rolling"


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"v": 1}', b'{"v": 1, "state": "idle", "epoch": 1.5, "seq": 1}',
                                 b'{"v": 1, "state": "idle", "epoch": false, "seq": 1}', b"x" * 5000,
                                 b'{"v": true, "state": "idle", "epoch": 1, "seq": 1}',
                                 b'{"v": 1.0, "state": "idle", "epoch": 1, "seq": 1}'])
def test_bad_set_states_are_rejected_with_a_reason(raw: bytes) -> None:
    with pytest.raises(ValueError):
        payloads.parse_set_state(raw)


@pytest.mark.parametrize("n,encoded", [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                                       (16384, b"\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f")])
def test_remaining_length_encoding_follows_the_spec(n: int, encoded: bytes) -> None:
    assert mqtt._remaining_length(n) == encoded


class Recorder(mqtt.MQTTClient):
    """A client whose socket is replaced: bytes are fed in, what it would send is kept."""

    def __init__(self, **kw):
        super().__init__("t", "127.0.0.1", max_packet=64, **kw)
        self.state = mqtt.CONNECTED
        self.sock = object()
        self.sent = bytearray()
        self.got: list[tuple[str, bytes, bool]] = []
        self.on_message = lambda t, p, r: self.got.append((t, p, r))

    def _flush(self) -> None:
        self.sent += self._out
        self._out = bytearray()

    def feed(self, data: bytes) -> None:
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        self._in += data
        self._parse()


def publish_packet(topic: str, payload: bytes, qos: int = 0, retain: bool = False, pid: int = 7) -> bytes:
    body = mqtt._str(topic) + (bytes((pid >> 8, pid & 0xFF)) if qos else b"") + payload
    return mqtt.packet(0x30 | qos << 1 | int(retain), body)


def test_publish_split_into_single_bytes_is_delivered_and_acknowledged() -> None:
    c = Recorder()
    for byte in publish_packet("a/b", b"hello", qos=1, retain=True):
        c.feed(bytes((byte,)))
    assert c.got == [("a/b", b"hello", True)]
    assert bytes(c.sent) == b"\x40\x02\x00\x07"


def test_an_oversized_packet_is_skipped_and_the_next_one_delivered() -> None:
    c = Recorder()
    stream = publish_packet("big", b"x" * 500) + publish_packet("small", b"ok")
    for i in range(0, len(stream), 37):
        c.feed(stream[i:i + 37])
    assert c.got == [("small", b"ok", False)]


def test_the_missing_link_is_named() -> None:
    f = rules.Follower(timeout_ms=2500)
    assert f.lost(0) == "wifi"
    f.link_down(1, "broker")
    assert f.lost(2) == "broker"
    f.link_up(3)
    assert f.lost(4) == "hub"  # connected, but no state yet
    f.hub_status(5, True)
    f.set_state(6, state("idle", 1, 1))
    assert f.lost(7) is None
    assert f.lost(2507) == "hub"


@pytest.mark.parametrize("lost,blinks", [("hub", 2), ("broker", 3), ("wifi", 4)])
def test_link_lost_blinks_tell_which_link_is_missing(lost: str, blinks: int) -> None:
    levels = [patterns.frame("link-lost", t, None, lost)[0] for t in range(0, 2000, 10)]
    rising = sum(1 for a, b in zip([0.0] + levels, levels) if b > a)
    assert rising == blinks
    assert [patterns.frame("link-lost", t, None, lost)[0] for t in range(2000, 4000, 10)] == levels


def test_reconnect_backoff_doubles_with_jitter_up_to_the_cap(monkeypatch) -> None:
    sys.path[:0] = [str(p) for p in FIRMWARE_PATH]
    try:
        import app
        import board_unix
        import clock
    finally:
        for p in FIRMWARE_PATH:
            sys.path.remove(str(p))
    cfg = {"id": "door-1", "set": "main", "hub": "hub-1", "heartbeat_timeout_s": 2.5, "reconnect_max_s": 5, "alive_s": 1.0,
           "mqtt": {"host": "127.0.0.1", "port": 1, "base_topic": "t", "keepalive_s": 10},
           "output": {"type": "relay", "pin": 2}, "colors": {}}
    light = app.App(cfg, board_unix.Board(cfg))
    monkeypatch.setattr(clock, "ticks", lambda: 0)
    waits = []
    for _ in range(8):
        base = light.backoff
        light._schedule_retry()
        waits.append(light.next_try)
        assert 0.75 * base <= light.next_try <= 1.25 * base
    assert max(waits) <= 1.25 * 5000
    assert light.backoff == 5000
