"""An offload flood never makes the set's requests wait or fail: the relay keeps at most a small
window of its publishes unacknowledged in the hub's send queue and sheds the rest of its answers
loudly (a ``shed:`` notice on ``{base}/offload/error``), so roll and cut are never answered busy
because of offload work (``bench/offload_flood.py`` measures the answer times)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import uuid

from helpers import Probe, make_settings, on, wait_until

from setbridge.hub import Hub
from setbridge.hub.requests import BACKLOG_BUSY
from setbridge.offload.journal import FILE_NAME
from setbridge.offload.relay import ANSWER_WINDOW, EVENT_WINDOW, OffloadRelay

FLOOD = 8000


def flood(port: int, topic: str, report: dict, n: int) -> None:
    """``n`` copies of ``report`` as fast as ``mosquitto_pub`` sends them (QoS 1), written compactly: other
    bytes than the first copy's, which the relay would know without its journal."""
    tool = shutil.which("mosquitto_pub")
    assert tool, "mosquitto_pub is needed (apt-get install mosquitto-clients)"
    line = json.dumps(report, separators=(",", ":")).encode() + b"\n"
    subprocess.run([tool, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-l", "-M", "1000",
                    "-i", f"flood-{uuid.uuid4().hex[:6]}"], input=line * n, check=True, timeout=60)


def test_a_flood_of_duplicate_reports_never_fills_the_hubs_send_queue(own_broker, tmp_path):
    """8,000 duplicates answered while the broker takes nothing: before, 8,000 answers waited in
    the hub's send queue, so the next roll was answered busy (or not at all); now at most the
    relay's windows wait, the rest is shed and said so once the broker is back."""
    settings = make_settings(own_broker, tmp_path / "state")
    base, set_id = settings.mqtt.base_topic, settings.hub.set
    probe = Probe(own_broker.port, f"{base}/#")
    hub = Hub(settings)
    hub.start()
    other = None
    try:
        assert hub.bus.wait_connected(5)
        probe.wait_for(on("/status", state="online"), timeout=10)
        relay = next(c for c in hub.components if isinstance(c, OffloadRelay))
        report = {"v": 1, "roll": "F001", "status": "verified", "event_id": "flood-1"}
        probe.publish(f"{base}/offload/report", report)
        probe.wait_for(on("/offload/event", event_id="flood-1"), timeout=10)
        other = sqlite3.connect(settings.hub.state_dir / FILE_NAME, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the reports wait in the hub's queue, unanswered
        flood(own_broker.port, f"{base}/offload/report", report, FLOOD)
        wait_until(lambda: relay.waiting >= FLOOD - settings.offload.journal_batch, timeout=30,
                   what="the flood in the relay's queue")
        assert own_broker.process is not None
        os.kill(own_broker.process.pid, signal.SIGSTOP)  # the broker takes nothing from here
        try:
            other.execute("ROLLBACK")
            other.close()
            other = None
            wait_until(lambda: relay.waiting == 0, timeout=60, what="the relay to answer every report")
            assert hub.bus.backlog <= ANSWER_WINDOW + EVENT_WINDOW + 10, (
                f"{hub.bus.backlog} offload answers wait in the hub's send queue (busy from {BACKLOG_BUSY})")
        finally:
            os.kill(own_broker.process.pid, signal.SIGCONT)
        tx = uuid.uuid4().hex
        probe.publish(f"{base}/set/{set_id}/request", {"v": 1, "action": "roll", "transaction": tx, "source": "ad"})
        answer = probe.wait_for(on(f"/set/{set_id}/response", transaction=tx), timeout=10).data
        assert answer["ok"] is True, answer
        notice = probe.wait_for(lambda m: m.topic.endswith("/offload/error") and m.data is not None
                                      and m.data["reason"].startswith("shed: "), timeout=10).data
        assert "duplicate" in notice["reason"] and f"{base}/offload/event" in notice["reason"]
        assert hub.bus.refused.total == 0
        assert relay.answers_shed >= FLOOD // 2  # counted (and in the hub's metrics), never dropped silently
    finally:
        if other is not None:
            other.execute("ROLLBACK")
            other.close()
        hub.stop()
        probe.close()
