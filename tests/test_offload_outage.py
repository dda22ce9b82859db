"""Nothing lost: with the broker down, reports journaled by the MHL watcher and by
``setbridge offload report --journal`` survive ``kill -9`` of the hub and arrive once, in order,
when the broker is back."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from helpers import HubProcess, Probe, make_settings, wait_until, write_config
from helpers.offload import CARD, make_card, seal

from setbridge.offload.journal import Journal
import test_state_file


def journaled(state_dir: Path) -> list[str]:
    """Event ids waiting in the hub's journal, oldest first."""
    if not (state_dir / "offload.sqlite3").exists():
        return []
    journal = Journal(state_dir, create=False)
    try:
        return [event.event_id for _, event in journal.pending()]
    finally:
        journal.close()


full_disk = test_state_file.full_disk
"""A real full tmpfs (the state file's fixture)."""


def cli_report(config: Path, roll: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "setbridge", "offload", "report", "--config", str(config),
                           "--roll", roll, "--status", "verified", "--timeout", "2", *extra],
                          capture_output=True, text=True, timeout=60)


def test_outage_with_hub_kill_loses_nothing_and_duplicates_nothing(own_broker, tmp_path):
    watch = tmp_path / "cards"
    watch.mkdir()
    settings = make_settings(own_broker, tmp_path / "state",
                             offload={"watch": [str(watch)], "poll_s": 0.1, "settle_s": 0.3})
    config = write_config(tmp_path / "setbridge.toml", settings)
    state = settings.hub.state_dir
    base = settings.mqtt.base_topic
    hub = HubProcess(config).start()
    try:
        before = Probe(own_broker.port, f"{base}/#")
        before.wait_for(lambda m: m.topic.endswith("/status") and m.data and m.data["state"] == "online", timeout=20)
        assert cli_report(config, "A000", "--event-id", "e0").returncode == 0
        before.wait_for(lambda m: m.topic.endswith("/offload/event") and m.data["event_id"] == "e0")
        before.close()

        own_broker.stop()
        down = cli_report(config, "A999")
        assert down.returncode == 1 and "cannot reach the MQTT broker" in down.stderr and down.stderr.count("\n") == 1

        raid = make_card(watch / "raid" / "A001R2EC", CARD)
        seal(raid)
        wait_until(lambda: len(journaled(state)) == 1, timeout=15, what="the watcher to journal A001R2EC on raid")
        assert cli_report(config, "A002", "--event-id", "e2", "--journal").returncode == 0
        hub.kill()  # kill -9 with two undelivered events

        shuttle = watch / "shuttle" / "A001R2EC"  # the second copy is sealed while the hub is dead
        shutil.copytree(raid, shuttle, ignore=shutil.ignore_patterns("ascmhl"))
        seal(shuttle)
        assert cli_report(config, "A003", "--event-id", "e3", "--journal").returncode == 0
        assert cli_report(config, "A002", "--event-id", "e2", "--journal").stdout.startswith("already accepted")
        hub.start()  # restarted during the outage: it catches up with the watch directory
        wait_until(lambda: len(journaled(state)) == 4, timeout=15, what="the restarted hub to journal the shuttle copy")
        hub.kill()
        expected = journaled(state)
        assert expected[1:3] == ["e2", "e3"], "journal order: raid copy, e2, e3, then the shuttle copy"

        own_broker.start()
        after = Probe(own_broker.port, f"{base}/#")
        hub.start()
        wait_until(lambda: journaled(state) == [], timeout=20, what="the journal to drain")
        after.wait_for(lambda m: m.topic.endswith("/offload/event") and m.data["event_id"] == expected[3], timeout=10)
        time.sleep(1.0)  # anything duplicated would arrive by now
        events = [msg.data for msg in after.seen if msg.topic.endswith("/offload/event")]
        assert [e["event_id"] for e in events] == expected, "every event once, in journal order"
        assert [e["roll"] for e in events] == ["A001R2EC", "A002", "A003", "A001R2EC"]
        assert events[0]["safe_to_wipe"] is False
        assert events[3]["copies"]["verified"] == 2 and events[3]["safe_to_wipe"] is True
        after.close()

        late = Probe(own_broker.port, f"{base}/offload/card/+")
        cards = {late.wait_for(lambda m, roll=roll: m.topic.endswith(f"/card/{roll}") and m.retained).data["event_id"]
                 for roll in ("A001R2EC", "A002", "A003")}
        assert cards == {expected[3], "e2", "e3"}
        late.close()
    finally:
        hub.kill()


