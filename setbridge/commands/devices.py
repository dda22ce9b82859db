"""``setbridge devices``: list audio input devices for ``[audio] device``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("devices", help="list audio input devices (index, channels, default rate)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..audio.devices import input_devices

    devices = input_devices()
    if not devices:
        print("no audio input devices found (is the microphone plugged in?)")
        return 0
    print(f"{'index':>5}  {'channels':>8}  {'rate':>6}  name")
    for d in devices:
        mark = "  (default)" if d.is_default else ""
        print(f"{d.index:>5}  {d.channels:>8}  {d.default_rate:>6}  {d.name}{mark}")
    return 0
