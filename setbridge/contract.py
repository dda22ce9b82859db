"""The MQTT contract (v1), declared once: every topic with its payload model, QoS, retain flag,
the roles that write it and the roles that read it.

Topic builders (:class:`setbridge.topics.Topics`), the QoS and retain flag :class:`setbridge.bus.Bus`
publishes with, the wildcard filters of ``watch`` and ``status``, ``setbridge schema`` and the
broker ACL (:mod:`setbridge.broker.config`) all come from :data:`TOPICS`. Tests check
``docs/mqtt.md`` and the firmware's own copy (``firmware/light/payloads.py``) against it.

>>> SET_STATE.topic("setbridge", set="stage-a")
'setbridge/set/stage-a/state'
>>> SET_STATE.filter("setbridge")
'setbridge/set/+/state'
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

if TYPE_CHECKING:
    from pydantic import BaseModel

RoleName = Literal["hub", "light", "integrator", "monitor"]
Access = Literal["read", "write", "readwrite"]


@dataclass(frozen=True)
class Role:
    """A broker user's role. ``everything`` grants the whole base topic; ``own`` names the topic
    level that must equal the user name (a light only writes and reads its own topics)."""

    name: RoleName
    everything: Access | None = None
    own: str | None = None
    summary: str = ""


ROLES: dict[str, Role] = {r.name: r for r in (
    Role("hub", everything="readwrite", summary="the hub and the CLI on the Pi: everything"),
    Role("light", own="light", summary="a recording light (user name = light id): its own topics, the set and the hub"),
    Role("integrator", summary="carts, editorial, Node-RED: read most, ask through requests and reports"),
    Role("monitor", summary="wall displays and dashboards: read only (never another user's private answers)"),
)}

_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the contract, below the base topic."""

    name: str
    pattern: str
    """Levels below the base, with ``{id}`` placeholders: ``set/{set}/state``."""
    model_ref: str
    """``module:Name`` of the payload model, imported on first use (the CLI starts without it)."""
    qos: Literal[0, 1]
    retain: bool
    writers: tuple[RoleName, ...]
    readers: tuple[RoleName, ...]
    owner: str | None = None
    """The placeholder that names a user: every user reads that topic (and the levels below it)
    under its own name only, and no role reads anyone else's (Mosquitto ACL ``pattern`` with ``%u``)."""
    params: tuple[str, ...] = field(init=False)
    levels: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(_PARAM.findall(self.pattern)))
        object.__setattr__(self, "levels", tuple(self.pattern.split("/")))

    @property
    def model(self) -> type[BaseModel]:
        module, _, name = self.model_ref.partition(":")
        return cast("type[BaseModel]", getattr(importlib.import_module(module), name))

    def topic(self, base: str, **ids: str) -> str:
        """The concrete topic; every placeholder must be given."""
        missing = set(self.params) - set(ids)
        if missing:
            raise ValueError(f"topic {self.pattern} needs {', '.join(sorted(missing))}")
        return f"{base}/{self.pattern.format(**ids)}"

    def filter(self, base: str, **ids: str) -> str:
        """A subscription filter: placeholders not given become ``+`` (and ``/#`` follows an owned topic)."""
        deep = "/#" if self.owner else ""
        return f"{base}/{self.pattern.format(**{p: ids.get(p, '+') for p in self.params})}{deep}"

    def match(self, levels: list[str]) -> dict[str, str] | None:
        """The ids when ``levels`` (below the base) is this topic (or, owned, below it), else None."""
        mine = self.levels
        if len(mine) != len(levels) and not (self.owner and len(levels) > len(mine)):
            return None
        ids: dict[str, str] = {}
        for want, got in zip(mine, levels):
            if want.startswith("{"):
                if not got:
                    return None
                ids[want[1:-1]] = got
            elif want != got:
                return None
        return ids


HUB_STATUS = TopicSpec("hub_status", "hub/{hub}/status", "setbridge.messages:HubStatus", 1, True,
                       writers=("hub",), readers=("light", "integrator", "monitor"))
SET_STATE = TopicSpec("set_state", "set/{set}/state", "setbridge.messages:SetState", 1, True,
                      writers=("hub",), readers=("light", "integrator", "monitor"))
SET_HEARTBEAT = TopicSpec("set_heartbeat", "set/{set}/heartbeat", "setbridge.messages:Heartbeat", 0, False,
                          writers=("hub",), readers=("light", "integrator", "monitor"))
SET_EVENT = TopicSpec("set_event", "set/{set}/event", "setbridge.messages:SetEvent", 1, False,
                      writers=("hub",), readers=("integrator", "monitor"))
SET_REQUEST = TopicSpec("set_request", "set/{set}/request", "setbridge.messages:SetRequest", 1, False,
                        writers=("integrator",), readers=("hub", "integrator", "monitor"))
SET_RESPONSE = TopicSpec("set_response", "set/{set}/response", "setbridge.messages:SetResponse", 1, False,
                         writers=("hub",), readers=("integrator", "monitor"))
SET_REPLY = TopicSpec("set_reply", "set/{set}/response/{user}", "setbridge.messages:SetResponse", 1, False,
                      writers=("hub",), readers=("integrator",), owner="user")
LIGHT_STATUS = TopicSpec("light_status", "light/{light}/status", "setbridge.messages:LightStatus", 1, True,
                         writers=("light",), readers=("light", "hub", "integrator", "monitor"))
LIGHT_STATE = TopicSpec("light_state", "light/{light}/state", "setbridge.messages:LightState", 1, True,
                        writers=("light",), readers=("light", "hub", "integrator", "monitor"))
