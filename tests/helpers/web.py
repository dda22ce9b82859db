"""Helpers for the web tests: ``setbridge web`` in a thread or as a real process, an event-stream
reader, and config files for both."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from sse_starlette.sse import AppStatus

from helpers.hub import make_settings
from setbridge.config import Settings
from setbridge.sim.broker import PrivateBroker, free_port
from setbridge.web.app import WebApp
from setbridge.web.passwords import hash_password

if TYPE_CHECKING:
    from setbridge.hub import Hub
    from setbridge.sim.lights import SimLight

PASSWORD = "a long test password"


@functools.cache
def password_hash() -> str:
    """The hash of ``PASSWORD`` (scrypt is slow by design: made once, when a test first needs it)."""
    return hash_password(PASSWORD)


def web_section(**extra: object) -> dict:
    """A ``[web]`` section with two users: ``ad`` (control) and ``viewer``."""
    users = {"ad": {"password_hash": password_hash(), "control": True}, "viewer": {"password_hash": password_hash()}}
    return {"host": "127.0.0.1", "users": users, "link_timeout_s": 1.0, "client_id": f"web-{uuid.uuid4().hex[:10]}",
            **extra}


@contextmanager
def serving(settings: Settings, subscribed: bool = True) -> Iterator[str]:
    """The board (``setbridge web``'s app) under uvicorn in a thread; yields its base URL once it serves and (with
    ``subscribed``) its MQTT subscriptions are acknowledged, so no message sent next passes it by."""
    port = free_port()
    web = WebApp(settings)
    server = uvicorn.Server(uvicorn.Config(web.app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="on", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the web server did not start"
        time.sleep(0.02)
    if subscribed:
        for bus in (web.feed.live, web.feed.control):
            assert bus is None or bus.wait_subscribed(10), "the web did not subscribe within 10 s"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        AppStatus.should_exit = True  # end the open event streams now (uvicorn's signal hook is not set in a thread)
        thread.join(10)
        AppStatus.should_exit = False


@contextmanager
def board_with_a_real_light(broker: PrivateBroker, tmp_path: Path, hub: Hub) -> Iterator[tuple[str, SimLight]]:
    """The board (``serving``) on the set of the ``hub`` fixture, with a real light ``door-1`` (the
    firmware under MicroPython) showing idle; yields the board's URL and the light."""
    from setbridge.commands.provision import light_config
    from setbridge.sim.lights import SimLight

    settings = make_settings(broker, tmp_path / "w", web=web_section(data_dir=str(tmp_path / "web")))
    settings.mqtt.base_topic = hub.settings.mqtt.base_topic
    (tmp_path / "light").mkdir()
    light = SimLight("door-1", light_config(hub.settings, "door-1"), tmp_path / "light").start()
    try:
        light.wait_showing("idle", timeout=10)
        with serving(settings) as url:
            yield url, light
    finally:
        light.stop()


@contextmanager
def frozen(light: SimLight) -> Iterator[None]:
    """The light's process stopped (SIGSTOP) for the block: its status stays online, its alive messages stop."""
    light.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        light.proc.send_signal(signal.SIGCONT)


def toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value) if isinstance(value, Path) else value)


def write_web_config(path: Path, settings: Settings, **web: object) -> Path:
    """A TOML file with the hub, broker and ``[web]`` sections a subprocess can load."""
    s = settings
    lines = [
        "[hub]", f'id = "{s.hub.id}"', f'set = "{s.hub.set}"', f'state_dir = "{s.hub.state_dir}"',
        f"heartbeat_s = {s.hub.heartbeat_s}",
        "[mqtt]", f'host = "{s.mqtt.host}"', f"port = {s.mqtt.port}", f'base_topic = "{s.mqtt.base_topic}"',
        f"reconnect_max_s = {s.mqtt.reconnect_max_s}",
        "[web]", *(f"{k} = {toml_value(v)}" for k, v in web.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class WebProcess:
    """``setbridge web`` as a child process, for kills and restarts."""

    def __init__(self, config: Path, port: int | None = None, nofile: int | None = None):
        self.config = config
        self.nofile = nofile
        """The child's open-file limit (soft and hard), as a unit's LimitNOFILE sets it; None: inherited."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> "WebProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "setbridge", "web", "--config", str(self.config), "--host", "127.0.0.1",
             "--port", str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ),
            preexec_fn=None if self.nofile is None else self._limit_files)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read().decode(errors="replace")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"setbridge web did not listen on {self.port} within {timeout} s")

    def _limit_files(self) -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> int:
        assert self.proc
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(10)


class Client(httpx.Client):
    """An httpx client that reads the CSRF token the way a page's form carries it."""

    def page_csrf(self, path: str = "/") -> str:
        text = self.get(path).text
        marker = 'name="csrf" value="'
        start = text.index(marker) + len(marker)
        return text[start:text.index('"', start)]

    def login(self, user: str, password: str = PASSWORD) -> httpx.Response:
        token = self.page_csrf("/login")
        return self.post("/login", data={"user": user, "password": password, "csrf": token})


def read_events(url: str, until, timeout: float = 10.0) -> list[tuple[str, dict]]:
    """Read an event stream until ``until(events)`` holds; returns the (event, data) seen."""
    seen: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", url, timeout=timeout) as response:
        event = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event:
                seen.append((event, json.loads(line[5:])))
                if until(seen):
                    return seen
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"the stream did not say what was expected within {timeout} s; saw {seen[-5:]}")
