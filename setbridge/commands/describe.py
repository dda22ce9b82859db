"""Readable one-line descriptions of setbridge's MQTT messages, for ``setbridge watch``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .. import contract as c
from ..topics import Topics


def decode(payload: bytes) -> dict[str, Any] | None:
    """The payload as a JSON object, or None when it is not one (an empty retained clear, junk)."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def describe(topics: Topics, topic: str, data: dict[str, Any] | None, raw: bytes) -> str | None:
    """One readable line for a message, or None for topics outside the base topic. Topics under
    the base that the contract does not declare (a typo in an integrator's topic) are shown raw."""
    if not topics.split(topic):
        return None
    where = topic[len(topics.base) + 1:]
    found = c.identify(topics.base, topic)
    if data is None:
        return f"{where}: (not a JSON object: {raw[:60]!r})" if raw else f"{where}: (cleared)"
    g = data.get
    match found:
        case (c.HUB_STATUS, {"hub": hub}):
            voice = "" if g("voice") is None else f" voice={'on' if g('voice') else 'off'}"
            timecode = f", timecode {g('timecode')}" if g("timecode") not in (None, "off") else ""
            recorder = f" (recorder {g('recorder')})" if g("recorder") else ""
            return (f"hub {hub}: {g('state')} (set {g('set')}, v{g('version')}, audio {g('audio')}{voice}"
                    f"{timecode}{recorder})")
        case (c.SET_STATE, {"set": set_id}):
            return f"set {set_id}: {str(g('state')).upper()} take {g('take')} seq {g('seq')} ({g('cause')})"
        case (c.SET_HEARTBEAT, {"set": set_id}):
            return f"set {set_id}: heartbeat {g('state')} seq {g('seq')} epoch {g('epoch')}"
        case (c.SET_EVENT, {"set": set_id}):
            what = g("type") if g("changed") else f"{g('type')} (no change)"
            if g("overruled"):
                what = f"{g('type')} OVERRULED"
            extra = [f"by {g('cause')}"]
            if g("source"):
                extra.append(f"from {g('source')}")
            if g("phrase"):
                conf = g("confidence")
                extra.append(f'heard "{g("phrase")}"' + (f" {conf:.2f}" if isinstance(conf, (int, float)) else ""))
            if g("timecode"):
                extra.append(f"at TC {g('timecode')}")
            if g("reason"):
                extra.append(f"({g('reason')})")
            return f"set {set_id}: event {what} {' '.join(extra)}"
        case (c.SET_REQUEST, {"set": set_id}):
            return f"set {set_id}: request {g('action')} from {g('source') or '?'}"
        case (c.SET_RESPONSE, {"set": set_id}):
            result = f"ok → {g('state')}" if g("ok") else f"refused: {g('error')}"
            return f"set {set_id}: response {result}"
        case (c.LIGHT_STATUS, {"light": light}):
            return f"light {light}: {g('state')}" + (f" (fw {g('fw')}, set {g('set')})" if g("fw") else "")
        case (c.LIGHT_STATE, {"light": light}):
            return f"light {light}: shows {g('showing')}"
        case (c.LIGHT_ALIVE, {"light": light}):
            return f"light {light}: alive, shows {g('showing')}"
        case (c.LIGHT_CMD, {"light": light}):
            return f"light {light}: command {g('action')}"
        case (c.OFFLOAD_EVENT, _):
            return (f"offload {g('roll')}: {g('status')} ({g('files')} files, {g('bytes')} bytes, "
                    f"safe to wipe: {'yes' if g('safe_to_wipe') else 'no'})")
        case (c.OFFLOAD_CARD, {"roll": roll}):
            return f"offload card {roll}: {g('status')}"
        case (c.OFFLOAD_ERROR, _):
            return f"offload error: {g('reason')}"
        case (c.OFFLOAD_REPORT, _):
            return f"offload report for {g('roll')}"
    return f"{where}: {json.dumps(data, ensure_ascii=False)[:200]}"


ALIVE_TIMEOUT_S = 3.0
"""A light silent this long (or 3 × its own ``every_s``, if longer) is not alive (docs/mqtt.md)."""


@dataclass
class _Seen:
    showing: object
    at: float
    """When its last alive message came (monotonic)."""
    timeout: float
    alive: bool = True

    @property
    def deadline(self) -> float:
        return self.at + self.timeout


class LightLiveness:
    """Turns each light's once-a-second ``alive`` messages into a line only when something changes:
    a light first heard, what it shows, or its liveness (silent past its deadline, then back).

    >>> lights = LightLiveness()
    >>> lights.heard("door-1", {"showing": "idle", "every_s": 1}, now=0.0)
    'light door-1: alive, shows idle'
    >>> lights.heard("door-1", {"showing": "idle", "every_s": 1}, now=1.0) is None
    True
    >>> lights.silent(now=5.0)
    ['light door-1: NOT ALIVE (no alive message for 4.0 s; last showed idle)']
    """

    def __init__(self) -> None:
        self._lights: dict[str, _Seen] = {}

    def heard(self, light: str, data: dict[str, Any] | None, now: float) -> str | None:
        """A light's alive message arrived: the line to print, or None when nothing changed."""
        data = data or {}
        every = data.get("every_s")
        period = float(every) if isinstance(every, (int, float)) and not isinstance(every, bool) and every > 0 else 1.0
        showing = data.get("showing")
        seen = self._lights.get(light)
        self._lights[light] = _Seen(showing, now, max(ALIVE_TIMEOUT_S, 3 * period))
        if seen is None:
            return f"light {light}: alive, shows {showing}"
        if not seen.alive:
            return f"light {light}: alive again, shows {showing}"
        if seen.showing != showing:
            return f"light {light}: alive, shows {showing} (was {seen.showing})"
        return None

    def silent(self, now: float) -> list[str]:
        """Lines for the lights that went silent since the last call (each said once)."""
        lines = []
        for light, seen in self._lights.items():
            if seen.alive and now > seen.deadline:
                seen.alive = False
                lines.append(f"light {light}: NOT ALIVE (no alive message for {now - seen.at:.1f} s; "
                             f"last showed {seen.showing})")
        return lines

    def next_deadline(self) -> float | None:
        """The soonest moment a light still alive would turn silent, or None."""
        pending = [s.deadline for s in self._lights.values() if s.alive]
        return min(pending) if pending else None


def stamp(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"
