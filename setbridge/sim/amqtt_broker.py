"""A private amqtt broker (pure Python, MQTT 3.1.1 only) on a free loopback port: the second broker
the contract is tested against.

>>> with AmqttBroker() as broker:
...     print(broker.port)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import SetbridgeError
from .broker import end_process, free_port

PIP_HINT = "install it with: pip install amqtt (it comes with setbridge[test])"


def find_amqtt() -> str | None:
    """The ``amqtt`` command beside this Python, or on PATH; None when not installed."""
    beside = Path(sys.executable).with_name("amqtt")
    return str(beside) if beside.exists() else shutil.which("amqtt")


class AmqttBroker:
    """Runs ``amqtt`` with anonymous access on ``127.0.0.1:port``; ``stop()`` ends it."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="setbridge-amqtt-"))
        self.log_path = self.workdir / "amqtt.log"
        self.process: subprocess.Popen[bytes] | None = None

    def config_text(self) -> str:
        return (f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{self.port}\n"
                "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n")

    def start(self, timeout: float = 15.0) -> "AmqttBroker":
        command = find_amqtt()
        if command is None:
            raise SetbridgeError(f"amqtt is not installed; {PIP_HINT}")
        conf = self.workdir / "amqtt.yaml"
        conf.write_text(self.config_text())
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([command, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetbridgeError(f"amqtt exited at start: {self.log_path.read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise SetbridgeError(f"amqtt did not listen on port {self.port} within {timeout:g} s")

    def stop(self) -> None:
        end_process(self.process)
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "AmqttBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
