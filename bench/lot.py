"""The lot: N stage brokers, each with a hub and a simulated light (the real firmware), bridged to
one central broker by the configuration `setbridge broker config --central/--bridge` generate.

For each N it measures, in the same run:

- roll → state: ``hub.submit(roll|cut)`` at a stage → the set state at a subscriber on the stage's
  own broker (the baseline) and at a subscriber on the central broker; the bridge adds the difference
  (goal: at most 20 ms at p95 for N = 20);
- the central broker's CPU time and resident memory over the rolls (at N = 20 all stages heartbeat,
  and every light sends its alive each second).

Then, on one stage, a cut of the link (a silent one: a TCP proxy that stops passing bytes) while
the stage's hub records ``--events`` events: link back → the bridge up at the centre (its ``1``),
and → every event at the centre (goals: 5 s each; 0 lost, 0 twice).

Usage: ``nice -n 5 python bench/lot.py [--counts 1 5 20] [--rolls 200] [--cut-s 60] [--events 1000]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from setbridge.cli import main as setbridge_main
from setbridge.config import Settings, load_settings
from setbridge.sim.broker import PrivateBroker, free_port
from setbridge.sim.lights import LightsSim
from setbridge.sim.link import Link
from setbridge.hub import Hub

BASE = "setbridge"
PW = "bench-pw"


def setbridge(*args: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert setbridge_main(list(args)) == 0, args


class Listener:
    """A paho client that records when each (topic, seq) first arrived, and every event id."""

    def __init__(self, port: int, user: str, topic_filter: str):
        self.arrived: dict[tuple[str, int], float] = {}
        self.events: list[str] = []
        self.bridge_up: list[float] = []
        self.cond = threading.Condition()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
        self.c.username_pw_set(user, PW)
        self.c.on_message = self._on_message
        ready = threading.Event()
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, 1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert ready.wait(10), f"{user} could not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        with self.cond:
            if msg.topic.endswith("/bridge"):
                if msg.payload == b"1":
                    self.bridge_up.append(now)
            elif msg.topic.endswith("/set/main/state"):
                seq = json.loads(msg.payload)["seq"]
                self.arrived.setdefault((msg.topic, seq), now)
            elif msg.topic.endswith("/set/main/event"):
                self.events.append(json.loads(msg.payload)["event_id"])
            self.cond.notify_all()

    def wait(self, predicate, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@dataclass
class Stage:
    name: str
    broker: PrivateBroker
    link: Link | None
    hub: Hub
    local: Listener
    extra: list[object] = field(default_factory=list)


def _dir(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir()
    d.chmod(0o755)
    return d


def one_connection(text: str) -> str:
    """The stage config with the QoS 0 topics back on the bridge's main connection (the baseline)."""
    main, _, beats = text.partition("\n# Heartbeats and light alive")
    return main + "\n" + "\n".join(line for line in beats.splitlines() if line.startswith("topic ")) + "\n"


@contextmanager
def lot(count: int, root: Path, linked: frozenset[int] = frozenset(), lights: bool = True,
        heartbeat_s: float = 1.0, beats_apart: bool = True) -> Iterator[tuple[PrivateBroker, list[Stage]]]:
    """A centre and ``count`` stages; stage i in ``linked`` reaches the centre through a :class:`Link`."""
    names = [f"stage-{i}" for i in range(count)]
    with ExitStack() as stack:
        cd = _dir(root, "centre")
        cport = free_port()
        setbridge("broker", "config", "--central", "--out", str(cd), "--port", str(cport))
        setbridge("broker", "add-user", "office", "--role", "monitor", "--password", PW, "--dir", str(cd))
        for name in names:
            setbridge("broker", "add-user", name, "--role", "bridge", "--stage", name, "--password", PW, "--dir", str(cd))
        centre = PrivateBroker(port=cport, workdir=cd, config_file=cd / "setbridge.conf").start()
        stack.callback(centre.stop)
        stages = []
        for i, name in enumerate(names):
            link = stack.enter_context(Link(cport)) if i in linked else None
            d = _dir(root, name)
            port = free_port()
            setbridge("broker", "config", "--out", str(d), "--port", str(port), "--bridge",
                      f"127.0.0.1:{link.port if link else cport}", "--bridge-user", name, "--bridge-password", PW)
            for user, role in ((f"hub-{name}", "hub"), ("crew", "monitor"), ("sim-1", "light")):
                setbridge("broker", "add-user", user, "--role", role, "--password", PW, "--dir", str(d))
            if not beats_apart:
                conf = d / "setbridge.conf"
                conf.write_text(one_connection(conf.read_text()))
            broker = PrivateBroker(port=port, workdir=d, config_file=d / "setbridge.conf").start()
            stack.callback(broker.stop)
            state = d / "state"
            state.mkdir()
            settings: Settings = load_settings(
                None, hub={"id": f"hub-{name}", "set": "main", "state_dir": str(state), "heartbeat_s": heartbeat_s},
                mqtt={"host": "127.0.0.1", "port": port, "username": f"hub-{name}", "password": PW,
                      "base_topic": BASE, "reconnect_max_s": 1})
            hub = Hub(settings)
            hub.start()
            assert hub.bus.wait_connected(10)
            stack.callback(hub.stop)
            local = Listener(port, "crew", f"{BASE}/set/main/#")
            stack.callback(local.close)
            stage = Stage(name, broker, link, hub, local)
            if lights:
                sim = LightsSim(settings, 1, light_password=PW).start()
                stack.callback(sim.stop)
            stages.append(stage)
        yield centre, stages


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def measure_rolls(count: int, rolls: int, root: Path, beats_apart: bool = True) -> dict[str, float]:
    with lot(count, root, beats_apart=beats_apart) as (centre, stages):
        office = Listener(centre.port, "office", f"{BASE}/stage/+/#")
        try:
            deadline = time.monotonic() + 20
            while len(office.bridge_up) < count and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(2.0)  # lights connected, retained states delivered
            assert centre.process is not None
            cpu0, t0 = cpu_s(centre.process.pid), time.monotonic()
            local_ms, central_ms = [], []
            for i in range(rolls):
                stage = stages[i % count]
                action = "roll" if stage.hub.state != "rolling" else "cut"
                start = time.monotonic()
                outcome = stage.hub.submit(action, "button")
                here = (f"{BASE}/set/main/state", outcome.seq)
                there = (f"{BASE}/stage/{stage.name}/set/main/state", outcome.seq)
                assert stage.local.wait(lambda s=stage, k=here: k in s.local.arrived, 5), "no state at the stage"
                assert office.wait(lambda k=there: k in office.arrived, 5), "no state at the centre"
                local_ms.append((stage.local.arrived[here] - start) * 1000)
                central_ms.append((office.arrived[there] - start) * 1000)
                time.sleep(0.02)
            cpu = (cpu_s(centre.process.pid) - cpu0) / (time.monotonic() - t0) * 100
            return {"local_p50": statistics.median(local_ms), "local_p95": pct(local_ms, 95),
                    "central_p50": statistics.median(central_ms), "central_p95": pct(central_ms, 95),
                    "added_p95": pct([there - here for there, here in zip(central_ms, local_ms)], 95),
                    "added_p99": pct([there - here for there, here in zip(central_ms, local_ms)], 99),
                    "over_30": sum(there - here > 30 for there, here in zip(central_ms, local_ms)),
                    "cpu_pct": cpu, "rss_mb": rss_mb(centre.process.pid)}
        finally:
            office.close()


