"""Request throughput: requests/s a real ``setbridge hub`` answers, each exactly once.

Runs a private Mosquitto and the hub as its own process (so /proc gives its CPU and RSS).
For 1, 5 and 20 clients, each keeps a share of ``--window`` requests unanswered (roll and cut
in turn, so nearly every request changes the state and is written to disk); then the burst
of issue 10, 10,000 requests paced over 5 s from 5 clients. For every phase it prints:

- answered/s: distinct transactions answered per second; executed: answered ``ok``; busy:
  answered "busy" (retry hint); twice: answered more than once (must be 0);
- state: the retained state at the end equals the hub's (last heartbeat), and the hub's log
  shows no publish refused by paho (``refused``);
- hb gap: the largest gap between heartbeats (goal <= 1.5 s at ``heartbeat_s = 1``), and hb
  lag: the longest one took from the hub to a subscriber (both seen by a process of their own);
- the hub's CPU (% of one core) and RSS.

Baseline, same run and broker: the rate one bare paho client publishes QoS 1 messages to one
subscriber. Goal: >= 2,000 requests/s answered exactly once, no state publish dropped.
The requests come from ``mosquitto_pub`` processes and the answers are counted by a
``mosquitto_sub`` process (see :mod:`setbridge.sim.burst`), so the load costs the hub little CPU.
The broker's send window is the generated config's (``max_inflight_messages 100``);
``--broker-inflight 20`` measures with Mosquitto's default, where the hub waits for an
acknowledgement every 20 publishes, and ``0`` with none.
``--client fast paho`` runs every phase with the hub on each MQTT client in turn (``[mqtt] client``:
the fast client and paho's own, each phase run on one hub and then the other), side by side.
Usage: ``python bench/burst.py [--requests 20000] [--clients 1 5 20] [--window 1000] [--broker-inflight 100]
[--client fast paho]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from setbridge.broker.config import MAX_INFLIGHT
from setbridge.sim.broker import PrivateBroker
from setbridge.sim.burst import Collector, bare_rate, largest_gap, send, watch_heartbeats
from setbridge.topics import Topics
from report import load_lines, print_load_lines, print_table

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def refused_in_log(log: Path) -> int:
    return sum(int(m.group(1)) for m in re.finditer(r"paho refused (\d+) publish", log.read_text(errors="replace")))


def start_hub(port: int, workdir: Path, base: str, set_id: str, client: str = "fast") -> tuple[subprocess.Popen, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "setbridge.toml"
    config.write_text("\n".join([
        "[hub]", f'id = "bench-{client}"', f'set = "{set_id}"', f'state_dir = "{workdir / "state"}"', "heartbeat_s = 1.0",
        "[mqtt]", 'host = "127.0.0.1"', f"port = {port}", f'base_topic = "{base}"', "reconnect_max_s = 1",
        f'client = "{client}"',
    ]) + "\n")
    log = workdir / "hub.log"
    proc = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config", str(config)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return proc, log


def wait_online(seen: Collector, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not seen.beats and time.monotonic() < deadline:
        time.sleep(0.1)
    if not seen.beats:
        raise SystemExit("the hub did not start; see its log")


def final_state_matches(port: int, topics: Topics, set_id: str, seen: Collector) -> bool:
    """The retained state a new subscriber gets equals what the hub's heartbeat says now."""
    time.sleep(1.2)  # one more heartbeat after the last answer
    _, epoch, seq, state = seen.beats[-1]
    with Collector(port, topics, set_id) as fresh:
        deadline = time.monotonic() + 5
        while not fresh.states and time.monotonic() < deadline:
            time.sleep(0.02)
        return bool(fresh.states) and fresh.states[-1] == (epoch, seq, state)


class Heartbeats:
    """Heartbeat arrival times, recorded by a process of their own."""

    def __init__(self, port: int, topic: str):
        self.queue, self.stop = mp.Queue(), mp.Event()
        self.proc = mp.Process(target=watch_heartbeats, args=(port, topic, self.queue, self.stop), daemon=True)
        self.proc.start()
        self.times: list[float] = []
        self.lags: list[tuple[float, float]] = []

    def gap(self, since: float, until: float) -> float:
        while not self.queue.empty():
            t, lag = self.queue.get()
            self.times.append(t)
            self.lags.append((t, lag))
        return largest_gap(self.times, since, until)

    def lag(self, since: float, until: float) -> float:
        """The longest a heartbeat took from the hub (its ``ts``) to this process."""
        return max((lag for t, lag in self.lags if since <= t <= until), default=float("nan"))

    def close(self) -> None:
        self.stop.set()
        self.proc.join(5)


