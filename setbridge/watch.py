"""Readable one-line descriptions of setbridge's MQTT messages, for ``setbridge watch``."""

from __future__ import annotations

import json
import time
from typing import Any

from .topics import Topics


def decode(payload: bytes) -> dict[str, Any] | None:
    """The payload as a JSON object, or None when it is not one (an empty retained clear, junk)."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def describe(topics: Topics, topic: str, data: dict[str, Any] | None, raw: bytes) -> str | None:
    """One readable line for a message, or None for topics setbridge does not own."""
    levels = topics.split(topic)
    if not levels:
        return None
    if data is None:
        return f"{'/'.join(levels)}: (not a JSON object: {raw[:60]!r})" if raw else f"{'/'.join(levels)}: (cleared)"
    g = data.get
    match levels:
        case ["hub", hub, "status"]:
            voice = "" if g("voice") is None else f" voice={'on' if g('voice') else 'off'}"
            return f"hub {hub}: {g('state')} (set {g('set')}, v{g('version')}, audio {g('audio')}{voice})"
        case ["set", set_id, "state"]:
            return f"set {set_id}: {str(g('state')).upper()} take {g('take')} seq {g('seq')} ({g('cause')})"
        case ["set", set_id, "heartbeat"]:
            return f"set {set_id}: heartbeat {g('state')} seq {g('seq')} epoch {g('epoch')}"
        case ["set", set_id, "event"]:
            what = g("type") if g("changed") else f"{g('type')} (no change)"
            extra = [f"by {g('cause')}"]
            if g("source"):
                extra.append(f"from {g('source')}")
            if g("phrase"):
                conf = g("confidence")
                extra.append(f'heard "{g("phrase")}"' + (f" {conf:.2f}" if isinstance(conf, (int, float)) else ""))
            return f"set {set_id}: event {what} {' '.join(extra)}"
        case ["set", set_id, "request"]:
            return f"set {set_id}: request {g('action')} from {g('source') or '?'}"
        case ["set", set_id, "response"]:
            result = f"ok → {g('state')}" if g("ok") else f"refused: {g('error')}"
            return f"set {set_id}: response {result}"
        case ["light", light, "status"]:
            return f"light {light}: {g('state')}" + (f" (fw {g('fw')}, set {g('set')})" if g("fw") else "")
        case ["light", light, "state"]:
            return f"light {light}: shows {g('showing')}"
        case ["light", light, "cmd"]:
            return f"light {light}: command {g('action')}"
        case ["offload", "event"]:
            return (f"offload {g('roll')}: {g('status')} ({g('files')} files, {g('bytes')} bytes, "
                    f"safe to wipe: {'yes' if g('safe_to_wipe') else 'no'})")
        case ["offload", "card", roll]:
            return f"offload card {roll}: {g('status')}"
        case ["offload", "error"]:
            return f"offload error: {g('reason')}"
        case ["offload", "report"]:
            return f"offload report for {g('roll')}"
    return f"{'/'.join(levels)}: {json.dumps(data, ensure_ascii=False)[:200]}"


def stamp(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"
