"""The light's ``config.json``: loaded once, defaults filled in, checked.

Keys (see firmware/README.md): ``id``, ``set``, ``hub``, ``wifi.ssid``/``wifi.key``,
``mqtt.host``/``port``/``user``/``password``/``base_topic``/``keepalive_s``,
``heartbeat_timeout_s``, ``alive_s``, ``reconnect_max_s``, ``watchdog_s``, ``output``, ``colors``.
"""

import json

DEFAULTS = {
    "hub": "hub-1",
    "set": "main",
    "wifi": {"ssid": "", "key": ""},
    "mqtt": {"host": "", "port": 1883, "user": None, "password": None, "base_topic": "setbridge", "keepalive_s": 10},
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
    _number(cfg, "watchdog_s", 0, 60, "watchdog_s")
    if cfg["output"].get("type") not in ("relay", "pwm", "neopixel"):
        raise ValueError("config.json: output.type must be relay, pwm or neopixel")
    return cfg


def load(path="config.json"):
    with open(path) as f:
        return check(json.load(f))