def test_running_hub_delivers_the_journal_when_the_broker_returns(own_broker, tmp_path):
    from setbridge.hub import Hub
    from setbridge.offload.models import parse_report

    settings = make_settings(own_broker, tmp_path / "state")
    hub = Hub(settings)
    hub.start()
    try:
        assert hub.bus.wait_connected(5)
        own_broker.stop()
        wait_until(lambda: not hub.bus.connected.is_set(), timeout=15, what="the hub to notice the outage")
        outside = Journal(settings.hub.state_dir)  # as `setbridge offload report --journal` does
        for n in range(5):
            report = parse_report(f'{{"v": 1, "roll": "C00{n}", "status": "verified", "event_id": "c{n}"}}')
            outside.append(report, 2)
        outside.close()
        time.sleep(1.5)  # the hub polls the journal meanwhile and must not lose or reorder anything
        assert journaled(settings.hub.state_dir) == [f"c{n}" for n in range(5)]
        own_broker.start()
        wait_until(lambda: journaled(settings.hub.state_dir) == [], timeout=20, what="the journal to drain")
        late = Probe(own_broker.port, f"{settings.mqtt.base_topic}/offload/card/+")
        for n in range(5):
            message = late.wait_for(lambda m, n=n: m.topic.endswith(f"/card/C00{n}"))
            card, retained = message.data, message.retained
            assert retained and card["event_id"] == f"c{n}"
        late.close()
    finally:
        hub.stop()


def test_a_journal_that_cannot_record_a_delivery_publishes_the_event_once(own_broker, full_disk, caplog):
    """The disk fills between the broker's acknowledgement of an event and the journal's record of
    it: the event is not published again every second (nor a traceback logged), and the delivery
    is recorded once the disk has room."""
    import logging
    import os
    import signal

    from setbridge.hub import Hub

    mount, fill = full_disk
    settings = make_settings(own_broker, mount / "state", hub={"heartbeat_s": 0.1})
    config = write_config(mount.parent / "setbridge.toml", settings)
    base = settings.mqtt.base_topic
    probe = Probe(own_broker.port, f"{base}/#")
    caplog.set_level(logging.WARNING)
    hub = Hub(settings)
    hub.start()
    try:
        assert hub.bus.wait_connected(5)
        probe.wait_for(lambda m: m.topic.endswith("/hub/hub-t/status") and m.data and m.data["state"] == "online")
        assert own_broker.process is not None
        os.kill(own_broker.process.pid, signal.SIGSTOP)  # the broker holds its acknowledgements
        try:
            assert cli_report(config, "A010", "--event-id", "full-1", "--journal").returncode == 0
            wait_until(lambda: journaled(settings.hub.state_dir) == ["full-1"], what="the report in the journal")
            fill()
        finally:
            os.kill(own_broker.process.pid, signal.SIGCONT)
        probe.wait_for(lambda m: m.topic.endswith("/offload/event") and m.data["event_id"] == "full-1", timeout=15)
        status = probe.wait_for(lambda m: m.topic.endswith("/hub/hub-t/status") and m.data
                                      and m.data.get("offload") == "fault", timeout=15).data
        assert "could not write the offload journal" in status["offload_reason"]
        beats = len([1 for msg in probe.seen if msg.topic.endswith("/heartbeat")])
        probe.wait_for(lambda m: len([1 for msg in probe.seen if msg.topic.endswith("/heartbeat")]) > beats + 25,
                       timeout=20)  # 2.5 s of heartbeats: a second publish would have come by now
        for leftover in mount.glob("pad-*"):
            leftover.unlink()
        (mount / "filler").unlink()
        probe.wait_for(lambda m: m.topic.endswith("/hub/hub-t/status") and m.data and m.data.get("offload") == "ok", timeout=15)
        wait_until(lambda: journaled(settings.hub.state_dir) == [], what="the delivery to be recorded")
        events = [msg.data for msg in probe.seen if msg.topic.endswith("/offload/event") and msg.data["event_id"] == "full-1"]
        assert len(events) == 1, f"published {len(events)} times"
        assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"
    finally:
        hub.stop()
        probe.close()
