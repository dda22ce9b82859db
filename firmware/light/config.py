"""The light's ``config.json``: loaded once, defaults filled in, checked.

Keys (see firmware/README.md): ``id``, ``set``, ``hub``, ``wifi.ssid``/``wifi.key``,
``mqtt.host``/``port``/``user``/``password``/``base_topic``/``keepalive_s``/``tls``/``ca``/``server_name``,
``ntp``, ``heartbeat_timeout_s``, ``alive_s``, ``reconnect_max_s``, ``watchdog_s``, ``output``, ``colors``.
"""

import binascii
import json

DEFAULTS = {
    "hub": "hub-1",
    "set": "main",
    "wifi": {"ssid": "", "key": ""},
    "mqtt": {"host": "", "port": 1883, "user": None, "password": None, "base_topic": "setbridge", "keepalive_s": 10,
             "tls": False, "ca": None, "server_name": None},
    "ntp": None,
    "heartbeat_timeout_s": 2.5,
    "alive_s": 1.0,
    "reconnect_max_s": 5.0,
    "watchdog_s": 8,
    "output": {"type": "relay", "pin": 2, "active_low": False},
    "colors": {},
}


def _ident(value, key):
    ok = isinstance(value, str) and 0 < len(value) <= 64 and value[0] != "-"
    if ok:
        for ch in value:
            if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-"):
                ok = False
    if not ok:
        raise ValueError("config.json: %s=%r must be lower-case letters, digits and dashes" % (key, value))
    return value


def _number(section, key, low, high, name, integer=False):
    value = section[key]
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or not low <= value <= high:
        raise ValueError("config.json: %s must be a %s between %s and %s" % (name, "whole number" if integer else "number", low, high))


def check(cfg):
    """Fill defaults into ``cfg`` (a dict) and check it; raise ValueError naming the key."""
    for key, value in DEFAULTS.items():
        if isinstance(value, dict):
            merged = dict(value)
            merged.update(cfg.get(key) or {})
            cfg[key] = merged
        else:
            cfg.setdefault(key, value)
    if "id" not in cfg:
        raise ValueError("config.json: id is missing (the light's id, e.g. door-1)")
    for key in ("id", "set", "hub"):
        _ident(cfg[key], key)
    if not cfg["mqtt"]["host"]:
        raise ValueError("config.json: mqtt.host is missing (the hub's address)")
    t = cfg["heartbeat_timeout_s"]
    if not isinstance(t, (int, float)) or not 0.5 <= t <= 3:
        raise ValueError("config.json: heartbeat_timeout_s must be between 0.5 and 3")
    _number(cfg["mqtt"], "port", 1, 65535, "mqtt.port", integer=True)
    _number(cfg["mqtt"], "keepalive_s", 2, 600, "mqtt.keepalive_s", integer=True)
    _number(cfg, "alive_s", 0.2, 10, "alive_s")
    _number(cfg, "reconnect_max_s", 0.5, 300, "reconnect_max_s")
    m = cfg["mqtt"]
    if m["tls"] not in (True, False):
        raise ValueError("config.json: mqtt.tls must be true or false")
    if m["tls"] and not (isinstance(m["ca"], str) and m["ca"]):
        raise ValueError("config.json: mqtt.tls is on but mqtt.ca is missing (the broker's CA file, e.g. ca.der)")
    if m["server_name"] is not None and not isinstance(m["server_name"], str):
        raise ValueError("config.json: mqtt.server_name must be the name in the broker's certificate")
    if cfg["ntp"] is not None and not (isinstance(cfg["ntp"], str) and cfg["ntp"]):
        raise ValueError("config.json: ntp must be the address of a time server (default: mqtt.host)")
    _number(cfg, "watchdog_s", 0, 60, "watchdog_s")
    if cfg["output"].get("type") not in ("relay", "pwm", "neopixel"):
        raise ValueError("config.json: output.type must be relay, pwm or neopixel")
    return cfg


def pem_to_der(data):
    """The first certificate of a PEM file as DER bytes (DER passes through)."""
    if not data.lstrip().startswith(b"-----BEGIN"):
        return data
    lines = data.split(b"\n")
    body = []
    inside = False
    for line in lines:
        line = line.strip()
        if line.startswith(b"-----BEGIN CERTIFICATE"):
            inside = True
        elif line.startswith(b"-----END"):
            if inside:
                break
        elif inside:
            body.append(line)
    if not body:
        raise ValueError("no certificate in it")
    return binascii.a2b_base64(b"".join(body))


def load_ca(cfg, path):
    """Read the pinned CA named by ``mqtt.ca`` (next to config.json unless absolute) into ``mqtt._ca``."""
    m = cfg["mqtt"]
    if not m["tls"]:
        return
    name = m["ca"]
    if not name.startswith("/"):
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        name = folder + "/" + name if folder else name
    try:
        with open(name, "rb") as f:
            m["_ca"] = pem_to_der(f.read())
    except (OSError, ValueError) as exc:
        raise ValueError("config.json: mqtt.ca %s cannot be read as a certificate (%s); copy the broker's CA "
                         "next to config.json" % (m["ca"], exc))


def load(path="config.json"):
    with open(path) as f:
        cfg = check(json.load(f))
    load_ca(cfg, path)
    return cfg
