"""Stage health from the bus, for ``setbridge status``: broker, hub, audio, voice, set state,
heartbeats and lights, each problem named in one line."""

from __future__ import annotations

import json
import queue
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .. import contract as c
from ..bus import Bus
from ..topics import Topics


ALIVE_TIMEOUT_S = 3.0
"""A light that sent no ``alive`` message for this long (or 3 × its ``every_s``) is not alive."""


MIN_LISTEN_S = 1.0
"""Listen at least this long, so that every retained light status has arrived (amqtt is slow)."""


@dataclass
class Health:
    set_id: str
    hubs: dict[str, dict[str, Any]] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    heartbeat_at: float | None = None
    lights: dict[str, dict[str, Any]] = field(default_factory=dict)
    """light id → {"status": {...}, "state": {...}, "alive": {...}, "alive_at": unix time of the
    last alive message, "seen": unix time this command last heard from it}"""
    listened_s: float = 0.0
    """How long the bus was watched for heartbeats and alive messages."""

    def problems(self) -> list[str]:
        out = []
        mine = {h: s for h, s in self.hubs.items() if s.get("set") == self.set_id}
        online = {h: s for h, s in mine.items() if s.get("state") == "online"}
        if not mine:
            out.append(f"no hub has announced itself for set {self.set_id}; is `setbridge hub` running?")
        elif not online:
            out.append(f"hub {', '.join(mine)} for set {self.set_id} is offline")
        for hub, s in online.items():
            if s.get("audio") == "fault":
                out.append(f"hub {hub}: audio fault (microphone unplugged or failing; see `setbridge devices`)")
            if s.get("conflict"):
                out.append(f"hub {hub}: conflict: {s['conflict']}")
            if s.get("timecode") == "fault":
                out.append(f"hub {hub}: timecode: fault ({s.get('timecode_reason') or 'no reason given'}); voice and "
                           "buttons act alone until it is back")
            if s.get("offload") == "fault":
                out.append(f"hub {hub}: offload: fault ({s.get('offload_reason') or 'no reason given'}); "
                           "set state and lights are unaffected")
        if online and self.heartbeat_at is None:
            out.append(f"set {self.set_id}: no heartbeat from the hub for {self.listened_s:.0f} s; it is frozen or hung "
                       "(the broker may still show it online)")
        for light, info in sorted(self.lights.items()):
            status, state = info.get("status") or {}, info.get("state") or {}
            if status.get("state") == "offline":
                out.append(f"light {light} is offline")
                continue
            if "alive_at" not in info:
                out.append(f"light {light}: no alive message for {self.listened_s:.0f} s; it is frozen or hung "
                           "(the broker may still show it online)")
            if state.get("showing") == "link-lost":
                out.append(f"light {light} shows link-lost")
        return out

    def as_dict(self) -> dict[str, Any]:
        problems = self.problems()
        return {"set": self.set_id, "ok": not problems, "problems": problems, "hubs": self.hubs,
                "state": self.state, "heartbeat": self.heartbeat_at is not None, "lights": self.lights}


def collect(bus: Bus, topics: Topics, set_id: str, wait_s: float) -> Health:
    """Read retained statuses and states, and wait up to ``wait_s`` (at least ``ALIVE_TIMEOUT_S``)
    for a heartbeat and an alive message from every online light."""
    q: queue.Queue[tuple[str, bytes]] = queue.Queue()
    for spec in (c.HUB_STATUS, c.SET_STATE, c.SET_HEARTBEAT, c.LIGHT_STATUS, c.LIGHT_STATE, c.LIGHT_ALIVE):
        f = spec.filter(topics.base, set=set_id)
        bus.subscribe(f, lambda t, p: q.put((t, p)))
    health = Health(set_id)
    started = time.monotonic()
    wait_s = max(wait_s, ALIVE_TIMEOUT_S)
    deadline = started + wait_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            topic, payload = q.get(timeout=left)
        except queue.Empty:
            break
        try:
            data = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        match c.identify(topics.base, topic):
            case (c.HUB_STATUS, {"hub": hub}):
                health.hubs[hub] = data
            case (c.SET_STATE, _):
                health.state = data
            case (c.SET_HEARTBEAT, _):
                health.heartbeat_at = time.time()
            case (c.LIGHT_STATUS | c.LIGHT_STATE | c.LIGHT_ALIVE as spec, {"light": light}):
                kind = spec.levels[-1]
                entry = health.lights.setdefault(light, {})
                entry[kind] = data
                entry["seen"] = round(time.time(), 3)
                if kind == "alive":
                    entry["alive_at"] = entry["seen"]
                    every = data.get("every_s")
                    if isinstance(every, (int, float)) and 3 * every > wait_s:  # a slow light: give it its time
                        wait_s = min(3 * every, 60.0)
                        deadline = max(deadline, started + wait_s)
        lights_alive = all("alive_at" in e for e in health.lights.values()
                           if (e.get("status") or {}).get("state") == "online")
        settled = time.monotonic() - started >= MIN_LISTEN_S  # retained messages can trail on a slow broker
        if health.heartbeat_at and health.hubs and health.state and lights_alive and settled:
            # Retained messages arrive first; a short grace collects the rest of them.
            deadline = min(deadline, time.monotonic() + 0.3)
    health.listened_s = round(time.monotonic() - started, 1)
    health.lights = {k: v for k, v in health.lights.items()
                     if (v.get("status") or {}).get("set") in (None, set_id)}
    return health


