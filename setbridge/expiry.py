"""Requests expire: a request that waited too long (in a broker's queue during a network cut, in
the hub's own queue) is refused, never executed late.

A request carries its age limit three ways, all optional: MQTT 5 Message Expiry (the broker drops
it once expired and hands the hub what is left), ``deadline`` (seconds since the epoch, for MQTT
3.1.1 clients) and ``sent_at`` (when it was sent), which the hub holds to ``[hub] request_max_age_s``.

>>> refusal(SetRequest(action="roll", sent_at=100.0), expires_at=None, now=130.0, max_age_s=5.0)
'sent_at: the request is 30.0 s old; the hub takes requests up to 5 s old (request_max_age_s): nothing changed, send a new one'
"""

from __future__ import annotations

import math
import time

from paho.mqtt.client import MQTTMessage
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .messages import SetRequest

CLOCK_AHEAD_S = 2.0
"""A ``sent_at`` this far ahead of the hub's clock (beyond ``request_max_age_s``) is a clock set wrong."""


def expires_at(message: MQTTMessage, received: float | None = None) -> float | None:
    """When an MQTT 5 message's own expiry runs out (the broker gives what is left), or None."""
    left = getattr(getattr(message, "properties", None), "MessageExpiryInterval", None)
    if left is None:
        return None
    return (time.time() if received is None else received) + float(left)


def refusal(request: SetRequest, expires_at: float | None, now: float, max_age_s: float) -> str | None:
    """Why ``request`` must not run at ``now`` (one line, starting with the field), or None."""
    if request.deadline is not None and now > request.deadline:
        return (f"deadline: the request expired {now - request.deadline:.1f} s ago: nothing changed, "
                "send a new one")
    if expires_at is not None and now > expires_at:
        return "message expiry: the request expired while it waited: nothing changed, send a new one"
    if request.sent_at is not None:
        age = now - request.sent_at
        if age > max_age_s:
            return (f"sent_at: the request is {age:.1f} s old; the hub takes requests up to {max_age_s:g} s old "
                    "(request_max_age_s): nothing changed, send a new one")
        if -age > max_age_s + CLOCK_AHEAD_S:
            return (f"sent_at: the request is dated {-age:.1f} s ahead of the hub's clock: nothing changed; "
                    "set both clocks right (NTP)")
    return None


def expiring(action: str, transaction: str | int, source: str, max_age_s: float,
             now: float | None = None) -> tuple[SetRequest, int]:
    """A request that must run within ``max_age_s`` or never, and the MQTT 5 Message Expiry
    Interval (whole seconds, at least 1) to publish it with."""
    sent = time.time() if now is None else now
    request = SetRequest(action=action, transaction=transaction, source=source,
                         sent_at=round(sent, 3), deadline=round(sent + max_age_s, 3))
    return request, max(1, math.ceil(max_age_s))


def expiry_properties(seconds: int) -> Properties:
    """PUBLISH properties with a Message Expiry Interval (dropped by the bus on MQTT 3.1.1)."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = seconds
    return props
