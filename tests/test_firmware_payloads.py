"""One table of payloads through the hub's models and the light's parser (the real firmware under the
MicroPython Unix port): both accept and refuse the same ones. The hub's models define the contract; a
light refuses, besides, what is over its 2 KiB limit."""

from __future__ import annotations

import json
import subprocess

import pytest

from setbridge import contract
from setbridge.codec import parse_payload
from setbridge.sim.lights import FIRMWARE_PATH, find_micropython
from setbridge.errors import PayloadError

pytestmark = pytest.mark.integration

LIGHT_MAX_BYTES = 2048
PARSERS = {"set_state": "parse_set_state", "set_heartbeat": "parse_heartbeat", "hub_status": "parse_hub_status",
           "light_cmd": "parse_cmd"}
"""The topics a light reads, named as in setbridge/contract.py, and the firmware's parser of each."""
VALID = {
    "set_state": {"v": 1, "set": "main", "state": "rolling", "epoch": 3, "seq": 41, "take": 7, "cause": "voice",
                  "ts": 1795399504.25},
    "set_heartbeat": {"v": 1, "epoch": 3, "seq": 41, "state": "idle", "ts": 1795399504.25},
    "hub_status": {"v": 1, "state": "online", "hub": "hub-1", "set": "main", "version": "0.1.0", "audio": "ok",
                   "voice": True, "offload": "ok", "timecode": "off", "ts": 1795399504},
    "light_cmd": {"v": 1, "action": "flash", "duration_s": 2, "color": "green", "pattern": "slow"},
}
REQUIRED = {"set_state": ("set", "state", "epoch", "seq", "take", "cause"), "set_heartbeat": ("epoch", "seq", "state"),
            "hub_status": ("state", "hub", "set", "version"), "light_cmd": ("action",)}
WRONG = ["1", True, 1.5, None, [], {}, -1, 2**53, "rolling\n", "UPPER", ""]
"""Values tried in every field: each is the wrong type or value for most of them."""
FIELD_VALUES = {
    "epoch": [0, 2**53 - 1, 2**53, -1, 10**30, 1.0, 1e3, True, "3"],
    "seq": [0, 2**53 - 1, 2**53, -1, 1.5, False],
    "take": [0, 2**53, -5],
    "v": [1, True, 1.0, 2, "1", 0, None],
    "state": ["idle", "standby", "rolling", "offline", "online", "Rolling", "flash"],
    "set": ["main", "stage-a", "a" * 64, "a" * 65, "-main", "Main", "main\n", "mäin", "", 7],
    "hub": ["hub-1", "hub_1", "HUB"],
    "ts": [0, -1.5, 1e308, True, "now", None],
    "duration_s": [600, 600.5, 0, 0.001, -1, "5", True, None, 5],
    "color": ["green", "red", "white", "amber", "blue", None, 1],
    "pattern": ["slow", "fast", None, "medium"],
    "action": ["identify", "test", "flash", "roll", None],
    "voice": [True, False, None, 1, "yes"],
    "audio": ["ok", "fault", "off", None, "on"],
    "recorder": ["recording", "stopped", None, "rolling"],
    "offload_reason": ["disk full", None, 5],
    "version": ["0.1.0", 1, None],
    "cause": ["voice", "", None, 3],
}
RAW = [  # BODY: the fields of the topic's valid payload; DUPLICATE: its first required field again
    b'{"v": 1, BODY}',
    b'{BODY, DUPLICATE}',
    b'{BODY, "x": 1, "\\u0078": 2}',
    b'\xef\xbb\xbf{BODY}',
    b'\xef\xbb\xbf\xef\xbb\xbf{BODY}',
    b'{BODY, "note": "\\ud800"}',
    b'{BODY, "note": "\\udc00\\ud800"}',
    b'{BODY, "note": "\\ud83d\\ude00 \xf0\x9f\x8e\xac"}',
    b'{BODY, "\\ud800": 1}',
    b'{BODY, "note": "\xed\xa0\x80"}',
    b'{BODY, "note": "\xc0\x80"}',
    b'{BODY, "note": "\xff"}',
    b'{BODY, "note": "a\nb"}',
    b'{BODY, "note": "\\x41"}',
    b'{BODY,}',
    b'{BODY "x": 1}',
    b'{BODY, "num": 01}',
    b'{BODY, "num": 1.}',
    b'{BODY, "num": NaN}',
    b'{BODY, "num": -01}',
    b'{BODY, "num": 1e}',
    b'{BODY, "num": 1e+}',
    b'{BODY, "num": -}',
    b'{BODY, "num": 1.e3}',
    b'{BODY, "num": -0}',
    b'{BODY, "num": 1.5e-3}',
    b'{BODY, "num": -0.0E+2}',
    b'{BODY, "num": 2.5E308}',
    b'{BODY, "num": 1e400}',
    b'{BODY, "x": [1, 2,]}',
    b'{BODY, "x": true1}',
    b'{BODY} x',
    b' \n{BODY}\r\n ',
    b'{BODY, "x": {"y": [1, {"z": null}, "\\u00e9\\n"], "w": -0.5e-3}}',
    b'{BODY, "x": ' + b"[" * 63 + b"]" * 63 + b"}",
    b'{BODY, "x": ' + b"[" * 64 + b"]" * 64 + b"}",
    b'{BODY, "x": ' + b"[" * 900 + b"]" * 900 + b"}",
    b"[]", b'"idle"', b"1", b"null", b"", b"{", b"{}", b'{"v": 1}',
] + [b'{BODY, "num": ' + number + b"}" for number in (
    b"1.7976931348623157e308", b"1.7976931348623158e308", b"1.8e308", b"0.001e312", b"18e307", b"1e-400", b"0.0e999",
    b"%d.0" % ((1 << 1024) - (1 << 970)), b"%d.0" % ((1 << 1024) - (1 << 970) - 1), b"-1e309", b"3.5e38")]
