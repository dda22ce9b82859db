"""Shared fixtures: a real Mosquitto broker, settings pointing at it, a hub, and a probe client."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import tiers
import tomli_w
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from setbridge.config import Settings, load_settings
from setbridge.sim.broker import PrivateBroker
from setbridge.hub import Hub
from setbridge.topics import Topics
from tiers import pytest_runtest_protocol as pytest_runtest_protocol  # the unit tier starts no process

# Compile once: Python keeps bytecode and pytest its rewritten test modules in __pycache__ (ignored
# by git), so the workers and every hub or command a test starts need not compile them again, also
# where PYTHONDONTWRITEBYTECODE is set.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

LONGEST_FIRST = [
    "test_lot.py", "test_hub_voice.py", "test_web_browser.py", "test_offload_relay.py", "test_status.py",
    "test_offload_journal.py", "test_web.py", "test_client_ids.py", "test_tls.py", "test_speech.py",
    "test_broker_limits.py", "test_liveness.py", "test_firmware.py", "test_watchdog.py",
    "test_offload_outage.py", "test_hub.py", "test_gpio.py", "test_brokers.py", "test_node_red.py",
    "test_capture.py", "test_cli.py",
]
"""The test files that take longest (measured wall time, longest first). They start first, so that
the parallel workers (``script/test``: one file per worker at a time) end together instead of one of
them running a long file alone at the end. A file not listed keeps its place after these."""


SHARED_WORKER = {name: "the tests that load the Korean Vosk model" for name in
                 ("test_hub_voice.py", "test_speech.py", "test_audio.py", "test_capture.py")}
"""Files that run on one worker, one after the other: loading the model costs seconds of CPU, and
``load_model`` keeps each model it loaded for the rest of the process."""


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


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False  # xdist would order files by test count instead


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers given here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tiers.mark(items)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file stays whole


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


def make_settings(broker: PrivateBroker, state_dir: Path, **sections: dict) -> Settings:
    data = {
        "hub": {"id": "hub-t", "set": "stage-t", "state_dir": str(state_dir), "heartbeat_s": 0.2},
        "mqtt": {"port": broker.port, "host": "127.0.0.1", "base_topic": f"t{uuid.uuid4().hex[:10]}",
                 "reconnect_max_s": 1},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return load_settings(None, **data)


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
    watcher.wait_for(lambda t, d, r: d is not None and d.get("state") == "online")
    watcher.close()
    yield h
    h.stop()


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "the condition") -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


@contextmanager
def running_hub(broker: PrivateBroker, state_dir: Path, **sections: dict) -> Iterator[Hub]:
    """A connected hub on ``broker`` (for tests with a broker of their own), stopped afterwards."""
    h = Hub(make_settings(broker, state_dir, **sections))
    h.start()
    try:
        assert h.bus.wait_connected(5)
        yield h
    finally:
        h.stop()


def wait_online(hub: Hub) -> None:
    """Until the hub's birth is out: its subscriptions reached the broker before it."""
    status = Probe(hub.settings.mqtt.port, hub.topics.hub_status(hub.settings.hub.id))
    try:
        status.wait_for(lambda t, d, r: d is not None and d.get("state") == "online", timeout=10)
    finally:
        status.close()


def _plain(value: Any) -> Any:
    """A settings value as TOML can hold it: secrets revealed, paths as strings, None left out."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_config(path: Path, settings: Settings, **sections: dict) -> Path:
    """Write every section of ``settings`` (plus ``sections`` on top) as a TOML file a subprocess
    loads to the same settings."""
    data = _plain(settings.model_dump())
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path.write_text(tomli_w.dumps(data))
    return path


class HubProcess:
    """``setbridge hub`` as a real child process (for kill -9 and restarts)."""

    def __init__(self, config: Path, extra_env: dict[str, str] | None = None):
        self.config = config
        self.env = {**os.environ, **(extra_env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "HubProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config", str(self.config)],
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self) -> int:
        assert self.proc
        self.proc.terminate()
        return self.proc.wait(timeout=10)


@pytest.fixture
def hub_process(settings: Settings, tmp_path: Path) -> Iterator[HubProcess]:
    hp = HubProcess(write_config(tmp_path / "setbridge.toml", settings))
    yield hp
    hp.kill()


class Probe:
    """A real paho client that records every message under a filter, decoded as JSON."""

    def __init__(self, port: int, topic_filter: str):
        self.messages: "queue.Queue[tuple[str, dict | None, bool]]" = queue.Queue()
        self.seen: list[tuple[str, dict | None, bool]] = []
        self.qos: dict[str, int] = {}
        """Topic → the QoS its latest message arrived with."""
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, 1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(5), "probe could not subscribe"

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        try:
            data = json.loads(msg.payload)
        except ValueError:
            data = None
        item = (msg.topic, data, bool(msg.retain))
        with self._lock:
            self.qos[msg.topic] = msg.qos
            self.seen.append(item)
        self.messages.put(item)

    def wait_for(self, predicate: Callable[[str, dict | None, bool], bool], timeout: float = 5.0):
        """The first message (seen before or arriving later) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            with self._lock:
                pending = self.seen[checked:]
                checked = len(self.seen)
            for item in pending:
                if predicate(*item):
                    return item
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching message within {timeout} s; saw {self.seen[-10:]}")
            try:
                self.messages.get(timeout=min(left, 0.05))
            except queue.Empty:
                pass

    def publish(self, topic: str, payload: bytes | str | dict, retain: bool = False) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def probe_factory(broker: PrivateBroker) -> Iterator[Callable[..., Probe]]:
    probes: list[Probe] = []

    def make(topic_filter: str, port: int | None = None) -> Probe:
        p = Probe(port or broker.port, topic_filter)
        probes.append(p)
        return p

    yield make
    for p in probes:
        p.close()


def on(topic_end: str, **fields: object) -> Callable[[str, dict | None, bool], bool]:
    """A ``Probe.wait_for`` predicate: the topic ends with ``topic_end`` and carries ``fields``."""
    def match(topic: str, data: dict | None, retained: bool) -> bool:
        return topic.endswith(topic_end) and data is not None and all(data.get(k) == v for k, v in fields.items())
    return match
