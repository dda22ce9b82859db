"""The order of the test files: longest first, from the durations the last run measured."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ordering
import pytest


class Cache:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def config(record: bool = False, markexpr: str = "") -> Any:
    return SimpleNamespace(cache=Cache(), option=SimpleNamespace(markexpr=markexpr, keyword=""),
                           getoption=lambda name: record)


def items(*files: str) -> list[Any]:
    return [SimpleNamespace(path=Path(f), n=i) for f in files for i in range(2)]


@pytest.fixture
def seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "durations.json"
    monkeypatch.setattr(ordering, "SEED", path)
    return path


def test_the_longest_files_go_first_whole_and_unmeasured_ones_last(seed: Path) -> None:
    seed.write_text(json.dumps({"test_a.py": 1.0, "test_b.py": 9.0, "test_c.py": 3.0}))
    cfg = config()
    cfg.cache.set(ordering.CACHE_KEY, {"test_a.py": 20.0})  # the last run's measure wins over the seed
    run = items("test_new.py", "test_a.py", "test_b.py", "test_c.py")
    ordering.order(cfg, run)
    assert [(i.path.name, i.n) for i in run] == [("test_a.py", 0), ("test_a.py", 1), ("test_b.py", 0),
                                                  ("test_b.py", 1), ("test_c.py", 0), ("test_c.py", 1),
                                                  ("test_new.py", 0), ("test_new.py", 1)]


def test_files_that_share_a_worker_go_by_their_total(seed: Path) -> None:
    seed.write_text(json.dumps({"test_a.py": 5.0, "test_b.py": 4.0, "test_c.py": 3.0}))
    run = items("test_a.py", "test_b.py", "test_c.py")
    ordering.order(config(), run, scope=lambda name: "model" if name in ("test_b.py", "test_c.py") else name)
    assert [i.path.name for i in run][::2] == ["test_b.py", "test_c.py", "test_a.py"]


def report(file: str, seconds: float) -> Any:
    return SimpleNamespace(fspath=f"tests/{file}", duration=seconds)


def test_a_run_records_each_files_time_for_the_next_and_the_seed_on_request(seed: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "test_a.py").touch()
    (tmp_path / "test_b.py").touch()
    seed.write_text(json.dumps({"test_b.py": 2.0, "test_gone.py": 7.0}))
    cfg = config(record=True)
    recorder = ordering.Recorder(cfg)
    for phase in (0.5, 3.0, 0.25):  # setup, call, teardown
        recorder.pytest_runtest_logreport(report("test_a.py", phase))
    recorder.pytest_sessionfinish(None, 0)
    assert cfg.cache.get(ordering.CACHE_KEY, {}) == {"test_a.py": 3.75}
    assert json.loads(seed.read_text()) == {"test_a.py": 3.75, "test_b.py": 2.0}  # a file since removed is dropped


def test_a_run_of_part_of_the_files_tests_records_nothing(seed: Path) -> None:
    cfg = config(record=True, markexpr="unit")
    recorder = ordering.Recorder(cfg)
    recorder.pytest_runtest_logreport(report("test_a.py", 1.0))
    recorder.pytest_sessionfinish(None, 0)
    assert cfg.cache.values == {} and not seed.exists()
