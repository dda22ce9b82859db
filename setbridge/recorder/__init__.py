"""The recorder as the authority: record-run LTC timecode and the record tally as triggers,
arbitration with voice, and timecode on every event.

:class:`Recorder` is the hub component that holds them together::

    recorder = Recorder(context)        # reports its health with context.set_timecode_health
    listener = VoiceListener(replace(context, submit=recorder.voice), source_factory=lambda: recorder.tapped(src()))
    event = recorder.stamp(event)       # every set event, as it is published
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from ..audio.base import AudioSource
from ..hub.component import Health, HubContext
from ..hub.controller import Outcome
from ..messages import SetEvent
from .arbiter import Arbiter
from .runs import RunChange

log = logging.getLogger(__name__)

__all__ = ["Arbiter", "Recorder"]


class RecorderStats:
    """The recorder's counters as Prometheus metrics (read when scraped)."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder

    def collect(self) -> Iterator[Any]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

        arbiter = self.recorder.arbiter
        yield CounterMetricFamily("setbridge_voice_overruled", "Voice cuts overruled because the recorder was "
                                  "recording", value=arbiter.overruled)
        yield CounterMetricFamily("setbridge_voice_rolls_reverted", "Voice rolls the recorder did not confirm "
                                  "within [timecode] confirm_s, reverted", value=arbiter.reverted)
        if self.recorder.settings.recorder():
            yield GaugeMetricFamily("setbridge_recorder_recording", "1 while the recorder source says it records",
                                    value=1.0 if arbiter.recording() else 0.0)
        if self.recorder.ltc is not None:
            yield CounterMetricFamily("setbridge_timecode_frames", "LTC frames decoded", value=self.recorder.ltc.decoded)


class Recorder:
    """Starts the configured sources (timecode input, record tally) and the arbiter; reports the
    health with the context's ``set_timecode_health(state, reason, recorder)`` for the hub status."""

    def __init__(self, ctx: HubContext, pin_factory: Any = None):
        settings = self.settings = ctx.settings.timecode
        self.hub = ctx
        self._report = ctx.set_timecode_health
        self.arbiter = Arbiter(ctx.submit, ctx.snapshot, ctx.publish_event, settings.confirm_s, on_change=self._changed)
        self.ltc: Any = None
        self.ltc_audio: Any = None
        self.tally: Any = None
        self._reported: tuple[str, str | None, str | None] | None = None
        self._ltc_health: tuple[bool, str | None] = (True, None)
        if settings.mode != "off":
            from .ltc import library
            from .ltc_input import LtcInput

            library()  # a missing libltc is an error at start, not a fault later
            if settings.mode == "rec-run":
                self.arbiter.add_source("timecode")
            self.ltc = LtcInput(settings, self._ltc_changed, self._ltc_health_changed)
            if settings.own_input():
                from .ltc_audio import LtcAudio

                self.ltc_audio = LtcAudio(settings, self.ltc, ctx.settings.audio.reopen_s)
        if settings.tally_pin is not None:
            from .tally import TallyInput

            self.arbiter.add_source("tally")
            self.tally = TallyInput(settings, self._tally_changed,
                                    lambda ok, why: self.arbiter.source_health("tally", ok, why), pin_factory)

    @property
    def stats(self) -> RecorderStats:
        """For ``[metrics]``: what arbitration decided, counted since start."""
        return RecorderStats(self)

    def start(self) -> None:
        if self.ltc is not None:
            self.ltc.start()
            if self.ltc_audio is not None:
                self.ltc_audio.start()
            else:
                self.hub.on_health(self._hub_health)
        if self.tally is not None:
            self.tally.start()
        self._changed()
        if self.settings.recorder():
            self.arbiter.check_restored(self.settings.confirm_s, self._reported_since_start)

    def stop(self) -> None:
        self.arbiter.stop()
        for part in (self.tally, self.ltc_audio, self.ltc):
            if part is not None:
                part.stop()

    def voice(self, action: str, cause: str = "voice", **detail: object) -> Outcome:
        """The voice listener's ``submit``: through the arbiter."""
        return self.arbiter.voice(action, cause, **detail)

    def tapped(self, source: AudioSource) -> AudioSource:
        """``source`` with the LTC channel handed to the timecode input."""
        if self.ltc is not None and self.settings.channel is not None and not self.settings.own_input():
            source.tap(self.settings.channel, self.ltc.receiver())
        return source

    def stamp(self, event: SetEvent) -> SetEvent:
        """``event`` with the latest timecode, unless it carries its own."""
        stamp = self.ltc.stamp if self.ltc is not None else None
        if stamp is None or event.timecode is not None:
            return event
        return event.model_copy(update={"timecode": stamp.timecode, "fps": stamp.fps, "drop_frame": stamp.drop_frame})

    def _reported_since_start(self, source: str) -> bool:
        """``source`` has had time to say whether the recorder records: the tally says it when opened,
        timecode once its fault window of audio has been heard (enough to tell code, silence, noise)."""
        return source != "timecode" or self.ltc.heard_s >= self.settings.fault_s

    def _ltc_changed(self, change: RunChange) -> None:
        self.arbiter.source_changed("timecode", change.recording, cause="timecode", timecode=change.timecode,
                                    fps=change.fps, drop_frame=change.drop_frame)

    def _ltc_health_changed(self, healthy: bool, reason: str | None) -> None:
        self._ltc_health = (healthy, reason)
        if self.settings.mode == "rec-run":
            self.arbiter.source_health("timecode", healthy, reason)
        else:
            self._changed()

    def _tally_changed(self, recording: bool) -> None:
        self.arbiter.source_changed("tally", recording, cause="tally")

    def _hub_health(self, health: Health) -> None:
        self.ltc.audio_fault(None if health.audio != "fault" else "see the hub log")

    def _changed(self) -> None:
        state, reason = self.arbiter.health()
        if self.settings.mode == "free-run" and not self._ltc_health[0]:
            state, reason = "fault", f"timecode: {self._ltc_health[1]}"
        recorder = None
        if self.settings.recorder():
            recorder = "recording" if self.arbiter.recording() else "stopped"
        report = (state, reason, recorder)
        if report != self._reported:
            self._reported = report
            self._report(*report)