"""Numbers at a double's edge: the hub refuses what a double rounds to infinity (from the smallest
such number, 2**1024 - 2**970, up)."""


def _rows() -> list[tuple[str, bytes]]:
    rows: list[tuple[str, bytes]] = []
    for name, valid in VALID.items():
        rows.append((name, json.dumps(valid).encode()))
        rows.append((name, json.dumps({k: valid[k] for k in ("v", *REQUIRED[name])}).encode()))
        for key in valid:
            rows.append((name, json.dumps({k: v for k, v in valid.items() if k != key}).encode()))
            for value in WRONG + FIELD_VALUES.get(key, []):
                rows.append((name, json.dumps({**valid, key: value}).encode()))
        for key, values in FIELD_VALUES.items():
            rows.extend((name, json.dumps({**valid, key: value}).encode()) for value in values if key not in valid)
        body = json.dumps(valid).encode()
        for size in (LIGHT_MAX_BYTES, LIGHT_MAX_BYTES + 1, 70_000):
            pad = b', "pad": "' + b"x" * (size - len(body) - 11) + b'"}'
            rows.append((name, body[:-1] + pad))
        first = REQUIRED[name][0]
        duplicate = json.dumps({first: valid[first]})[1:-1].encode()
        rows.extend((name, raw.replace(b"BODY", body[1:-1]).replace(b"DUPLICATE", duplicate)) for raw in RAW)
    return list(dict.fromkeys(rows))


ROWS = _rows()

LIGHT_SIDE = """
import sys, binascii
for p in %r:
    sys.path.insert(0, p)
import payloads
while True:
    line = sys.stdin.readline()
    if not line:
        break
    name, data = line.split()
    try:
        getattr(payloads, %r[name])(b"" if data == "-" else binascii.unhexlify(data))
        print("accepted")
    except ValueError as exc:
        print("refused " + str(exc).replace("\\n", " "))
    except Exception as exc:
        print("crashed %%r" %% (exc,))
"""


@pytest.fixture(scope="module")
def light_verdicts() -> dict[tuple[str, bytes], str]:
    script = LIGHT_SIDE % ([str(p) for p in FIRMWARE_PATH], PARSERS)
    stdin = "".join(f"{name} {raw.hex() or '-'}\n" for name, raw in ROWS)
    out = subprocess.run([find_micropython(), "-c", script], input=stdin,
                         capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert len(lines) == len(ROWS), out.stderr
    return dict(zip(ROWS, lines))


def _hub_accepts(name: str, raw: bytes) -> bool:
    try:
        parse_payload(contract.BY_NAME[name].model, raw)
    except PayloadError:
        return False
    return True


def test_the_table_holds_both_answers():
    """The table is worth running: it holds payloads the hub accepts and refuses for every topic."""
    for name in PARSERS:
        verdicts = {_hub_accepts(n, raw) for n, raw in ROWS if n == name}
        assert verdicts == {True, False}, name
    assert len(ROWS) > 400


@pytest.mark.parametrize("name,raw", ROWS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ROWS)])
def test_the_light_accepts_and_refuses_what_the_hub_does(name: str, raw: bytes,
                                                        light_verdicts: dict[tuple[str, bytes], str]):
    light = light_verdicts[(name, raw)]
    assert not light.startswith("crashed"), light
    hub = _hub_accepts(name, raw)
    if len(raw) > LIGHT_MAX_BYTES:
        assert light.startswith("refused payload is"), light
    else:
        assert (light == "accepted") == hub, f"hub {'accepts' if hub else 'refuses'}, light says {light}: {raw[:200]!r}"
