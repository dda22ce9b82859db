"""The unit tier (``script/test --unit``): tests that start no broker, hub, web server, browser or
MicroPython process and load no Vosk model, chosen without a list.

A test is in the tier (marker ``unit``, given here) unless it uses a fixture that starts a process
(``broker`` and the fixtures built on it, found through the fixtures each test requests) or is marked
``integration`` (a test, or a whole file with ``pytestmark``, that starts one itself, also through a
fixture of its own) or ``slow`` (it waits out a timeout of seconds). A test of the
tier that starts a process or loads a model anyway fails, in every run, saying how to move it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

PROCESS_FIXTURES = frozenset({"broker", "own_broker", "hub_process"})
"""Fixtures that start a process; every fixture and test that requests one (directly or through
another fixture, as ``settings`` and ``hub`` do) is outside the unit tier."""

MOVE_IT = ("a test of the unit tier (tests/tiers.py) {what}; mark it @pytest.mark.integration (or the "
           "file: pytestmark = pytest.mark.integration), or request a fixture that does it for it")


def mark(items: list[pytest.Item]) -> None:
    """Give ``unit`` to every collected test that needs no process."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        outside = item.get_closest_marker("integration") or item.get_closest_marker("slow")
        if outside is None and not fixtures & PROCESS_FIXTURES:
            item.add_marker(pytest.mark.unit)


class UnitTierBreach(AssertionError):
    """A unit-tier test started a process or loaded a model."""


SPAWNING = frozenset({"subprocess.Popen", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.exec", "os.system"})
"""Audit events (:func:`sys.addaudithook`) raised before Python starts another process."""
_forbidding = False
"""True while a unit-tier test runs (tests run one at a time in a worker)."""


def _no_process(event: str, args: tuple[Any, ...]) -> None:
    if _forbidding and event in SPAWNING:
        raise UnitTierBreach(MOVE_IT.format(what=f"starts a process ({event} {args[:2]!r})"))


sys.addaudithook(_no_process)  # an audit hook stays for the life of the process: it checks the flag


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """In a unit-tier test (its fixtures of every scope included), starting a process or loading a
    Vosk model fails the test."""
    global _forbidding
    if item.get_closest_marker("unit") is None:
        return (yield)
    with pytest.MonkeyPatch.context() as patch:
        _forbid_models(patch)
        _forbidding = True
        try:
            return (yield)
        finally:
            _forbidding = False


def _forbid_models(patch: pytest.MonkeyPatch) -> None:
    def no_model(*args: Any, **kwargs: Any) -> None:
        raise UnitTierBreach(MOVE_IT.format(what="loads a Vosk model"))

    import vosk

    # The module's name, not the class's __new__: a __new__ set on a class and then removed leaves
    # CPython calling object.__new__ with the arguments, so every later vosk.Model(path) would fail.
    patch.setattr(vosk, "Model", no_model)
