"""``setbridge broker config|add-user|remove-user|users|certs``: a secured Mosquitto for the stage."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import SetbridgeError
from ..lot import Bridge, stage_base
from ..broker.config import (
    DEFAULT_DIR,
    ROLES,
    BrokerFiles,
    Listeners,
    add_user,
    list_users,
    reload_hint,
    remove_user,
    write_config,
)


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
    lot = cfg.add_argument_group("a studio lot (docs/lot.md)")
    lot.add_argument("--central", action="store_true",
                     help="the lot's central broker: every stage appears under {base}/stage/STAGE; "
                          "add each stage's bridge with add-user --role bridge --stage STAGE")
    lot.add_argument("--bridge", metavar="HOST:PORT", help="bridge this stage's broker to the lot's central broker")
    lot.add_argument("--bridge-user", metavar="NAME", help="the bridge's user at the centre")
    lot.add_argument("--bridge-password", metavar="PW", help="the bridge's password at the centre")
    lot.add_argument("--bridge-ca", type=Path, metavar="FILE",
                     help="the lot's CA certificate: the bridge runs over TLS (required unless HOST is loopback)")
    lot.add_argument("--stage", help="this stage's name at the centre (default: --bridge-user)")
    cfg.set_defaults(func=run_config)

    add = actions.add_parser("add-user", help="add or update a broker user with a role")
    add.add_argument("name", help="user name; a light uses its light id")
    add.add_argument("--role", required=True, choices=(*ROLES, "bridge"),
                     help="bridge: a stage's bridge at a lot's central broker (with --stage)")
    add.add_argument("--stage", help="with --role bridge: the stage whose topics this bridge may write")
    add.add_argument("--password", help="password (default: a random one, printed once)")
    add.add_argument("--dir", type=Path, help="the folder given to `broker config --out` (default /etc/mosquitto)")
    add.add_argument("--base-topic", default="setbridge", help="base topic the ACL grants (default setbridge)")
    add.set_defaults(func=run_add_user)

    rm = actions.add_parser("remove-user", help="remove a broker user (a lost or stolen light, a person who left)")
    rm.add_argument("name")
    rm.add_argument("--dir", type=Path, help="the folder given to `broker config --out` (default /etc/mosquitto)")
    rm.add_argument("--base-topic", default="setbridge", help="base topic the ACL grants (default setbridge)")
    rm.set_defaults(func=run_remove_user)

    ls = actions.add_parser("users", help="list the broker's users and their roles (never passwords)")
    ls.add_argument("--dir", type=Path, help="the folder given to `broker config --out` (default /etc/mosquitto)")
    ls.set_defaults(func=run_users)

    certs = actions.add_parser("certs", help="make a CA for the stage and a certificate for the broker (for --tls-only)")
    certs.add_argument("--out", type=Path, metavar="DIR", help="where to write them (default /etc/mosquitto/certs)")
    certs.add_argument("--name", help="the stage's name, in the certificates (default: this machine's host name)")
    certs.add_argument("--host", action="append", default=[], metavar="NAME_OR_IP",
                       help="an address clients use to reach the broker (repeat it; give the Pi's fixed address); "
                            "localhost, 127.0.0.1 and this machine's name are always included")
    certs.add_argument("--new-ca", action="store_true",
                       help="make a new CA even if one exists (every light then needs the new CA)")
    certs.set_defaults(func=run_certs)


def _files(directory: Path | None) -> BrokerFiles:
    standalone = directory is not None and not (directory / "conf.d" / "setbridge.conf").exists()
    return BrokerFiles(directory or DEFAULT_DIR, standalone=standalone)


def run_config(args: argparse.Namespace) -> int:
    files = BrokerFiles(args.out or DEFAULT_DIR, standalone=args.out is not None)
    listeners = Listeners(port=args.port, bind=args.bind, tls_port=args.tls_port, tls_bind=args.tls_bind,
                          cafile=args.cafile, certfile=args.certfile, keyfile=args.keyfile, tls_only=args.tls_only)
    bridge = None
    if args.bridge or args.bridge_user or args.bridge_password or args.bridge_ca:
        if not args.bridge:
            raise SetbridgeError("--bridge-user, --bridge-password and --bridge-ca go with --bridge HOST:PORT")
        bridge = Bridge.parse(args.bridge, args.bridge_user, args.bridge_password, args.stage, args.bridge_ca)
    elif args.stage:
        raise SetbridgeError("--stage goes with --bridge HOST:PORT")
    written = write_config(files, args.base_topic, listeners, bridge=bridge, central=args.central)
    for path in written:
        print(f"wrote {path}")
    if not args.tls_only and args.bind not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: plain MQTT on {args.bind}:{args.port} carries every password in clear text on the network; "
              "prefer --tls-only (see docs/deploy.md)", file=sys.stderr)
    if args.central:
        print("the lot's centre: add each stage's bridge with "
              "`setbridge broker add-user STAGE --role bridge --stage STAGE` (docs/lot.md)")
    if bridge is not None:
        print(f"this stage appears at {bridge.host}:{bridge.port} under "
              f"{stage_base(args.base_topic, bridge.stage)}/ (its bridge user there: {bridge.user})")
    if bridge is not None and bridge.loopback and bridge.cafile is None:
        print(f"warning: the bridge to {args.bridge} is plain MQTT (allowed on loopback only, for tests); "
              "give --bridge-ca on a real lot", file=sys.stderr)
    print(reload_hint(files))
    return 0


def run_add_user(args: argparse.Namespace) -> int:
    files = _files(args.dir)
    password = add_user(files, args.name, args.role, args.password, args.base_topic, stage=args.stage)
    print(f"user {args.name} ({args.role}) saved in {files.passwords} and {files.acl}")
    if not args.password:
        print(f"password: {password}")
    print(reload_hint(files))
    return 0


def run_remove_user(args: argparse.Namespace) -> int:
    files = _files(args.dir)
    role = remove_user(files, args.name, args.base_topic)
    print(f"user {args.name} ({role}) removed from {files.passwords} and {files.acl}")
    print(reload_hint(files) + "; the broker then closes its connections")
    return 0


def run_users(args: argparse.Namespace) -> int:
    files = _files(args.dir)
    users = list_users(files)
    if not users:
        print(f"no users in {files.users}; add one with: setbridge broker add-user NAME --role ROLE")
    width = max((len(name) for name, _ in users), default=0)
    for name, role in users:
        print(f"{name:<{width}}  {role}")
    return 0


def run_certs(args: argparse.Namespace) -> int:
    from ..broker.certs import DEFAULT_DIR as CERTS_DIR
    from ..broker.certs import SERVER_DAYS, CertFiles, default_hosts, make_certs

    directory = args.out or CERTS_DIR
    hosts = [*default_hosts(), *args.host]
    name = args.name or (hosts[2] if len(hosts) > 2 else "setbridge")  # this machine's host name
    for path in make_certs(directory, name, hosts, new_ca=args.new_ca):
        print(f"wrote {path}")
    files = CertFiles(directory)
    print(f"the broker's certificate names: {', '.join(dict.fromkeys(hosts))}; it is valid until "
          f"{time.strftime('%Y-%m-%d', time.localtime(time.time() + SERVER_DAYS * 86400))}: run this again "
          "before then (the lights pin the CA, which stays)")
    if not args.host:
        print("warning: no --host given; clients on the network reach the broker only by a name above "
              "(add the Pi's fixed address: --host 192.168.1.10)", file=sys.stderr)
    print(f"next: setbridge broker config --tls-only --tls-port 8883 --cafile {files.ca_cert} "
          f"--certfile {files.cert} --keyfile {files.key}")
    print(f"keep {files.ca_key} off the broker's machine once done (it signs certificates); "
          "it is needed again only to renew server.crt")
    return 0
