"""Shared fixtures (a real Mosquitto broker, settings pointing at it, a hub, probes) and the hooks that
order and tier the tests. Helpers the tests import live in ``tests/helpers/``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ordering
import pytest
import tiers
from helpers import HubProcess, Probe, make_settings, on, write_config

from setbridge.config import Settings
from setbridge.hub import Hub
from setbridge.sim.broker import PrivateBroker
from setbridge.topics import Topics
from tiers import pytest_runtest_protocol as pytest_runtest_protocol  # the unit tier starts no process

# Compile once: Python keeps bytecode and pytest its rewritten test modules in __pycache__ (ignored
# by git), so the workers and every hub or command a test starts need not compile them again, also
# where PYTHONDONTWRITEBYTECODE is set.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

SHARED_WORKER = {name: "the tests that load the Korean Vosk model" for name in
                 ("test_hub_voice.py", "test_speech.py", "test_audio.py", "test_capture.py")}
"""Files that run on one worker, one after the other: loading the model costs 1.5 s of CPU, and
``load_model`` keeps each model it loaded for the rest of the process. ``test_hub_timecode.py``, which
loads it too, runs apart: its WAVs play in real time (about 25 s), and after the others (about 20 s)
on the same worker it would end the whole run last."""


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """One file per worker at a time (``--dist loadfile``), the files of ``SHARED_WORKER`` as one."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return SHARED_WORKER.get(Path(file).name, file)

    return Scheduling(config, log)


def pytest_addoption(parser: pytest.Parser) -> None:
    ordering.add_option(parser)


def pytest_configure(config: pytest.Config) -> None:
    ordering.register(config)
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # xdist would order files by test count instead


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers given here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tiers.mark(items)
    # longest first (measured), so that the workers end together
    ordering.order(config, items, scope=lambda name: SHARED_WORKER.get(name, name))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for the tests of one module (skipped where Chromium is not installed)."""
    from helpers.browser import chromium

    with chromium() as driver:
        yield driver


@pytest.fixture
def factory() -> Iterator[Any]:
    """gpiozero's MockFactory in place of the GPIO header for this test (a pin is driven with
    ``factory.pin(N).drive_low()``), reset afterwards."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = None


@pytest.fixture(scope="session")
def broker() -> Iterator[PrivateBroker]:
    """One real mosquitto for the session; tests isolate themselves by base topic."""
    with PrivateBroker() as b:
        yield b


@pytest.fixture
def own_broker() -> Iterator[PrivateBroker]:
    """A mosquitto of the test's own, for tests that stop or restart it."""
    with PrivateBroker() as b:
        yield b


@pytest.fixture
def settings(broker: PrivateBroker, tmp_path: Path) -> Settings:
    return make_settings(broker, tmp_path / "state")


@pytest.fixture
def topics(settings: Settings) -> Topics:
    return Topics(settings.mqtt.base_topic)


@pytest.fixture
def hub(settings: Settings, broker: PrivateBroker) -> Iterator[Hub]:
    """A started hub whose birth has reached the broker."""
    h = Hub(settings)
    h.start()
    assert h.bus.wait_connected(5)
    watcher = Probe(broker.port, Topics(settings.mqtt.base_topic).hub_status(settings.hub.id))
    watcher.wait_for(on("/status", state="online"), what="the hub to say it is online")
    watcher.close()
    yield h
    h.stop()


@pytest.fixture
def hub_process(settings: Settings, tmp_path: Path) -> Iterator[HubProcess]:
    hp = HubProcess(write_config(tmp_path / "setbridge.toml", settings))
    yield hp
    hp.kill()


@pytest.fixture
def probe_factory(broker: PrivateBroker) -> Iterator[Callable[..., Probe]]:
    probes: list[Probe] = []

    def make(*filters: str, port: int | None = None, **options: Any) -> Probe:
        p = Probe(port or broker.port, *filters, **options)
        probes.append(p)
        return p

    yield make
    for p in probes:
        p.close()
