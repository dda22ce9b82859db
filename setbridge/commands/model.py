"""``setbridge model list`` / ``setbridge model install NAME``: Vosk models under the state directory."""

from __future__ import annotations

import argparse
import sys

from ._common import add_config_arg, settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("model", help="list or install Vosk speech models")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    lp = msub.add_parser("list", help="known and installed models")
    add_config_arg(lp)
    lp.set_defaults(func=run_list)
    ip = msub.add_parser("install", help="download and unpack a model into <state_dir>/models")
    ip.add_argument("name", metavar="NAME")
    ip.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the zip (for models not in the list)")
    add_config_arg(ip)
    ip.set_defaults(func=run_install)


def run_list(args: argparse.Namespace) -> int:
    from ..speech.catalog import CATALOG
    from ..speech.model import models_dir

    settings = settings_from(args)
    folder = models_dir(settings.hub.state_dir)
    installed = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if folder.is_dir() else []
    for entry in CATALOG.values():
        mark = "installed" if entry.name in installed else f"~{entry.size_mb} MB"
        print(f"{entry.name:<32} {mark:<10} {entry.note}")
    for name in installed:
        if name not in CATALOG:
            print(f"{name:<32} {'installed':<10}")
    print(f"models folder: {folder}")
    return 0


def run_install(args: argparse.Namespace) -> int:
    from ..speech.catalog import CATALOG
    from ..speech.install import install, stderr_progress
    from ..speech.model import models_dir

    settings = settings_from(args)
    if args.name not in CATALOG and not args.sha256:
        print(f"note: {args.name} is not in `setbridge model list`; its download cannot be checked "
              "(pass --sha256)", file=sys.stderr)
    path = install(args.name, models_dir(settings.hub.state_dir), settings.speech.models_url,
                   sha256=args.sha256, progress=stderr_progress if sys.stderr.isatty() else None)
    print(f"installed {args.name} in {path}; set [speech] model = \"{args.name}\"")
    return 0