SET_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
MAX_SETS = 200
"""``status --set all`` reports at most this many sets."""


def known_sets(bus: Bus, topics: Topics, listen_s: float = MIN_LISTEN_S) -> list[str]:
    """Every set the broker holds a hub status or a set state for (retained), sorted."""
    q: queue.Queue[tuple[str, bytes]] = queue.Queue()
    for spec in (c.HUB_STATUS, c.SET_STATE):
        bus.subscribe(spec.filter(topics.base), lambda t, p: q.put((t, p)))
    found: set[str] = set()
    deadline = time.monotonic() + listen_s
    while (left := deadline - time.monotonic()) > 0 and len(found) < MAX_SETS:
        try:
            topic, payload = q.get(timeout=left)
        except queue.Empty:
            break
        match c.identify(topics.base, topic):
            case (c.SET_STATE, {"set": set_id}) if payload:
                found.add(set_id)
            case (c.HUB_STATUS, _):
                try:
                    data = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(data, dict) and isinstance(data.get("set"), str) and SET_ID.fullmatch(data["set"]):
                    found.add(data["set"])
    return sorted(found)


def render(health: Health) -> list[str]:
    lines = []
    for hub, s in sorted(health.hubs.items()):
        if s.get("set") == health.set_id:
            voice = "" if s.get("voice") is None else f", voice {'on' if s['voice'] else 'off'}"
            offload = f", offload {s['offload']}" if s.get("offload") else ""
            recorder = f" (recorder {s['recorder']})" if s.get("recorder") else ""
            timecode = f", timecode {s['timecode']}{recorder}" if s.get("timecode") else ""
            lines.append(f"hub {hub}: {s.get('state')} (v{s.get('version')}, audio {s.get('audio')}{voice}{offload}"
                         f"{timecode})")
    if health.state:
        st = health.state
        age = f", {time.time() - st['ts']:.0f} s ago" if isinstance(st.get("ts"), (int, float)) else ""
        lines.append(f"set {health.set_id}: {st.get('state')} take {st.get('take')} (last change by "
                     f"{st.get('cause')}{age})")
    lines.append(f"heartbeat: {'seen' if health.heartbeat_at else 'none'}")
    for light, info in sorted(health.lights.items()):
        status, state = info.get("status") or {}, info.get("state") or {}
        alive = "alive" if "alive_at" in info else f"silent for {health.listened_s:.0f} s"
        lines.append(f"light {light}: {status.get('state', '?')}, {alive}, shows {state.get('showing', '?')}"
                     + (f", fw {status['fw']}" if status.get("fw") else "") + f", {_last_seen(status, state)}")
    if not health.lights:
        lines.append("lights: none known")
    return lines


def _last_seen(*payloads: dict[str, Any]) -> str:
    """When a light last spoke, from the newest ``ts`` in its retained payloads."""
    stamps = [p["ts"] for p in payloads if isinstance(p.get("ts"), (int, float))]
    if not stamps:
        return "seen now (its retained messages carry no time)"
    return f"last seen {max(0.0, time.time() - max(stamps)):.0f} s ago"
