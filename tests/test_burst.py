"""Bursts of requests against the real broker: every transaction is answered exactly once
(executed, or "busy" with a retry hint), nothing is refused silently, and the retained state
ends equal to the controller's."""

from __future__ import annotations

import logging
import sqlite3
import threading

from helpers import Probe

from setbridge.sim.burst import Collector, send
from setbridge.hub.requests import REQUEST_QUEUE, SOURCE_SHARE
from setbridge.topics import Topics


def assert_retained_state_is_the_controllers(hub, port: int) -> None:
    final = hub.controller.snapshot()
    probe = Probe(port, Topics(hub.settings.mqtt.base_topic).set_state(hub.set_id))
    try:
        message = probe.wait_for(lambda m: m.retained and m.data is not None, timeout=10)
        data, retained = message.data, message.retained
        assert retained and (data["epoch"], data["seq"], data["state"]) == (final.epoch, final.seq, final.state)
    finally:
        probe.close()


def test_10000_requests_in_5_s_are_each_answered_once(hub, broker):
    topics = Topics(hub.settings.mqtt.base_topic)
    with Collector(broker.port, topics, hub.set_id) as seen:
        send(broker.port, topics.set_request(hub.set_id), seen, n=10_000, clients=5, rate=2000)
        assert seen.wait_answered(10_000, timeout=120), f"{seen.answered()} of 10000 answered"
        assert seen.twice() == 0
        assert seen.ok + seen.busy == 10_000 and seen.refused == 0
        assert hub.bus.refused.total == 0, "paho refused a publish"
        seen_seqs = [seq for _, seq, _ in seen.states]
        assert seen_seqs == sorted(seen_seqs) and seen_seqs[-1] == hub.controller.seq
        assert_retained_state_is_the_controllers(hub, broker.port)


def test_beyond_the_queue_requests_are_answered_busy_and_logged(hub, broker, tmp_path, caplog):
    """The controller is held on a real SQLite lock while 1,500 requests arrive: the queue fills,
    the rest are answered busy at once, and the queued ones are executed after the release."""
    caplog.set_level(logging.WARNING)
    topics = Topics(hub.settings.mqtt.base_topic)
    hub.worker.capacity = 100
    db = tmp_path / "locked.db"
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    entered = threading.Event()

    def stuck(_state) -> None:
        entered.set()
        with sqlite3.connect(db, timeout=60) as c:
            c.execute("INSERT INTO t VALUES (1)")

    hub.add_state_listener(stuck)
    with Collector(broker.port, topics, hub.set_id) as seen:
        threading.Thread(target=hub.submit, args=("standby", "test"), daemon=True).start()
        assert entered.wait(10)
        send(broker.port, topics.set_request(hub.set_id), seen, n=1500, clients=3, window=1500)
        assert seen.wait_answered(1500 - 100, timeout=60), (seen.answered(), seen.busy, hub.worker.queued, hub.bus.backlog)
        assert seen.ok == 0 and seen.busy >= 1400
        assert seen.busy_sample["retry_after_s"] > 0 and seen.busy_sample["state"] in ("idle", "standby")
        holder.execute("ROLLBACK")
        holder.close()
        assert seen.wait_answered(1500, timeout=60), f"{seen.answered()} of 1500 answered"
        assert seen.twice() == 0 and seen.ok + seen.busy == 1500 and seen.ok <= 100
    lines = [r.getMessage() for r in caplog.records if "busy" in r.getMessage()]
    assert lines and all("\n" not in line for line in lines) and "burst-" in lines[0]
    assert len(lines) <= 3, f"busy refusals must be logged rate-limited, got {len(lines)} lines"
    assert hub.requests.busy.total == seen.busy
    assert_retained_state_is_the_controllers(hub, broker.port)


def test_one_flooding_source_leaves_room_for_the_others(hub, broker):
    """The controller is held while one script floods 2,500 requests: once the queue nears full,
    that source is answered busy, and a request from another source is still queued and executed."""
    topics = Topics(hub.settings.mqtt.base_topic)
    request = topics.set_request(hub.set_id)
    release, entered = threading.Event(), threading.Event()

    def held(_state) -> None:  # a controller stuck for a while (a slow disk)
        entered.set()
        release.wait(60)

    hub.add_state_listener(held)
    other = Probe(broker.port, f"{topics.base}/set/{hub.set_id}/response")
    try:
        with Collector(broker.port, topics, hub.set_id) as seen:
            threading.Thread(target=hub.submit, args=("standby", "test"), daemon=True).start()
            assert entered.wait(10)
            send(broker.port, request, seen, n=2500, clients=1, window=2500)  # all from source burst-0
            flood_busy = 2500 - (REQUEST_QUEUE - SOURCE_SHARE)
            assert seen.wait_answered(flood_busy, timeout=60), (seen.answered(), hub.worker.queued)
            assert seen.busy == flood_busy and seen.ok == 0
            assert "this source has" in seen.busy_sample["error"]
            other.publish(request, {"v": 1, "action": "idle", "source": "cart", "transaction": "cart-1"})
            release.set()
            answer = other.wait_for(lambda m: m.data is not None and m.data.get("transaction") == "cart-1",
                                          timeout=60).data
            assert answer["ok"] is True, answer
            assert seen.wait_answered(2500, timeout=60) and seen.twice() == 0
            assert seen.ok == REQUEST_QUEUE - SOURCE_SHARE + 1  # the queued part of the flood, and the cart
    finally:
        release.set()
        other.close()
    assert not hub.requests._waiting, "every queued request's slot is given back"
