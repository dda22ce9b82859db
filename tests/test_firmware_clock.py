"""A TLS light sets its clock from NTP before it checks the broker's certificate dates.

The Wi-Fi board code runs under the Unix port on stand-in ``network``/``machine``/``ntptime``."""

from __future__ import annotations

import pytest
import json
import subprocess

from setbridge.sim.lights import FIRMWARE_DIR, FIRMWARE_LIB, find_micropython

pytestmark = pytest.mark.integration

SCRIPT = """
import sys, json
sys.path.insert(0, %(fw)r)
sys.path.insert(0, %(lib)r)
asked = []
class M: pass
class WLAN:
    PM_NONE = 0
    def __init__(self, *a): pass
    def active(self, *a): pass
    def config(self, **k): pass
    def isconnected(self): return True
network = M(); network.STA_IF = 0; network.WLAN = WLAN; network.hostname = lambda n: None
machine = M(); machine.Pin = lambda *a: None; machine.PWM = lambda *a, **k: None; machine.WDT = lambda **k: None
ntptime = M()
def settime():
    asked.append(ntptime.host)
    if %(fail)r: raise OSError(110)
ntptime.settime = settime
for name, mod in (("network", network), ("machine", machine), ("ntptime", ntptime)):
    sys.modules[name] = mod
import config, board_wlan, board_esp32
board_wlan.CLOCK_VALID_FROM = %(valid_from)d
logs = []
cfg = config.check(%(cfg)r)
board = board_esp32.Board(cfg)
board.log = logs.append
board.wifi_up()
board.wifi_up()  # within CLOCK_RETRY_MS: not asked again
print(json.dumps({"asked": asked, "logs": logs}))
"""


def run(cfg: dict, valid_from: int = 9999, fail: bool = False) -> dict:
    script = SCRIPT % {"fw": str(FIRMWARE_DIR), "lib": str(FIRMWARE_LIB), "cfg": cfg, "valid_from": valid_from, "fail": fail}
    out = subprocess.run([find_micropython(), "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


TLS = {"id": "door-1", "mqtt": {"host": "10.0.0.2", "port": 8883, "tls": True, "ca": "ca.der"}}


def test_an_unset_clock_is_set_from_the_broker_host_once_per_retry_period():
    result = run(TLS)
    assert result["asked"] == ["10.0.0.2"]
    assert result["logs"] == ["clock set from NTP at 10.0.0.2"]


def test_ntp_names_another_time_server_and_a_silent_one_is_logged():
    result = run({**TLS, "ntp": "10.0.0.9"}, fail=True)
    assert result["asked"] == ["10.0.0.9"]
    assert "no NTP answer from 10.0.0.9" in result["logs"][0]


def test_a_set_clock_or_a_plain_light_asks_nobody():
    assert run(TLS, valid_from=2000)["asked"] == []
    assert run({"id": "door-1", "mqtt": {"host": "10.0.0.2"}})["asked"] == []
