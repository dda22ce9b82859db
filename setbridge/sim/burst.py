"""Request bursts against a hub, for the burst test and ``bench/burst.py``.

A :class:`Collector` records every answer by transaction, the set states and the heartbeats;
:func:`send` has ``clients`` connections send ``n`` roll/cut requests, each keeping at most
``window`` unanswered (or, with ``rate``, at a fixed pace regardless of answers).

Both run Mosquitto's own command-line clients (``mosquitto_sub``, ``mosquitto_pub -l``) as
processes of their own: written in C, they leave the CPU to the hub being measured, and what
they count is counted outside it. The baseline (:func:`bare_rate`) is a bare paho client.

>>> with Collector(port, topics, "main") as seen:
...     elapsed = send(port, topics.set_request("main"), seen, n=10_000, clients=5)
...     seen.wait_answered(10_000)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .. import contract
from ..errors import SetbridgeError
from ..topics import Topics

CLIENTS_HINT = "install them with: apt-get install mosquitto-clients"
PUB_INFLIGHT = 1000
"""QoS 1 requests one ``mosquitto_pub`` sends before the broker's acknowledgements (its ``-M``):
more than a client's window, so that the window, not the sender, bounds what is unanswered."""
FLUSH_EVERY = 64
"""Request lines handed to ``mosquitto_pub`` at once while the window allows."""


def _client(port: int, name: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}")
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    return c


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SetbridgeError(f"{name} is not installed; {CLIENTS_HINT}")
    return path


