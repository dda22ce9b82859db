"""The ESP32 and Pico W adapters, built under the Unix port on stand-in hardware modules."""

from __future__ import annotations

import pytest
import json
import subprocess

from setbridge.sim.lights import FIRMWARE_DIR, FIRMWARE_PATH, find_micropython

pytestmark = pytest.mark.integration


def board_calls() -> dict[str, list]:
    script = (FIRMWARE_DIR.parent.parent / "tests" / "mp_board_check.py").read_text()
    out = subprocess.run([find_micropython(), "-c", "import sys\n" + "".join(f"sys.path.insert(0, {str(p)!r})\n" for p in FIRMWARE_PATH) + script],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout.strip().splitlines()[-1])


def names(calls: list) -> list[str]:
    return [c[0] for c in calls]


def test_both_boards_turn_wifi_power_saving_off_and_start_the_watchdog() -> None:
    calls = board_calls()
    esp, pico = calls["board_esp32"], calls["board_picow"]
    assert ["wlan.config", [], {"pm": "0"}] in esp  # WLAN.PM_NONE
    assert ["wlan.config", [], {"pm": "0"}] in pico  # WLAN.PM_NONE where the build has it
    for board in (esp, pico):  # the watchdog starts only after the grace period, then is fed
        grace = names(board).index("(grace period over)")
        assert board[grace + 1] == ["machine.WDT", [], {"timeout": "8000"}]
        assert "machine.WDT.feed" in names(board)[grace + 2:]
        assert "machine.WDT" not in names(board)[:grace]
    for board in (esp, pico):
        assert "network.hostname" in names(board)
        assert ["wlan.connect", ["'net'", "'k'"], {}] in board  # not connected yet: joining starts
        assert "neopixel.NeoPixel" in names(board)
    assert "rp2.country" in names(pico)


def test_a_bad_config_stops_the_firmware_with_one_line_naming_the_key(tmp_path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"id": "door-1", "mqtt": {"host": "10.0.0.2", "port": "1883"}}))
    out = subprocess.run([find_micropython(), str(FIRMWARE_DIR / "main.py"), str(config)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert out.stdout.strip() == "setbridge light: cannot start: config.json: mqtt.port must be a whole number between 1 and 65535"
