"""Board shim for the MicroPython Unix port: stands in only for what the port lacks.

Wi-Fi is "up" unless a file ``<config>.nowifi`` exists (tests create it to drop
Wi-Fi); pins, PWM and NeoPixels are recorders. Every change of what the light
shows, and every log line, is one JSON object per line on stdout:

    {"ev": "show", "showing": "rolling", "epoch": 3, "seq": 12, "lost": null}
    {"ev": "show", "showing": "link-lost", "epoch": 3, "seq": 12, "lost": "broker"}
    {"ev": "log", "msg": "connected to 127.0.0.1:1883"}
"""

import json
import os
import sys

import clock


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")


class FakePin:
    def __init__(self, board, name):
        self.board = board
        self.name = name
        self.level = None

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v
        self.board.record("pin", self.name, v)


class FakePwm:
    def __init__(self, board, name):
        self.board = board
        self.name = name

    def duty_u16(self, duty):
        self.board.record("pwm", self.name, duty)


class FakeNeoPixel:
    def __init__(self, board, name, n):
        self.board = board
        self.name = name
        self.buf = [(0, 0, 0)] * n

    def __setitem__(self, i, rgb):
        self.buf[i] = rgb

    def write(self):
        self.board.record("pixels", self.name, list(self.buf[0]))


class Board:
    def __init__(self, cfg):
        self.flag = (sys.argv[1] if len(sys.argv) > 1 else "config.json") + ".nowifi"
        self.trace = cfg.get("trace_outputs", False)
        self._wifi = True
        self._checked = None

    def wifi_start(self):
        pass

    def wifi_up(self):
        now = clock.ticks()
        if self._checked is None or clock.diff(now, self._checked) >= 100:
            self._checked = now
            try:
                os.stat(self.flag)
                self._wifi = False
            except OSError:
                self._wifi = True
        return self._wifi

    def pin(self, name):
        return FakePin(self, name)

    def pwm(self, name, freq):
        return FakePwm(self, name)

    def neopixel(self, name, n):
        return FakeNeoPixel(self, name, n)

    def record(self, kind, name, value):
        if self.trace:
            emit({"ev": kind, "pin": name, "value": value})

    def feed(self):
        pass

    def log(self, msg):
        emit({"ev": "log", "msg": msg})

    def showing_changed(self, showing, epoch, seq, lost):
        emit({"ev": "show", "showing": showing, "epoch": epoch, "seq": seq, "lost": lost})
