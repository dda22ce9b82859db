"""Validation of the payloads a light reads (contract v1, see docs/mqtt.md).

Each ``parse_*`` returns a dict of clean fields or raises ValueError with a
one-line reason; the caller logs it and changes nothing.
"""

import json

import strictjson

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
        data = strictjson.loads(raw)
    except ValueError:
        raise
    except Exception:  # RecursionError/RuntimeError, MemoryError on a board
        raise ValueError("payload is not JSON")
    if not isinstance(data, dict):
        raise ValueError("payload is not a JSON object")
    version = data.get("v")
    if type(version) is not int or version != 1:  # true and 1.0 are not version 1
        raise ValueError("unsupported payload version v=%r" % (version,))
    return data


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_id(value):
    """``[a-z0-9][a-z0-9-]*``, at most 64 characters: a topic level the hub accepts as an id."""
    if not isinstance(value, str) or not 0 < len(value) <= 64 or value[0] == "-":
        return False
    for ch in value:
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-"):
            return False
    return True


# What the hub's models (setbridge/messages.py) require of the payloads a light reads, field by field:
# name -> (kind, required, null allowed). A kind is a tuple of choices, or one of the names below.
# Other fields are ignored, as the hub ignores them. A test runs one table of payloads through these
# and the hub's models and checks both accept and refuse the same ones.
SCHEMAS = {
    "set_state": {"set": ("id", True, False), "state": (SET_STATES, True, False), "epoch": ("count", True, False),
                  "seq": ("count", True, False), "take": ("count", True, False), "cause": ("str", True, False),
                  "ts": ("number", False, False)},
    "set_heartbeat": {"epoch": ("count", True, False), "seq": ("count", True, False),
                      "state": (SET_STATES, True, False), "ts": ("number", False, False)},
    "hub_status": {"state": (("online", "offline"), True, False), "hub": ("id", True, False),
                   "set": ("id", True, False), "version": ("str", True, False),
                   "audio": (("ok", "fault", "off"), False, False), "voice": ("bool", False, True),
                   "offload": (("ok", "fault"), False, False), "offload_reason": ("str", False, True),
                   "timecode": (("ok", "fault", "off"), False, False), "timecode_reason": ("str", False, True),
                   "recorder": (("recording", "stopped"), False, True), "ts": ("number", False, False)},
    "light_cmd": {"action": (("identify", "test", "flash"), True, False), "duration_s": ("duration", False, False),
                  "color": (tuple(COLORS), False, True), "pattern": (("slow", "fast"), False, True)},
}


def _field(key, value, kind):
    """Raise ValueError unless ``value`` is of ``kind`` (see SCHEMAS)."""
    if isinstance(kind, tuple):
        if not isinstance(value, str) or value not in kind:
            raise ValueError("%s=%r is not one of %s" % (key, value, "/".join(kind)))
    elif kind == "count":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError("%s must be a non-negative integer" % key)
        if value > MAX_INT:
            raise ValueError("%s is above 2**53 - 1, the largest integer every reader holds exactly" % key)
    elif kind == "duration":
        if not _is_number(value) or not 0 < value <= 600:
            raise ValueError("%s must be a number in (0, 600]" % key)
    elif kind == "number":
        if not _is_number(value):
            raise ValueError("%s must be a number" % key)
    elif kind == "id":
        if not _is_id(value):
            raise ValueError("%s must be an id: up to 64 lower-case letters, digits and dashes" % key)
    elif kind == "str":
        if not isinstance(value, str):
            raise ValueError("%s must be a string" % key)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("%s must be true or false" % key)


def check(name, raw):
    """The payload ``raw`` of topic ``name`` as a dict, checked as the hub checks it; ValueError if not."""
    data = _obj(raw)
    for key, (kind, required, nullable) in SCHEMAS[name].items():
        if key not in data:
            if required:
                raise ValueError("%s is missing" % key)
        elif data[key] is not None or not nullable:
            _field(key, data[key], kind)
    return data


def parse_set_state(raw):
    """``set/{set}/state``: state, epoch, seq."""
    data = check("set_state", raw)
    return {"state": data["state"], "epoch": data["epoch"], "seq": data["seq"]}


def parse_heartbeat(raw):
    """``set/{set}/heartbeat``: state, epoch, seq."""
    data = check("set_heartbeat", raw)
    return {"state": data["state"], "epoch": data["epoch"], "seq": data["seq"]}


def parse_hub_status(raw):
    """``hub/{hub}/status``: online or offline."""
    return check("hub_status", raw)["state"]


def parse_cmd(raw):
    """``light/{light}/cmd``: identify, test or flash, with duration and options."""
    data = check("light_cmd", raw)
    duration = data.get("duration_s", 5.0)
    color = data.get("color")
    return {"action": data["action"], "duration_ms": int(duration * 1000), "pattern": data.get("pattern") or "slow",
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
