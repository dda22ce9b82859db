"""The exit codes of ``setbridge status``, one per kind of trouble, so a monitor can act on them
(docs/deploy.md lists them). With several problems, the code of the most basic one wins: a
broker that cannot be reached hides everything behind it."""

from __future__ import annotations

OK = 0
OTHER = 1
"""A bad configuration or command line, or a problem of no kind below."""
BROKER_UNREACHABLE = 3
LOGIN_REFUSED = 4
"""The broker refused the login (user, password, or its MQTT protocol version)."""
HUB_DOWN = 5
"""No hub announced for the set, its status says offline, or no heartbeat (frozen or hung)."""
AUDIO_FAULT = 6
"""The hub reports an audio (or timecode) fault: voice triggers cannot hear."""
LIGHT_NOT_ALIVE = 7
"""A light is offline, silent (frozen), or shows link lost."""
OFFLOAD_FAULT = 8
"""The hub's offload journal is at fault (set state and lights are unaffected)."""
STAGE_UNREACHABLE = 9
"""``status --lot`` at a lot's centre: a stage's bridge or heartbeats are gone."""

BY_CONNECT_PROBLEM = {"unreachable": BROKER_UNREACHABLE, "login": LOGIN_REFUSED, "protocol": LOGIN_REFUSED}


def of_problem(line: str) -> int:
    """The code of one line of :meth:`setbridge.commands.stage_health.Health.problems` (each starts with its subject)."""
    if line.startswith("light "):
        return LIGHT_NOT_ALIVE
    if line.startswith("hub ") and ("audio" in line or "timecode" in line):
        return AUDIO_FAULT
    if line.startswith("hub ") and "offload" in line:
        return OFFLOAD_FAULT
    if line.startswith(("no hub", "hub ", "set ")):
        return HUB_DOWN
    return OTHER


PRIORITY = (BROKER_UNREACHABLE, LOGIN_REFUSED, HUB_DOWN, AUDIO_FAULT, LIGHT_NOT_ALIVE, OFFLOAD_FAULT, OTHER)
"""Most basic first."""


def of_problems(lines: list[str]) -> int:
    """The most basic problem's code, or :data:`OK`."""
    codes = {of_problem(line) for line in lines}
    return next((code for code in PRIORITY if code in codes), OK)
