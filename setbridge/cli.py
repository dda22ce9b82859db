"""The ``setbridge`` command: one sub-command per module in ``setbridge.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from .errors import SetbridgeError

COMMANDS = [
    "hub",
    "send",
    "watch",
    "config",
    "schema",
    "detect", "devices", "model",
    "lights",
    "light",
    "offload",
    "broker",
    "status",
    "web",
    "takes",
    "timecode",
]
"""Modules under ``setbridge.commands``; each has ``register(subparsers)``."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every sub-command, or with ``only`` that one (importing one command module
    instead of all keeps every invocation's start-up short)."""
    parser = argparse.ArgumentParser(prog="setbridge", description="The connected film set hub.")
    parser.add_argument("--version", action="version", version=f"setbridge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS if only is None else [only]:
        importlib.import_module(f"setbridge.commands.{name}").register(sub)
    return parser


class LogFormatter(logging.Formatter):
    """Log lines with every unsafe character of the message escaped (:func:`setbridge.escape.terminal`):
    text from the bus (a request's ``source``, a topic) can neither forge a second line nor send
    escape sequences to a terminal. A traceback, which comes from setbridge itself, keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        from .escape import terminal  # on the first line logged: a command that logs nothing never loads it

        record.message = terminal(record.message)
        return super().formatMessage(record)


def chosen_command(argv: list[str]) -> str | None:
    """The sub-command named on the command line, if any (the options before it take no value)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(chosen_command(argv)).parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    try:
        return int(args.func(args) or 0)
    except SetbridgeError as exc:
        print(f"setbridge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
