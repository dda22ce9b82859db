"""The ``setbridge`` command: one sub-command per module in ``setbridge.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
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
    "forget",
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


class JournalFormatter(LogFormatter):
    """Lines for systemd's journal: each starts with its syslog priority (``<3>`` for an error), so
    ``journalctl -p err`` finds it, and carries no time of its own (the journal stamps every line)."""

    PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in sorted(self.PRIORITIES.items(), reverse=True) if record.levelno >= level), 7)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def writes_to_journal(stream: object, journal_stream: str) -> bool:
    """True when ``stream`` is the journal's: systemd passes its ``device:inode`` as
    ``JOURNAL_STREAM`` (part of systemd's protocol, like ``NOTIFY_SOCKET``)."""
    try:
        st = os.fstat(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return journal_stream == f"{st.st_dev}:{st.st_ino}"


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
    if writes_to_journal(handler.stream, os.environ.get("JOURNAL_STREAM", "")):
        handler.setFormatter(JournalFormatter())
    else:
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
