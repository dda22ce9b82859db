"""Run under the MicroPython Unix port: build each board adapter on stand-in ``machine``,
``network``, ``rp2`` and ``neopixel`` modules and print, as JSON, what it asked of them."""

import json
import sys

calls = []


class Stub:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        name = self._name + "." + attr

        def call(*args, **kwargs):
            calls.append([name, [repr(a) for a in args], {k: repr(v) for k, v in kwargs.items()}])
            return Stub(name)

        return call


class WLAN(Stub):
    PM_NONE = 0
    PM_PERFORMANCE = 1

    def __init__(self, *args):
        Stub.__init__(self, "wlan")
        calls.append(["network.WLAN", [repr(a) for a in args], {}])

    def isconnected(self):
        calls.append(["wlan.isconnected", [], {}])
        return False


class Module:
    pass


network = Module()
network.STA_IF = 0
network.WLAN = WLAN
network.hostname = Stub("network").hostname
class Pin(Stub):
    OUT = 1

    def __init__(self, *args):
        Stub.__init__(self, "pin")
        calls.append(["machine.Pin", [repr(a) for a in args], {}])


machine = Module()
machine.Pin = Pin
machine.PWM = Stub("machine").PWM
machine.WDT = Stub("machine").WDT
rp2 = Module()
rp2.country = Stub("rp2").country
class NeoPixel(Stub):
    def __init__(self, *args):
        Stub.__init__(self, "np")
        calls.append(["neopixel.NeoPixel", [repr(a) for a in args], {}])

    def __setitem__(self, i, rgb):
        pass


neopixel = Module()
neopixel.NeoPixel = NeoPixel
for name, mod in (("network", network), ("machine", machine), ("rp2", rp2), ("neopixel", neopixel)):
    sys.modules[name] = mod

import config  # noqa: E402
import outputs  # noqa: E402

cfg = config.check({"id": "door-1", "mqtt": {"host": "192.168.1.10"}, "wifi": {"ssid": "net", "key": "k"},
                    "output": {"type": "neopixel", "pin": 4, "count": 3}})
result = {}
for board_name in ("board_esp32", "board_picow"):
    del calls[:]
    import board_wlan  # noqa: E402  (what both Wi-Fi boards share)

    board_wlan.WDT_GRACE_MS = 5000
    module = __import__(board_name)
    board = module.Board(cfg)
    board.wifi_up()
    board.pin(2)
    board.pwm(5, 1000)
    outputs.build(cfg, board)
    board.feed()  # within the grace period after boot: no watchdog yet
    calls.append(["(grace period over)", [], {}])
    board_wlan.WDT_GRACE_MS = 0
    board.feed()  # starts the watchdog
    board.feed()
    result[board_name] = list(calls)
print(json.dumps(result))
