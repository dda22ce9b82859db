"""What the voice listener counts for the hub's metrics: triggers by action, near misses by
reason, and how long after the end of a phrase the detector fired.

Counted on the voice thread (a few times a minute at most); read by a scrape. Labels are
bounded: an action, or one of :data:`NEAR_MISS_REASONS`, never the words heard.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric

NEAR_MISS_REASONS = {  # first match wins
    "filler words": "filler",
    "not a phrase alone": "not_alone",
    "no pause before": "no_pause",
    "confidence": "low_confidence",
    "per syllable": "pace",
    "phrase covers": "sound_span",
    "s of sound for": "sound_span",
    "db above": "onset",
    "refractory": "refractory",
    "not allowed while": "not_allowed",
}
"""A fragment of the detector's reason → the ``reason`` label; anything else is ``other``."""

LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
"""Seconds from the end of the phrase to the trigger; the detector aims at a few tenths."""


def near_miss_reason(reason: str) -> str:
    """The bounded label of a detector's rejection reason."""
    lowered = reason.lower()
    return next((label for fragment, label in NEAR_MISS_REASONS.items() if fragment in lowered), "other")


class VoiceStats:
    """Counters of one voice listener, registered nowhere: the hub's metrics collect them."""

    def __init__(self) -> None:
        self.triggers = Counter("setbridge_voice_triggers", "Voice triggers detected, by action "
                                "(counted whether voice triggers were on or off)", ["action"], registry=None)
        self.near_misses = Counter("setbridge_voice_near_misses", "Utterances with a trigger word that did not "
                                   "fire, by reason", ["reason"], registry=None)
        self.latency = Histogram("setbridge_voice_detection_latency_seconds", "Seconds from the end of a "
                                 "phrase to its trigger", buckets=LATENCY_BUCKETS, registry=None)

    def trigger(self, action: str, latency_s: float) -> None:
        self.triggers.labels(action).inc()
        self.latency.observe(max(0.0, latency_s))

    def near_miss(self, reason: str) -> None:
        self.near_misses.labels(near_miss_reason(reason)).inc()

    def collect(self) -> Iterable[Metric]:
        for metric in (self.triggers, self.near_misses, self.latency):
            yield from metric.collect()
