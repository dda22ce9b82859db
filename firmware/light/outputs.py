"""Output drivers: a GPIO relay/LED, a PWM LED, a NeoPixel strip.

Each has ``render(level, rgb)`` and writes to the hardware only when the
result changes. The board adapter hands in the pin/PWM/NeoPixel objects.
"""


class Digital:
    """A relay or LED on one GPIO; ``active_low`` for relay boards that switch on a low pin."""

    def __init__(self, pin, active_low=False):
        self.pin = pin
        self.active_low = active_low
        self.on = None
        self.render(0, None)

    def render(self, level, rgb):
        on = level >= 0.5
        if on != self.on:
            self.on = on
            self.pin.value(1 if on != self.active_low else 0)


class Pwm:
    """A dimmable LED on a PWM pin; ``brightness`` caps the duty cycle."""

    def __init__(self, pwm, brightness=1.0, active_low=False):
        self.pwm = pwm
        self.brightness = brightness
        self.active_low = active_low
        self.duty = None
        self.render(0, None)

    def render(self, level, rgb):
        duty = int(max(0.0, min(1.0, level)) * self.brightness * 65535)
        if self.active_low:
            duty = 65535 - duty
        if duty != self.duty:
            self.duty = duty
            self.pwm.duty_u16(duty)


class Pixels:
    """A NeoPixel strip: every pixel shows the state's colour scaled by the level."""

    def __init__(self, np, count, brightness=0.5):
        self.np = np
        self.count = count
        self.brightness = brightness
        self.rgb = None
        self.render(0, (0, 0, 0))

    def render(self, level, rgb):
        scale = max(0.0, min(1.0, level)) * self.brightness
        c = tuple(int(v * scale) for v in (rgb or (0, 0, 0)))
        if c != self.rgb:
            self.rgb = c
            for i in range(self.count):
                self.np[i] = c
            self.np.write()


def build(cfg, board):
    """The output described by ``cfg["output"]``, made from the board's pins."""
    out = cfg["output"]
    kind = out["type"]
    if kind == "relay":
        return Digital(board.pin(out["pin"]), out.get("active_low", False))
    if kind == "pwm":
        return Pwm(board.pwm(out["pin"], out.get("freq", 1000)), out.get("brightness", 1.0), out.get("active_low", False))
    if kind == "neopixel":
        return Pixels(board.neopixel(out["pin"], out.get("count", 8)), out.get("count", 8), out.get("brightness", 0.5))
    raise ValueError("output.type must be relay, pwm or neopixel")
