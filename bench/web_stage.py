"""The stage the web benchmarks measure: an in-process hub, and ``setbridge web`` as a process of its
own (its config, its start and the wait until it serves)."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from setbridge.config import load_settings
from setbridge.hub import Hub


def start_hub(work: Path, set_id: str, broker_port: int) -> Hub:
    """A hub for ``set_id`` (id ``hub-b``, state in ``work/state``) on a base topic of its own, connected."""
    settings = load_settings(None, hub={"id": "hub-b", "set": set_id, "state_dir": str(work / "state"),
                                        "heartbeat_s": 1.0},
                             mqtt={"host": "127.0.0.1", "port": broker_port, "base_topic": f"bench{uuid.uuid4().hex[:6]}"})
    hub = Hub(settings)
    hub.start()
    assert hub.bus.wait_connected(5)
    return hub


def write_config(work: Path, set_id: str, broker_port: int, base: str, web_port: int, extra: str = "") -> Path:
    """``work/web.toml`` for a web process on ``web_port`` that reads the set from the broker; ``extra``
    is appended (TOML tables such as ``[web.users.ad]``)."""
    config = work / "web.toml"
    config.write_text(f'[hub]\nid = "hub-b"\nset = "{set_id}"\nstate_dir = "{work / "state"}"\n'
                      f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\nbase_topic = "{base}"\n'
                      f'[web]\nhost = "127.0.0.1"\nport = {web_port}\ndata_dir = "{work / "web"}"\n'
                      f'client_id = "bench-web"\n' + extra)
    return config


def start_web(config: Path, log: Path, nofile: int | None = None) -> subprocess.Popen[bytes]:
    """Start ``setbridge web`` with ``config`` (stderr to ``log``; ``nofile``: its open-file limit)."""

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    return subprocess.Popen([sys.executable, "-m", "setbridge", "web", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"), preexec_fn=limit_files)


def wait_serving(web: subprocess.Popen[bytes], port: int, timeout: float = 20) -> None:
    """Return once ``web`` accepts connections on ``port`` and has settled (its MQTT subscription in
    place); ends the benchmark if it exits or does not answer within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or web.poll() is not None:
                raise SystemExit("setbridge web did not start") from None
            time.sleep(0.05)
    time.sleep(1.5)
