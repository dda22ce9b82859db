"""``setbridge takes``: the day's take log, as kept by ``setbridge web``."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from ._common import add_config_arg, add_set_arg, settings_from


def _date(text: str) -> dt.date:
    from ..web.takes import day_problem

    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-05-01") from None
    if (problem := day_problem(day)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return day


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("takes", help="print a day's takes: time, duration, take number and trigger")
    add_config_arg(p)
    add_set_arg(p)
    p.add_argument("--date", type=_date, default=None, metavar="D", help="the day, YYYY-MM-DD (default today)")
    p.add_argument("--csv", action="store_true", help="CSV, as the board's download")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the takes; every text from the bus (a request's ``source``, a phrase) is escaped, as in
    ``setbridge watch``, so a control character cannot rewrite the terminal or forge a line."""
    from ..escape import terminal
    from ..web.takes import TakeLog, to_csv

    settings = settings_from(args)
    day = args.date or dt.date.today()
    log = TakeLog(settings.web_data_dir() / "takes.sqlite", readonly=True)
    try:
        takes = log.takes(day, args.set_id)
    finally:
        log.close()
    if args.csv:
        sys.stdout.write(to_csv(takes))
        return 0
    print(f"takes on {day.isoformat()}: {len(takes)}")
    for t in takes:
        rolled = _clock(t.roll.at) if t.roll else "(before the log)"
        cut = _clock(t.cut.at) if t.cut else "ROLLING"
        duration = f"{t.duration_s:7.1f} s" if t.duration_s is not None else "      — "
        rate = f" @ {t.fps:g} fps" if t.fps else ""
        tc = f"  TC {t.tc_in or '?'} → {t.tc_out or '?'}{rate}" if t.tc_in or t.tc_out else ""
        print(terminal(f"{t.set_id} take {t.take:>3}  {rolled} → {cut}  {duration}  rolled by "
                       f"{t.roll.describe() if t.roll else '?'}; cut by {t.cut.describe() if t.cut else '—'}{tc}"))
    return 0


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")
