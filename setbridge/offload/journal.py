"""The offload journal: every accepted report, written to SQLite (WAL) before it is answered,
delivered to the broker from here in the journal's own order.

Several processes may share it (the hub, and ``setbridge offload report --journal`` on the same
machine); SQLite's locking keeps them apart. Writes are grouped: :meth:`Journal.batch` commits many
reports with one fsync, and :meth:`Journal.mark_delivered` marks many events in one commit.

The journal's ``seq`` is the one order of a card's history: an event's ``seq`` and ``ts`` come from
the journal, never from the sender.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import PayloadError
from .models import OffloadEvent, OffloadReport, content_digest, normalize, transfer_key
from .policy import in_doubt

log = logging.getLogger(__name__)

FILE_NAME = "offload.sqlite3"
APPLICATION_ID = 0x53424F4A
"""``PRAGMA application_id`` of an offload journal ("SBOJ"): a file without it is another program's."""
OWN_TABLES = frozenset({"events", "cards", "hedge_copies", "sqlite_sequence"})
LOCK_WAIT_S = 30.0
"""How long a writer waits for another SQLite writer's lock before giving up."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    roll TEXT NOT NULL,
    transfer_key TEXT NOT NULL DEFAULT '',
    ts REAL NOT NULL,
    payload TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    delivered_at REAL,
    digest TEXT
);
CREATE INDEX IF NOT EXISTS events_roll ON events (roll, seq);
CREATE INDEX IF NOT EXISTS events_transfer ON events (roll, transfer_key, seq);
CREATE INDEX IF NOT EXISTS events_pending ON events (delivered_at, seq);
CREATE TABLE IF NOT EXISTS cards (
    roll TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    first_at REAL NOT NULL,
    latest_seq INTEGER NOT NULL,
    latest_at REAL NOT NULL,
    cleared_seq INTEGER
);
CREATE INDEX IF NOT EXISTS cards_sender ON cards (sender, first_at);
CREATE TABLE IF NOT EXISTS hedge_copies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL
);
"""


class JournalError(Exception):
    """The journal cannot be used; ``str()`` is one line saying why and what to do."""


def _event(seq: int, payload: str) -> OffloadEvent:
    event = OffloadEvent.model_validate_json(payload)
    event.seq = seq  # journals from before seq was stored in the payload
    return event


DOUBT_DIGEST = "doubt"
"""The ``digest`` of an event the hub made itself (a card put in doubt): no report has this content."""


class EventIdConflict(Exception):
    """A report reuses an accepted ``event_id`` with different content; ``stored`` is the accepted event."""

    def __init__(self, stored: OffloadEvent):
        super().__init__(stored.event_id)
        self.stored = stored


