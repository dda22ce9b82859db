"""Score the detector on a user's own labelled recordings (``setbridge detect --labels``).

A labels file is CSV with one call per line: the recording, the action called, and the time
(seconds from the start of the recording) at which the call ends::

    file,action,time
    day1_stage2.wav,roll,12.4
    day1_stage2.wav,cut,95.1

A recording given to ``detect`` with no line in the labels holds no call: every trigger in it
is a false trigger. A trigger matches a call of its action when it fires from ``EARLY_S`` before
the labelled end to ``LATE_S`` after it (a labeller's ear is not exact); latency is the trigger's
time minus the labelled end.

When the labels mark takes (a roll followed by a cut in the same recording), the report also
says what a set feels: false cuts inside takes (the doors go dark mid-take) per hour of takes,
the takes that went dark, and false rolls while idle per idle hour. Gated as the hub runs, the
set state is the labelled one, and around each call the detector's own (:func:`labelled_state`).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..actions import ACTIONS
from ..errors import SetbridgeError

EARLY_S = 1.0
"""A trigger may fire this long before the labelled end of its call (labelling slack)."""
LATE_S = 2.0
"""A trigger later than this after the labelled end is no longer that call's."""


class LabelsError(SetbridgeError):
    """A labels file cannot be read; the message names the file, the line and what to fix."""


@dataclass(frozen=True)
class Call:
    file: str
    action: str
    time: float
    """When the call ends (a labels file gives one time per call)."""
    start: float | None = None
    """When it begins, where the labels give a span (the benchmarks' corpora); None: at ``time``."""


@dataclass(frozen=True)
class Fired:
    file: str
    action: str
    time: float
    phrase: str = ""


def load_labels(path: Path) -> list[Call]:
    """Every call in the CSV file at ``path`` (a ``file,action,time`` header line is optional)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"{path}: cannot read the labels ({exc}); give a UTF-8 CSV file") from None
    calls = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and [c.lower() for c in cells[:3]] == ["file", "action", "time"]:
            continue
        where = f"{path} line {number}"
        if len(cells) != 3:
            raise LabelsError(f"{where}: expected 3 fields file,action,time, got {len(cells)}")
        name, action, when = cells
        if action not in ACTIONS:
            raise LabelsError(f"{where}: action {action!r} is not one of {', '.join(ACTIONS)}")
        try:
            seconds = float(when)
        except ValueError:
            raise LabelsError(f"{where}: time {when!r} is not a number of seconds from the start") from None
        if not math.isfinite(seconds) or seconds < 0:
            raise LabelsError(f"{where}: time {when!r} must be seconds from the start (0 or more)")
        calls.append(Call(name, action, seconds))
    return calls


def file_key(path: Path | str, names: set[str]) -> str:
    """The labels' name for a recording: the path as given when it is labelled so, else its file name."""
    return str(path) if str(path) in names else Path(path).name


@dataclass
class Report:
    """What ``detect --labels`` prints."""

    calls: int = 0
    hits: int = 0
    audio_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    misses: list[Call] = field(default_factory=list)
    false: list[Fired] = field(default_factory=list)

    takes: list[tuple[str, float, float]] = field(default_factory=list)
    """(file, roll, cut) of every labelled take: from a roll call to the next cut call."""

    @property
    def take_s(self) -> float:
        return sum(cut - roll for _file, roll, cut in self.takes)

    def _in_take(self, f: Fired) -> tuple[str, float, float] | None:
        return next((t for t in self.takes if t[0] == f.file and t[1] < f.time <= t[2]), None)

    @property
    def false_cuts_in_takes(self) -> list[Fired]:
        """False cuts that fired inside a labelled take."""
        return [f for f in self.false if f.action == "cut" and self._in_take(f) is not None]

    @property
    def dark_takes(self) -> int:
        """Takes with at least one false cut."""
        return len({self._in_take(f) for f in self.false_cuts_in_takes})

    @property
    def false_rolls_idle(self) -> list[Fired]:
        """False rolls outside every labelled take."""
        return [f for f in self.false if f.action == "roll" and self._in_take(f) is None]

    def false_cuts_per_take_hour(self) -> float:
        return len(self.false_cuts_in_takes) / (self.take_s / 3600) if self.take_s else math.nan

    def false_rolls_per_idle_hour(self) -> float:
        idle = self.audio_s - self.take_s
        return len(self.false_rolls_idle) / (idle / 3600) if self.takes and idle > 0 else math.nan

    @property
    def recall(self) -> float:
        return self.hits / self.calls if self.calls else math.nan

    @property
    def false_per_hour(self) -> float:
        return len(self.false) / (self.audio_s / 3600) if self.audio_s else math.nan

    def latency_ms(self, q: float) -> float:
        return latency_ms(self.latencies, q)

    def summary(self) -> dict[str, object]:
        def num(x: float, digits: int) -> float | None:
            return None if math.isnan(x) else round(x, digits)

        return {"calls": self.calls, "hits": self.hits, "recall": num(self.recall, 3),
                "hours": round(self.audio_s / 3600, 4), "false_triggers": len(self.false),
                "false_per_hour": num(self.false_per_hour, 2),
                "latency_p50_ms": num(self.latency_ms(0.5), 0), "latency_p95_ms": num(self.latency_ms(0.95), 0),
                "takes": len(self.takes), "take_hours": round(self.take_s / 3600, 4),
                "false_cuts_in_takes": len(self.false_cuts_in_takes),
                "false_cuts_per_take_hour": num(self.false_cuts_per_take_hour(), 2), "dark_takes": self.dark_takes,
                "false_rolls_idle": len(self.false_rolls_idle),
                "false_rolls_per_idle_hour": num(self.false_rolls_per_idle_hour(), 2),
                "misses": [{k: v for k, v in c.__dict__.items() if v is not None} for c in self.misses], "false": [f.__dict__ for f in self.false]}


