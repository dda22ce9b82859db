"""``setbridge status``: the stage's health from the bus; exit 0 only when all is well."""

from __future__ import annotations

import argparse
import json
import sys

from typing import TYPE_CHECKING

from ._common import add_config_arg, add_set_arg, settings_from

if TYPE_CHECKING:
    from ..config import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="health of the hub, audio, set and lights; exit 0 only when all is well")
    add_set_arg(p)
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to reach the broker (default 5)")
    p.add_argument("--lot", action="store_true",
                   help="at a lot's central broker: one line per stage; exit 3 a stage unreachable, 4 a hub down, "
                        "5 a light down")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..client import connect
    from ..errors import SetbridgeError
    from ..escape import json_line, terminal
    from ..status import collect, render
    from ..topics import Topics

    settings = settings_from(args)
    if args.lot:
        return run_lot(args, settings)
    set_id = args.set_id or settings.hub.set
    try:
        bus = connect(settings, "status", timeout=args.timeout)
    except SetbridgeError as exc:
        if args.json:
            print(json.dumps({"set": set_id, "ok": False, "problems": [str(exc)]}))
        print(f"setbridge: {exc}", file=sys.stderr)
        return 1
    try:
        health = collect(bus, Topics(settings.mqtt.base_topic), set_id, wait_s=2 * settings.hub.heartbeat_s + 1.0)
    finally:
        bus.stop()
    problems = health.problems()
    if args.json:
        print(json_line(health.as_dict()))
    else:
        print(f"broker {settings.mqtt.host}:{settings.mqtt.port}: reachable")
        for line in render(health):
            print(terminal(line))  # everything from the bus is printed escaped
        print("all is well" if not problems else f"{len(problems)} problem(s):")
    for problem in problems:
        print(terminal(f"problem: {problem}"), file=sys.stderr)
    return 0 if not problems else 1


def run_lot(args: argparse.Namespace, settings: Settings) -> int:
    from ..client import connect
    from ..errors import SetbridgeError
    from ..escape import json_line, terminal
    from ..lot_status import collect, exit_code, render

    try:
        bus = connect(settings, "status", timeout=args.timeout)
    except SetbridgeError as exc:
        print(f"setbridge: {exc}", file=sys.stderr)
        return 1
    try:
        snapshot = collect(bus, settings.mqtt.base_topic)
    finally:
        bus.stop()
    code = exit_code(snapshot)
    if args.json:
        print(json_line(snapshot))
    else:
        for line in render(snapshot):
            print(terminal(line))  # everything from the bus is printed escaped
        if not snapshot["stages"]:
            print(f"setbridge: no stage heard under {settings.mqtt.base_topic}/stage/; is this a lot's central "
                  "broker, and are the stages' bridges configured (docs/lot.md)?", file=sys.stderr)
        elif code == 0:
            print("all is well")
    return code