@dataclass
class Collector:
    """Subscribes to a set's responses, state and heartbeats (with ``mosquitto_sub``) and counts
    what arrives."""

    port: int
    topics: Topics
    set_id: str
    answers: Counter[str] = field(default_factory=Counter)
    busy: int = 0
    ok: int = 0
    refused: int = 0
    states: list[tuple[int, int, str]] = field(default_factory=list)
    beats: list[tuple[float, int, int, str]] = field(default_factory=list)
    last_seq_answered: int = 0
    busy_sample: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._windows: dict[str, threading.Semaphore] = {}
        self._probe_topic = f"{self.topics.base}/dev/burst-probe/{uuid.uuid4().hex[:8]}"
        self._subscribed = threading.Event()
        topics = [self.topics.set_response(self.set_id), self.topics.set_state(self.set_id),
                  self.topics.set_heartbeat(self.set_id), self._probe_topic]
        self._proc = subprocess.Popen(
            [_tool("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-v",
             "-i", f"burst-collector-{uuid.uuid4().hex[:8]}", *(a for t in topics for a in ("-t", t))],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, name="burst-collector", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10
        while not self._subscribed.wait(0.1):  # published until the subscription is live
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.close()
                raise RuntimeError("the burst collector could not subscribe")
            subprocess.run([_tool("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(self.port), "-t", self._probe_topic,
                            "-m", "probe"], check=False, capture_output=True, timeout=10)

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def window(self, prefix: str, size: int) -> threading.Semaphore:
        sem = self._windows[prefix] = threading.Semaphore(size)
        return sem

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            topic, _, payload = line.rstrip(b"\n").partition(b" ")
            self._on_message(topic.decode(errors="replace"), payload)

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self._probe_topic:
            self._subscribed.set()
            return
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        spec = contract.lookup(self.topics.base, topic)
        if spec is contract.SET_HEARTBEAT:
            self.beats.append((time.monotonic(), data["epoch"], data["seq"], data["state"]))
            return
        if spec is contract.SET_STATE:
            self.states.append((data["epoch"], data["seq"], data["state"]))
            return
        tx = data.get("transaction")
        if not isinstance(tx, str):
            return
        with self._cond:
            self.answers[tx] += 1
            if data.get("ok"):
                self.ok += 1
                self.last_seq_answered = max(self.last_seq_answered, data.get("seq") or 0)
            elif str(data.get("error", "")).startswith("busy"):
                self.busy += 1
                self.busy_sample = data
            else:
                self.refused += 1
            if self.answers[tx] == 1:
                self._cond.notify_all()
        sem = self._windows.get(tx.split(":", 1)[0])
        if sem is not None:
            sem.release()

    def answered(self) -> int:
        with self._cond:
            return len(self.answers)

    def wait_answered(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.answers) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def twice(self) -> int:
        """Transactions answered more than once."""
        with self._cond:
            return sum(1 for v in self.answers.values() if v > 1)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(10)


def send(port: int, topic: str, collector: Collector, n: int, clients: int = 1, window: int = 100,
         rate: float | None = None, run: str | None = None) -> float:
    """Send ``n`` requests (roll and cut in turn) from ``clients`` connections (``mosquitto_pub -l``,
    QoS 1); seconds taken until the broker acknowledged the last one.

    Transactions are ``<run>-<client>:<i>``. With ``rate`` (requests/s over all clients) the
    clients pace themselves and ignore ``window``.
    """
    run = run or uuid.uuid4().hex[:6]
    per = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    procs = [subprocess.Popen([_tool("mosquitto_pub"), "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic,
                               "-l", "-M", str(PUB_INFLIGHT), "-i", f"burst-{i}-{uuid.uuid4().hex[:8]}"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for i in range(clients)]
    start = time.monotonic()

    def client_main(i: int) -> None:
        prefix = f"{run}-{i}"
        sem = collector.window(prefix, window) if rate is None else None
        out: IO[bytes] = procs[i].stdin  # type: ignore[assignment]
        interval = clients / rate if rate else 0.0
        pending = 0
        for k in range(per[i]):
            if sem is not None and not sem.acquire(blocking=False):
                out.flush()  # the window is full: let what is written go before waiting for answers
                pending = 0
                sem.acquire()
            elif interval:
                delay = start + k * interval + i * interval / clients - time.monotonic()
                if delay > 0.002:
                    out.flush()
                    pending = 0
                    time.sleep(delay)
            body = {"v": 1, "action": "roll" if k % 2 == 0 else "cut", "transaction": f"{prefix}:{k}",
                    "source": f"burst-{i}"}
            out.write(json.dumps(body).encode() + b"\n")
            pending += 1
            if pending >= FLUSH_EVERY:
                out.flush()
                pending = 0
        out.close()  # mosquitto_pub sends the rest, waits for the broker's acknowledgements and exits

    threads = [threading.Thread(target=client_main, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for proc in procs:
        assert proc.stderr is not None
        err = proc.stderr.read()  # until it exits
        if proc.wait(120):
            raise RuntimeError(f"mosquitto_pub failed ({proc.returncode}): {err.decode(errors='replace')[:200]}")
    return time.monotonic() - start


def bare_rate(port: int, n: int = 20_000) -> float:
    """Messages/s one bare paho client publishes (QoS 1) to a subscriber on the same broker."""
    topic = f"bench-bare/{uuid.uuid4().hex[:8]}"
    got, done = [0], threading.Event()
    sub = _client(port, "bare-sub")
    subscribed = threading.Event()
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
    sub.on_subscribe = lambda *a: subscribed.set()

    def on_message(*_: object) -> None:
        got[0] += 1
        if got[0] >= n:
            done.set()

    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    subscribed.wait(10)
    pub = _client(port, "bare-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    start = time.monotonic()
    for _ in range(n):
        pub.publish(topic, b'{"v":1,"action":"roll","transaction":"x"}', qos=1)
    done.wait(120)
    elapsed = time.monotonic() - start
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return got[0] / elapsed


def watch_heartbeats(port: int, topic: str, out: Any, stop: Any) -> None:
    """Child process: send the arrival time of every heartbeat on ``topic`` to ``out`` until
    ``stop`` is set (its own connection and process, so a busy bench does not delay it)."""
    c = _client(port, "burst-heartbeats")
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, 0)
    c.on_message = lambda cl, u, m: out.put((time.monotonic(), time.time() - json.loads(m.payload)["ts"]))
    c.connect("127.0.0.1", port)
    c.loop_start()
    stop.wait()
    c.disconnect()
    c.loop_stop()


def largest_gap(times: list[float], since: float = 0.0, until: float = float("inf")) -> float:
    """The largest gap between consecutive times in [since, until] (and from ``since`` to the first)."""
    inside = [t for t in times if since <= t <= until]
    if not inside:
        return float("inf")
    return max([inside[0] - since] + [b - a for a, b in zip(inside, inside[1:])])