def takes(calls: list[Call]) -> list[tuple[str, float, float]]:
    """(file, roll, cut) for every roll call followed by a cut call in the same recording."""
    out = []
    ordered = sorted(calls, key=lambda c: (c.file, c.time))
    for call, after in zip(ordered, ordered[1:]):
        if call.file == after.file and call.action == "roll" and after.action == "cut":
            out.append((call.file, call.time, after.time))
    return out


def labelled_state(calls: list[Call], at: float) -> str | None:
    """The set state at ``at`` s of a recording by its labelled calls: rolling after a roll, idle after
    a cut; ``None`` from ``EARLY_S`` before a call to ``LATE_S`` after it, where the detector's own
    triggers decide (gated as the hub runs, with a button or the recorder putting a missed call or
    a false trigger right by the end of that window)."""
    state = "idle"
    for call in sorted(calls, key=lambda c: c.time):
        if call.time - EARLY_S <= at <= call.time + LATE_S:
            return None
        if call.time < at and call.action in ("roll", "cut"):
            state = "rolling" if call.action == "roll" else "idle"
    return state


@dataclass
class Matched:
    """Triggers paired with the calls they answer; the rest are misses and false triggers."""

    pairs: list[tuple[Call, Fired]]
    misses: list[Call]
    false: list[Fired]

    @property
    def latencies(self) -> list[float]:
        """Seconds from each hit call's end to its trigger."""
        return [f.time - c.time for c, f in self.pairs]


def latency_ms(latencies: list[float], q: float) -> float:
    """The ``q`` quantile of ``latencies`` (s) in ms; NaN when there are none."""
    lat = sorted(latencies)
    return 1000 * lat[min(len(lat) - 1, int(q * len(lat)))] if lat else math.nan


def match(calls: list[Call], fired: list[Fired]) -> Matched:
    """The one matching rule of the field kit and the benchmarks: calls in order, each takes the
    earliest unused trigger of its action in its file up to ``LATE_S`` after the call ends, and from
    when it begins (a labelled span, exact) or ``EARLY_S`` before its one labelled time (slack for
    a time marked by hand)."""
    unused = sorted(fired, key=lambda f: (f.file, f.time))
    pairs, misses = [], []
    for call in sorted(calls, key=lambda c: (c.file, c.time)):
        begins = call.time - EARLY_S if call.start is None else call.start
        found = next((f for f in unused if f.file == call.file and f.action == call.action
                      and begins <= f.time <= call.time + LATE_S), None)
        if found is None:
            misses.append(call)
        else:
            unused.remove(found)
            pairs.append((call, found))
    return Matched(pairs, misses, unused)


def score(calls: list[Call], fired: list[Fired], audio_s: float) -> Report:
    """Match triggers to labelled calls (:func:`match`); what is left over is false."""
    matched = match(calls, fired)
    return Report(calls=len(calls), audio_s=audio_s, takes=takes(calls), hits=len(matched.pairs),
                  latencies=matched.latencies, misses=matched.misses, false=matched.false)