class Tx:
    """The inside of one journal transaction (see :meth:`Journal.batch`)."""

    def __init__(self, db: sqlite3.Connection, new_cards_per_day: int | None = None):
        self._db = db
        self._n = 0
        self._next_seq: int | None = None
        self.new_cards_per_day = new_cards_per_day

    @contextmanager
    def item(self) -> Iterator[None]:
        """One input inside the batch: if it raises, only its own writes are undone."""
        self._n += 1
        name = f"item{self._n}"
        self._db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._db.execute(f"ROLLBACK TO {name}")
            self._db.execute(f"RELEASE {name}")
            raise
        self._db.execute(f"RELEASE {name}")

    def contains(self, event_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None

    def recall(self, event_id: str, digest: str, roll: str | None = None,
               status: str | None = None) -> OffloadEvent | None:
        """The event accepted under ``event_id`` if its content matches ``digest`` (a retry), None if the
        id is new; raise :class:`EventIdConflict` if it was accepted with other content. An event from a
        journal that kept no digest matches when its ``roll`` and ``status`` do."""
        row = self._db.execute("SELECT seq, payload, digest FROM events WHERE event_id = ?", (event_id,)).fetchone()
        if row is None:
            return None
        stored = _event(row[0], row[1])
        same = row[2] == digest if row[2] is not None else (roll is None or (roll, status) == (stored.roll, stored.status))
        if not same:
            raise EventIdConflict(stored)
        return stored

    def append(self, report: OffloadReport, copies_required: int, digest: str | None = None,
               recalled: bool = False) -> tuple[OffloadEvent, bool]:
        """Normalize and store ``report``: (event, True), or (stored event, False) for a known ``event_id``
        with the same content (``digest``, by default :func:`~.models.content_digest` of ``report``);
        raise :class:`EventIdConflict` for a known ``event_id`` with other content. ``recalled``: the
        caller has just found its ``event_id`` new with :meth:`recall`."""
        db = self._db
        digest = digest or content_digest(report)
        if report.event_id and not recalled:
            stored = self.recall(report.event_id, digest, report.roll, report.status)
            if stored is not None:
                return stored, False
        event_id = report.event_id or uuid.uuid4().hex
        row = db.execute("SELECT seq, payload FROM events WHERE roll = ? AND transfer_key = ? ORDER BY seq DESC LIMIT 1",
                         (report.roll, transfer_key(report, event_id))).fetchone()
        previous = _event(*row) if row else None
        now = time.time()
        sender = f"{report.source or '-'}:{report.host or '-'}"
        event = normalize(report.model_copy(update={"event_id": event_id}), copies_required, previous, ts=now)
        self._insert(event, digest, now, sender)
        return event, True

    def _new_card(self, roll: str, sender: str, seq: int, now: float) -> None:
        """Start card ``roll``; raise :class:`PayloadError` if ``sender`` started its day's share already
        (the item's savepoint then undoes its event too)."""
        limit = self.new_cards_per_day
        (started,) = self._db.execute("SELECT COUNT(*) FROM cards WHERE sender = ? AND first_at >= ?",
                                      (sender, now - 86400)).fetchone() if limit is not None else (0,)
        if limit is not None and started >= limit:
            raise PayloadError(f"limit: {sender} (source:host) started {started} new cards in the last 24 hours, "
                               f"the most [offload] cards_per_source_per_day allows; this new card was not kept "
                               "(reports about known cards still pass): check the sender, or raise the limit")
        self._db.execute("INSERT INTO cards (roll, sender, first_at, latest_seq, latest_at) VALUES (?, ?, ?, ?, ?)",
                         (roll, sender, now, seq, now))

    def doubt(self, roll: str, reason: str, source: str | None) -> OffloadEvent | None:
        """Put ``roll`` in doubt: a new event, its latest one with ``reason`` added to ``why_not_safe``
        (so never safe to wipe); None when the journal knows no such card or it already says so."""
        row = self._db.execute("SELECT seq, payload FROM events WHERE roll = ? ORDER BY seq DESC LIMIT 1",
                               (roll,)).fetchone()
        if row is None:
            return None
        now = time.time()
        event = in_doubt(_event(*row), reason, source, now)
        if event is None:
            return None
        self._insert(event, DOUBT_DIGEST, now, f"{source or '-'}:-")
        return event

    def _insert(self, event: OffloadEvent, digest: str, now: float, sender: str) -> None:
        db = self._db
        # the next sequence number, known inside this write transaction (which holds the write
        # lock), so the stored payload carries it; an item rolled back leaves a gap, never a repeat
        if self._next_seq is None:
            (self._next_seq,) = db.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), "
                "COALESCE((SELECT MAX(seq) FROM events), 0)) + 1").fetchone()
        seq = self._next_seq
        self._next_seq += 1
        event.seq = seq
        db.execute("INSERT INTO events (seq, event_id, roll, transfer_key, ts, payload, accepted_at, digest) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (seq, event.event_id, event.roll, event.transfer_key, event.ts, event.to_bytes().decode(), now,
                    digest))
        if not db.execute("UPDATE cards SET latest_seq = ?, latest_at = ? WHERE roll = ?", (seq, now, event.roll)).rowcount:
            self._new_card(event.roll, sender, seq, now)

    def add_hedge_copy(self, source: str, copy: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO hedge_copies (source, payload, received_at) VALUES (?, ?, ?)",
                         (source, json.dumps(copy), time.time()))

    def hedge_copies(self, source: str) -> list[dict[str, Any]]:
        """The Hedge copies held for ``source``, oldest first."""
        rows = self._db.execute("SELECT payload FROM hedge_copies WHERE source = ? ORDER BY id", (source,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def drop_hedge_copies(self, source: str) -> None:
        self._db.execute("DELETE FROM hedge_copies WHERE source = ?", (source,))


class Journal:
    """``<state_dir>/offload.sqlite3``. Thread-safe (one connection behind a lock).

    ``create=False`` opens an existing journal only (``offload list``); any journal that cannot be
    read raises :class:`JournalError` with a one-line reason.
    """

    def __init__(self, state_dir: Path, create: bool = True, new_cards_per_day: int | None = None):
        self.path = Path(state_dir) / FILE_NAME
        self.new_cards_per_day = new_cards_per_day
        """New cards one sender may start in 24 hours (``[offload] cards_per_source_per_day``); None: any."""
        if not create and not self.path.exists():
            raise JournalError(f"no offload journal at {self.path}")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=LOCK_WAIT_S, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the offload journal {self.path}: {_reason(exc)}") from None
        try:
            _claim(self._db, self.path, create)
        except ForeignJournal:
            self._db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise CorruptJournal(f"the offload journal {self.path} is unreadable: {_reason(exc)}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if create:
                self._db.executescript(_SCHEMA)
            _check(self._db)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise CorruptJournal(f"the offload journal {self.path} is unreadable: {_reason(exc)}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ----------------------------------------------------------------------------
    @contextmanager
    def batch(self) -> Iterator[Tx]:
        """One transaction (one fsync) for many inputs; everything in it is committed or nothing."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(db, self.new_cards_per_day)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def append(self, report: OffloadReport, copies_required: int) -> tuple[OffloadEvent, bool]:
        """Store one report in a transaction of its own (see :meth:`Tx.append`)."""
        with self.batch() as tx:
            return tx.append(report, copies_required)

    def contains(self, event_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None

    def pending_raw(self, limit: int = 100) -> list[tuple[int, str, float, bytes]]:
        """Undelivered events as stored, oldest first: (seq, roll, ts, payload JSON)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, roll, ts, payload FROM events WHERE delivered_at IS NULL "
                                    "ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [(seq, roll, ts, payload.encode() if '"seq":' in payload else _event(seq, payload).to_bytes())
                for seq, roll, ts, payload in rows]

    def pending(self, limit: int = 100) -> list[tuple[int, OffloadEvent]]:
        """Undelivered events, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, payload FROM events WHERE delivered_at IS NULL ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()
        return [(seq, _event(seq, payload)) for seq, payload in rows]

    def mark_delivered(self, seqs: list[int] | int) -> None:
        """Mark events delivered, all in one commit."""
        seqs = [seqs] if isinstance(seqs, int) else seqs
        now = time.time()
        with self.batch():
            self._db.executemany("UPDATE events SET delivered_at = ? WHERE seq = ?", [(now, s) for s in seqs])

    def to_clear(self, max_cards: int, max_age_s: float, limit: int = 256) -> list[tuple[str, int]]:
        """Delivered cards whose retained message must go, as (roll, latest seq): those without an event
        for ``max_age_s``, and those beyond the newest ``max_cards`` (by their latest event)."""
        cutoff = time.time() - max_age_s
        with self._lock:
            rows = self._db.execute(
                "WITH shown AS (SELECT roll, latest_seq, latest_at FROM cards "
                "               WHERE cleared_seq IS NULL OR cleared_seq < latest_seq), "
                "kept AS (SELECT roll FROM shown ORDER BY latest_seq DESC LIMIT ?) "
                "SELECT s.roll, s.latest_seq FROM shown s JOIN events e ON e.seq = s.latest_seq "
                "WHERE e.delivered_at IS NOT NULL AND (s.latest_at < ? OR s.roll NOT IN kept) "
                "ORDER BY s.latest_seq LIMIT ?", (max_cards, cutoff, limit)).fetchall()
        return [(roll, seq) for roll, seq in rows]

    def mark_cleared(self, cleared: list[tuple[str, int]]) -> None:
        """Record that these cards' retained messages were cleared (a newer event shows the card again)."""
        with self.batch():
            self._db.executemany("UPDATE cards SET cleared_seq = ? WHERE roll = ? AND latest_seq = ?",
                                 [(seq, roll, seq) for roll, seq in cleared])

    def prune(self, keep_days: float) -> int:
        """Forget delivered events older than ``keep_days``, except each card's latest; returns how many."""
        cutoff = time.time() - keep_days * 86400
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM events WHERE delivered_at IS NOT NULL AND accepted_at < ? "
                "AND seq NOT IN (SELECT MAX(seq) FROM events GROUP BY roll)", (cutoff,))
            self._db.execute("DELETE FROM hedge_copies WHERE received_at < ?", (cutoff,))
            return cur.rowcount

    # -- reading ------------------------------------------------------------------------------
    def cards(self, day: date | None = None) -> list[tuple[OffloadEvent, bool]]:
        """Each card's latest event (by ``seq``) as it stood at the end of ``day`` (local time,
        default today), for the cards with an event that day; with whether it was delivered; in
        journal order."""
        day = day or date.today()
        start = datetime.combine(day, datetime.min.time()).timestamp()
        end = datetime.combine(day + timedelta(days=1), datetime.min.time()).timestamp()
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT e.seq, e.payload, e.delivered_at FROM events e JOIN "
                    "(SELECT roll, MAX(seq) AS seq FROM events WHERE accepted_at < ? GROUP BY roll "
                    " HAVING MAX(accepted_at) >= ?) latest ON latest.seq = e.seq ORDER BY e.seq",
                    (end, start)).fetchall()
            return [(_event(seq, p), d is not None) for seq, p, d in rows]
        except sqlite3.DatabaseError as exc:
            raise CorruptJournal(f"the offload journal {self.path} is unreadable: {_reason(exc)}") from None

    def latest(self) -> dict[str, OffloadEvent]:
        """Every card's latest event by ``seq`` (what the retained cards show once delivered)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, payload FROM events WHERE seq IN "
                                    "(SELECT MAX(seq) FROM events GROUP BY roll)").fetchall()
        return {e.roll: e for e in (_event(seq, p) for seq, p in rows)}


class CorruptJournal(JournalError):
    """The file is there but is not a readable journal (corrupt, truncated, another file)."""


class ForeignJournal(JournalError):
    """The file is another program's SQLite database: refused, never written into nor moved."""


def _claim(db: sqlite3.Connection, path: Path, create: bool) -> None:
    """Raise :class:`ForeignJournal` unless ``db`` is an offload journal (marked by :data:`APPLICATION_ID`),
    a journal from before the mark, or empty; mark it when ``create``. Reads only until it is sure."""
    (app_id,) = db.execute("PRAGMA application_id").fetchone()
    if app_id == APPLICATION_ID:
        return
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    older_journal = "events" in tables and tables <= OWN_TABLES and {"seq", "event_id", "roll", "payload"} <= columns
    if app_id == 0 and (not tables or older_journal):
        if create:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        return
    (version,) = db.execute("PRAGMA user_version").fetchone()
    listed = ", ".join(sorted(tables)[:4]) + (", ..." if len(tables) > 4 else "")
    raise ForeignJournal(f"{path} is another program's SQLite database (application_id {app_id:#x}, user_version "
                         f"{version}, tables: {listed or 'none'}), not an offload journal; it was left untouched "
                         "(move it away)")


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def _check(db: sqlite3.Connection) -> None:
    """Raise :class:`sqlite3.DatabaseError` unless ``db`` is a readable journal."""
    result = db.execute("PRAGMA quick_check").fetchone()
    if not result or result[0] != "ok":
        raise sqlite3.DatabaseError(f"integrity check failed ({(result or ['?'])[0]})")
    columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    if columns and "transfer_key" not in columns:  # a journal from before transfers were keyed
        db.execute("ALTER TABLE events ADD COLUMN transfer_key TEXT NOT NULL DEFAULT ''")
        db.execute("CREATE INDEX IF NOT EXISTS events_transfer ON events (roll, transfer_key, seq)")
    if columns and "digest" not in columns:  # a journal from before contents were compared
        db.execute("ALTER TABLE events ADD COLUMN digest TEXT")
    has_cards = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cards'").fetchone()
    if columns and has_cards and db.execute("SELECT 1 FROM events LIMIT 1").fetchone() and \
            not db.execute("SELECT 1 FROM cards LIMIT 1").fetchone():  # a journal from before cards were bounded
        db.execute("INSERT INTO cards (roll, sender, first_at, latest_seq, latest_at) "
                   "SELECT roll, '-:-', MIN(accepted_at), MAX(seq), MAX(accepted_at) FROM events GROUP BY roll")


def open_or_recover(state_dir: Path, new_cards_per_day: int | None = None) -> tuple[Journal, str | None]:
    """The hub's journal; a corrupt one is moved aside (never deleted) and a new one started.

    Returns (journal, note): ``note`` says what was moved where. Raises :class:`JournalError`
    when no journal can be opened at all (then offload is at fault; the rest of the hub runs).
    """
    try:
        return Journal(state_dir, new_cards_per_day=new_cards_per_day), None
    except CorruptJournal as exc:
        path = Path(state_dir) / FILE_NAME
        aside = path.with_name(f"{FILE_NAME}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            for suffix in ("", "-wal", "-shm"):
                part = Path(str(path) + suffix)
                if part.exists():
                    os.replace(part, Path(str(aside) + suffix))
        except OSError as move:
            raise JournalError(f"{exc}; it could not be moved aside ({_reason(move)})") from None
        journal = Journal(state_dir, new_cards_per_day=new_cards_per_day)
        note = f"{exc}; moved it aside to {aside.name} and started a new journal (earlier cards are in that file)"
        log.error("offload: %s", note)
        return journal, note

