"""Recording lights over TLS (pinned CA) beside plain MQTT, in the same run.

A private Mosquitto on the config `setbridge broker config` writes (a plain and a TLS listener,
client id = user name), a test CA made with openssl, the hub in this process, and N simulated
lights (the real firmware under the MicroPython Unix port), each logged in as its own user.
For each mode and N it measures:

- join: the lights' processes start → the last one is connected to the broker (for TLS this
  includes the handshake and the certificate check on every light at once);
- roll: a roll → the last light shows rolling (state delivery through the encrypted link).

The plain rows are the baseline. Usage: ``python bench/tls.py [--counts 1 10] [--rounds 20]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from setbridge.config import load_settings
from setbridge.broker.certs import make_certs
from setbridge.sim.broker import PrivateBroker, free_port
from setbridge.sim.lights import SimLight, find_micropython, light_config
from setbridge.hub import Hub

BASE = "setbridge"


def setbridge(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "setbridge", *args], check=True, capture_output=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def connected_at(light: SimLight, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in list(light.events):
            if event.kind == "log" and str(event.data.get("msg", "")).startswith("connected"):
                return event.t
        time.sleep(0.005)
    raise SystemExit(f"{light.id} did not connect: {light.logs()[-3:]}")


def run_mode(mode: str, count: int, rounds: int, d: Path, plain: int, tls: int, hub: Hub) -> dict[str, float]:
    m = {"host": "127.0.0.1", "base_topic": BASE, "port": tls if mode == "tls" else plain}
    if mode == "tls":
        m["tls"] = {"enabled": True, "ca": str(d / "certs" / "ca.crt")}
    settings = load_settings(None, hub={"id": "hub-1", "set": "main"}, mqtt=m)
    work = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    lights = [SimLight(f"bench-{i}", light_config(settings, f"bench-{i}", light_password="pw-bench"), work)
              for i in range(1, count + 1)]
    started = time.monotonic()
    for light in lights:
        light.start()
    try:
        join = max(connected_at(light) for light in lights) - started
        for light in lights:
            light.wait_showing("idle", timeout=30)
        rolls = []
        for _ in range(rounds):
            marks = [light.mark() for light in lights]
            t0 = time.monotonic()
            hub.submit("roll", cause="bench")
            rolls.append(max(light.wait_showing("rolling", timeout=10, after=mk).t for light, mk in zip(lights, marks))
                         - t0)
            marks = [light.mark() for light in lights]
            hub.submit("cut", cause="bench")
            for light, mk in zip(lights, marks):
                light.wait_showing("idle", timeout=10, after=mk)
        return {"join": join, "p50": statistics.median(rolls), "p95": percentile(rolls, 95)}
    finally:
        for light in lights:
            light.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    find_micropython()
    d = Path(tempfile.mkdtemp(prefix="bench-tls-broker-"))
    d.chmod(0o755)  # the broker drops to its own user
    make_certs(d / "certs", "bench", ["127.0.0.1"])  # what `setbridge broker certs` makes
    plain, tls = free_port(), free_port()
    setbridge("broker", "config", "--out", str(d), "--port", str(plain), "--tls-port", str(tls),
              "--tls-bind", "127.0.0.1", "--cafile", str(d / "certs" / "ca.crt"),
              "--certfile", str(d / "certs" / "server.crt"), "--keyfile", str(d / "certs" / "server.key"))
    setbridge("broker", "add-user", "hub-1", "--role", "hub", "--password", "pw-hub", "--dir", str(d))
    for i in range(1, max(args.counts) + 1):
        setbridge("broker", "add-user", f"bench-{i}", "--role", "light", "--password", "pw-bench", "--dir", str(d))
    broker = PrivateBroker(port=plain, workdir=d, config_file=d / "setbridge.conf").start()
    hub_settings = load_settings(None, hub={"id": "hub-1", "set": "main", "state_dir": str(d / "state")},
                                 mqtt={"host": "127.0.0.1", "port": plain, "base_topic": BASE,
                                       "username": "hub-1", "password": "pw-hub"})
    hub = Hub(hub_settings)
    hub.start()
    try:
        if not hub.bus.wait_connected(10):
            raise SystemExit("the hub did not connect")
        print(f"{'mode':<6} {'lights':>6} {'join s':>8} {'roll p50 ms':>12} {'roll p95 ms':>12}")
        for count in args.counts:
            for mode in ("plain", "tls"):
                r = run_mode(mode, count, args.rounds, d, plain, tls, hub)
                print(f"{mode:<6} {count:>6} {r['join']:>8.3f} {r['p50'] * 1000:>12.1f} {r['p95'] * 1000:>12.1f}",
                      flush=True)
    finally:
        hub.stop()
        broker.stop()
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
