"""Fan-out latency: from a set state change to the last of N subscribers receiving it.

Runs a private Mosquitto, an in-process hub, and N subscribers in a separate process (one
selector loop over N real paho clients). For each N it times, interleaved round by round:

- hub:      ``hub.submit(roll|cut)`` → state published by the hub → last subscriber has it;
- baseline: a bare paho ``publish`` of the same retained QoS 1 payload → last subscriber has it.

The hub's overhead is the difference. Goal: under 5 ms at p99 for N = 200.
Usage: ``python bench/fanout.py [--counts 1 50 200] [--rounds 200]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import selectors
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from setbridge.config import load_settings
from setbridge.sim.broker import PrivateBroker
from setbridge.hub import Hub
from setbridge.messages import SetState


def subscribers(port: int, count: int, topic_filter: str, conn) -> None:
    """Child process: N clients; report (marker, time the last client got it)."""
    sel = selectors.DefaultSelector()
    arrivals: dict[str, int] = {}
    clients = []

    def on_message(client, userdata, msg):
        data = json.loads(msg.payload)
        marker = f"{msg.topic}:{data['seq']}"
        arrivals[marker] = arrivals.get(marker, 0) + 1
        if arrivals[marker] == count:
            conn.send((marker, time.monotonic()))
            del arrivals[marker]

    subscribed = 0

    def on_subscribe(*args):
        nonlocal subscribed
        subscribed += 1

    for i in range(count):
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{i}-{uuid.uuid4().hex[:6]}")
        c.on_message = on_message
        c.on_subscribe = on_subscribe
        c.connect("127.0.0.1", port, keepalive=60)
        c.subscribe(topic_filter, 1)
        c.loop_write()
        sel.register(c.socket(), selectors.EVENT_READ, c)
        clients.append(c)
    ready_sent = False
    last_misc = time.monotonic()
    while True:
        for key, _ in sel.select(timeout=0.1):
            client = key.data
            client.loop_read()
            if client.want_write():
                client.loop_write()
        if time.monotonic() - last_misc > 1:
            for c in clients:
                c.loop_misc()
                if c.want_write():
                    c.loop_write()
            last_misc = time.monotonic()
        if not ready_sent and subscribed == count:
            conn.send(("ready", 0.0))
            ready_sent = True
        if conn.poll():
            if conn.recv() == "stop":
                return


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(count: int, rounds: int) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="setbridge-bench-"))
    with PrivateBroker() as broker:
        settings = load_settings(None, hub={"id": "bench", "set": "bench", "state_dir": str(work), "heartbeat_s": 5},
                                 mqtt={"host": "127.0.0.1", "port": broker.port, "base_topic": "bench"})
        hub = Hub(settings)
        hub.start()
        assert hub.bus.wait_connected(5)
        base = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
        base.connect("127.0.0.1", broker.port)
        base.loop_start()
        parent, child = mp.Pipe()
        proc = mp.Process(target=subscribers, args=(broker.port, count, "bench/+/+/state", child), daemon=True)
        proc.start()
        assert parent.recv()[0] == "ready"
        time.sleep(0.5)  # let retained messages drain
        while parent.poll():
            parent.recv()
        results: dict[str, list[float]] = {"hub": [], "baseline": []}
        for i in range(rounds):
            # Hub: the state change is the submit call.
            t0 = time.monotonic()
            outcome = hub.submit("roll" if i % 2 == 0 else "cut", cause="bench")
            results["hub"].append(wait_for(parent, f"bench/set/bench/state:{outcome.seq}") - t0)
            # Baseline: the same payload published by a bare client.
            payload = SetState(set="bench", state="rolling", epoch=1, seq=i, take=i, cause="bench").to_bytes()
            t0 = time.monotonic()
            base.publish("bench/bare/x/state", payload, qos=1, retain=True)
            results["baseline"].append(wait_for(parent, f"bench/bare/x/state:{i}") - t0)
        parent.send("stop")
        proc.join(5)
        base.disconnect()
        base.loop_stop()
        hub.stop()
    return results


def wait_for(conn, marker: str) -> float:
    while True:
        if not conn.poll(10):
            raise TimeoutError(f"subscribers never all received {marker}")
        got, at = conn.recv()
        if got == marker:
            return at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print(f"fan-out latency, {args.rounds} rounds per N (ms; hub and bare paho publish interleaved)")
    print(f"{'N':>5} {'hub p50':>9} {'hub p99':>9} {'bare p50':>9} {'bare p99':>9} {'overhead p50':>13} {'overhead p99':>13}")
    verdict = True
    for n in args.counts:
        r = run(n, args.rounds)
        ms = {k: [v * 1000 for v in vals] for k, vals in r.items()}
        hp50, hp99 = statistics.median(ms["hub"]), percentile(ms["hub"], 99)
        bp50, bp99 = statistics.median(ms["baseline"]), percentile(ms["baseline"], 99)
        print(f"{n:>5} {hp50:9.2f} {hp99:9.2f} {bp50:9.2f} {bp99:9.2f} {hp50 - bp50:13.2f} {hp99 - bp99:13.2f}", flush=True)
        if n == 200:
            verdict = hp99 - bp99 < 5.0
    if 200 in args.counts:
        print(f"goal: hub overhead over bare publish < 5 ms at p99 for N = 200: {'met' if verdict else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
