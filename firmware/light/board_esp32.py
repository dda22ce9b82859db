"""Board adapter for ESP32 boards (ESP32, -S3, -C3) running MicroPython."""

import machine

from board_wlan import WlanBoard


class Board(WlanBoard):
    def power_save_off(self):
        self.wlan.config(pm=self.wlan.PM_NONE)

    def pwm(self, num, freq):
        return machine.PWM(machine.Pin(num), freq=freq, duty_u16=0)
