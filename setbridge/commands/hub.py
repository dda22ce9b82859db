"""``setbridge hub``: run the hub service."""

from __future__ import annotations

import argparse
import logging

from ._common import add_config_arg, settings_from

log = logging.getLogger("setbridge.hub")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hub", help="run the hub service (voice, requests, heartbeats)")
    add_config_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub import Hub

    if args.verbose == 0:
        logging.getLogger().setLevel(logging.INFO)
    settings = settings_from(args)
    hub = Hub(settings)
    hub.run_forever()
    return 0
