"""Helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic loads only for commands that read the settings
    from ..config import Settings


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="PATH", help="TOML config file (default /etc/setbridge/setbridge.toml)")


def add_recording_args(parser: argparse.ArgumentParser, channel_help: str) -> None:
    """What an offline check of recordings reads: WAV files, ``--config`` and ``--channel`` (1 = first;
    ``channel_help`` says which channel and its default)."""
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="16-bit PCM WAV files, any rate, mono or more")
    add_config_arg(parser)
    parser.add_argument("--channel", type=int, metavar="N", help=channel_help)


def add_set_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="set_id", metavar="SET", help="set id (default: [hub] set)")


def settings_from(args: argparse.Namespace) -> Settings:
    """Load the settings named by ``--config``; print each problem and exit 1 when invalid."""
    from ..config import load_settings
    from ..errors import ConfigError

    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        for line in exc.lines:
            print(f"config error: {line}", file=sys.stderr)
        raise SystemExit(1) from None
