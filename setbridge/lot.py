"""The lot: several stages, each with its own Mosquitto, hub and lights, bridged to one central
broker by Mosquitto's own bridge.

At the centre every stage's contract (v1, unchanged) sits under its own base topic
``{base}/stage/{stage}``: stage ``stage-a``'s set state is ``setbridge/stage/stage-a/set/main/state``
there. So ids (lights, sets, hubs) never collide between stages, and a contract v1 client at the
centre works for one stage by setting its base topic to ``setbridge/stage/stage-a``.

What crosses a bridge is declared here, from :mod:`setbridge.contract`: every topic only the stage
writes (hub or lights) flows out; requests flow in, at QoS 0 so the centre never queues one for a
stage that is away; nothing else comes in, so the stage's retained state is never written from the
centre.

>>> stage_base("setbridge", "stage-a")
'setbridge/stage/stage-a'
>>> [p for p, _ in OUT][:3]
['hub/+/status', 'set/+/state', 'set/+/event']
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from . import contract
from .errors import SetbridgeError

if TYPE_CHECKING:  # the broker commands load this module without pydantic
    from paho.mqtt.client import MQTTMessage

    from .messages import SetRequest

STAGE_LEVEL = "stage"
"""The topic level under the base at the centre: ``{base}/stage/{stage}/...``."""
FROM_CENTRE_LEVEL = "lot"
"""At a stage, requests from the centre arrive under ``{base}/lot/``: the hub knows they crossed the
bridge (and takes them only with an age limit); no stage user may write there."""
BRIDGE_ROLE = "bridge"
STAGE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")

_STAGE_WRITES = [spec for spec in contract.TOPICS if set(spec.writers) <= {"hub", "light"}]
OUT: tuple[tuple[str, int], ...] = tuple(
    (spec.filter("")[1:], spec.qos) for spec in _STAGE_WRITES if spec.qos == 1 and not spec.owner
) + (("set/+/response/#", 1),)
"""(pattern below the base, QoS) of what flows from a stage to the centre on the bridge's main
connection: every QoS 1 topic only the stage's hub and lights write, and the MQTT 5 per-client
answer topics of central clients (the last; the stage's own users' private answers stay on the stage)."""
BEATS: tuple[tuple[str, int], ...] = tuple((spec.filter("")[1:], spec.qos) for spec in _STAGE_WRITES if spec.qos == 0)
"""The QoS 0 topics the stage writes (heartbeats, light alive), on a connection of their own.

Mosquitto (up to 2.0.22 at least) sets no TCP_NODELAY on a bridge's outgoing socket: a QoS 0
message, which the centre does not answer, stays unacknowledged until the centre's delayed ACK
(40 ms on Linux), and Nagle's algorithm holds the next small packet (a roll) behind it. On a
connection of their own the beats wait for nothing but each other, and every QoS 1 packet on the
main connection is acknowledged at once by its PUBACK."""
BEATS_SUFFIX = "-beats"
IN: tuple[tuple[str, int], ...] = ((contract.SET_REQUEST.filter("")[1:], 0),)
"""What flows from the centre to a stage: requests only, at QoS 0 (never queued, never re-sent)."""

KEEPALIVE_S = 5
"""The bridge's keepalive: a cut link is noticed within 1.5 x this at the centre (its last will)."""
RESTART_S = (1, 3)
"""Reconnect backoff (first, longest) in seconds. Two values: Mosquitto before 2.0.15 ignores a
single ``restart_timeout`` and backs off up to 30 s (eclipse/mosquitto#2408)."""


def beats_user(user: str) -> str:
    """The centre's user of a stage bridge's second connection (heartbeats and light alive)."""
    return user + BEATS_SUFFIX


def check_stage(stage: str) -> str:
    if not STAGE_ID.match(stage):
        raise SetbridgeError(f"stage {stage!r} must match [a-z0-9][a-z0-9-]* (it names a topic level at the centre)")
    return stage


def stage_base(base: str, stage: str) -> str:
    """The base topic of ``stage``'s contract at the centre."""
    return f"{base}/{STAGE_LEVEL}/{stage}"


