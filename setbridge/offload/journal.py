"""The offload journal: every accepted report, written to SQLite (WAL) before it is acknowledged,
delivered to the broker from here in order, once.

Several processes may share it (the hub, and ``setbridge offload report --journal`` on the same
machine); SQLite's locking keeps them apart.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from .models import OffloadEvent, OffloadReport, normalize

FILE_NAME = "offload.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    roll TEXT NOT NULL,
    ts REAL NOT NULL,
    payload TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS events_roll ON events (roll, seq);
CREATE INDEX IF NOT EXISTS events_pending ON events (delivered_at, seq);
CREATE TABLE IF NOT EXISTS hedge_copies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""


class Journal:
    """``<state_dir>/offload.sqlite3``. Thread-safe; every write is committed (fsync) before returning."""

    def __init__(self, state_dir: Path, create: bool = True):
        self.path = Path(state_dir) / FILE_NAME
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise FileNotFoundError(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        if create:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ----------------------------------------------------------------------------
    def append(self, report: OffloadReport, copies_required: int,
               hedge_source: str | None = None) -> tuple[OffloadEvent, bool]:
        """Normalize and store ``report``; returns (event, True), or (stored event, False) for a
        known ``event_id``. ``hedge_source``: the Hedge copies of that source are consumed with it."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if report.event_id:
                    row = db.execute("SELECT payload FROM events WHERE event_id = ?", (report.event_id,)).fetchone()
                    if row:
                        db.execute("ROLLBACK")
                        return OffloadEvent.model_validate_json(row[0]), False
                row = db.execute("SELECT payload FROM events WHERE roll = ? ORDER BY seq DESC LIMIT 1",
                                 (report.roll,)).fetchone()
                previous = OffloadEvent.model_validate_json(row[0]) if row else None
                event = normalize(report, copies_required, previous)
                db.execute("INSERT INTO events (event_id, roll, ts, payload, accepted_at) VALUES (?, ?, ?, ?, ?)",
                           (event.event_id, event.roll, event.ts, event.model_dump_json(exclude_none=True), time.time()))
                if hedge_source is not None:
                    db.execute("DELETE FROM hedge_copies WHERE source = ?", (hedge_source,))
                db.execute("COMMIT")
                return event, True
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def contains(self, event_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None

    def pending(self, limit: int = 100) -> list[tuple[int, OffloadEvent]]:
        """Undelivered events, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, payload FROM events WHERE delivered_at IS NULL ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()
        return [(seq, OffloadEvent.model_validate_json(payload)) for seq, payload in rows]

    def mark_delivered(self, seq: int) -> None:
        with self._lock:
            self._db.execute("UPDATE events SET delivered_at = ? WHERE seq = ?", (time.time(), seq))

    def prune(self, keep_days: float) -> int:
        """Forget delivered events older than ``keep_days``, except each card's latest; returns how many."""
        cutoff = time.time() - keep_days * 86400
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM events WHERE delivered_at IS NOT NULL AND accepted_at < ? "
                "AND seq NOT IN (SELECT MAX(seq) FROM events GROUP BY roll)", (cutoff,))
            self._db.execute("DELETE FROM hedge_copies WHERE received_at < ?", (cutoff,))
            return cur.rowcount

    # -- Hedge copy events waiting for their source's DiskIdle --------------------------------
    def add_hedge_copy(self, source: str, copy: dict) -> None:
        with self._lock:
            self._db.execute("INSERT INTO hedge_copies (source, payload, received_at) VALUES (?, ?, ?)",
                             (source, json.dumps(copy), time.time()))

    def hedge_copies(self, source: str) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT payload FROM hedge_copies WHERE source = ? ORDER BY id", (source,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    # -- reading ------------------------------------------------------------------------------
    def cards(self, day: date | None = None) -> list[tuple[OffloadEvent, bool]]:
        """The latest event of every card with an event on ``day`` (local time, default today),
        with whether it has been delivered; ordered by time."""
        day = day or date.today()
        start = datetime.combine(day, datetime.min.time()).timestamp()
        end = datetime.combine(day + timedelta(days=1), datetime.min.time()).timestamp()
        with self._lock:
            rows = self._db.execute(
                "SELECT payload, delivered_at FROM events WHERE seq IN "
                "(SELECT MAX(seq) FROM events WHERE ts >= ? AND ts < ? GROUP BY roll) ORDER BY seq",
                (start, end)).fetchall()
        return [(OffloadEvent.model_validate_json(p), d is not None) for p, d in rows]
