"""The take log: every set event in SQLite, and the takes (roll → cut) read back from it.

The web process writes it from a persistent MQTT session (see :mod:`.feed`): the broker keeps
QoS 1 events for that session while the web process is down, and an event is acknowledged only
after it is committed here, so a restart of either the web process or the hub loses no take.
A redelivered event (same ``event_id``) is stored once.

>>> log = TakeLog(Path("takes.sqlite"))
>>> log.record("stage-a", event)           # a SetEvent
>>> log.takes(date.today())                # [Take(...), ...]
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sqlite3
import threading
from typing import Any
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import SetbridgeError
from ..escape import terminal
from ..messages import SetEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    set_id TEXT NOT NULL,
    type TEXT NOT NULL,
    changed INTEGER NOT NULL,
    state TEXT NOT NULL,
    cause TEXT NOT NULL,
    source TEXT,
    phrase TEXT,
    confidence REAL,
    txn TEXT,
    take INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 2), dt.date(9999, 12, 30)
"""The days a take log can hold: its times are Unix timestamps, and each day is read with its neighbours."""
ADDED_COLUMNS = {"timecode": "TEXT", "fps": "REAL", "overruled": "INTEGER"}
"""Columns added after the first schema (a log written before them gains them, empty)."""
ENDS = ("cut", "idle")
"""Actions that end a take (with post-roll, the take ends when the post-roll runs out)."""


@dataclass
class Trigger:
    """What made a roll or a cut: ``cause`` voice/request/button/restore, and its detail."""

    at: float
    cause: str
    phrase: str | None = None
    confidence: float | None = None
    source: str | None = None
    timecode: str | None = None
    fps: float | None = None

    def describe(self) -> str:
        if self.cause == "voice" and self.phrase:
            conf = f" ({self.confidence:.2f})" if self.confidence is not None else ""
            return f'voice "{self.phrase}"{conf}'
        if self.source:
            return f"{self.cause} from {self.source}"
        return self.cause


@dataclass
class Take:
    set_id: str
    take: int
    roll: Trigger | None
    """None when the log began after the roll (the web process was not yet running)."""
    cut: Trigger | None = None
    ended_at: float | None = None
    """When the set left rolling (after the post-roll); None while still rolling."""
    tc_in: str | None = None
    """The recorder's first code of the take (its start), else the code when the take rolled."""
    tc_out: str | None = None
    """The recorder's last code of the take (its stop), else the code when the take was cut."""
    fps: float | None = None

    @property
    def started(self) -> float:
        """When the take rolled (or, if the roll was not logged, when it was cut)."""
        return self.roll.at if self.roll else self.cut.at if self.cut else 0.0

    @property
    def duration_s(self) -> float | None:
        if self.roll is None or self.ended_at is None:
            return None
        return round(self.ended_at - self.roll.at, 3)


