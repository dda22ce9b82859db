"""A real Mosquitto running the config that `setbridge broker config` + `add-user` generate,
and paho clients that log in to it as one user."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

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


class User:
    """A paho client logged in as ``user``: records messages and disconnects."""

    def __init__(self, port: int, user: str, client_id: str | None = None, clean: bool = True,
                 v5: bool = False, will: tuple[str, str] | None = None, tls_ca: Path | None = None):
        self.user = user
        self.received: list[tuple[str, bytes]] = []
        self.disconnects = 0
        self.result: mqtt.ReasonCode | None = None
        self._cond = threading.Condition()
        connected = threading.Event()
        cid = client_id if client_id is not None else f"{user}-{uuid.uuid4().hex[:6]}"
        if v5:
            self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        else:
            self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
        self.c.username_pw_set(user, password(user))
        if will:
            self.c.will_set(will[0], will[1], qos=1, retain=True)
        if tls_ca:
            self.c.tls_set(ca_certs=str(tls_ca))

        def on_connect(c, u, f, rc, p):
            self.result = rc
            connected.set()

        def on_disconnect(c, u, f, rc, p):
            connected.set()  # refused or dropped before (or without) an answer: no need to wait on
            with self._cond:
                self.disconnects += 1
                self._cond.notify_all()

        def on_message(c, u, msg):
            with self._cond:
                self.received.append((msg.topic, msg.payload))
                self._cond.notify_all()

        self.c.on_connect, self.c.on_disconnect, self.c.on_message = on_connect, on_disconnect, on_message
        self.c.on_connect_fail = lambda c, u: connected.set()
        if v5:
            self.c.connect("127.0.0.1", port, clean_start=False)
        else:
            self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        connected.wait(10)

    @property
    def accepted(self) -> bool:
        return self.result is not None and not self.result.is_failure

    def subscribe(self, topic: str) -> None:
        ok = threading.Event()
        self.c.on_subscribe = lambda *a: ok.set()
        self.c.subscribe(topic, 1)
        assert ok.wait(5), f"{self.user} could not subscribe to {topic}"

    def publish(self, topic: str, payload: str = '{"v": 1}', retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def wait_for(self, topic: str, payload: bytes | None = None, timeout: float = 10) -> bool:
        def seen() -> bool:
            return any(t == topic and (payload is None or payload in p) for t, p in self.received)
        with self._cond:
            return self._cond.wait_for(seen, timeout)

    def wait_disconnected(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.disconnects > 0, timeout)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
