"""Validation of the payloads a light reads (contract v1, see docs/mqtt.md).

Each ``parse_*`` returns a dict of clean fields or raises ValueError with a
one-line reason; the caller logs it and changes nothing.
"""

import json

SET_STATES = ("idle", "standby", "rolling")
COLORS = {"green": (0, 255, 0), "red": (255, 0, 0), "white": (255, 255, 255), "amber": (255, 120, 0)}
MAX_BYTES = 2048
MAX_INT = 9007199254740991
"""2**53 - 1: the largest integer every JSON reader of the bus (JavaScript, MicroPython, SQLite) holds exactly."""

# The topics a light uses: name -> (levels below the base topic, QoS, retained). The firmware cannot
# import setbridge, so it keeps this copy; a test checks it against setbridge/contract.py.
TOPICS = {
    "hub_status": ("hub/{hub}/status", 1, True),
    "set_state": ("set/{set}/state", 1, True),
    "set_heartbeat": ("set/{set}/heartbeat", 0, False),
    "light_status": ("light/{light}/status", 1, True),
    "light_state": ("light/{light}/state", 1, True),
    "light_alive": ("light/{light}/alive", 0, False),
    "light_cmd": ("light/{light}/cmd", 1, False),
}


def topic(base, name, ids):
    """The concrete topic ``name`` for ``ids`` ({"set": ..., "hub": ..., "light": ...})."""
    return base + "/" + TOPICS[name][0].format(**ids)


def qos(name):
    return TOPICS[name][1]


def retained(name):
    return TOPICS[name][2]


def _obj(raw):
    if len(raw) > MAX_BYTES:
        raise ValueError("payload is %d bytes; the limit is %d" % (len(raw), MAX_BYTES))
    try:
        data = json.loads(raw)
    except Exception:  # ValueError, UnicodeError, RecursionError/RuntimeError on MicroPython
        raise ValueError("payload is not JSON")
    if not isinstance(data, dict):
        raise ValueError("payload is not a JSON object")
    version = data.get("v")
    if type(version) is not int or version != 1:  # true and 1.0 are not version 1
        raise ValueError("unsupported payload version v=%r" % (version,))
    return data


def _int(data, key):
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("%s must be a non-negative integer" % key)
    if value > MAX_INT:
        raise ValueError("%s is above 2**53 - 1, the largest integer every reader holds exactly" % key)
    return value


def _choice(data, key, choices):
    value = data.get(key)
    if value not in choices:
        raise ValueError("%s=%r is not one of %s" % (key, value, "/".join(choices)))
    return value


def parse_set_state(raw):
    """``set/{set}/state`` and ``set/{set}/heartbeat``: state, epoch, seq."""
    data = _obj(raw)
    return {"state": _choice(data, "state", SET_STATES), "epoch": _int(data, "epoch"), "seq": _int(data, "seq")}


def parse_hub_status(raw):
    """``hub/{hub}/status``: online or offline."""
    return _choice(_obj(raw), "state", ("online", "offline"))


def parse_cmd(raw):
    """``light/{light}/cmd``: identify, test or flash, with duration and options."""
    data = _obj(raw)
    action = _choice(data, "action", ("identify", "test", "flash"))
    duration = data.get("duration_s", 5.0)
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) or not 0 < duration <= 600:
        raise ValueError("duration_s must be a number in (0, 600]")
    color = data.get("color")
    if color is not None and color not in COLORS:
        raise ValueError("color=%r is not one of %s" % (color, "/".join(COLORS)))
    pattern = data.get("pattern")
    if pattern is not None and pattern not in ("slow", "fast"):
        raise ValueError("pattern must be slow or fast")
    return {"action": action, "duration_ms": int(duration * 1000), "pattern": pattern or "slow",
            "rgb": COLORS[color] if color else None}


def light_state(showing, epoch, seq):
    """``light/{light}/state`` payload."""
    out = {"v": 1, "showing": showing}
    if epoch is not None:
        out["epoch"] = epoch
        out["seq"] = seq
    return json.dumps(out)


def light_status(state, fw, set_id):
    """``light/{light}/status`` payload (birth and last will)."""
    return json.dumps({"v": 1, "state": state, "fw": fw, "set": set_id})


def light_alive(showing, epoch, seq, every_s):
    """``light/{light}/alive`` payload: sent every ``every_s`` while the main loop runs."""
    out = {"v": 1, "showing": showing, "every_s": every_s}
    if epoch is not None:
        out["epoch"] = epoch
        out["seq"] = seq
    return json.dumps(out)