def notification_topic(base: str, stage: str) -> str:
    """Where the stage broker's bridge says ``1`` (connected) or ``0`` (lost, its last will at the centre)."""
    return f"{stage_base(base, stage)}/bridge"


def stage_of(base: str, topic: str) -> tuple[str, str] | None:
    """(stage, the topic below the stage's base) for a central topic, or None.

    >>> stage_of("setbridge", "setbridge/stage/stage-a/set/main/state")
    ('stage-a', 'set/main/state')
    """
    prefix = f"{base}/{STAGE_LEVEL}/"
    if not topic.startswith(prefix):
        return None
    stage, _, rest = topic[len(prefix):].partition("/")
    return (stage, rest) if stage and rest else None


def centre_request_topic(base: str, set_id: str) -> str:
    """Where a request sent at the centre arrives at the stage (written by the bridge only)."""
    return f"{base}/{FROM_CENTRE_LEVEL}/{contract.SET_REQUEST.topic('', set=set_id)[1:]}"


def age_limit_missing(request: SetRequest, message: MQTTMessage) -> str | None:
    """Why a request from the centre is refused for carrying no age limit, or None.

    Across a bridge a request can be held (a short cut that TCP survives) and arrive long after
    its sender gave up: without ``sent_at``, ``deadline`` or an MQTT 5 Message Expiry the hub cannot
    tell, so it does not take it."""
    from .expiry import expires_at

    if request.sent_at is not None or request.deadline is not None or expires_at(message) is not None:
        return None
    return ("sent_at: a request from the lot's centre needs an age limit (sent_at, deadline or an MQTT 5 "
            "Message Expiry), so that one held up on the way never runs late: nothing changed")


def answer_topic_allowed(base: str, set_id: str, wanted: str) -> bool:
    """Whether the hub may answer on ``wanted``: a Response Topic a client at the centre named under
    ``{base}/stage/{stage}/set/{set}/response/`` (the stage's bridge carries it back out)."""
    found = stage_of(base, wanted)
    if found is None or not STAGE_ID.match(found[0]):
        return False
    allowed = f"set/{set_id}/response/"
    rest = found[1]
    return rest.startswith(allowed) and len(rest) > len(allowed) and not set("+#\0") & set(rest)


# -- the centre's ACL --------------------------------------------------------------------
def bridge_role(stage: str) -> str:
    """The role a stage's bridge user has in the centre's users file."""
    return f"{BRIDGE_ROLE}:{check_stage(stage)}"


def bridge_acl_lines(stage: str, base: str) -> list[str]:
    """A stage's bridge user at the centre: it writes that stage's topics only, and reads that
    stage's requests only."""
    root = stage_base(base, stage)
    lines = [f"topic write {root}/{pattern}" for pattern, _ in OUT + BEATS]
    lines += [f"topic read {root}/{pattern}" for pattern, _ in IN]
    lines.append(f"topic write {notification_topic(base, stage)}")
    return lines


def central_acl_lines(user: str, role: str, base: str) -> list[str]:
    """ACL lines of a user of the central broker: stages' contracts under ``{base}/stage/+``."""
    if role.startswith(BRIDGE_ROLE + ":"):
        return bridge_acl_lines(role.split(":", 1)[1], base)
    if role == "light":
        return ["# a light belongs to its stage's broker: nothing here"]
    r = contract.ROLES[role]
    if r.everything:
        return [f"topic {r.everything} {base}/#"]
    # Only requests cross into a stage: other writes (light commands, reports) would go nowhere.
    request = f"topic write {contract.SET_REQUEST.filter(stage_base(base, '+'))}"
    lines = []
    for line in contract.acl_lines(user, role, stage_base(base, "+")):
        if line.startswith("topic readwrite "):  # the reading stays; the writing only for requests
            topic = line.split(" ", 2)[2]
            lines.append(f"topic read {topic}")
            line = f"topic write {topic}"
        if not line.startswith("topic write") or line == request:
            lines.append(line)
    return lines + [f"topic read {notification_topic(base, '+')}"]


