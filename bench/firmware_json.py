"""What the light's strict payload reading costs, under the MicroPython Unix port: each payload a
light reads through ``payloads.parse_*`` (strict JSON, every field checked as the hub checks it),
beside MicroPython's own ``json.loads`` in the same run (the lenient baseline).

The Unix port runs on this machine's CPU; a board is some 50-200 times slower, so read the ratio.

Usage: ``python bench/firmware_json.py [--n 20000]``
"""

from __future__ import annotations

import argparse
import json
import subprocess

from setbridge.sim.lights import FIRMWARE_PATH, find_micropython

PAYLOADS = {
    "heartbeat": ("parse_heartbeat", {"v": 1, "epoch": 3, "seq": 41, "state": "rolling", "ts": 1795399504.25}),
    "set state": ("parse_set_state", {"v": 1, "set": "main", "state": "rolling", "epoch": 3, "seq": 41, "take": 7,
                                      "cause": "voice", "ts": 1795399504.25}),
    "hub status": ("parse_hub_status", {"v": 1, "state": "online", "hub": "hub-1", "set": "main", "version": "0.1.0",
                                        "audio": "ok", "voice": True, "offload": "ok", "timecode": "off",
                                        "ts": 1795399504.009}),
    "command": ("parse_cmd", {"v": 1, "action": "flash", "duration_s": 2, "color": "green", "pattern": "slow"}),
}

SCRIPT = """
import sys, time, json
for p in %r:
    sys.path.insert(0, p)
import payloads
n = %d
for label, (parser, raw) in %r.items():
    fn = getattr(payloads, parser)
    for name, call in (("strict", lambda: fn(raw)), ("json.loads", lambda: json.loads(raw))):
        best = None
        for _ in range(3):
            start = time.ticks_us()
            for _ in range(n):
                call()
            took = time.ticks_diff(time.ticks_us(), start)
            best = took if best is None or took < best else best
        print("%%s\\t%%s\\t%%d\\t%%.1f" %% (label, name, len(raw), best / n))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    payloads = {label: (fn, json.dumps(data).encode()) for label, (fn, data) in PAYLOADS.items()}
    script = SCRIPT % ([str(p) for p in FIRMWARE_PATH], args.n, payloads)
    out = subprocess.run([find_micropython(), "-c", script], capture_output=True, text=True, check=True).stdout
    rows: dict[str, dict[str, float]] = {}
    sizes: dict[str, int] = {}
    for line in out.splitlines():
        label, name, size, us = line.split("\t")
        rows.setdefault(label, {})[name] = float(us)
        sizes[label] = int(size)
    print(f"{'payload':<12} {'bytes':>5} {'strict µs':>10} {'json.loads µs':>14} {'ratio':>6}   (MicroPython Unix port, n={args.n})")
    for label, r in rows.items():
        print(f"{label:<12} {sizes[label]:>5} {r['strict']:>10.1f} {r['json.loads']:>14.1f} {r['strict'] / r['json.loads']:>6.1f}")


if __name__ == "__main__":
    main()
