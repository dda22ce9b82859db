"""``setbridge hub``: run the hub service."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from typing import TYPE_CHECKING

from ._common import add_config_arg, settings_from

if TYPE_CHECKING:
    from ..config import AudioSettings



def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("hub", help="run the hub service (voice, requests, heartbeats)")
    add_config_arg(p)
    p.add_argument("--audio", metavar="SOURCE",
                   help='override [audio]: "-" for raw 16-bit PCM on stdin, "mic", "none", or a WAV file')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub import Hub

    if args.verbose == 0:
        logging.getLogger().setLevel(logging.INFO)
    settings = settings_from(args)
    if args.audio:
        settings.audio = audio_override(settings.audio, args.audio)
    hub = Hub(settings)
    hub.run_forever()
    return 0


def audio_override(audio: AudioSettings, value: str) -> AudioSettings:
    """``[audio]`` with the source named on the command line."""
    if value == "-":
        return audio.model_copy(update={"source": "stdin"})
    if value in ("mic", "none"):
        return audio.model_copy(update={"source": value})
    return audio.model_copy(update={"source": "file", "file": Path(value)})
