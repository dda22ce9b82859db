"""``setbridge forget-set SET``: clear the retained topics of a set whose hub is gone for good
(its state and its hubs' statuses), so the board, Home Assistant and ``status --set all`` stop
showing a ghost. A set whose hub still sends heartbeats is never touched."""

from __future__ import annotations

import argparse
import getpass
import json
import queue
import re
import sys
import time

from typing import TYPE_CHECKING

from ._common import add_config_arg, settings_from

if TYPE_CHECKING:
    from ..bus import Bus
    from ..topics import Topics

SET_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
LISTEN_S = 1.0
"""How long retained messages are gathered (a slow broker can trail)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("forget-set", help="clear the retained state and hub statuses of a set whose hub is gone "
                                          "for good (a ghost on the board)")
    p.add_argument("set_id", metavar="SET", help="the set to forget")
    add_config_arg(p)
    p.add_argument("--username", help="a broker user of role hub (clearing a set's state is the hub role's right); "
                                      "default: the [mqtt.tools] user")
    p.add_argument("--dry-run", action="store_true", help="list what would be cleared; change nothing")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to reach the broker (default 5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .tool_client import connect
    from ..escape import terminal
    from ..topics import Topics

    from pydantic import SecretStr

    settings = settings_from(args)
    if args.username:
        password = getpass.getpass(f"broker password of {args.username}: ") if sys.stdin.isatty() else \
            sys.stdin.readline().rstrip("\n")  # from a pipe: never on the command line, where ps shows it
        tools = settings.mqtt.tools.model_copy(update={"username": args.username, "password": SecretStr(password)})
        settings = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"tools": tools})})
    topics = Topics(settings.mqtt.base_topic)
    set_id = args.set_id
    if not SET_ID.fullmatch(set_id):
        print(f"setbridge: {set_id!r} is not a set id (lower-case letters, digits and dashes, as in [hub] set); "
              "name one set, never a wildcard", file=sys.stderr)
        return 1
    bus = connect(settings, "forget", timeout=args.timeout)
    try:
        found = _retained(bus, topics, set_id, wait_s=max(LISTEN_S, 2 * settings.hub.heartbeat_s + 1.0))
        if found.beating:
            print(f"setbridge: set {set_id} is alive: its hub sends heartbeats; stop that hub first "
                  "(systemctl stop setbridge-hub on its machine), then forget the set", file=sys.stderr)
            return 1
        if not found.topics:
            print(f"nothing retained for set {set_id} under {topics.base}/; nothing to forget")
            return 0
        for topic in found.topics:
            print(terminal(f"{'would clear' if args.dry_run else 'clearing'} {topic}"))
        if args.dry_run:
            return 0
        for topic in found.topics:
            bus.publish(topic, b"", retain=True).wait(5)
        left = _retained(bus, topics, set_id, wait_s=LISTEN_S).topics
    finally:
        bus.stop()
    if left:
        user = settings.mqtt.tools.username or settings.mqtt.username or "(anonymous)"
        print(f"setbridge: the broker kept {len(left)} of them: user {user} may not clear them; run again with "
              "--username of a broker user of role hub (setbridge broker add-user NAME --role hub)", file=sys.stderr)
        return 4
    print(f"set {set_id} forgotten: {len(found.topics)} retained message(s) cleared")
    return 0


class _Found:
    def __init__(self) -> None:
        self.topics: list[str] = []
        self.beating = False


def _retained(bus: Bus, topics: Topics, set_id: str, wait_s: float) -> _Found:
    """The set's retained state and the retained statuses of its hubs, and whether it beats."""
    from .. import contract as c

    q: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
    for f in (topics.set_state(set_id), topics.set_heartbeat(set_id), c.HUB_STATUS.filter(topics.base)):
        bus.subscribe(f, lambda m: q.put((m.topic, bytes(m.payload), bool(m.retain))), whole=True)
    found = _Found()
    deadline = time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            topic, payload, retained = q.get(timeout=left)
        except queue.Empty:
            break
        if topic == topics.set_heartbeat(set_id):
            found.beating = True
        elif not retained or not payload:
            continue
        elif topic == topics.set_state(set_id):
            found.topics.append(topic)
        else:
            try:
                data = json.loads(payload)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("set") == set_id:
                found.topics.append(topic)
    found.topics = sorted(set(found.topics))
    return found
