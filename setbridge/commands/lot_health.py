"""``setbridge status --lot`` at a lot's central broker: one line per stage, and an exit code
that tells the worst apart.

Exit codes (:mod:`setbridge.commands.status_codes`): 0 every stage is well; 9 a stage is unreachable (its
bridge or its heartbeats are gone); 5 a stage's hub is down (the stage is heard, its set is not);
7 a light is down; with several, the first of 9, 5, 7 wins. 3 and 4: the central broker cannot be
reached or refuses the login; 1: no stage is heard.
"""

from __future__ import annotations

import time
from typing import Any

from . import status_codes as codes
from ..bus import Bus
from ..web.lot import LotBoard
from ..web.stage import ALIVE_WINDOW_S

EXIT = {"unreachable": codes.STAGE_UNREACHABLE, "hub down": codes.HUB_DOWN, "light down": codes.LIGHT_NOT_ALIVE,
        "ok": codes.OK}
"""``setbridge status --lot``'s exit code per stage condition (the codes of :mod:`setbridge.commands.status_codes`)."""
LISTEN_S = ALIVE_WINDOW_S + 0.5
"""Long enough to see every heartbeat and every light's alive (they come each second)."""


def collect(bus: Bus, base: str, listen_s: float = LISTEN_S) -> dict[str, Any]:
    board = LotBoard(base)
    board.broker(True)

    def take(topic: str, payload: bytes) -> None:
        board.handle(topic, payload)

    bus.subscribe(f"{base}/stage/+/#", take, qos=0)
    time.sleep(listen_s)
    return board.snapshot()


def render(snapshot: dict[str, Any]) -> list[str]:
    lines = []
    for st in snapshot["stages"]:
        name = st["stage"]
        if st["condition"] == "unreachable":
            since = time.strftime("%H:%M:%S", time.localtime(st["since"])) if st["since"] else "unknown"
            why = "its bridge is down" if st["bridge"] == "0" else "no heartbeat nor light heard"
            lines.append(f"{name}: UNREACHABLE since {since} ({why})")
            continue
        parts = []
        for s in st["sets"]:
            state = s["state"] if not s["lost"] else f"hub down ({s['lost']})"
            down = [light["id"] for light in s["lights"] if light["alive"] is False or light["online"] is False]
            lights = f"{len(s['lights'])} light(s)" + (f", DOWN: {', '.join(down)}" if down else "")
            parts.append(f"set {s['set']} {state}, take {s['take']}, {lights}")
        lines.append(f"{name}: " + ("; ".join(parts) if parts else "no set heard (hub down?)"))
    return lines


def exit_code(snapshot: dict[str, Any]) -> int:
    if not snapshot["stages"]:
        return 1
    conditions = {st["condition"] for st in snapshot["stages"]}
    return next((EXIT[c] for c in ("unreachable", "hub down", "light down") if c in conditions), 0)
