"""List input devices for ``setbridge devices``."""

from __future__ import annotations

from dataclasses import dataclass

from .mic import _sd


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate: int
    is_default: bool


def input_devices() -> list[InputDevice]:
    """Every PortAudio device with at least one input channel."""
    sd = _sd()
    default = sd.default.device[0]
    return [
        InputDevice(i, d["name"], int(d["max_input_channels"]), int(d["default_samplerate"]), i == default)
        for i, d in enumerate(sd.query_devices())
        if d["max_input_channels"] > 0
    ]
