"""Offload results on the set's lights: a card verified flashes green, slowly; a failed one red, fast.

The lights named in ``[offload] flash_lights`` flash once the broker has acknowledged the card's
event, for ``flash_s`` seconds, unless the event is older than ``flash_max_age_s`` (events delivered
again after a restart do not flash the set). A light ignores the command while its set is rolling
or its link is lost.
"""

from __future__ import annotations

import time
from typing import Protocol

from ..bus import Delivery
from ..config import OffloadSettings
from ..messages import LightCommand, Payload
from ..topics import Topics
from .models import OffloadEvent


class CommandBus(Protocol):
    """What the flash needs of the MQTT bus: publishing a command."""

    def publish(self, topic: str, payload: Payload | bytes, *, qos: int | None = None,
                retain: bool | None = None) -> Delivery: ...


class LightFlash:
    """Flashes ``[offload] flash_lights`` for each delivered offload event (does nothing when none are named)."""

    def __init__(self, bus: CommandBus, topics: Topics, settings: OffloadSettings):
        self.bus = bus
        self.topics = topics
        self.settings = settings

    def delivered(self, data: bytes) -> None:
        """The broker acknowledged the event ``data`` (as journaled): flash for it."""
        if self.settings.flash_lights:
            self.flash(OffloadEvent.model_validate_json(data))

    def flash(self, event: OffloadEvent) -> None:
        s = self.settings
        if not s.flash_lights or event.status not in ("verified", "failed"):
            return
        if time.time() - event.ts > s.flash_max_age_s:
            return
        command = LightCommand(action="flash", duration_s=s.flash_s,
                               color="green" if event.status == "verified" else "red",
                               pattern="slow" if event.status == "verified" else "fast")
        for light in s.flash_lights:
            self.bus.publish(self.topics.light_cmd(light), command)
