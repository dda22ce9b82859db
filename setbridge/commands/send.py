"""``setbridge send ACTION``: a roll/cut/standby/idle request, answered by the hub."""

from __future__ import annotations

import argparse
import queue
import sys
import time
import uuid

from ..actions import ACTIONS
from ._common import add_config_arg, add_set_arg, settings_from

ANSWER_GRACE_S = 1.0
"""How long past the request's deadline an answer is still awaited."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("send", help="ask the hub to roll, cut, standby or idle and print the result")
    p.add_argument("action", choices=ACTIONS)
    add_set_arg(p)
    add_config_arg(p)
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds to wait for the hub's answer (default 5); the request expires then, so it never "
                        "runs later")
    p.add_argument("--source", default="cli", help="who is asking (shown in the event)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .tool_client import collect, connect
    from ..escape import terminal
    from ..expiry import expiring, expiry_properties
    from ..codec import parse_payload
    from ..messages import SetResponse
    from ..topics import Topics

    settings = settings_from(args)
    set_id = args.set_id or settings.hub.set
    topics = Topics(settings.mqtt.base_topic)
    bus = connect(settings, "send", timeout=args.timeout)
    try:
        responses = collect(bus, topics.set_response(set_id))
        time.sleep(0.05)  # let the subscription reach the broker before asking
        tx = uuid.uuid4().hex
        request, expiry_s = expiring(args.action, tx, args.source, args.timeout)
        bus.publish(topics.set_request(set_id), request, properties=expiry_properties(expiry_s))
        # A request run just before its deadline is answered a moment after it.
        deadline = time.monotonic() + args.timeout + ANSWER_GRACE_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                _, payload = responses.get(timeout=left)
            except queue.Empty:
                break
            try:
                response = parse_payload(SetResponse, payload)
            except Exception:
                continue
            if response.transaction != tx:
                continue
            if not response.ok:
                print(terminal(f"setbridge: {args.action} refused: {response.error}"), file=sys.stderr)
                return 1
            note = "" if response.changed else " (unchanged)"
            print(f"{set_id}: {response.state}{note} seq={response.seq}")
            return 0
        print(f"setbridge: no answer from a hub for set {set_id!r} within {args.timeout:g} s, and the request "
              "has expired: it will not run later; is `setbridge hub` running for that set?", file=sys.stderr)
        return 2
    finally:
        bus.stop()
