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

    @property
    def recall(self) -> float:
        return self.hits / self.calls if self.calls else math.nan

    @property
    def false_per_hour(self) -> float:
        return len(self.false) / (self.audio_s / 3600) if self.audio_s else math.nan

    def latency_ms(self, q: float) -> float:
        lat = sorted(self.latencies)
        return 1000 * lat[min(len(lat) - 1, int(q * len(lat)))] if lat else math.nan

    def summary(self) -> dict[str, object]:
        def num(x: float, digits: int) -> float | None:
            return None if math.isnan(x) else round(x, digits)

        return {"calls": self.calls, "hits": self.hits, "recall": num(self.recall, 3),
                "hours": round(self.audio_s / 3600, 4), "false_triggers": len(self.false),
                "false_per_hour": num(self.false_per_hour, 2),
                "latency_p50_ms": num(self.latency_ms(0.5), 0), "latency_p95_ms": num(self.latency_ms(0.95), 0),
                "misses": [c.__dict__ for c in self.misses], "false": [f.__dict__ for f in self.false]}


def score(calls: list[Call], fired: list[Fired], audio_s: float) -> Report:
    """Match triggers to labelled calls, earliest first; what is left over is false."""
    report = Report(calls=len(calls), audio_s=audio_s)
    unused = sorted(fired, key=lambda f: (f.file, f.time))
    for call in sorted(calls, key=lambda c: (c.file, c.time)):
        match = next((f for f in unused if f.file == call.file and f.action == call.action
                      and call.time - EARLY_S <= f.time <= call.time + LATE_S), None)
        if match is None:
            report.misses.append(call)
            continue
        unused.remove(match)
        report.hits += 1
        report.latencies.append(match.time - call.time)
    report.false = unused
    return report
