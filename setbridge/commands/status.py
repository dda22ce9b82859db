"""``setbridge status``: the stage's health from the bus; exit 0 only when all is well, else the
code of the most basic problem (:mod:`setbridge.commands.status_codes`, listed in docs/deploy.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ._common import add_config_arg, settings_from

if TYPE_CHECKING:
    from ..config import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="health of the hub, audio, set and lights; exit 0 only when all is well "
                                      "(3 broker unreachable, 4 login refused, 5 hub down or frozen, 6 audio fault, "
                                      "7 a light not alive, 8 offload fault)")
    p.add_argument("--set", dest="set_id", metavar="SET",
                   help="set id (default: [hub] set); 'all' for every set that has announced itself on the broker")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to reach the broker (default 5)")
    p.add_argument("--lot", action="store_true",
                   help="at a lot's central broker: one line per stage; exit 9 a stage unreachable, 5 a hub down, "
                        "7 a light down (3 and 4 as above, for the central broker)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from . import status_codes as codes
    from .tool_client import connect
    from ..errors import BrokerUnreachable, SetbridgeError
    from ..escape import json_line, terminal
    from .stage_health import collect, known_sets, render
    from ..topics import Topics

    settings = settings_from(args)
    if args.lot:
        return run_lot(args, settings)
    every_set = args.set_id == "all"
    set_id = settings.hub.set if every_set or not args.set_id else args.set_id
    topics = Topics(settings.mqtt.base_topic)
    try:
        bus = connect(settings, "status", timeout=args.timeout)
    except SetbridgeError as exc:
        code = codes.BY_CONNECT_PROBLEM.get(exc.kind, codes.OTHER) if isinstance(exc, BrokerUnreachable) else codes.OTHER
        if args.json:
            print(json.dumps({"set": "all" if every_set else set_id, "ok": False, "problems": [str(exc)], "code": code}))
        print(f"setbridge: {exc}", file=sys.stderr)
        return code
    try:
        set_ids = known_sets(bus, topics) if every_set else [set_id]
        healths = [collect(bus, topics, s, wait_s=2 * settings.hub.heartbeat_s + 1.0) for s in set_ids]
    finally:
        bus.stop()
    problems = [p for health in healths for p in health.problems()]
    if every_set and not set_ids:
        problems.append("no set has announced itself on the broker; is any `setbridge hub` running?")
    code = codes.of_problems(problems)
    if args.json:
        if every_set:
            print(json_line({"set": "all", "ok": not problems, "code": code,
                             "sets": [dict(h.as_dict(), code=codes.of_problems(h.problems())) for h in healths]}))
        else:
            print(json_line(dict(healths[0].as_dict(), code=code)))
    else:
        print(f"broker {settings.mqtt.host}:{settings.mqtt.port}: reachable")
        for health in healths:
            for line in render(health):
                print(terminal(line))  # everything from the bus is printed escaped
        print("all is well" if not problems else f"{len(problems)} problem(s):")
    for problem in problems:
        print(terminal(f"problem: {problem}"), file=sys.stderr)
    return code


def run_lot(args: argparse.Namespace, settings: Settings) -> int:
    from . import status_codes as codes
    from .tool_client import connect
    from ..errors import BrokerUnreachable, SetbridgeError
    from ..escape import json_line, terminal
    from .lot_health import collect, exit_code, render

    try:
        bus = connect(settings, "status", timeout=args.timeout)
    except SetbridgeError as exc:
        print(f"setbridge: {exc}", file=sys.stderr)
        return codes.BY_CONNECT_PROBLEM.get(exc.kind, codes.OTHER) if isinstance(exc, BrokerUnreachable) else codes.OTHER
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
