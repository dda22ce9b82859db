"""How the benchmarks print what they measured: tables (one row per dict, columns right-aligned) and
the hub's own log lines about load."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def print_table(rows: list[dict[str, Any]], cols: list[str], fmt: dict[str, str] | None = None) -> None:
    """Print ``cols`` of ``rows`` under a header line; ``fmt`` maps a column to a format string
    (``"{:.1f}"``), the others print as ``str``."""
    fmt = fmt or {}
    cells = [[fmt.get(c, "{}").format(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


LOAD_WORDS = "late|busy|refused|shed|watchdog"
"""What the hub logs when load reaches it."""


def load_lines(log: Path, also: str = "") -> list[str]:
    """The lines of the hub's log ``log`` about load (``also``: more words, ``|``-separated)."""
    words = re.compile(LOAD_WORDS + (f"|{also}" if also else ""))
    return [line for line in log.read_text(errors="replace").splitlines() if words.search(line)]


def print_load_lines(lines: list[str], most: int, width: int) -> None:
    """The first ``most`` of ``lines``, each cut at ``width``, under a count."""
    print(f"\nthe hub's own log lines about load ({len(lines)}):")
    for line in lines[:most]:
        print("  " + line[:width])
