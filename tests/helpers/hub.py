"""Settings, configuration files and hubs (in this process or as a child process) for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import SecretStr

from helpers.probe import Probe
from setbridge.config import Settings, load_settings
from setbridge.hub import Hub
from setbridge.sim.broker import PrivateBroker


def make_settings(broker: PrivateBroker, state_dir: Path, **sections: dict) -> Settings:
    """Settings for a hub on ``broker`` under a base topic of its own, with ``sections`` on top."""
    data: dict[str, dict[str, Any]] = {
        "hub": {"id": "hub-t", "set": "stage-t", "state_dir": str(state_dir), "heartbeat_s": 0.2},
        "mqtt": {"port": broker.port, "host": "127.0.0.1", "base_topic": f"t{uuid.uuid4().hex[:10]}",
                 "reconnect_max_s": 1},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return load_settings(None, **data)


@contextmanager
def started_hub(settings: Settings) -> Iterator[Hub]:
    """The hub of ``settings``, started and connected, its subscriptions acknowledged by the broker (a
    message sent next cannot pass them by), stopped afterwards."""
    h = Hub(settings)
    h.start()
    try:
        assert h.bus.wait_connected(5) and h.bus.wait_subscribed(5)
        yield h
    finally:
        h.stop()


@contextmanager
def running_hub(broker: PrivateBroker, state_dir: Path, **sections: dict) -> Iterator[Hub]:
    """A connected hub on ``broker`` (for tests with a broker of their own), stopped afterwards."""
    with started_hub(make_settings(broker, state_dir, **sections)) as h:
        yield h


def wait_online(hub: Hub, timeout: float = 10) -> None:
    """Until the hub's birth is out: its subscriptions reached the broker before it."""
    status = Probe(hub.settings.mqtt.port, hub.topics.hub_status(hub.settings.hub.id))
    try:
        status.wait_for(lambda m: isinstance(m.data, dict) and m.data.get("state") == "online", timeout,
                        what=f"hub {hub.settings.hub.id} to say it is online")
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
