"""The hub's GPIO panel (gpiozero): wig-wag relay, status LED, buzzer, roll/cut buttons or a
toggle, and a "voice off" switch.

The relay and buzzer follow each new set state at once, on the controller's thread (a pin write:
the wig-wag turns on before the roll is even published); the status LED follows the hub's health
as events on the panel's own thread (no polling). The pin factory is the seam: gpiozero's default
on a Pi, ``MockFactory()`` in tests.
"""

from __future__ import annotations

import logging
from typing import Any

from ..messages import SetState
from .component import Health, HubContext, Worker

log = logging.getLogger(__name__)

LED_PATTERNS: dict[str, tuple[float, float] | None] = {
    "ok": None,                 # solid: listening
    "audio-fault": (1.0, 1.0),  # slow blink
    "timecode-fault": (1.0, 1.0),  # slow blink, as audio: a source of triggers cannot be trusted
    "broker-lost": (0.1, 0.1),  # fast blink
}
ROLL_TONE = (1.0, 0.0, 1)       # on, off, count: one long tone
CUT_TONE = (0.15, 0.15, 2)      # two short


def led_mode(health: Health) -> str:
    if not health.broker:
        return "broker-lost"
    if health.audio == "fault":
        return "audio-fault"
    return "timecode-fault" if health.timecode == "fault" else "ok"


class GpioPanel(Worker):
    """A hub component; see the module docstring. Only configured pins are touched."""

    name = "gpio-panel"

    def __init__(self, ctx: HubContext, pin_factory: Any = None):
        super().__init__()
        self.hub = ctx
        self.settings = ctx.settings.gpio
        self.pin_factory = pin_factory
        self.devices: list[Any] = []
        self.relay: Any = None
        self.led: Any = None
        self.buzzer: Any = None
        self._rolling: bool | None = None
        self._led_mode: str | None = None

    def _open(self) -> None:
        from gpiozero import LED, Button, Buzzer, DigitalOutputDevice

        g, kw = self.settings, {"pin_factory": self.pin_factory}
        kw_in = {**kw, "pull_up": g.pull_up, "bounce_time": g.bounce_s or None}
        if g.relay is not None:
            self.relay = self._add(DigitalOutputDevice(g.relay, active_high=g.relay_active_high, initial_value=False, **kw))
        if g.status_led is not None:
            self.led = self._add(LED(g.status_led, **kw))
        if g.buzzer is not None:
            self.buzzer = self._add(Buzzer(g.buzzer, **kw))
        if g.roll_button is not None:
            self._add(Button(g.roll_button, **kw_in)).when_pressed = lambda: self._act("roll", "roll-button")
        if g.cut_button is not None:
            self._add(Button(g.cut_button, **kw_in)).when_pressed = lambda: self._act("cut", "cut-button")
        if g.toggle is not None:
            toggle = self._add(Button(g.toggle, **kw_in))
            toggle.when_pressed = lambda: self._act("roll", "toggle")
            toggle.when_released = lambda: self._act("cut", "toggle")
        if g.voice_off is not None:
            switch = self._add(Button(g.voice_off, **kw_in))
            switch.when_pressed = lambda: self.hub.set_voice_enabled(False)
            switch.when_released = lambda: self.hub.set_voice_enabled(True)
            self.hub.set_voice_enabled(not switch.is_pressed)
        self.follow(self.hub.snapshot(), sound=False)
        self.show(self.hub.health())
        self.hub.on_state(self._on_state)
        self.hub.on_health(self.post)

    def _on_state(self, state: SetState) -> None:
        if self.devices:  # not after stop()
            self.follow(state)

    def _handle(self, event: object) -> None:
        if isinstance(event, Health):
            self.show(event)

    def _close(self) -> None:
        for device in reversed(self.devices):
            device.close()
        self.devices.clear()

    def follow(self, state: SetState, sound: bool = True) -> None:
        """Relay on while rolling; the buzzer marks the roll and the cut."""
        rolling = state.state == "rolling"
        if rolling == self._rolling:
            return
        was, self._rolling = self._rolling, rolling
        if self.relay is not None:
            self.relay.value = rolling
        if self.buzzer is not None and sound and was is not None:
            on, off, n = ROLL_TONE if rolling else CUT_TONE
            self.buzzer.blink(on_time=on, off_time=off, n=n, background=True)

    def show(self, health: Health) -> None:
        """The status LED: solid while all is well, slow blink on an audio or timecode fault, fast
        without the broker."""
        mode = led_mode(health)
        if mode == self._led_mode or self.led is None:
            return
        self._led_mode = mode
        pattern = LED_PATTERNS[mode]
        if pattern is None:
            self.led.on()
        else:
            self.led.blink(on_time=pattern[0], off_time=pattern[1], background=True)

    def _add(self, device: Any) -> Any:
        self.devices.append(device)
        return device

    def _act(self, action: str, control: str) -> None:
        outcome = self.hub.submit(action, cause="button", source=f"gpio:{control}")
        if not outcome.ok:
            log.warning("%s from %s refused: %s", action, control, outcome.error)