class TakeLog:
    """The SQLite file; safe to use from several threads (one connection, a lock)."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = path
        try:
            if readonly:
                if not path.is_file():
                    raise SetbridgeError(f"no take log at {path}; `setbridge web` writes it "
                                         "(check [web] data_dir and that the web service ran)")
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(SCHEMA)
                have = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
                for column, kind in ADDED_COLUMNS.items():
                    if column not in have:
                        self._db.execute(f"ALTER TABLE events ADD COLUMN {column} {kind}")
        except sqlite3.DatabaseError as exc:
            raise SetbridgeError(f"take log {path} is unreadable ({exc}); move it aside and restart "
                                 "`setbridge web` to start a new one") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(self, set_id: str, event: SetEvent) -> bool:
        """Store ``event`` (committed when this returns); False when its ``event_id`` is known."""
        row = (event.event_id, set_id, event.type, int(event.changed), event.state, event.cause, event.source,
               event.phrase, event.confidence, event.transaction, event.take, event.epoch, event.seq, event.ts,
               event.timecode, event.fps, int(bool(event.overruled)))
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO events (event_id, set_id, type, changed, state, cause, "
                                   "source, phrase, confidence, txn, take, epoch, seq, ts, timecode, fps, overruled) "
                                   "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
        return cur.rowcount == 1

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    def takes(self, day: dt.date, set_id: str | None = None) -> list[Take]:
        """The takes rolled on ``day`` (local time), in order; a take rolling past midnight
        belongs to the day it rolled. Raises ValueError (see :func:`day_problem`) for a day out of range."""
        if (problem := day_problem(day)) is not None:
            raise ValueError(problem)
        start = dt.datetime.combine(day, dt.time()).timestamp()
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()).timestamp()
        with self._lock:
            rows = self._db.execute(
                "SELECT set_id, type, changed, state, cause, source, phrase, confidence, take, ts, timecode, fps "
                "FROM events WHERE ts >= ? AND ts < ? AND NOT coalesce(overruled, 0) ORDER BY set_id, ts, epoch, seq", (start - 86400, end + 86400)).fetchall()
        takes = [t for t in _pair(rows) if start <= t.started < end and (set_id is None or t.set_id == set_id)]
        return sorted(takes, key=lambda t: t.started)


def day_problem(day: dt.date) -> str | None:
    """Why the take log cannot be read for ``day`` (one line), or None when it can."""
    if FIRST_DAY <= day <= LAST_DAY:
        return None
    return f"date {day.isoformat()} is out of range: choose a day from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"


def _pair(rows: list[tuple[Any, ...]]) -> list[Take]:
    """Walk each set's events in order: a changing roll opens a take, cut/idle marks the cut,
    leaving rolling closes it."""
    out: list[Take] = []
    open_take: dict[str, Take] = {}
    for set_id, kind, changed, state, cause, source, phrase, confidence, take_no, ts, timecode, fps in rows:
        trigger = Trigger(at=ts, cause=cause, phrase=phrase, confidence=confidence, source=source, timecode=timecode,
                          fps=fps)
        current = open_take.get(set_id)
        if kind == "roll" and changed and state == "rolling":
            current = open_take[set_id] = Take(set_id, take_no, trigger, tc_in=timecode, fps=fps)
            out.append(current)
            continue
        if current is None and kind in ENDS and state != "rolling" and changed:
            out.append(Take(set_id, take_no, None, trigger, ts, tc_out=timecode, fps=fps))  # rolled before the log
            continue
        if current is None:
            continue
        if cause == "timecode" and timecode:  # the recorder's own start and stop codes win
            if kind == "roll":
                current.tc_in, current.fps = timecode, fps
            elif kind in ENDS:
                current.tc_out, current.fps = timecode, fps or current.fps
        if kind in ENDS and current.cut is None:
            current.cut = trigger
            if current.tc_out is None or cause == "timecode":
                current.tc_out = timecode or current.tc_out
        if changed and state != "rolling":
            current.ended_at = ts
            if current.cut is None:
                current.cut = trigger  # ended by a restore or post-roll end without a cut seen
            del open_take[set_id]
    return out


CSV_FIELDS = ["set", "take", "rolled_at", "roll_by", "roll_phrase", "roll_confidence", "roll_source",
              "cut_at", "cut_by", "cut_phrase", "cut_confidence", "cut_source", "ended_at", "duration_s",
              "tc_in", "tc_out", "fps"]


def _iso(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds") if ts else ""


FORMULA_STARTS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
"""What makes a spreadsheet read a cell as a formula (OWASP's list, and the full-width forms some
spreadsheets read the same way); tab and CR before them never reach a cell (see :func:`_cell`)."""


def _cell(value: object) -> object:
    """A cell that is safe in a spreadsheet and on a terminal: control characters of a bus-supplied
    text written as visible escapes (as ``setbridge watch`` does), and a text a spreadsheet would run
    as a formula (also after leading spaces) prefixed with ``'``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    text = terminal(value)
    if text.lstrip(" ")[:1] in FORMULA_STARTS:
        return "'" + text
    return text


def to_csv(takes: list[Take]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for t in takes:
        r, c = t.roll, t.cut
        w.writerow([_cell(v) for v in (
            t.set_id, t.take, _iso(r.at if r else None), r.cause if r else None, r.phrase if r else None,
            r.confidence if r else None, r.source if r else None, _iso(c.at if c else None), c.cause if c else None,
            c.phrase if c else None, c.confidence if c else None, c.source if c else None, _iso(t.ended_at),
            t.duration_s, t.tc_in, t.tc_out, t.fps)])
    return buf.getvalue()


def as_dict(take: Take) -> dict[str, Any]:
    return {**asdict(take), "duration_s": take.duration_s}
