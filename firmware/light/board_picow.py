"""Board adapter for the Raspberry Pi Pico W / Pico 2 W running MicroPython."""

import machine
import network
import rp2
import time

WDT_GRACE_MS = 5000

PM_NONE_CYW43 = 0xA11140  # the CYW43 "no power save" value, for builds without WLAN.PM_NONE


class Board:
    def __init__(self, cfg):
        self.cfg = cfg
        rp2.country(cfg["wifi"].get("country", "GB"))
        network.hostname(cfg["id"])
        sta = getattr(network.WLAN, "IF_STA", None)  # newer builds; STA_IF before
        self.wlan = network.WLAN(network.STA_IF if sta is None else sta)
        self.wlan.active(True)
        # Power saving off: the CYW43 default sleeps between beacons and adds latency.
        self.wlan.config(pm=getattr(self.wlan, "PM_NONE", PM_NONE_CYW43))
        # The RP2040 watchdog allows at most about 8.3 s; 0 turns it off.
        self.wdt = None
        self.wdt_ms = min(8000, int(cfg["watchdog_s"] * 1000))
        self.booted = time.ticks_ms()
        self._last_start = None

    def wifi_start(self):
        """Start (or restart) joining the network; never blocks."""
        now = time.ticks_ms()
        if self._last_start is not None and time.ticks_diff(now, self._last_start) < 10000:
            return
        self._last_start = now
        try:
            self.wlan.disconnect()
        except OSError:
            pass
        try:
            self.wlan.connect(self.cfg["wifi"]["ssid"], self.cfg["wifi"]["key"])
        except OSError as exc:
            self.log("wifi: cannot join %r: %r" % (self.cfg["wifi"]["ssid"], exc))

    def wifi_up(self):
        up = self.wlan.isconnected()
        if not up:
            self.wifi_start()
        return up

    def pin(self, num):
        return machine.Pin(num, machine.Pin.OUT)

    def pwm(self, num, freq):
        p = machine.PWM(machine.Pin(num))
        p.freq(freq)
        p.duty_u16(0)
        return p

    def neopixel(self, num, n):
        import neopixel

        return neopixel.NeoPixel(machine.Pin(num), n)

    def feed(self):
        """Feed the watchdog; it starts WDT_GRACE_MS after boot, so that a tool such as mpremote
        can stop the program right after a reset without the watchdog resetting the board."""
        if self.wdt is not None:
            self.wdt.feed()
        elif self.wdt_ms and time.ticks_diff(time.ticks_ms(), self.booted) >= WDT_GRACE_MS:
            self.wdt = machine.WDT(timeout=self.wdt_ms)

    def log(self, msg):
        print("%d %s" % (time.ticks_ms(), msg))

    def showing_changed(self, showing, epoch, seq, lost):
        why = " (no %s)" % lost if lost else ""
        print("%d showing %s%s (epoch %s seq %s)" % (time.ticks_ms(), showing, why, epoch, seq))