# -- the stage's bridge ------------------------------------------------------------------
@dataclass(frozen=True)
class Bridge:
    """A stage broker's bridge to the centre."""

    host: str
    port: int
    user: str
    password: str
    stage: str
    cafile: Path | None = None

    @classmethod
    def parse(cls, address: str, user: str | None, password: str | None, stage: str | None,
              cafile: Path | None) -> "Bridge":
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SetbridgeError(f"--bridge {address!r} must be HOST:PORT (the central broker, e.g. lot-office:8883)")
        if not user or not password:
            raise SetbridgeError("--bridge needs --bridge-user and --bridge-password (made at the centre with "
                                 "`setbridge broker add-user NAME --role bridge --stage STAGE`)")
        if cafile is not None and not Path(cafile).is_file():
            raise SetbridgeError(f"--bridge-ca {cafile} is not a file; give the lot's CA certificate (ca.crt)")
        bridge = cls(host.strip("[]"), int(port), user, password, check_stage(stage or user), cafile)
        if cafile is None and not bridge.loopback:
            raise SetbridgeError(f"the bridge to {address} would send the stage's password and traffic in clear text; "
                                 "give --bridge-ca with the lot's CA (plain MQTT is allowed on loopback only)")
        return bridge

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def config_lines(self, base: str) -> list[str]:
        remote = stage_base(base, self.stage)
        lines = [
            "",
            f"# The bridge to the lot's central broker: stage {self.stage!r} appears there under {remote}/.",
            "# Out: what only this stage's hub and lights write. In: requests only, at QoS 0, so none is",
            "# queued at the centre while the link is down and run late. The stage's retained state is",
            "# never written from the centre. (Generated; see docs/lot.md.)",
            "connection setbridge-lot",
            f"address {self.host}:{self.port}",
            "bridge_protocol_version mqttv50",
            f"remote_username {self.user}",
            f"remote_password {self.password}",
            f"remote_clientid {self.user}",
            f"local_clientid setbridge-bridge-{self.stage}",
            "# A persistent local queue: what the stage says during a cut reaches the centre after it.",
            "# cleansession and local_cleansession stay equal (Mosquitto before 2.0.16 expires a bridge",
            "# whose two settings differ when it restores it from persistence: eclipse/mosquitto#2634).",
            "cleansession false",
            "try_private true",
            f"keepalive_interval {KEEPALIVE_S}",
            f"restart_timeout {RESTART_S[0]} {RESTART_S[1]}",
            "start_type automatic",
            "notifications true",
            "notifications_local_only false",
            f"notification_topic {notification_topic(base, self.stage)}",
        ]
        if self.cafile:
            lines += [f"bridge_cafile {self.cafile}", "bridge_insecure false", "bridge_tls_version tlsv1.2"]
        for pattern, qos in OUT[:-1]:
            lines.append(f"topic {pattern} out {qos} {base}/ {remote}/")
        # Answers to a Response Topic a central client named under {remote}/: the hub publishes them
        # under that name on the stage, and they go out as they are.
        lines.append(f"topic {OUT[-1][0]} out {OUT[-1][1]} {remote}/ {remote}/")
        # Requests from the centre arrive under {base}/lot/ (see centre_request_topic).
        for pattern, qos in IN:
            lines.append(f"topic {pattern} in {qos} {base}/{FROM_CENTRE_LEVEL}/ {remote}/")
        lines += [
            "",
            "# Heartbeats and light alive (QoS 0) on a connection of their own: on the main one each would",
            "# hold the next roll up to 40 ms (the bridge's socket has Nagle on; see setbridge/lot.py BEATS).",
            "connection setbridge-lot-beats",
            f"address {self.host}:{self.port}",
            "bridge_protocol_version mqttv50",
            f"remote_username {beats_user(self.user)}",
            f"remote_password {self.password}",
            f"remote_clientid {beats_user(self.user)}",
            f"local_clientid setbridge-bridge-{self.stage}{BEATS_SUFFIX}",
            "cleansession true",
            "try_private true",
            f"keepalive_interval {KEEPALIVE_S}",
            f"restart_timeout {RESTART_S[0]} {RESTART_S[1]}",
            "start_type automatic",
            "notifications false",
        ]
        if self.cafile:
            lines += [f"bridge_cafile {self.cafile}", "bridge_insecure false", "bridge_tls_version tlsv1.2"]
        for pattern, qos in BEATS:
            lines.append(f"topic {pattern} out {qos} {base}/ {remote}/")
        return lines
