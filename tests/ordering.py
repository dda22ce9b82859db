"""Longest test files first, from their measured durations, so the parallel workers end together.

Each run that selects whole files (no ``-m`` or ``-k``) records every file's wall time (the sum of its
tests' setup, call and teardown) in pytest's cache, and the next run starts the longest files first. A
fresh clone has no cache yet (CI always is one): it reads ``tests/durations.json`` instead, which
``script/test --record-durations`` rewrites from the run it ends. A file never measured goes last.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

SEED = Path(__file__).with_name("durations.json")
CACHE_KEY = "setbridge/durations"


def add_option(parser: pytest.Parser) -> None:
    parser.addoption("--record-durations", action="store_true",
                     help=f"write the measured seconds per test file to {SEED.name} (the order of a fresh clone)")


def known(config: pytest.Config) -> dict[str, float]:
    """Seconds per test file name: the last runs' (cache) over the committed seed's."""
    durations: dict[str, float] = {}
    if SEED.exists():
        durations.update(json.loads(SEED.read_text()))
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    if cache is not None:
        durations.update(cache.get(CACHE_KEY, {}))
    return durations


def order(config: pytest.Config, items: list[pytest.Item], scope: Callable[[str], str] = lambda name: name) -> None:
    """Sort ``items`` longest first (stable: each file stays whole and in its own order). Files that
    ``scope`` names alike run on one worker one after the other: they go by their total."""
    durations = known(config)
    totals: dict[str, float] = defaultdict(float)
    for name in {item.path.name for item in items}:
        totals[scope(name)] += durations.get(name, 0.0)
    items.sort(key=lambda item: (-totals[scope(item.path.name)], -durations.get(item.path.name, 0.0)))


class Recorder:
    """Sums each file's test durations over a run (the reports of every xdist worker reach it)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[Path(report.fspath).name] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if hasattr(self.config, "workerinput") or not self.seconds:
            return  # a worker: the controller records
        if self.config.option.markexpr or self.config.option.keyword:
            return  # a part of some files: their durations would mislead the next run
        measured = {name: round(s, 2) for name, s in self.seconds.items()}
        cache = getattr(self.config, "cache", None)
        if cache is not None:
            cache.set(CACHE_KEY, {**cache.get(CACHE_KEY, {}), **measured})
        if self.config.getoption("record_durations"):
            seed = json.loads(SEED.read_text()) if SEED.exists() else {}
            seed.update(measured)
            here = SEED.parent
            ordered = dict(sorted(((name, s) for name, s in seed.items() if (here / name).exists()),
                                  key=lambda kv: (-kv[1], kv[0])))
            SEED.write_text(json.dumps(ordered, indent=1) + "\n")


def register(config: pytest.Config) -> None:
    config.pluginmanager.register(Recorder(config), "setbridge-durations")
