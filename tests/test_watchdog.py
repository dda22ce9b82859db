"""The systemd watchdog is fed only while the bus loop, the controller and the heartbeat make
progress; a stalled controller never stalls the bus. A real sd_notify socket, a real broker,
and stalls made by a real SQLite write lock held by another connection."""

from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from setbridge.hub import Hub
from setbridge.hub.systemd import Notifier
from setbridge.topics import Topics

from helpers import wait_until
from test_systemd import receive

WATCHDOG_USEC = "3000000"  # the hub then calls a loop stalled after 1.5 s


class LockedDatabase:
    """A SQLite file whose write lock another connection holds until ``release()``."""

    def __init__(self, path: Path):
        self.path = path
        self.holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
        self.holder.execute("BEGIN EXCLUSIVE")
        self.entered = threading.Event()

    def write(self, *_: object) -> None:
        """What a careless listener or handler does: a write that waits for the lock."""
        self.entered.set()
        with sqlite3.connect(self.path, timeout=60) as db:
            db.execute("INSERT INTO t VALUES (1)")

    def release(self) -> None:
        self.holder.execute("ROLLBACK")
        self.holder.close()


@contextmanager
def served_hub(settings, tmp_path: Path) -> Iterator[tuple[Hub, socket.socket, threading.Thread]]:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": WATCHDOG_USEC})
        hub, stop = Hub(settings), threading.Event()
        thread = threading.Thread(target=hub.serve, args=(stop, notifier), daemon=True)
        thread.start()
        try:
            receive(sock, "READY=1", timeout=20)
            receive(sock, "WATCHDOG=1", timeout=10)
            yield hub, sock, thread
        finally:
            stop.set()
            thread.join(15)


def wait_for_log(caplog, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in caplog.records:
            if text in record.getMessage():
                return record.getMessage()
        time.sleep(0.05)
    raise AssertionError(f"no log line with {text!r}; got {[r.getMessage() for r in caplog.records][-10:]}")


def no_ping_for(sock: socket.socket, seconds: float) -> None:
    """Drain what was sent before, then require silence on WATCHDOG for ``seconds``."""
    sock.setblocking(False)
    try:
        while True:
            sock.recv(4096)
    except BlockingIOError:
        pass
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            return
        assert "WATCHDOG=1" not in message.splitlines(), "the watchdog was fed during a stall"


@pytest.mark.parametrize("where", ["controller", "bus"])
def test_a_stalled_loop_stops_the_watchdog_and_says_which(where, settings, tmp_path, caplog, probe_factory):
    caplog.set_level(logging.INFO)
    topics = Topics(settings.mqtt.base_topic)
    with served_hub(settings, tmp_path) as (hub, sock, _):
        db = LockedDatabase(tmp_path / "locked.db")
        try:
            if where == "controller":  # a state listener writing to a locked database
                hub.add_state_listener(db.write)
                threading.Thread(target=hub.submit, args=("roll", "test"), daemon=True).start()
                name = "the controller"
            else:  # a bus handler doing journal work on the network thread, as issue 3 saw
                hub.bus.subscribe(f"{topics.base}/stall", db.write)
                assert hub.bus.wait_subscribed(10)
                probe_factory(f"{topics.base}/stall").publish(f"{topics.base}/stall", b"x")
                name = "the MQTT network loop"
            assert db.entered.wait(10)
            line = wait_for_log(caplog, "not feeding the systemd watchdog")
            assert name in line and "no progress for" in line and "\n" not in line
            no_ping_for(sock, 3.0)
        finally:
            db.release()
        receive(sock, "WATCHDOG=1", timeout=10)
        wait_for_log(caplog, "feeding the systemd watchdog again")
        if where == "controller":
            # the stalled roll was applied, not lost
            wait_until(lambda: hub.state == "rolling", 10, what="the stalled roll to be applied")


def test_a_stalled_controller_never_stalls_the_bus(hub, settings, tmp_path, probe_factory):
    """While the controller waits on a lock, heartbeats go on and requests are still answered."""
    topics = Topics(settings.mqtt.base_topic)
    db = LockedDatabase(tmp_path / "locked.db")
    hub.add_state_listener(db.write)
    beats = probe_factory(topics.set_heartbeat(hub.set_id))
    answers = probe_factory(topics.set_response(hub.set_id))
    try:
        threading.Thread(target=hub.submit, args=("roll", "test"), daemon=True).start()
        assert db.entered.wait(10)
        seen = len(beats.seen)
        beats.wait_for(lambda m: len(beats.seen) >= seen + 5, timeout=5)
        answers.publish(topics.set_request(hub.set_id), {"v": 1, "action": "cut", "transaction": "queued"})
        answers.publish(topics.set_request(hub.set_id), {"v": 1, "action": "jump", "transaction": "while-stalled"})
        data = answers.wait_for(lambda m: m.data and m.data.get("transaction") == "while-stalled").data
        assert data["ok"] is False and "action" in data["error"]
        assert not any(msg.data and msg.data.get("transaction") == "queued" for msg in answers.seen)
    finally:
        db.release()
    data = answers.wait_for(lambda m: m.data and m.data.get("transaction") == "queued", timeout=10).data
    assert data["ok"] is True and data["state"] == "idle"
    beats.wait_for(lambda m: m.data["state"] == "idle" and m.data["seq"] == data["seq"], timeout=10)
