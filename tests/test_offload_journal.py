"""A bad journal degrades offload only (issue cases 4 and the locked journal): corrupt, truncated,
foreign and unopenable journals, and a journal locked by another SQLite writer, against a real
hub on a real Mosquitto."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import Probe, make_settings, on, write_config
from helpers.hub import started_hub

from setbridge.hub import Hub
from setbridge.offload import relay
from setbridge.offload.journal import FILE_NAME, CorruptJournal, Journal, open_or_recover
from setbridge.offload.models import parse_report


def report(roll: str, event_id: str) -> dict:
    return {"v": 1, "roll": roll, "status": "verified", "event_id": event_id}


def list_cards(settings, tmp_path: Path) -> subprocess.CompletedProcess:
    config = write_config(tmp_path / f"list-{uuid.uuid4().hex[:6]}.toml", settings)
    return subprocess.run([sys.executable, "-m", "setbridge", "offload", "list", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


def roll_is_answered(probe, base: str, set_id: str) -> None:
    """Set state still works: a roll request is answered and the state goes rolling."""
    probe.wait_for(on("/status", state="online"), timeout=10)  # the hub's subscriptions are in place by then
    tx = uuid.uuid4().hex
    probe.publish(f"{base}/set/{set_id}/request", {"v": 1, "action": "roll", "transaction": tx})
    answer = probe.wait_for(on("/response", transaction=tx), timeout=10).data
    assert answer["ok"] is True
    probe.wait_for(on(f"/set/{set_id}/state", state="rolling"), timeout=10)


@contextmanager
def hub_and_probe(settings, probe_factory) -> Iterator[Probe]:
    """The hub of ``settings``, started and connected, and a probe on its whole base topic; the hub
    stops afterwards."""
    probe = probe_factory(f"{settings.mqtt.base_topic}/#")
    with started_hub(settings):
        yield probe


def a_journal_with_events(state: Path, n: int = 300) -> bytes:
    journal = Journal(state)
    with journal.batch() as tx:
        for i in range(n):
            tx.append(parse_report(f'{{"v": 1, "roll": "T{i:03d}", "status": "verified", "event_id": "t{i}"}}'), 2)
    journal.close()
    return (state / FILE_NAME).read_bytes()


def truncated(state: Path) -> bytes:
    data = a_journal_with_events(state)
    return data[: len(data) // 2]


BAD_JOURNALS = {
    "garbage": lambda state: uuid.uuid4().bytes * 512,
    "truncated": truncated,
    "another program's file": lambda state: b"\x89PNG\r\n\x1a\n" + b"\x00" * 4096,
}


@pytest.mark.parametrize("kind", list(BAD_JOURNALS))
def test_a_corrupt_journal_is_moved_aside_and_the_hub_keeps_the_set(kind, broker, tmp_path, probe_factory):
    state = tmp_path / "state"
    state.mkdir()
    bad = BAD_JOURNALS[kind](state)
    for part in state.glob(FILE_NAME + "*"):
        part.unlink()
    (state / FILE_NAME).write_bytes(bad)
    settings = make_settings(broker, state)
    listed = list_cards(settings, tmp_path)
    assert listed.returncode == 1 and listed.stderr.count("\n") == 1 and "Traceback" not in listed.stderr
    assert "unreadable" in listed.stderr and FILE_NAME in listed.stderr
    base = settings.mqtt.base_topic
    with hub_and_probe(settings, probe_factory) as probe:
        roll_is_answered(probe, base, settings.hub.set)
        probe.publish(f"{base}/offload/report", report("A001", "after-corruption"))
        probe.wait_for(on("/offload/event", event_id="after-corruption"), timeout=10)
        status = probe.wait_for(on(f"/hub/{settings.hub.id}/status", state="online")).data
        assert status["offload"] == "ok"
    aside = [p for p in state.iterdir() if p.name.startswith(FILE_NAME + ".corrupt-")]
    assert [p.read_bytes() for p in aside if not p.name.endswith(("-wal", "-shm"))] == [bad], "moved, never deleted"
    assert list_cards(settings, tmp_path).stdout.split("\n")[1].split()[2] == "A001"


def other_programs_database(path: Path, app_id: int, schema: str) -> bytes:
    db = sqlite3.connect(path)
    db.executescript(f"PRAGMA application_id = {app_id}; PRAGMA user_version = 7; {schema}")
    db.execute("INSERT INTO notes (body) VALUES ('keep me')") if "notes" in schema else None
    db.commit()
    db.close()
    return path.read_bytes()


@pytest.mark.parametrize("app_id, schema", [
    (0, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"),
    (0x4D6F7A21, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"),
    (0, "CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT); CREATE TABLE notes (id INTEGER, body TEXT);"),
    (0, ""),  # an empty file of another program's making is still a database of no one: taken
], ids=["plain", "marked", "events-table", "empty"])
def test_another_programs_database_is_refused_and_never_written_into(app_id, schema, broker, tmp_path,
                                                                     probe_factory):
    state = tmp_path / "state"
    state.mkdir()
    before = other_programs_database(state / FILE_NAME, app_id, schema)
    settings = make_settings(broker, state)
    base = settings.mqtt.base_topic
    with hub_and_probe(settings, probe_factory) as probe:
        roll_is_answered(probe, base, settings.hub.set)
        probe.publish(f"{base}/offload/report", report("A003", "into-foreign"))
        if not schema:
            probe.wait_for(on("/offload/event", event_id="into-foreign"), timeout=10)
            return
        status = probe.wait_for(on(f"/hub/{settings.hub.id}/status", offload="fault"), timeout=10).data
        reason = status["offload_reason"]
        assert "another program's SQLite database" in reason and "\n" not in reason and "untouched" in reason
        # refused at once, not when the hub next tries to open the journal (every REOPEN_S)
        error = probe.wait_for(on("/offload/error", event_id="into-foreign"), timeout=relay.REOPEN_S / 2).data
        assert "fault" in error["reason"]
    assert (state / FILE_NAME).read_bytes() == before, "never written into"
    assert not [p for p in state.iterdir() if ".corrupt-" in p.name], "never moved"
    listed = list_cards(settings, tmp_path)
    assert listed.returncode == 1 and listed.stderr.count("\n") == 1 and "another program" in listed.stderr


def test_a_journal_from_before_the_mark_is_taken_and_marked(tmp_path):
    state = tmp_path / "state"
    a_journal_with_events(state, n=3)
    db = sqlite3.connect(state / FILE_NAME)
    db.execute("PRAGMA application_id = 0")
    db.execute("DROP TABLE cards")  # as a journal from before cards were bounded
    db.commit()
    db.close()
    journal = Journal(state)
    assert len(journal.latest()) == 3
    journal.close()
    db = sqlite3.connect(state / FILE_NAME)
    assert db.execute("PRAGMA application_id").fetchone()[0] == 0x53424F4A
    assert db.execute("SELECT COUNT(*) FROM cards").fetchone()[0] == 3
    db.close()


def test_an_unopenable_journal_puts_offload_at_fault_until_it_can_be_opened(broker, tmp_path, probe_factory,
                                                                           monkeypatch):
    monkeypatch.setattr(relay, "REOPEN_S", 0.5)  # the hub tries again every 5 s; the test need not wait that long
    state = tmp_path / "state"
    (state / FILE_NAME).mkdir(parents=True)  # not a file at all: cannot be opened, nothing to move aside
    settings = make_settings(broker, state)
    base = settings.mqtt.base_topic
    with hub_and_probe(settings, probe_factory) as probe:
        status = probe.wait_for(on(f"/hub/{settings.hub.id}/status", offload="fault"), timeout=10).data
        reason = status["offload_reason"]
        assert FILE_NAME in reason and "\n" not in reason and status["state"] == "online"
        roll_is_answered(probe, base, settings.hub.set)
        probe.publish(f"{base}/offload/report", report("A002", "refused"))
        error = probe.wait_for(on("/offload/error", event_id="refused"), timeout=10).data
        assert "fault" in error["reason"] and "send it again" in error["reason"]
        listed = list_cards(settings, tmp_path)
        assert listed.returncode == 1 and listed.stderr.count("\n") == 1 and "Traceback" not in listed.stderr
        config = write_config(tmp_path / "status.toml", settings)
        health = subprocess.run([sys.executable, "-m", "setbridge", "status", "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
        assert f"hub {settings.hub.id}: online" in health.stdout and "offload fault" in health.stdout
        assert health.returncode == 8 and "offload: fault (" in health.stderr  # 8: offload fault (docs/deploy.md)
        statuses = probe_factory(f"{base}/hub/{settings.hub.id}/status")  # from the retained fault on
        statuses.wait_for(on("/status", offload="fault"))
        (state / FILE_NAME).rmdir()  # the operator fixes it; offload recovers by itself
        statuses.wait_for(on("/status", offload="ok"), timeout=20)
        probe.publish(f"{base}/offload/report", report("A002", "accepted"))
        probe.wait_for(on("/offload/event", event_id="accepted"), timeout=10)


def test_a_journal_locked_by_another_writer_never_freezes_heartbeats_or_state(broker, tmp_path, probe_factory):
    """Issue 10 case 3: with another SQLite writer holding the lock, the MQTT thread runs on."""
    settings = make_settings(broker, tmp_path / "state")
    base = settings.mqtt.base_topic
    with hub_and_probe(settings, probe_factory) as probe:
        probe.wait_for(on("/status", state="online"), timeout=10)
        probe.publish(f"{base}/offload/report", report("L000", "before-lock"))
        probe.wait_for(on("/offload/event", event_id="before-lock"), timeout=10)
        other = sqlite3.connect(settings.hub.state_dir / FILE_NAME, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the other writer holds the write lock from here
        released = threading.Event()
        try:
            probe.publish(f"{base}/offload/report", report("L001", "during-lock"))
            heartbeats_before = sum(1 for msg in probe.seen if msg.topic.endswith("/heartbeat"))
            roll_is_answered(probe, base, settings.hub.set)
            for n in range(5):  # heartbeats keep coming while the report waits for the lock
                probe.wait_for(lambda m, k=heartbeats_before + n: m.topic.endswith("/heartbeat")
                               and sum(1 for msg in probe.seen if msg.topic.endswith("/heartbeat")) > k, timeout=5)
            assert not [msg.data for msg in probe.seen if msg.topic.endswith("/offload/event") and msg.data["event_id"] == "during-lock"]
            assert not released.is_set()
        finally:
            other.execute("ROLLBACK")
            other.close()
            released.set()
        probe.wait_for(on("/offload/event", event_id="during-lock"), timeout=20)


def test_open_or_recover_keeps_a_good_journal_and_moves_a_bad_one(tmp_path):
    state = tmp_path / "state"
    a_journal_with_events(state, 3)
    journal, note = open_or_recover(state)
    assert note is None and len(journal.pending()) == 3
    journal.close()
    (state / FILE_NAME).write_bytes(b"not a journal" * 100)
    with pytest.raises(CorruptJournal):
        Journal(state, create=False)
    journal, note = open_or_recover(state)
    assert note and "moved it aside" in note and journal.pending() == []


def test_a_stopping_hub_journals_the_reports_it_has_queued(broker, tmp_path, probe_factory):
    """Reports waiting for a locked journal when the hub stops are journaled before it ends."""
    settings = make_settings(broker, tmp_path / "state")
    base = settings.mqtt.base_topic
    probe = probe_factory(f"{base}/#")
    hub = Hub(settings)
    hub.start()
    assert hub.bus.wait_connected(5)
    probe.wait_for(on("/status", state="online"), timeout=10)
    probe.publish(f"{base}/offload/report", report("S000", "s0"))
    probe.wait_for(on("/offload/event", event_id="s0"), timeout=10)
    other = sqlite3.connect(settings.hub.state_dir / FILE_NAME, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    for n in range(1, 4):
        probe.publish(f"{base}/offload/report", report(f"S00{n}", f"s{n}"))
    # a request after them: once the hub answers it, its network thread has handed the reports on
    probe.publish(f"{base}/set/{hub.set_id}/request", {"v": 1, "action": "jump", "transaction": "after-reports"})
    probe.wait_for(lambda m: m.topic.endswith("/response") and (m.data or {}).get("transaction") == "after-reports",
                   timeout=10)
    stopper = threading.Thread(target=hub.stop)
    stopper.start()
    other.execute("ROLLBACK")
    other.close()
    stopper.join(30)
    assert not stopper.is_alive()
    journal = Journal(settings.hub.state_dir, create=False)
    try:
        assert {e.event_id for _, e in journal.pending()} | {"s0"} >= {"s0", "s1", "s2", "s3"}
        assert [e.event_id for e, _ in journal.cards()][-3:] == ["s1", "s2", "s3"]
    finally:
        journal.close()
