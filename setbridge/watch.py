"""Readable one-line descriptions of setbridge's MQTT messages, for ``setbridge watch``."""

from __future__ import annotations

import json
import time
from typing import Any

from . import contract as c
from .topics import Topics


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
            return f"hub {hub}: {g('state')} (set {g('set')}, v{g('version')}, audio {g('audio')}{voice})"
        case (c.SET_STATE, {"set": set_id}):
            return f"set {set_id}: {str(g('state')).upper()} take {g('take')} seq {g('seq')} ({g('cause')})"
        case (c.SET_HEARTBEAT, {"set": set_id}):
            return f"set {set_id}: heartbeat {g('state')} seq {g('seq')} epoch {g('epoch')}"
        case (c.SET_EVENT, {"set": set_id}):
            what = g("type") if g("changed") else f"{g('type')} (no change)"
            extra = [f"by {g('cause')}"]
            if g("source"):
                extra.append(f"from {g('source')}")
            if g("phrase"):
                conf = g("confidence")
                extra.append(f'heard "{g("phrase")}"' + (f" {conf:.2f}" if isinstance(conf, (int, float)) else ""))
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


def stamp(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"
