"""A private Mosquitto broker on a free loopback port, for the demo, tests and benchmarks.

>>> with PrivateBroker() as broker:
...     print(broker.port)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import SetbridgeError

APT_HINT = "install it with: apt-get install mosquitto"


def end_process(process: subprocess.Popen[bytes] | None) -> None:
    """Stop a broker process: SIGTERM, then SIGKILL after 5 s."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself listens on TCP ``port`` (Linux ``/proc``), so that a
    listener of another process on the same port is not taken for it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    try:
        return any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


HAVE_PROC = Path("/proc/net/tcp").exists()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def find_mosquitto() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise SetbridgeError(f"mosquitto is not installed; {APT_HINT}")


class PrivateBroker:
    """Runs ``mosquitto`` with a generated config; ``extra_config`` lines are appended
    (listeners, ACLs). ``restart()`` keeps the port."""

    def __init__(self, port: int | None = None, extra_config: str = "", anonymous: bool = True,
                 workdir: Path | None = None, config_file: Path | None = None):
        self.port = port or free_port()
        self._chosen_port = port is None
        """The port was picked here, so another may be picked when it is taken meanwhile."""
        self.extra_config = extra_config
        self.anonymous = anonymous
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="setbridge-broker-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"
        self.config_file = config_file
        """A complete config to run instead of the generated one (its listener must use ``port``)."""

    def config_text(self) -> str:
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # a private broker reads the caller's files; no privilege drop
        return "\n".join(lines) + "\n" + self.extra_config + "\n"

    def start(self, timeout: float = 5.0) -> "PrivateBroker":
        for _ in range(5):
            try:
                return self._start(timeout)
            except SetbridgeError as exc:
                # Parallel tests: another process took the free port between the pick and the bind.
                if not (self._chosen_port and self.config_file is None and "in use" in str(exc)):
                    raise
                self.port = free_port()
        return self._start(timeout)

    def _start(self, timeout: float) -> "PrivateBroker":
        conf = self.config_file or self.workdir / "mosquitto.conf"
        if self.config_file is None:
            conf.write_text(self.config_text())
            self.workdir.chmod(0o755)
            conf.chmod(0o644)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetbridgeError(f"mosquitto exited at start: {self.log_path.read_text()[-500:]}")
            if listens(self.process.pid, self.port) if HAVE_PROC else _accepts(self.port):
                return self
            time.sleep(0.02)
        raise SetbridgeError(f"mosquitto did not listen on port {self.port} within {timeout:g} s")

    def stop(self) -> None:
        end_process(self.process)
        self.process = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "PrivateBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
