"""``setbridge light provision ID``: write a recording light's config.json from the hub's config."""

from __future__ import annotations

import argparse
import json
import secrets
import ssl
import sys
from typing import Any
from pathlib import Path

from ._common import add_config_arg, add_set_arg, settings_from

LOOPBACK = ("localhost", "127.0.0.1", "::1")
CA_NAME = "ca.der"
"""The pinned CA beside the light's config.json, in DER (what the boards' TLS reads most cheaply)."""


def read_ca(path: Path) -> bytes:
    """The first certificate of a PEM or DER file, as DER; a one-line error when it is neither."""
    from ..errors import SetbridgeError

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SetbridgeError(f"--ca {path}: cannot read it ({exc.strerror})") from None
    text = data.decode("ascii", errors="replace")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if begin in text and end in text:
        pem = text[text.index(begin):text.index(end) + len(end)]
        try:
            return ssl.PEM_cert_to_DER_cert(pem)
        except ValueError:
            pass
    elif data[:1] == b"\x30":  # a DER SEQUENCE
        return data
    raise SetbridgeError(f"--ca {path}: not a PEM or DER certificate; give the CA that signed the broker's certificate")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("light", help="recording-light tools")
    lsub = p.add_subparsers(dest="light_command", required=True, metavar="COMMAND")
    prov = lsub.add_parser("provision", help="write a light's config.json (broker, set, Wi-Fi, output)")
    prov.add_argument("light_id", metavar="ID", help="the light's id, e.g. door-1")
    add_set_arg(prov)
    add_config_arg(prov)
    prov.add_argument("--wifi-ssid", default="", help="Wi-Fi network name")
    prov.add_argument("--wifi-key", default="", help="Wi-Fi password")
    prov.add_argument("--wifi-country", default="GB", help="Wi-Fi regulatory country code (Pico W)")
    prov.add_argument("--broker-host", help="address the light uses to reach the broker (default [mqtt] host)")
    prov.add_argument("--broker-port", type=int, help="port the light connects to (default [mqtt] port)")
    prov.add_argument("--ca", type=Path, metavar="FILE",
                      help="connect over TLS and pin this CA certificate (PEM or DER), copied next to config.json "
                           "(default: [mqtt.tls] ca when the hub uses TLS)")
    prov.add_argument("--mqtt-password", help="the light's broker password (default: a new random one "
                                              "when the hub's broker uses passwords)")
    prov.add_argument("--output", choices=["relay", "pwm", "neopixel"], default="relay", help="output type")
    prov.add_argument("--pin", type=int, default=None, help="GPIO number of the output (default 2; NeoPixel 4)")
    prov.add_argument("--active-low", action="store_true", help="relay/LED switches on a low pin")
    prov.add_argument("--count", type=int, default=8, help="NeoPixel count (default 8)")
    prov.add_argument("--out", type=Path, default=None, metavar="DIR", help="directory to write (default ./light-ID)")
    prov.set_defaults(func=provision)


def provision(args: argparse.Namespace) -> int:
    from pydantic import TypeAdapter, ValidationError

    from ..errors import SetbridgeError
    from ..ids import Id
    from .provision import light_config

    try:
        TypeAdapter(Id).validate_python(args.light_id)
    except ValidationError:
        raise SetbridgeError(f"light id {args.light_id!r}: use lower-case letters, digits and dashes") from None
    settings = settings_from(args)
    set_id = args.set_id or settings.hub.set
    output: dict[str, Any] = {"type": args.output, "pin": args.pin if args.pin is not None else (4 if args.output == "neopixel" else 2)}
    if args.output == "neopixel":
        output["count"] = args.count
    elif args.active_low:
        output["active_low"] = True
    cfg = light_config(settings, args.light_id, set_id, output=output,
                       wifi={"ssid": args.wifi_ssid, "key": args.wifi_key, "country": args.wifi_country})
    cfg["mqtt"]["host"] = args.broker_host or settings.mqtt.host
    cfg["mqtt"]["port"] = args.broker_port or settings.mqtt.port
    ca = args.ca or (settings.mqtt.tls.ca if settings.mqtt.tls.enabled else None)
    if settings.mqtt.tls.enabled and ca is None:
        raise SetbridgeError("the hub uses TLS with the system's CAs; pass --ca with the CA that signed the "
                             "broker's certificate (a light pins it)")
    cfg["mqtt"].pop("tls", None)
    cfg["mqtt"].pop("ca", None)
    ca_der = None
    if ca is not None:
        ca_der = read_ca(Path(ca))
        cfg["mqtt"]["tls"], cfg["mqtt"]["ca"] = True, CA_NAME
    password = None
    if settings.mqtt.username or args.mqtt_password:
        password = args.mqtt_password or secrets.token_urlsafe(18)
        cfg["mqtt"]["user"] = args.light_id
        cfg["mqtt"]["password"] = password
    out = args.out or Path(f"light-{args.light_id}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.json"
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    path.chmod(0o600)
    print(f"wrote {path}")
    if ca_der is not None:
        (out / CA_NAME).write_bytes(ca_der)
        print(f"wrote {out / CA_NAME} (the CA the light pins)")
    if cfg["mqtt"]["host"] in LOOPBACK:
        print(f"warning: mqtt.host is {cfg['mqtt']['host']}, which a light cannot reach; "
              "pass --broker-host with the hub's address on the set network", file=sys.stderr)
    if ca_der is None:
        print("warning: the light speaks plain MQTT, so its password crosses the Wi-Fi in clear text; "
              "pass --ca and --broker-port of the broker's TLS listener (see docs/deploy.md)", file=sys.stderr)
    if not args.wifi_ssid:
        print("warning: no --wifi-ssid given; edit wifi.ssid and wifi.key in config.json", file=sys.stderr)
    if password and not args.mqtt_password:
        print(f"add the light to the broker: setbridge broker add-user {args.light_id} --role light --password {password}")
    copy = f"mpremote cp {path} :config.json"
    if ca_der is not None:
        copy += f" + cp {out / CA_NAME} :{CA_NAME}"
    print("copy it to the board with: " + copy)
    return 0
