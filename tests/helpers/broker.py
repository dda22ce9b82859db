"""A real Mosquitto running the config that `setbridge broker config` + `add-user` generate,
and probes that log in to it as one user."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers.probe import Probe
from setbridge.cli import main
from setbridge.sim.broker import PrivateBroker, free_port


def setbridge(*args: str) -> str:
    """``setbridge ARGS`` through its real parser and command code, in this process: a generated
    broker gets a dozen users, and a new interpreter for each would cost more than the broker.
    (``test_broker_acl`` runs the installed command as a child process.)"""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    assert code == 0, f"setbridge {' '.join(args)} exited with {code}"
    return out.getvalue()


def password(user: str) -> str:
    return f"pw-{user}"


@contextmanager
def generated_broker(users: dict[str, str], *config_args: str, port: int | None = None,
                     edit=None) -> Iterator[PrivateBroker]:
    """Mosquitto on the generated config; ``port`` is the port to wait on (default: a plain one).

    ``edit(text) -> text`` changes the config before the start (for control experiments)."""
    d = Path(tempfile.mkdtemp(prefix="setbridge-gen-"))
    d.chmod(0o755)  # the broker's own user must reach it (pytest's tmp folders are private)
    try:
        args = list(config_args)
        if port is None:
            port = free_port()
            args = ["--port", str(port), "--bind", "127.0.0.1", *args]
        setbridge("broker", "config", "--out", str(d), *args)
        for name, role in users.items():
            setbridge("broker", "add-user", name, "--role", role, "--password", password(name), "--dir", str(d))
        if edit:
            conf = d / "setbridge.conf"
            conf.write_text(edit(conf.read_text()))
        broker = PrivateBroker(port=port, workdir=d, config_file=d / "setbridge.conf").start()
        try:
            yield broker
        finally:
            broker.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def as_user(port: int, user: str, **options: Any) -> Probe:
    """A probe logged in as ``user`` with its password (see ``Probe`` for ``options``; filters are not among
    them, so a refused login is for the test to check with ``accepted``). An MQTT 5 login keeps its session
    (clean start off) unless ``clean`` says otherwise."""
    options.setdefault("clean", not options.get("v5", False))
    return Probe(port, user=user, password=password(user), **options)
