"""``setbridge detect FILE...``: run the hub's voice detector over WAV files as fast as possible."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import add_config_arg, settings_from


def _phrase(text: str) -> tuple[str, str]:
    action, sep, phrase = text.partition("=")
    if not sep or action not in ("roll", "cut", "standby", "idle") or not phrase.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected ACTION=TEXT with ACTION roll, cut, standby or idle")
    return action, " ".join(phrase.lower().split())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="find trigger phrases in WAV files (the hub's detector, offline)")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="16-bit PCM WAV files")
    add_config_arg(p)
    p.add_argument("--model", metavar="DIR", help="model directory or installed name (default: [speech] model)")
    p.add_argument("--phrase", action="append", type=_phrase, default=[], metavar="ACTION=TEXT",
                   help="trigger phrase; repeatable; replaces the configured phrases")
    p.add_argument("--ungated", action="store_true", help="let every phrase fire whatever the set state")
    p.add_argument("--json", action="store_true", help="one JSON object per trigger per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..audio import WavFileSource
    from ..speech import Detector, load_model, resolve_model, tuning_from

    settings = settings_from(args)
    speech = settings.speech
    phrases: dict[str, list[str]] = {}
    for action, text in args.phrase:
        phrases.setdefault(action, []).append(text)
    phrases = phrases or speech.phrases
    model_name = args.model or speech.model
    model = load_model(resolve_model(model_name, settings.hub.state_dir))
    tuning = tuning_from(speech)
    for path in args.files:
        with WavFileSource(path, realtime=False) as source:
            detector = Detector(model, source.rate, phrases, tuning, gated=not args.ungated, model_name=model_name)
            for block in source:
                _report(path, detector.feed(block), args.json)
            _report(path, detector.flush(), args.json)
    return 0


def _report(path: Path, triggers: list, as_json: bool) -> None:
    for t in triggers:
        if as_json:
            print(json.dumps({"file": str(path), "action": t.action, "phrase": t.phrase, "time": t.time,
                              "confidence": t.confidence}, ensure_ascii=False), flush=True)
        else:
            print(f"{path}: {t.time:8.2f} s  {t.action:<8} {t.phrase!r}  confidence {t.confidence:.2f}", flush=True)


