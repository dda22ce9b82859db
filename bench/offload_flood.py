"""Roll/cut answers during an offload flood: does offload work make the set's requests wait?

Runs a private Mosquitto with the generated config's per-client limits and ``setbridge hub`` as a
child process. A requester (a process of its own, paho) sends ``--requests`` roll and cut requests
in turn, one every ``--interval`` seconds, and times each answer. Two phases in the same run:

- baseline: the requests alone;
- flood: the same requests while ``mosquitto_pub`` processes send one valid offload report over and
  over at ``--rate`` reports/s (every copy after the first is a duplicate the hub must answer on
  ``{base}/offload/error``).

For each phase it prints answered, unanswered and busy answers, the answer time p50/p95/max,
the offload reports the hub answered as duplicates or busy/shed on ``offload/error``, the
publishes paho refused (from the hub's log) and the hub's CPU (% of one core) during the phase. Goal: p95 during the
flood at most 50 ms above the baseline's, 0 unanswered, 0 refused.

Usage: ``python bench/offload_flood.py [--rate 3000] [--requests 60] [--interval 0.1] [--flood-s 12]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from setbridge.broker.config import MAX_INFLIGHT, MAX_QUEUED, MAX_QUEUED_BYTES
from setbridge.sim.broker import PrivateBroker
from setbridge.topics import Topics
from report import load_lines, print_load_lines, print_table

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


REPORT = {"v": 1, "event_id": "flood-1", "roll": "A001", "status": "verified",
          "destinations": [{"path": "/Volumes/RAID-1", "state": "verified", "verified_by": "hash"},
                           {"path": "/Volumes/SHUTTLE-2", "state": "verified", "verified_by": "hash"}]}


def start_hub(port: int, workdir: Path, base: str, set_id: str) -> tuple[subprocess.Popen, Path]:
    config = workdir / "setbridge.toml"
    config.write_text("\n".join([
        "[hub]", 'id = "bench"', f'set = "{set_id}"', f'state_dir = "{workdir / "state"}"', "heartbeat_s = 1.0",
        "[mqtt]", 'host = "127.0.0.1"', f"port = {port}", f'base_topic = "{base}"', "reconnect_max_s = 1",
    ]) + "\n")
    log = workdir / "hub.log"
    proc = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config", str(config)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return proc, log


def wait_online(port: int, topics: Topics, timeout: float = 30.0) -> None:
    seen = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-wait-{uuid.uuid4().hex[:6]}")
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topics.hub_status("bench"), 1)
    c.on_message = lambda cl, u, m: seen.set() if b'"online"' in m.payload else None
    c.connect("127.0.0.1", port)
    c.loop_start()
    ok = seen.wait(timeout)
    c.disconnect()
    c.loop_stop()
    if not ok:
        raise SystemExit("the hub did not come online; see its log")


def requester(port: int, request_topic: str, response_topic: str, n: int, interval: float, out: mp.Queue) -> None:
    """Send ``n`` requests (roll, cut, ...) at a fixed pace; put {tx: (sent, answered, busy)} on ``out``."""
    sent: dict[str, float] = {}
    answers: dict[str, tuple[float, bool]] = {}
    lock = threading.Lock()
    subscribed = threading.Event()
    run = uuid.uuid4().hex[:6]

    def on_message(c, u, msg) -> None:
        now = time.monotonic()
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        tx = data.get("transaction") if isinstance(data, dict) else None
        with lock:
            if isinstance(tx, str) and tx in sent and tx not in answers:
                answers[tx] = (now, str(data.get("error") or "").startswith("busy"))

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-req-{run}")
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(response_topic, 1)
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    subscribed.wait(10)
    start = time.monotonic()
    for k in range(n):
        delay = start + k * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        tx = f"{run}:{k}"
        with lock:
            sent[tx] = time.monotonic()
        c.publish(request_topic, json.dumps({"v": 1, "action": "roll" if k % 2 == 0 else "cut", "transaction": tx,
                                             "source": "bench-ad"}), qos=1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with lock:
            if len(answers) == n:
                break
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    out.put({tx: (t, *answers.get(tx, (None, False))) for tx, t in sent.items()})


class Flood:
    """``mosquitto_pub -l`` processes sending one report over and over at ``rate`` reports/s in total."""

    def __init__(self, port: int, topic: str, rate: float, processes: int = 2):
        tool = shutil.which("mosquitto_pub")
        if tool is None:
            raise SystemExit("mosquitto_pub is not installed: apt-get install mosquitto-clients")
        self.procs = [subprocess.Popen([tool, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-l",
                                        "-M", "1000", "-i", f"bench-flood-{i}-{uuid.uuid4().hex[:6]}"],
                                       stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for i in range(processes)]
        self.rate = rate / processes
        self.sent = 0
        self.started = time.monotonic()
        self.seconds = 0.0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._pace, args=(p,), daemon=True) for p in self.procs]
        for t in self._threads:
            t.start()

    def _pace(self, proc: subprocess.Popen) -> None:
        line = json.dumps(REPORT).encode() + b"\n"
        assert proc.stdin is not None
        start, k, tick = time.monotonic(), 0, 0.01
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * self.rate)
            if due > k:
                proc.stdin.write(line * (due - k))
                proc.stdin.flush()
                self.sent += due - k
                k = due
            time.sleep(tick)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self.seconds = time.monotonic() - self.started
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


class ErrorCounter:
    """Counts the hub's answers on ``{base}/offload/error`` by kind (duplicate, busy, shed)."""

    def __init__(self, port: int, topic: str):
        self.counts = {"duplicate": 0, "busy": 0, "other": 0}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-errors-{uuid.uuid4().hex[:6]}")
        self.c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, 1)
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on(self, c, u, msg) -> None:
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        if data.get("duplicate"):
            self.counts["duplicate"] += 1
        elif str(data.get("reason", "")).startswith(("busy", "shed")):
            self.counts["busy"] += 1
        else:
            self.counts["other"] += 1

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def refused_in_log(text: str) -> int:
    return sum(int(m.group(1)) for m in re.finditer(r"paho refused (\d+) publish", text))


