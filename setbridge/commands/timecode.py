"""``setbridge timecode FILE...``: what the hub reads from a recording's LTC track: frame rate,
drop frame, and each rec run with its start and stop code (a field check, like ``detect``)."""

from __future__ import annotations

import argparse
import json
import sys

from ._common import add_recording_args, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("timecode", help="read LTC timecode from WAV files: frame rate and each rec run")
    add_recording_args(p, "the channel carrying LTC, 1 = first (default: [timecode] channel, else the last)")
    p.add_argument("--json", action="store_true", help="one JSON line per rec run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import AudioError
    from ..recorder.reader import read_runs

    settings = settings_from(args)
    tc = settings.timecode
    channel = args.channel if args.channel is not None else tc.channel
    failed = 0
    for path in args.files:
        try:
            runs, decoded = read_runs(path, channel, tc.hold_off_s, tc.min_run_s)
        except AudioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            for r in runs:
                print(json.dumps({"file": str(path), "start": r.start, "stop": r.stop, "fps": r.fps,
                                  "drop_frame": r.drop_frame, "start_tc": r.start_tc, "stop_tc": r.stop_tc}))
            continue
        if not decoded:
            print(f"{path}: no LTC decoded (wrong channel? try --channel N)")
            continue
        rate = f"{runs[0].fps:g} fps{' drop frame' if runs[0].drop_frame else ''}" if runs else "code never advanced"
        print(f"{path}: {decoded} frames, {rate}, {len(runs)} rec run{'s' if len(runs) != 1 else ''}")
        for i, r in enumerate(runs, 1):
            print(f"  run {i:>3}  {r.start_tc} → {r.stop_tc}   {r.start:9.3f} s → {r.stop:9.3f} s "
                  f"({r.stop - r.start:.2f} s)")
    return 1 if failed else 0