def measure_catch_up(cut_s: float, events: int, root: Path) -> dict[str, float]:
    with lot(1, root, linked=frozenset({0}), lights=False) as (centre, stages):
        stage = stages[0]
        assert stage.link is not None
        office = Listener(centre.port, "office", f"{BASE}/stage/+/#")
        try:
            assert office.wait(lambda: office.bridge_up, 20), "the bridge never came up"
            stage.link.cut()
            cut_at = time.monotonic()
            for i in range(events):
                stage.hub.submit("roll" if i % 2 == 0 else "cut", "button")
            time.sleep(max(0.0, cut_s - (time.monotonic() - cut_at)))
            ups = len(office.bridge_up)
            before = len(office.events)
            stage.link.restore()
            back = time.monotonic()
            office.wait(lambda: len(set(office.events[before:])) >= events, 60)
            all_s = time.monotonic() - back
            office.wait(lambda: len(office.bridge_up) > ups, 10)
            # No new "1": the cut was shorter than the keepalive noticed, and the bridge stayed up.
            up_s = office.bridge_up[-1] - back if len(office.bridge_up) > ups else 0.0
            got = office.events[before:]
            return {"bridge_up_s": up_s, "caught_up_s": all_s, "lost": events - len(set(got)),
                    "twice": len(got) - len(set(got))}
        finally:
            office.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 5, 20])
    ap.add_argument("--rolls", type=int, default=200)
    ap.add_argument("--cut-s", type=float, default=60.0)
    ap.add_argument("--events", type=int, default=1000)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="setbridge-bench-lot-"))
    root.chmod(0o755)
    try:
        print(f"roll -> set state, ms ({args.rolls} rolls spread over the stages; the stage's own subscriber is "
              "the baseline)")
        print(f"{'N':>3} {'stage p50':>10} {'stage p95':>10} {'centre p50':>11} {'centre p95':>11} "
              f"{'added p95':>10} {'added p99':>10} {'>30 ms':>7} {'centre CPU':>11} {'centre RSS':>11}")
        runs = [(n, True) for n in args.counts] + [(max(args.counts), False)]
        for n, apart in runs:
            r = measure_rolls(n, args.rolls, _dir(root, f"n{n}-{apart}"), beats_apart=apart)
            note = "" if apart else "  <- heartbeats and alive on the main bridge connection (before)"
            print(f"{n:>3} {r['local_p50']:>10.1f} {r['local_p95']:>10.1f} {r['central_p50']:>11.1f} "
                  f"{r['central_p95']:>11.1f} {r['added_p95']:>10.1f} {r['added_p99']:>10.1f} {r['over_30']:>7} "
                  f"{r['cpu_pct']:>10.1f}% {r['rss_mb']:>8.1f} MB"
                  f"{note}")
        c = measure_catch_up(args.cut_s, args.events, _dir(root, "cut"))
        print(f"\ncut {args.cut_s:g} s with {args.events} events at the stage: link back -> bridge up "
              f"{c['bridge_up_s']:.2f} s, -> every event at the centre {c['caught_up_s']:.2f} s; "
              f"lost {c['lost']}, twice {c['twice']}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
