"""What the Wi-Fi boards (ESP32, Pico W) share: joining the network, pins, the watchdog, logging.

A board module subclasses :class:`WlanBoard` and sets power saving, the watchdog limit and PWM.
"""

import machine
import network
import time

WDT_GRACE_MS = 5000
REJOIN_MS = 10000
CLOCK_RETRY_MS = 10000
CLOCK_VALID_FROM = 2025
"""A clock showing an earlier year has not been set since boot (ESP32 starts at 2000, Pico at 2021)."""


class WlanBoard:
    WDT_MAX_MS = None
    """The hardware watchdog's longest timeout, or None when it has no practical limit."""

    def __init__(self, cfg):
        self.cfg = cfg
        network.hostname(cfg["id"])
        sta = getattr(network.WLAN, "IF_STA", None)  # newer builds; STA_IF before
        self.wlan = network.WLAN(network.STA_IF if sta is None else sta)
        self.wlan.active(True)
        self.power_save_off()
        self.wdt = None
        wdt_ms = int(cfg["watchdog_s"] * 1000)  # 0 turns it off
        self.wdt_ms = min(self.WDT_MAX_MS, wdt_ms) if self.WDT_MAX_MS else wdt_ms
        self.booted = time.ticks_ms()
        self._last_start = None
        self._clock_tried = None

    def power_save_off(self):
        """Wi-Fi power saving delays received packets by a beacon interval or more."""
        raise NotImplementedError

    def wifi_start(self):
        """Start (or restart) joining the network; never blocks."""
        now = time.ticks_ms()
        if self._last_start is not None and time.ticks_diff(now, self._last_start) < REJOIN_MS:
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
        elif self.cfg["mqtt"]["tls"]:
            self.set_clock()
        return up

    def set_clock(self):
        """TLS checks the dates of the broker's certificate against this board's clock, which
        starts far in the past: set it from NTP (``ntp``, default the broker's host) until it
        is set. Blocks for at most a second, every CLOCK_RETRY_MS, only while the clock is unset."""
        if time.gmtime()[0] >= CLOCK_VALID_FROM:
            return
        now = time.ticks_ms()
        if self._clock_tried is not None and time.ticks_diff(now, self._clock_tried) < CLOCK_RETRY_MS:
            return
        self._clock_tried = now
        host = self.cfg.get("ntp") or self.cfg["mqtt"]["host"]
        try:
            import ntptime

            ntptime.host = host
            ntptime.timeout = 1
            ntptime.settime()
            self.log("clock set from NTP at %s" % host)
        except Exception as exc:  # no answer: TLS will refuse the certificate's dates; try again later
            self.log("clock: no NTP answer from %s (%r); TLS needs the date" % (host, exc))

    def pin(self, num):
        return machine.Pin(num, machine.Pin.OUT)

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
