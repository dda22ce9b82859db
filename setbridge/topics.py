"""Topic builders under one base topic: a thin facade over :mod:`setbridge.contract`."""

from __future__ import annotations

from dataclasses import dataclass

from . import contract as c


@dataclass(frozen=True)
class Topics:
    """Topics under one base topic, e.g. ``Topics("setbridge").set_state("stage-a")``."""

    base: str = "setbridge"

    def hub_status(self, hub: str) -> str:
        return c.HUB_STATUS.topic(self.base, hub=hub)

    def set_state(self, set_id: str) -> str:
        return c.SET_STATE.topic(self.base, set=set_id)

    def set_heartbeat(self, set_id: str) -> str:
        return c.SET_HEARTBEAT.topic(self.base, set=set_id)

    def set_event(self, set_id: str) -> str:
        return c.SET_EVENT.topic(self.base, set=set_id)

    def set_request(self, set_id: str) -> str:
        return c.SET_REQUEST.topic(self.base, set=set_id)

    def set_response(self, set_id: str) -> str:
        return c.SET_RESPONSE.topic(self.base, set=set_id)

    def set_reply(self, set_id: str, user: str) -> str:
        """Where ``user``'s own answers go (an MQTT 5 Response Topic at or below it); only it reads them."""
        return c.SET_REPLY.topic(self.base, set=set_id, user=user)

    def light_status(self, light: str) -> str:
        return c.LIGHT_STATUS.topic(self.base, light=light)

    def light_state(self, light: str) -> str:
        return c.LIGHT_STATE.topic(self.base, light=light)

    def light_alive(self, light: str) -> str:
        return c.LIGHT_ALIVE.topic(self.base, light=light)

    def light_cmd(self, light: str) -> str:
        return c.LIGHT_CMD.topic(self.base, light=light)

    def offload_report(self) -> str:
        return c.OFFLOAD_REPORT.topic(self.base)

    def offload_event(self) -> str:
        return c.OFFLOAD_EVENT.topic(self.base)

    def offload_card(self, roll: str) -> str:
        return c.OFFLOAD_CARD.topic(self.base, roll=roll)

    def offload_error(self) -> str:
        return c.OFFLOAD_ERROR.topic(self.base)

    def all(self) -> str:
        """Wildcard for everything setbridge publishes."""
        return f"{self.base}/#"

    def filters(self, **ids: str) -> list[str]:
        """One filter per declared topic, the given ids filled in (``filters(set="stage-a")``)."""
        return c.filters(self.base, **ids)

    def split(self, topic: str) -> list[str]:
        """The topic's levels below the base, or [] when it is not under the base."""
        return c.levels_of(self.base, topic)