LIGHT_ALIVE = TopicSpec("light_alive", "light/{light}/alive", "setbridge.messages:LightAlive", 0, False,
                        writers=("light",), readers=("hub", "integrator", "monitor"))
LIGHT_CMD = TopicSpec("light_cmd", "light/{light}/cmd", "setbridge.messages:LightCommand", 1, False,
                      writers=("hub", "integrator"), readers=("light", "monitor"))
OFFLOAD_REPORT = TopicSpec("offload_report", "offload/report", "setbridge.offload.models:ReportPayload", 1, False,
                           writers=("integrator",), readers=("hub", "integrator", "monitor"))
OFFLOAD_EVENT = TopicSpec("offload_event", "offload/event", "setbridge.offload.models:OffloadEvent", 1, False,
                          writers=("hub",), readers=("integrator", "monitor"))
OFFLOAD_CARD = TopicSpec("offload_card", "offload/card/{roll}", "setbridge.offload.models:OffloadEvent", 1, True,
                         writers=("hub",), readers=("integrator", "monitor"))
OFFLOAD_ERROR = TopicSpec("offload_error", "offload/error", "setbridge.messages:OffloadError", 1, False,
                          writers=("hub",), readers=("integrator", "monitor"))

TOPICS: tuple[TopicSpec, ...] = (
    HUB_STATUS, SET_STATE, SET_HEARTBEAT, SET_EVENT, SET_REQUEST, SET_RESPONSE, SET_REPLY,
    LIGHT_STATUS, LIGHT_STATE, LIGHT_ALIVE, LIGHT_CMD, OFFLOAD_REPORT, OFFLOAD_EVENT, OFFLOAD_CARD, OFFLOAD_ERROR,
)
"""Every topic setbridge speaks, in the order ``docs/mqtt.md`` lists them."""
BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}


def levels_of(base: str, topic: str) -> list[str]:
    """The topic's levels below ``base``, or [] when it is not under it."""
    prefix = base + "/"
    return topic[len(prefix):].split("/") if topic.startswith(prefix) else []


def identify(base: str, topic: str) -> tuple[TopicSpec, dict[str, str]] | None:
    """The declaration a concrete topic belongs to and its ids, or None outside the contract.

    >>> identify("setbridge", "setbridge/light/door-1/state")[1]
    {'light': 'door-1'}
    """
    levels = levels_of(base, topic)
    if not levels:
        return None
    for spec in TOPICS:
        ids = spec.match(levels)
        if ids is not None:
            return spec, ids
    return None


def lookup(base: str, topic: str) -> TopicSpec | None:
    """The declaration a concrete topic belongs to, or None for topics outside the contract."""
    found = identify(base, topic)
    return found[0] if found else None


def filters(base: str, **ids: str) -> list[str]:
    """One subscription filter per declared topic (given ids filled in, the rest ``+``), deduplicated."""
    return list(dict.fromkeys(spec.filter(base, **ids) for spec in TOPICS))


def acl_patterns(base: str) -> list[str]:
    """Mosquitto ACL ``pattern`` lines, for every user: each reads its own owned topics only."""
    lines = []
    for spec in TOPICS:
        if spec.owner:
            levels = {p: "%u" if p == spec.owner else "+" for p in spec.params}
            lines.append(f"pattern read {base}/{spec.pattern.format(**levels)}/#")
    return lines


HOME_ASSISTANT_PREFIX = "homeassistant"
"""Home Assistant's default discovery prefix (``[homeassistant] prefix``)."""
HOME_ASSISTANT_ACL: dict[str, tuple[tuple[Access, str], ...]] = {
    "hub": (("readwrite", "device/+/config"), ("read", "status")),
    "integrator": (("read", "#"), ("write", "status")),
}
"""Home Assistant's topics, below its prefix: only a hub publishes (and removes) discovery
payloads; Home Assistant itself, an integrator, reads them and announces itself on ``status``."""


def acl_lines(user: str, role: str, base: str) -> list[str]:
    """Mosquitto ACL ``topic`` lines for one user of ``role``, derived from the declarations
    (owned topics come from :func:`acl_patterns`)."""
    r = ROLES[role]
    home_assistant = [f"topic {access} {HOME_ASSISTANT_PREFIX}/{pattern}"
                      for access, pattern in HOME_ASSISTANT_ACL.get(role, ())]
    if r.everything:
        return [f"topic {r.everything} {base}/#", *home_assistant]
    lines: list[str] = home_assistant
    for group in dict.fromkeys(spec.pattern.split("/")[0] for spec in TOPICS):
        specs = [spec for spec in TOPICS if spec.pattern.startswith(group + "/")]
        # A role that reads every topic of a group reads ``group/#``, unless the group holds another
        # user's private topics (a wildcard subscription still works: the broker filters each message).
        whole = (len(specs) > 1 and not r.own and all(r.name in spec.readers for spec in specs)
                 and not any(spec.owner for spec in specs))
        if whole:
            lines.append(f"topic read {base}/{group}/#")
        for spec in specs:
            if spec.owner:
                continue
            write, read = r.name in spec.writers, r.name in spec.readers and not whole
            if not (write or read):
                continue
            access = "readwrite" if write and read else "write" if write else "read"
            own = {r.own: user} if r.own and r.own in spec.params else {}
            lines.append(f"topic {access} {spec.filter(base, **own)}")
    return lines


def payload_models() -> dict[str, type[BaseModel]]:
    """Topic pattern (below the base) → payload model, for ``setbridge schema``."""
    return {spec.pattern: spec.model for spec in TOPICS}
