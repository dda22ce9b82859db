"""``setbridge schema``: the JSON Schema of every MQTT payload."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of every MQTT payload, keyed by topic")
    p.add_argument("--base", default="{base}", help="base topic to show in the keys")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..contract import TOPICS

    schemas = {f"{args.base}/{t.pattern}": t.model.model_json_schema() for t in TOPICS}
    print(json.dumps(schemas, indent=2, ensure_ascii=False))
    return 0
