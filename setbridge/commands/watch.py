"""``setbridge watch``: a live, decoded view of the bus."""

from __future__ import annotations

import argparse
import queue
import sys
import time

from ._common import add_config_arg, add_set_arg, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("watch", help="show set state, hub and light availability, events and offloads live")
    add_set_arg(p)
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line: topic, retained, payload (everything from the bus is escaped)")
    p.add_argument("--heartbeats", action="store_true", help="also show heartbeats")
    p.add_argument("--all", action="store_true", help="every message as it comes, heartbeats and each light's alive "
                                                      "message included (by default a light's line is printed only "
                                                      "when what it shows or its liveness changes)")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages (0 = run until Ctrl-C)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .tool_client import connect
    from ..escape import json_line, terminal
    from ..topics import Topics
    from .. import contract as c
    from .describe import LightLiveness, decode, describe, stamp

    settings = settings_from(args)
    topics = Topics(settings.mqtt.base_topic)
    bus = connect(settings, "watch")
    q: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
    filters = [topics.all()] if not args.set_id else topics.filters(set=args.set_id)
    for f in filters:
        bus.subscribe(f, lambda m: q.put((m.topic, m.payload, bool(m.retain))), whole=True)
    lights = LightLiveness()
    every = args.all or args.json
    shown = 0
    try:
        while True:
            if not every:
                for gone in lights.silent(time.monotonic()):
                    print(terminal(f"{stamp()} {gone}"), flush=True)
            soonest = None if every else lights.next_deadline()
            try:
                topic, payload, retained = q.get(timeout=None if soonest is None
                                                 else max(0.05, soonest - time.monotonic() + 0.05))
            except queue.Empty:
                continue
            found = c.identify(topics.base, topic)
            spec = found[0] if found else None
            if spec is c.SET_HEARTBEAT and not (args.heartbeats or args.all):
                continue
            data = decode(payload)
            text: str | None
            if args.json:
                line = json_line({"topic": topic, "retained": retained, "payload": data})
            else:
                if spec is c.LIGHT_ALIVE and not args.all:
                    assert found is not None
                    text = lights.heard(found[1]["light"], data, time.monotonic())
                else:
                    text = describe(topics, topic, data, payload)
                if text is None:
                    continue
                line = terminal(f"{stamp()} {text}" + (" (retained)" if retained else ""))
            print(line, flush=True)
            shown += 1
            if args.count and shown >= args.count:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        bus.stop()
        sys.stdout.flush()
