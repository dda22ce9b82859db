"""``setbridge detect FILE...``: run the hub's voice detector over WAV files as fast as possible.

With ``--labels LABELS.csv`` it scores the detector on the user's own labelled recordings
(recall, false triggers per hour, latency; misses and false triggers listed): a field check.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..actions import ACTIONS, Action
from ._common import add_recording_args, settings_from

if TYPE_CHECKING:
    from ..speech.detector import Trigger
    from ..speech.fieldcheck import Report


def _phrase(text: str) -> tuple[Action, str]:
    action, sep, phrase = text.partition("=")
    if not sep or action not in ACTIONS or not phrase.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected ACTION=TEXT with ACTION {', '.join(ACTIONS)}")
    return action, " ".join(phrase.lower().split())


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("detect", help="find trigger phrases in WAV files (the hub's detector, offline)")
    add_recording_args(p, "input channel to listen to, 1 = first (default: [audio] channel, else the downmix)")
    p.add_argument("--model", metavar="DIR", help="model directory or installed name (default: [speech] model)")
    p.add_argument("--phrase", action="append", type=_phrase, default=[], metavar="ACTION=TEXT",
                   help="trigger phrase; repeatable; replaces the configured phrases")
    p.add_argument("--ungated", action="store_true", help="let every phrase fire whatever the set state")
    p.add_argument("--labels", type=Path, metavar="LABELS.csv",
                   help="score against labelled calls (CSV: file,action,time of the call's end in s)")
    p.add_argument("--json", action="store_true", help="one JSON object per trigger per line (and the score)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..audio import WavFileSource
    from ..speech import Detector, load_model, resolve_model, tuning_from
    from ..speech.fieldcheck import Fired, file_key, labelled_state, load_labels, score

    settings = settings_from(args)
    speech = settings.speech
    calls = load_labels(args.labels) if args.labels else None
    phrases: dict[Action, list[str]] = {}
    for action, text in args.phrase:
        phrases.setdefault(action, []).append(text)
    phrases = phrases or speech.phrases
    model_name = args.model or speech.model
    channel = args.channel if args.channel is not None else settings.audio.channel
    model = load_model(resolve_model(model_name, settings.hub.state_dir))
    tuning = tuning_from(speech)
    names = {c.file for c in calls or []}
    fired: list[Fired] = []
    audio_s = 0.0
    for path in args.files:
        with WavFileSource(path, realtime=False, channel=channel) as source:
            detector = Detector(model, source.rate, phrases, tuning, gated=not args.ungated, model_name=model_name)
            labelled = [c for c in calls or [] if c.file == file_key(path, names)]
            samples = 0
            for block in source:
                samples += len(block) // 2
                if labelled and (state := labelled_state(labelled, detector.position)) is not None:
                    detector.state = state  # gated by the set state the labels say, as the hub would be
                triggers = detector.feed(block)
                fired += [Fired(file_key(path, names), t.action, t.time, t.phrase) for t in triggers]
                _report(path, triggers, args.json, quiet=calls is not None)
            triggers = detector.flush()
            fired += [Fired(file_key(path, names), t.action, t.time, t.phrase) for t in triggers]
            _report(path, triggers, args.json, quiet=calls is not None)
            audio_s += samples / source.rate
    if calls is None:
        return 0
    given = {file_key(p, names) for p in args.files}
    unknown = sorted(names - given)
    if unknown:
        print(f"note: {args.labels} labels {len(unknown)} file(s) not given, left out: {', '.join(unknown[:5])}",
              file=sys.stderr)
    report = score([c for c in calls if c.file in given], fired, audio_s)
    if args.json:
        print(json.dumps(report.summary(), ensure_ascii=False), flush=True)
    else:
        _print_report(report)
    return 0


def _report(path: Path, triggers: list["Trigger"], as_json: bool, quiet: bool = False) -> None:
    if quiet:
        return
    for t in triggers:
        if as_json:
            print(json.dumps({"file": str(path), "action": t.action, "phrase": t.phrase, "time": t.time,
                              "confidence": t.confidence}, ensure_ascii=False), flush=True)
        else:
            print(f"{path}: {t.time:8.2f} s  {t.action:<8} {t.phrase!r}  confidence {t.confidence:.2f}", flush=True)


def _print_report(report: "Report") -> None:
    def fmt(x: float, spec: str) -> str:
        return "n/a" if math.isnan(x) else format(x, spec)

    print(f"calls      {report.hits}/{report.calls} heard, recall {fmt(report.recall, '.3f')}")
    print(f"false      {len(report.false)} in {report.audio_s / 3600:.2f} h of audio = "
          f"{fmt(report.false_per_hour, '.1f')} per hour")
    print(f"latency    p50 {fmt(report.latency_ms(0.5), '.0f')} ms, p95 {fmt(report.latency_ms(0.95), '.0f')} ms "
          f"after the labelled end of the call")
    if report.takes:
        print(f"takes      {len(report.takes)} labelled ({report.take_s / 3600:.2f} h); "
              f"{len(report.false_cuts_in_takes)} false cuts inside takes = "
              f"{fmt(report.false_cuts_per_take_hour(), '.1f')} per hour of takes; "
              f"{report.dark_takes} of {len(report.takes)} takes went dark")
        print(f"idle       {len(report.false_rolls_idle)} false rolls while idle = "
              f"{fmt(report.false_rolls_per_idle_hour(), '.1f')} per idle hour")
    for call in report.misses:
        print(f"missed     {call.file} {call.time:8.2f} s  {call.action}")
    for f in report.false:
        print(f"false      {f.file} {f.time:8.2f} s  {f.action:<8} {f.phrase!r}")
