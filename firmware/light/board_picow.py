"""Board adapter for the Raspberry Pi Pico W / Pico 2 W running MicroPython."""

import machine
import rp2

from board_wlan import WlanBoard

PM_NONE_CYW43 = 0xA11140  # the CYW43 "no power save" value, for builds without WLAN.PM_NONE


class Board(WlanBoard):
    WDT_MAX_MS = 8000  # the RP2040 watchdog allows at most about 8.3 s

    def __init__(self, cfg):
        rp2.country(cfg["wifi"].get("country", "GB"))
        super().__init__(cfg)

    def power_save_off(self):
        self.wlan.config(pm=getattr(self.wlan, "PM_NONE", PM_NONE_CYW43))

    def pwm(self, num, freq):
        p = machine.PWM(machine.Pin(num))
        p.freq(freq)
        p.duty_u16(0)
        return p
