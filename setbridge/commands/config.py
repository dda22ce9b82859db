"""``setbridge config check``: validate and print the effective configuration."""

from __future__ import annotations

import argparse
import json

from ._common import add_config_arg, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="check the configuration")
    actions = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="print the effective config (passwords hidden), or each error")
    add_config_arg(check)
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    print(json.dumps(settings.redacted(), indent=2, ensure_ascii=False))
    return 0
