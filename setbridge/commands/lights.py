"""``setbridge lights simulate``: N simulated lights running the real firmware."""

from __future__ import annotations

import argparse
import signal
import threading

from ._common import add_config_arg, add_set_arg, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("lights", help="simulated recording lights")
    lsub = p.add_subparsers(dest="lights_command", required=True, metavar="COMMAND")
    sim = lsub.add_parser("simulate", help="run N lights (the real firmware under the MicroPython Unix port) "
                                           "and print one JSON line per output change")
    sim.add_argument("--count", type=int, default=3, metavar="N", help="number of lights sim-1..sim-N (default 3)")
    sim.add_argument("--light-password", metavar="PW",
                     help="each light logs in as its own user (sim-1..sim-N) with this password, as on a broker "
                          "from `setbridge broker config` (default: the [mqtt] user)")
    add_set_arg(sim)
    add_config_arg(sim)
    sim.set_defaults(func=simulate)


def simulate(args: argparse.Namespace) -> int:
    from ..errors import SetbridgeError
    from ..sim.lights import run_simulation

    if not 1 <= args.count <= 500:
        raise SetbridgeError(f"--count {args.count}: give between 1 and 500 lights")
    settings = settings_from(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_simulation(settings, args.count, args.set_id, stop=stop, verbose=args.verbose > 0,
                       light_password=args.light_password)
    except KeyboardInterrupt:
        pass
    return 0