def run_phase(name: str, port: int, topics: Topics, set_id: str, args: argparse.Namespace, log: Path,
              flood_rate: float, hub_pid: int) -> dict:
    errors = ErrorCounter(port, topics.offload_error())
    cpu0, t0 = cpu_seconds(hub_pid), time.monotonic()
    refused0 = refused_in_log(log.read_text(errors="replace"))
    flood = Flood(port, topics.offload_report(), flood_rate) if flood_rate else None
    if flood:
        time.sleep(args.warmup_s)  # the hub is in the thick of it before the first request
    out: mp.Queue = mp.Queue()
    proc = mp.Process(target=requester, args=(port, topics.set_request(set_id), topics.set_response(set_id),
                                              args.requests, args.interval, out))
    proc.start()
    result = out.get(timeout=args.requests * args.interval + 60)
    proc.join(10)
    rate = 0.0
    if flood:
        flood.stop()
        rate = flood.sent / flood.seconds
    cpu = (cpu_seconds(hub_pid) - cpu0) / (time.monotonic() - t0) * 100
    time.sleep(1.0)
    errors.close()
    times = sorted((a - s) * 1000 for s, a, _ in result.values() if a is not None)
    q = statistics.quantiles(times, n=20) if len(times) >= 2 else [float("nan")] * 19
    return {"phase": name, "reports/s": rate,
            "requests": len(result), "answered": len(times),
            "unanswered": sum(1 for _, a, _ in result.values() if a is None),
            "busy": sum(1 for *_, b in result.values() if b),
            "p50 ms": statistics.median(times) if times else float("nan"), "p95 ms": q[18],
            "max ms": max(times, default=float("nan")), "dup answers": errors.counts["duplicate"],
            "busy/shed": errors.counts["busy"], "refused": refused_in_log(log.read_text(errors="replace")) - refused0,
            "hub cpu %": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=3000, help="offload reports/s during the flood")
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between requests")
    ap.add_argument("--warmup-s", type=float, default=3.0, help="flood seconds before the first request")
    args = ap.parse_args()
    set_id, base = "bench", f"flood{uuid.uuid4().hex[:6]}"
    topics = Topics(base)
    limits = (f"max_inflight_messages {MAX_INFLIGHT}\nmax_queued_messages {MAX_QUEUED}\n"
              f"max_queued_bytes {MAX_QUEUED_BYTES}")
    with PrivateBroker(extra_config=limits) as broker, tempfile.TemporaryDirectory(prefix="setbridge-flood-") as tmp:
        hub, log = start_hub(broker.port, Path(tmp), base, set_id)
        try:
            wait_online(broker.port, topics)
            rows = [run_phase("baseline", broker.port, topics, set_id, args, log, 0, hub.pid),
                    run_phase(f"flood {args.rate:,.0f}/s", broker.port, topics, set_id, args, log, args.rate, hub.pid)]
        finally:
            hub.terminate()
            hub.wait(15)
        notes = load_lines(log, also="lost")
    cols = ["phase", "reports/s", "requests", "answered", "unanswered", "busy", "p50 ms", "p95 ms", "max ms",
            "dup answers", "busy/shed", "refused", "hub cpu %"]
    fmt = {"reports/s": "{:,.0f}", "p50 ms": "{:.1f}", "p95 ms": "{:.1f}", "max ms": "{:.1f}", "hub cpu %": "{:.0f}"}
    print_table(rows, cols, fmt)
    base_row, flood_row = rows
    added = flood_row["p95 ms"] - base_row["p95 ms"]
    ok = added <= 50 and flood_row["unanswered"] == 0 and flood_row["refused"] == 0
    print(f"\ngoal: p95 added by the flood <= 50 ms, 0 unanswered, 0 refused: {'met' if ok else 'NOT met'} "
          f"(added {added:.1f} ms)")
    print_load_lines(notes, 10, 180)
    print(json.dumps(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
