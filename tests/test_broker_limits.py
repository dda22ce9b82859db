"""The generated broker's limits, on a real Mosquitto: a paused hub loses no request of a burst,
a reader that stopped reading costs bounded memory, an oversized packet ends only its sender."""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from pathlib import Path

import pytest

from broker_helpers import User, generated_broker, password
from conftest import HubProcess, make_settings, write_config

from setbridge.broker.config import MAX_PACKET_BYTES, MAX_QUEUED_BYTES
from setbridge.hub import Hub

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")]

USERS = {"hub-1": "hub", "editorial": "integrator", "wall": "monitor", "lobby": "monitor"}
BASE = "setbridge"
BURST = 2000
"""Twice Mosquitto's default queue of 1,000 messages per client."""


def hub_settings(broker, state_dir: Path):
    return make_settings(broker, state_dir, hub={"id": "hub-1", "set": "main"},
                         mqtt={"base_topic": BASE, "username": "hub-1", "password": password("hub-1")})


def responses(user: User) -> dict[str, int]:
    """Transaction → how many answers ``user`` saw for it."""
    seen: dict[str, int] = {}
    for topic, payload in list(user.received):
        if topic == f"{BASE}/set/main/response":
            tx = json.loads(payload).get("transaction")
            seen[tx] = seen.get(tx, 0) + 1
    return seen


def burst_to_a_paused_hub(broker, tmp_path: Path, patience_s: float = 30) -> tuple[dict[str, int], list[str]]:
    """Pause the real hub (SIGSTOP), send BURST requests, resume it: the answers, the transactions."""
    hub = HubProcess(write_config(tmp_path / "hub.toml", hub_settings(broker, tmp_path / "state"))).start()
    wall = User(broker.port, "wall")
    editorial = User(broker.port, "editorial")
    try:
        wall.subscribe(f"{BASE}/#")
        assert wall.wait_for(f"{BASE}/hub/hub-1/status", b'"online"', timeout=20), "the hub did not come up"
        assert hub.proc is not None
        os.kill(hub.proc.pid, signal.SIGSTOP)  # a hub held up for a moment: a slow SD card, a swap storm
        run = uuid.uuid4().hex[:6]
        sent = [f"{run}-{i}" for i in range(BURST)]
        infos = [editorial.c.publish(f"{BASE}/set/main/request", json.dumps(
            {"v": 1, "action": "standby", "source": "editorial", "transaction": tx}), qos=1) for tx in sent]
        for info in infos:
            info.wait_for_publish(20)
        os.kill(hub.proc.pid, signal.SIGCONT)
        for attempt in range(10):  # with a full queue at the broker, even this may be dropped: ask again
            probe = f"{run}-probe-{attempt}"
            editorial.publish(f"{BASE}/set/main/request",
                              json.dumps({"v": 1, "action": "standby", "source": "editorial", "transaction": probe}))
            if wall.wait_for(f"{BASE}/set/main/response", probe.encode(), timeout=5):
                break
        else:
            raise AssertionError("the hub stopped answering")
        with wall._cond:  # the last answers of the burst may come after the probe's
            wall._cond.wait_for(lambda: len(responses(wall)) > BURST, patience_s)
        return responses(wall), sent
    finally:
        editorial.close()
        wall.close()
        if hub.proc is not None and hub.proc.poll() is None:
            os.kill(hub.proc.pid, signal.SIGCONT)
        hub.kill()


def test_a_paused_hub_answers_every_request_of_a_burst(tmp_path):
    with generated_broker(USERS) as broker:
        answers, sent = burst_to_a_paused_hub(broker, tmp_path)
        log = broker.log_path.read_text()
    missing = [tx for tx in sent if tx not in answers]
    assert not missing, f"{len(missing)} of {BURST} requests got no answer (first {missing[:3]})"
    assert all(answers[tx] == 1 for tx in sent), "a request was answered twice"
    assert "Outgoing messages are being dropped for client hub-1" not in log


def test_with_mosquittos_default_queue_the_same_burst_loses_requests(tmp_path):
    """Control: the default ``max_queued_messages 1000`` drops requests meant for the hub, and
    the broker's log is the only place that says so."""
    def default_queue(text: str) -> str:
        return "\n".join(line for line in text.splitlines() if not line.startswith("max_queued_")) + "\n"

    with generated_broker(USERS, edit=default_queue) as broker:
        answers, sent = burst_to_a_paused_hub(broker, tmp_path, patience_s=2)
        log = broker.log_path.read_text()
    assert sum(tx in answers for tx in sent) < BURST
    assert "Outgoing messages are being dropped for client hub-1" in log


