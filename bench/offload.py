"""Offload delivery rate: reports in, events out, exactly once by ``event_id``.

Runs a private Mosquitto and ``setbridge hub`` as a child process with its own journal. R
reporters (one paho client each) publish N reports as fast as the broker takes them; a
collector counts the distinct ``event_id`` values on ``{base}/offload/event``. The rate is
distinct events per second, from the first report sent to the last distinct event received.

- ``journal_batch = 1``: the one-at-a-time path (one commit and one broker round trip per
  report), the baseline measured in the same run;
- ``journal_batch = 256`` (the default): many reports per commit, many events in flight.

Then the hub is killed (kill -9) K times while it delivers; after each restart the reporters
send again every report that got no event (same ``event_id``), as ``setbridge offload report``
tells its user to. It prints the duplicates each kill caused and checks nothing was lost.

Usage: ``python bench/offload.py [--reports 2000] [--reporters 1 10] [--kills 3] [--batch 256]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from setbridge.sim.broker import PrivateBroker


class Collector:
    """Counts every ``offload/event`` by ``event_id``."""

    def __init__(self, port: int, base: str):
        self.seen: Counter[str] = Counter()
        self.first_at: float | None = None
        self.last_new_at = 0.0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-collector-{uuid.uuid4().hex[:6]}")
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{base}/offload/event", 1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise SystemExit("bench: the collector could not subscribe")

    def _on_message(self, client, userdata, msg) -> None:
        event_id = json.loads(msg.payload)["event_id"]
        with self.changed:
            self.seen[event_id] += 1
            if self.seen[event_id] == 1:
                self.last_new_at = time.monotonic()
            self.changed.notify_all()

    def distinct(self, ids: set[str]) -> int:
        with self.lock:
            return sum(1 for i in ids if self.seen[i])

    def wait_distinct(self, ids: set[str], count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while sum(1 for i in ids if self.seen[i]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def report(event_id: str, n: int) -> bytes:
    return json.dumps({"v": 1, "event_id": event_id, "roll": f"B{n % 500:04d}", "status": "verified",
                       "files": 12, "bytes": 4096, "tool": {"name": "bench"}}).encode()


def send(port: int, base: str, ids: list[str], reporters: int) -> None:
    """Publish the reports for ``ids`` from ``reporters`` clients at once; return when the broker has them all."""
    def one(chunk: list[tuple[int, str]]) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-reporter-{uuid.uuid4().hex[:6]}")
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", port)
        client.loop_start()
        infos = [client.publish(f"{base}/offload/report", report(event_id, n), qos=1) for n, event_id in chunk]
        for info in infos:
            info.wait_for_publish(120)
        client.disconnect()
        client.loop_stop()

    numbered = list(enumerate(ids))
    threads = [threading.Thread(target=one, args=(numbered[r::reporters],)) for r in range(reporters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class HubChild:
    def __init__(self, port: int, base: str, state: Path, batch: int):
        self.config = state.parent / f"hub-{batch}.toml"
        self.config.write_text(f'[hub]\nid = "bench"\nset = "bench"\nstate_dir = "{state}"\n'
                               f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nbase_topic = "{base}"\nreconnect_max_s = 1\n'
                               f"[offload]\njournal_batch = {batch}\n"
                               # 500 made-up cards from one sender, every one kept (above the defaults)
                               "cards_per_source_per_day = 100000\nmax_cards = 500\n")
        self.base, self.port = base, port
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        online = threading.Event()
        probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{uuid.uuid4().hex[:6]}")
        probe.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{self.base}/hub/bench/status", 1)
        probe.on_message = lambda c, u, m: online.set() if m.payload and json.loads(m.payload)["state"] == "online" \
            and not m.retain else None
        probe.connect("127.0.0.1", self.port)
        probe.loop_start()
        ok = online.wait(60)
        probe.disconnect()
        probe.loop_stop()
        if not ok:
            raise SystemExit("bench: the hub did not come online")

    def cpu_s(self) -> float:
        """CPU seconds the hub process has used (Linux /proc)."""
        assert self.proc
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def rate(broker: PrivateBroker, batch: int, reporters: int, count: int) -> tuple[float, int, int, float]:
    """(distinct events/s, distinct events, duplicates, hub CPU ms per event) for one configuration."""
    base = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubChild(broker.port, base, Path(tmp) / "state", batch)
        hub.start()
        collector = Collector(broker.port, base)
        ids = [f"r{batch}-{reporters}-{n}" for n in range(count)]
        try:
            cpu0 = hub.cpu_s()
            started = time.monotonic()
            send(broker.port, base, ids, reporters)
            if not collector.wait_distinct(set(ids), count, timeout=600):
                print(f"  warning: only {collector.distinct(set(ids))} of {count} events arrived", file=sys.stderr)
            time.sleep(0.5)  # late duplicates would arrive by now
            elapsed = collector.last_new_at - started
            dupes = sum(collector.seen[i] - 1 for i in ids if collector.seen[i] > 1)
            cpu_ms = (hub.cpu_s() - cpu0) * 1000 / count
            return collector.distinct(set(ids)) / elapsed, collector.distinct(set(ids)), dupes, cpu_ms
        finally:
            collector.close()
            hub.stop()


def kills(broker: PrivateBroker, count: int, reporters: int, times: int, batch: int) -> list[tuple[int, int, int]]:
    """Kill -9 the delivering hub ``times`` times; per kill: (distinct before the kill, duplicates, lost)."""
    base = f"bench{uuid.uuid4().hex[:8]}"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        hub = HubChild(broker.port, base, Path(tmp) / "state", batch)
        collector = Collector(broker.port, base)
        try:
            for k in range(times):
                ids = [f"k{k}-{n}" for n in range(count)]
                hub.start()
                sender = threading.Thread(target=send, args=(broker.port, base, ids, reporters))
                sender.start()
                collector.wait_distinct(set(ids), count // 3, timeout=300)
                hub.kill()  # mid-delivery
                before = collector.distinct(set(ids))
                sender.join()
                hub.start()
                while True:  # resend what got no event, as the CLI tells its user to
                    missing = [i for i in ids if not collector.seen[i]]
                    if not missing:
                        break
                    time.sleep(2.0)  # what the journal kept is delivered first
                    missing = [i for i in ids if not collector.seen[i]]
                    if missing:
                        send(broker.port, base, missing, reporters)
                    collector.wait_distinct(set(ids), count, timeout=60)
                time.sleep(0.5)
                dupes = sum(collector.seen[i] - 1 for i in ids if collector.seen[i] > 1)
                results.append((before, dupes, count - collector.distinct(set(ids))))
                hub.stop()
        finally:
            collector.close()
            hub.kill()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=2000, help="reports per configuration (default 2000)")
    parser.add_argument("--baseline-reports", type=int, default=600,
                        help="reports for journal_batch = 1, which is slow (default 600)")
    parser.add_argument("--reporters", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--kills", type=int, default=3, help="kill -9 rounds (default 3)")
    parser.add_argument("--batch", type=int, default=256, help="journal_batch of the batched runs (default 256)")
    args = parser.parse_args()
    print(f"setbridge offload delivery: {os.cpu_count()} CPUs; events counted once by event_id")
    with PrivateBroker() as broker:
        rows = []
        for reporters in args.reporters:
            for batch, count in ((1, args.baseline_reports), (args.batch, args.reports)):
                per_s, distinct, dupes, cpu_ms = rate(broker, batch, reporters, count)
                rows.append((reporters, batch, count, distinct, dupes, per_s, cpu_ms))
        print(f"\n{'reporters':>9} {'journal_batch':>13} {'reports':>8} {'distinct':>9} {'dupes':>6} {'events/s':>9} "
              f"{'hub CPU ms/event':>16}")
        for reporters, batch, count, distinct, dupes, per_s, cpu_ms in rows:
            print(f"{reporters:>9} {batch:>13} {count:>8} {distinct:>9} {dupes:>6} {per_s:>9.0f} {cpu_ms:>16.2f}")
        for reporters in args.reporters:
            base_rate = next(r[5] for r in rows if r[0] == reporters and r[1] == 1)
            new_rate = next(r[5] for r in rows if r[0] == reporters and r[1] == args.batch)
            print(f"{reporters} reporter(s): batched {new_rate / base_rate:.1f}x the one-at-a-time baseline")
        if args.kills:
            results = kills(broker, args.reports, max(args.reporters), args.kills, args.batch)
            print(f"\nkill -9 during delivery ({args.reports} reports, {max(args.reporters)} reporters, "
                  f"journal_batch {args.batch})")
            print(f"{'kill':>4} {'delivered before':>16} {'duplicates':>10} {'lost':>5}")
            for n, (before, dupes, lost) in enumerate(results, 1):
                print(f"{n:>4} {before:>16} {dupes:>10} {lost:>5}")
            print(f"mean duplicates per kill: {sum(r[1] for r in results) / len(results):.1f}; "
                  f"lost: {sum(r[2] for r in results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
