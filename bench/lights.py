"""Recording-light latency: roll request → last light showing rolling, and hub kill → last light link-lost.

Runs a private Mosquitto, the hub as a real ``setbridge hub`` process, and N simulated lights
(the real firmware under the MicroPython Unix port). For each N it measures, per round:

- roll:     a roll request published on ``set/{set}/request`` → the last light shows rolling;
- baseline: the same request → a bare paho subscriber has the hub's new set state
  (the lights' own share of the latency is the difference);
- kill:     ``kill -9`` of the hub → the last light shows link-lost (the broker sends the hub's
  last will at once, since the hub's socket closes);
- freeze:   ``SIGSTOP`` of the hub, as a power cut or a pulled cable looks (no socket close, no
  last will) → the last light shows link-lost (the heartbeat timeout).

Goals: roll p95 < 100 ms at N = 50; link-lost ≤ 3 s for every light.
Usage: ``python bench/lights.py [--counts 1 10 50] [--rounds 30] [--kills 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import queue
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from setbridge.config import load_settings
from setbridge.sim.broker import PrivateBroker
from setbridge.sim.lights import LightsSim
from setbridge.topics import Topics


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class HubChild:
    """``setbridge hub`` as a child process, killed with SIGKILL for the link-lost rounds."""

    def __init__(self, config: Path):
        self.config = config
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def freeze(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGSTOP)


def all_show(sim: LightsSim, showing: str, marks: dict[str, int], timeout: float = 20.0) -> float:
    """When the last light showed ``showing`` (monotonic), counting only events after ``marks``."""
    return max(light.wait_showing(showing, timeout=timeout, after=marks[light.id]).t for light in sim.lights)


def run(count: int, rounds: int, kills: int) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="setbridge-bench-lights-"))
    results: dict[str, list[float]] = {"roll": [], "baseline": [], "kill": [], "freeze": []}
    with PrivateBroker() as broker:
        settings = load_settings(None, hub={"id": "bench", "set": "bench", "state_dir": str(work / "state")},
                                 mqtt={"host": "127.0.0.1", "port": broker.port, "base_topic": "bench"})
        topics = Topics("bench")
        config = work / "setbridge.toml"
        config.write_text(f'[hub]\nid = "bench"\nset = "bench"\nstate_dir = "{work / "state"}"\n'
                          f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nbase_topic = "bench"\n'
                          "reconnect_max_s = 1\n")
        hub = HubChild(config)
        states: queue.Queue[tuple[float, dict]] = queue.Queue()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}")
        client.on_message = lambda c, u, m: states.put((time.monotonic(), json.loads(m.payload)))
        client.connect("127.0.0.1", broker.port)
        # No Nagle on the asking client: its PUBACKs for the states would hold back the next request.
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe(topics.set_state("bench"), 1)
        client.loop_start()
        hub.start()
        try:
            with LightsSim(settings, count, "bench") as sim:
                marks = {light.id: 0 for light in sim.lights}
                all_show(sim, "idle", marks, timeout=60)
                for _ in range(rounds):
                    for action, showing in (("roll", "rolling"), ("cut", "idle")):
                        marks = {light.id: light.mark() for light in sim.lights}
                        while not states.empty():
                            states.get_nowait()
                        body = json.dumps({"v": 1, "action": action, "source": "bench"})
                        t0 = time.monotonic()
                        client.publish(topics.set_request("bench"), body, qos=1)
                        last = all_show(sim, showing, marks)
                        while True:
                            at, state = states.get(timeout=10)
                            if state["state"] == showing:
                                break
                        if action == "roll":
                            results["roll"].append(last - t0)
                            results["baseline"].append(at - t0)
                for _ in range(kills):
                    for how in ("kill", "freeze"):
                        time.sleep(0.3)
                        marks = {light.id: light.mark() for light in sim.lights}
                        t0 = time.monotonic()
                        hub.kill() if how == "kill" else hub.freeze()
                        results[how].append(all_show(sim, "link-lost", marks) - t0)
                        hub.kill()
                        hub.start()
                        all_show(sim, "idle", marks, timeout=60)
        finally:
            hub.kill()
            client.disconnect()
            client.loop_stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--rounds", type=int, default=30, help="roll/cut rounds per N (default 30)")
    parser.add_argument("--kills", type=int, default=3, help="hub kills per N (default 3)")
    args = parser.parse_args()
    print(f"recording lights, {args.rounds} roll rounds and {args.kills} hub kills per N, on {os.cpu_count()} CPUs")
    print(f"{'N':>4} {'roll p50':>9} {'roll p95':>9} {'max':>8} {'state p50':>10} {'state p95':>10}"
          f" {'kill max':>9} {'freeze max':>11}")
    ok = True
    for n in args.counts:
        r = run(n, args.rounds, args.kills)
        ms = {k: [v * 1000 for v in vals] for k, vals in r.items()}
        p95 = percentile(ms["roll"], 95)
        kill = max(ms["kill"]) if ms["kill"] else float("nan")
        freeze = max(ms["freeze"]) if ms["freeze"] else float("nan")
        print(f"{n:>4} {statistics.median(ms['roll']):9.1f} {p95:9.1f} {max(ms['roll']):8.1f} "
              f"{statistics.median(ms['baseline']):10.1f} {percentile(ms['baseline'], 95):10.1f} {kill:9.0f} {freeze:11.0f}",
              flush=True)
        if n == 50 and p95 >= 100:
            ok = False
        if max(ms["kill"] + ms["freeze"], default=0) > 3000:
            ok = False
    print("ms; roll = request → last light rolling; state = request → the hub's state at a bare subscriber;\n"
          "kill/freeze = hub SIGKILL/SIGSTOP → last light link-lost (worst of the kills)")
    print(f"goals (roll p95 < 100 ms at N = 50; link-lost <= 3 s): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