def phase(name: str, port: int, topics: Topics, set_id: str, seen: Collector, pid: int, log: Path,
          n: int, clients: int, window: int, beats: Heartbeats, rate: float | None = None) -> dict:
    before_answers, before_ok, before_busy = seen.answered(), seen.ok, seen.busy
    states_before = len(seen.states)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    send(port, topics.set_request(set_id), seen, n=n, clients=clients, window=max(1, window // clients), rate=rate,
         run=f"{name}-{uuid.uuid4().hex[:4]}")
    complete = seen.wait_answered(before_answers + n, timeout=max(60.0, n / 100))
    t1 = time.monotonic()
    elapsed = t1 - t0
    cpu = (cpu_seconds(pid) - cpu0) / elapsed * 100
    answered = seen.answered() - before_answers
    seqs = [seq for _, seq, _ in seen.states[states_before:]]
    return {
        "phase": name, "clients": clients, "requests": n, "answered/s": answered / elapsed,
        "executed": seen.ok - before_ok, "busy": seen.busy - before_busy, "unanswered": n - answered,
        "twice": seen.twice(), "states": len(seqs), "in order": seqs == sorted(seqs),
        "final ok": final_state_matches(port, topics, set_id, seen) if complete else False,
        "refused": refused_in_log(log), "hb gap": beats.gap(t0, t1), "hb lag": beats.lag(t0, t1),
        "cpu %": cpu, "rss MiB": rss_mib(pid), "peak MiB": rss_mib(pid, "VmHWM"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20_000, help="requests per client-count phase")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 5, 20])
    ap.add_argument("--window", type=int, default=1000, help="unanswered requests allowed over all clients")
    ap.add_argument("--broker-inflight", type=int, default=MAX_INFLIGHT, metavar="N",
                    help=f"the broker's max_inflight_messages: the hub's send window (default {MAX_INFLIGHT}, the "
                         "generated config's; Mosquitto's own is 20; 0: none)")
    ap.add_argument("--client", nargs="+", choices=["fast", "paho"], default=["fast"],
                    help="the hub's [mqtt] client; several run one after the other, side by side in the table")
    args = ap.parse_args()
    rows: list[dict] = []
    notes: list[str] = []
    with PrivateBroker(extra_config=f"max_inflight_messages {args.broker_inflight}") as broker, \
            tempfile.TemporaryDirectory(prefix="setbridge-burst-") as tmp:
        baseline = bare_rate(broker.port)
        hubs: dict[str, tuple[subprocess.Popen, Path, Topics, Heartbeats, Collector]] = {}
        set_id = "bench"
        try:
            for kind in args.client:  # every hub runs from the start; phases alternate between them
                base = f"bench{uuid.uuid4().hex[:6]}"
                topics = Topics(base)
                hub, log = start_hub(broker.port, Path(tmp) / kind, base, set_id, kind)
                hubs[kind] = (hub, log, topics, Heartbeats(broker.port, topics.set_heartbeat(set_id)),
                              Collector(broker.port, topics, set_id).__enter__())
                wait_online(hubs[kind][4])
            plan = [(f"{c} client{'s' if c > 1 else ''}", args.requests, c, None) for c in args.clients]
            plan.append(("burst 10k/5s", 10_000, 5, 2000))
            for name, n, clients, rate in plan:
                for kind, (hub, log, topics, beats, seen) in hubs.items():
                    rows.append({"mqtt client": kind, **phase(name, broker.port, topics, set_id, seen, hub.pid, log,
                                                             n, clients, args.window, beats, rate=rate)})
        finally:
            for kind, (hub, log, _, beats, seen) in hubs.items():
                seen.__exit__(None, None, None)
                beats.close()
                hub.terminate()
                hub.wait(15)
                notes += [f"{kind}: {line}" for line in load_lines(log, also="paho's own client")]
    print(f"baseline: a bare paho client publishes {baseline:,.0f} QoS 1 messages/s to one subscriber "
          f"on this broker (max_inflight_messages {args.broker_inflight}); load generators: mosquitto_pub/_sub\n")
    cols = ["mqtt client", "phase", "answered/s", "executed", "busy", "unanswered", "twice", "states", "in order", "final ok",
            "refused", "hb gap", "hb lag", "cpu %", "rss MiB", "peak MiB"]
    fmt = {"answered/s": "{:,.0f}", "hb gap": "{:.2f} s", "hb lag": "{:.2f} s", "cpu %": "{:.0f}", "rss MiB": "{:.1f}", "peak MiB": "{:.1f}"}
    print_table(rows, cols, fmt)
    print()
    for kind in args.client:
        mine = [r for r in rows if r["mqtt client"] == kind]
        worst = min(r["answered/s"] for r in mine[:-1]) if mine[:-1] else 0
        ok = all(r["twice"] == 0 and r["unanswered"] == 0 and r["final ok"] and r["refused"] == 0
                 and r["hb gap"] <= 1.5 for r in mine)
        print(f"{kind}: goal >= 2,000 answered/s exactly once, nothing refused, hb gap <= 1.5 s: "
              f"{'met' if ok and worst >= 2000 else 'NOT met'} (slowest {worst:,.0f}/s; "
              f"{worst / baseline:.0%} of the bare paho rate)")
    print_load_lines(notes, 8, 160)
    print(json.dumps(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