def settle(user: User, at_least: int, quiet_s: float = 2.0) -> int:
    """How many messages ``user`` got once it has ``at_least`` and then nothing for ``quiet_s``."""
    with user._cond:
        assert user._cond.wait_for(lambda: len(user.received) >= at_least, 20), f"only {len(user.received)} arrived"
        while True:
            n = len(user.received)
            if not user._cond.wait_for(lambda n=n: len(user.received) > n, quiet_s):  # type: ignore[misc]
                return n


def test_a_reader_that_stopped_reading_costs_bounded_memory(tmp_path):
    """A monitor's persistent session away (or a monitor that stopped reading) keeps at most
    ``max_queued_bytes`` for it; the broker logs the drop once; the hub goes on answering."""
    chunk = 60 * 1024
    count = MAX_QUEUED_BYTES // chunk + 60
    with generated_broker(USERS) as broker:
        hub = Hub(hub_settings(broker, tmp_path / "state"))
        hub.start()
        lobby = User(broker.port, "lobby", clean=False)
        editorial = User(broker.port, "editorial")
        try:
            assert hub.bus.wait_connected(10)
            lobby.subscribe(f"{BASE}/light/+/cmd")
            lobby.close()  # gone, its session stays (clean session off)
            body = "x" * (chunk - 100)
            infos = [editorial.c.publish(f"{BASE}/light/door-1/cmd", json.dumps(
                {"v": 1, "action": "identify", "n": i, "pad": body}), qos=1) for i in range(count)]
            for info in infos:
                info.wait_for_publish(20)
            assert hub.submit("roll", cause="test").state == "rolling", "the hub was held up"
            lobby = User(broker.port, "lobby", clean=False)
            kept = settle(lobby, at_least=MAX_QUEUED_BYTES // chunk)
        finally:
            editorial.close()
            lobby.close()
            hub.stop()
        log = broker.log_path.read_text()
    assert kept * chunk <= MAX_QUEUED_BYTES + 25 * chunk, f"{kept} messages of {chunk} bytes were kept"
    assert kept < count
    assert log.count("Outgoing messages are being dropped for client lobby") == 1


def test_a_packet_over_the_limit_ends_only_its_senders_connection(tmp_path):
    with generated_broker(USERS) as broker:
        hub = Hub(hub_settings(broker, tmp_path / "state"))
        hub.start()
        editorial = User(broker.port, "editorial")
        wall = User(broker.port, "wall")
        try:
            assert hub.bus.wait_connected(10)
            wall.subscribe(f"{BASE}/set/main/#")
            editorial.c.publish(f"{BASE}/set/main/request", b"{" + b" " * (MAX_PACKET_BYTES + 1024) + b"}", qos=1)
            assert editorial.wait_disconnected(10), "a packet over the limit was let through"
            again = User(broker.port, "editorial")
            try:
                again.publish(f"{BASE}/set/main/request",
                              '{"v": 1, "action": "roll", "source": "editorial", "transaction": "after"}')
                assert wall.wait_for(f"{BASE}/set/main/response", b'"after"'), "the hub stopped answering"
            finally:
                again.close()
            assert hub.bus.connections == 1, "the hub lost its connection"
        finally:
            editorial.close()
            wall.close()
            hub.stop()
        log = broker.log_path.read_text()
    assert "Client editorial disconnected due to oversize packet." in log


def test_the_largest_offload_event_the_hub_can_publish_is_far_below_the_packet_limit():
    """Every field of an event at the contract's own limits, with the costliest characters (a
    control character is 6 bytes of JSON, an emoji 4): the broker never cuts the hub off for it."""
    from setbridge.offload.models import Destination, ErrorItem, OffloadEvent

    wide, control = "\U0001F600", "\x01"
    path = wide * 1024
    event = OffloadEvent.model_construct(
        v=1, status="failed", roll="R" * 64, event_id="e" * 128, ts=1.0, transfer_key="k" * 256, source="mqtt",
        copies={"required": 32, "verified": 0}, safe_to_wipe=False,
        destinations=[Destination.model_construct(path=path, name=wide * 256, manifest=path, state="failed",
                                                  verified_by="hash", files=10**7, bytes=10**16) for _ in range(32)],
        errors=[ErrorItem.model_construct(kind="k" * 32, path=path, detail=control * 2000) for _ in range(100)],
        why_not_safe=[f"copy {path}: it holds 10000000 files, the source 1" for _ in range(40)])
    size = len(event.model_dump_json(exclude_none=True, warnings=False).encode())
    assert size < MAX_PACKET_BYTES / 4, f"an event of {size} bytes"
