"""How each state looks: a brightness level over time, and a colour for colour outputs.

``frame(showing, elapsed_ms, overlay)`` returns ``(level, color_key, next_ms)``:
``level`` in 0..1 (relays switch at 0.5), ``color_key`` a key of ``COLORS`` (or an
RGB tuple for flashes), ``next_ms`` when the frame may change next.

| showing   | single colour                       | NeoPixel            |
|-----------|-------------------------------------|---------------------|
| idle      | off                                 | dim green           |
| standby   | slow pulse (relay: 1 s on, 1 s off) | amber, slow pulse   |
| rolling   | solid on                            | solid red           |
| link-lost | bursts every 2 s: 2 blinks = no hub, 3 = no broker, 4 = no Wi-Fi | blue, same bursts |
| identify  | fast blink (5 per second)           | white, fast blink   |
| test      | each state for a quarter of the time | each state's look  |
| flash     | slow (1 Hz) or fast (5 Hz) blink    | the given colour    |
"""

COLORS = {
    "idle": (0, 10, 0),
    "standby": (255, 120, 0),
    "rolling": (255, 0, 0),
    "link-lost": (0, 0, 255),
    "identify": (255, 255, 255),
}

LOST_BLINKS = {"hub": 2, "broker": 3, "wifi": 4}
"""Blinks per 2 s burst while the link is lost, by the missing link."""


def _lost(blinks):
    return ((1, 150), (0, 150)) * (blinks - 1) + ((1, 150), (0, 2000 - 300 * blinks + 150))


# blink patterns: ((level, ms), ...) repeated
_BLINKS = {
    "hub": _lost(2),
    "broker": _lost(3),
    "wifi": _lost(4),
    "identify": ((1, 100), (0, 100)),
    "slow": ((1, 500), (0, 500)),
    "fast": ((1, 100), (0, 100)),
}
PULSE_MS = 2000
PULSE_STEP_MS = 40


def _blink(segments, elapsed):
    total = 0
    for _level, ms in segments:
        total += ms
    t = elapsed % total
    for level, ms in segments:
        if t < ms:
            return level, ms - t
        t -= ms
    return 0, 1


def frame(showing, elapsed, overlay=None, lost="hub"):
    if showing == "rolling":
        return 1.0, "rolling", 1000
    if showing == "idle":
        return 0.0, "idle", 1000
    if showing == "standby":
        t = elapsed % PULSE_MS
        half = PULSE_MS // 2
        level = t / half if t < half else (PULSE_MS - t) / half
        return level, "standby", PULSE_STEP_MS
    if showing == "link-lost":
        level, left = _blink(_BLINKS.get(lost, _BLINKS["hub"]), elapsed)
        return float(level), showing, left
    if showing == "identify":
        level, left = _blink(_BLINKS[showing], elapsed)
        return float(level), showing, left
    if showing == "test" and overlay is not None:
        step = max(1, overlay[2] // 4)
        sub = ("idle", "standby", "rolling", "link-lost")[min(3, elapsed // step)]
        level, key, nxt = frame(sub, elapsed % step)
        return level, key, min(nxt, step - elapsed % step)
    if showing == "flash" and overlay is not None:
        opts = overlay[3]
        level, left = _blink(_BLINKS[opts.get("pattern") or "slow"], elapsed)
        return float(level), opts.get("rgb") or (255, 255, 255), left
    return 0.0, "idle", 1000
