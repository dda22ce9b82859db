"""``setbridge broker config|add-user``: a secured Mosquitto for the stage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..broker_config import DEFAULT_DIR, ROLES, BrokerFiles, Listeners, add_user, reload_hint, write_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("broker", help="write a secured Mosquitto config and manage its users")
    actions = p.add_subparsers(dest="broker_command", required=True, metavar="ACTION")

    cfg = actions.add_parser("config", help="write the config, password file and ACL")
    cfg.add_argument("--out", type=Path, metavar="DIR",
                     help="write every file into DIR as a standalone config (default: a drop-in under /etc/mosquitto)")
    cfg.add_argument("--port", type=int, default=1883, help="plain MQTT listener port (default 1883)")
    cfg.add_argument("--bind", default="127.0.0.1",
                     help="address of the plain listener (default 127.0.0.1, this machine only; "
                          "0.0.0.0 serves plain MQTT to the whole network)")
    cfg.add_argument("--tls-port", type=int, help="also listen with TLS on this port (e.g. 8883)")
    cfg.add_argument("--tls-bind", default="0.0.0.0", help="address of the TLS listener (default all)")
    cfg.add_argument("--tls-only", action="store_true",
                     help="no plain listener at all: every role, lights too, connects over TLS on --tls-port")
    cfg.add_argument("--cafile", type=Path, help="CA certificate for the TLS listener")
    cfg.add_argument("--certfile", type=Path, help="server certificate for the TLS listener")
    cfg.add_argument("--keyfile", type=Path, help="server key for the TLS listener")
    cfg.add_argument("--base-topic", default="setbridge", help="base topic the ACL grants (default setbridge)")
    cfg.set_defaults(func=run_config)

    add = actions.add_parser("add-user", help="add or update a broker user with a role")
    add.add_argument("name", help="user name; a light uses its light id")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--password", help="password (default: a random one, printed once)")
    add.add_argument("--dir", type=Path, help="the folder given to `broker config --out` (default /etc/mosquitto)")
    add.add_argument("--base-topic", default="setbridge", help="base topic the ACL grants (default setbridge)")
    add.set_defaults(func=run_add_user)


def run_config(args: argparse.Namespace) -> int:
    files = BrokerFiles(args.out or DEFAULT_DIR, standalone=args.out is not None)
    listeners = Listeners(port=args.port, bind=args.bind, tls_port=args.tls_port, tls_bind=args.tls_bind,
                          cafile=args.cafile, certfile=args.certfile, keyfile=args.keyfile, tls_only=args.tls_only)
    written = write_config(files, args.base_topic, listeners)
    for path in written:
        print(f"wrote {path}")
    if not args.tls_only and args.bind not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: plain MQTT on {args.bind}:{args.port} carries every password in clear text on the network; "
              "prefer --tls-only (see docs/deploy.md)", file=sys.stderr)
    print(reload_hint(files))
    return 0


def run_add_user(args: argparse.Namespace) -> int:
    standalone = args.dir is not None and not (args.dir / "conf.d" / "setbridge.conf").exists()
    files = BrokerFiles(args.dir or DEFAULT_DIR, standalone=standalone)
    password = add_user(files, args.name, args.role, args.password, args.base_topic)
    print(f"user {args.name} ({args.role}) saved in {files.passwords} and {files.acl}")
    if not args.password:
        print(f"password: {password}")
    print(reload_hint(files))
    return 0
