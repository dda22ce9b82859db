"""MQTT topic builders: the one place topic strings are spelled."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Topics under one base topic, e.g. ``Topics("setbridge").set_state("stage-a")``."""

    base: str = "setbridge"

    def hub_status(self, hub: str) -> str:
        return f"{self.base}/hub/{hub}/status"

    def set_state(self, set_id: str) -> str:
        return f"{self.base}/set/{set_id}/state"

    def set_heartbeat(self, set_id: str) -> str:
        return f"{self.base}/set/{set_id}/heartbeat"

    def set_event(self, set_id: str) -> str:
        return f"{self.base}/set/{set_id}/event"

    def set_request(self, set_id: str) -> str:
        return f"{self.base}/set/{set_id}/request"

    def set_response(self, set_id: str) -> str:
        return f"{self.base}/set/{set_id}/response"

    def light_status(self, light: str) -> str:
        return f"{self.base}/light/{light}/status"

    def light_state(self, light: str) -> str:
        return f"{self.base}/light/{light}/state"

    def light_alive(self, light: str) -> str:
        return f"{self.base}/light/{light}/alive"

    def light_cmd(self, light: str) -> str:
        return f"{self.base}/light/{light}/cmd"

    def offload_report(self) -> str:
        return f"{self.base}/offload/report"

    def offload_event(self) -> str:
        return f"{self.base}/offload/event"

    def offload_card(self, roll: str) -> str:
        return f"{self.base}/offload/card/{roll}"

    def offload_error(self) -> str:
        return f"{self.base}/offload/error"

    def all(self) -> str:
        """Wildcard for everything setbridge publishes."""
        return f"{self.base}/#"

    def split(self, topic: str) -> list[str]:
        """The topic's levels below the base, or [] when it is not under the base."""
        prefix = self.base + "/"
        return topic[len(prefix):].split("/") if topic.startswith(prefix) else []
