"""The voice listener the hub runs: audio source → detector → ``submit(action, cause="voice")``.

    listener = VoiceListener(context)   # the hub's HubContext: settings, submit, state, set_audio_status
    listener.start()   # loads the model (raises ModelError), then listens in its own thread
    ...
    listener.stop()

An audio error never ends the listener: it reports "fault", waits ``[audio] reopen_s``,
re-initialises PortAudio for microphones, and opens the source again. When a file or stdin
ends, it reports "off" and stops listening.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..audio import AudioSource, open_source
from ..audio.reopen import ReopeningInput
from . import Detector, load_model, resolve_model, tuning_from
from .capture import ClipCapture
from .detector import NearMiss
from .model import check_vocabulary
from .stats import VoiceStats

if TYPE_CHECKING:
    from ..hub.component import HubContext

log = logging.getLogger(__name__)


class VoiceListener:
    """Runs in its own thread; see the module docstring."""

    def __init__(self, ctx: HubContext, source_factory: Callable[[], AudioSource] | None = None):
        settings = self.settings = ctx.settings
        self.submit = ctx.submit
        self.get_state = ctx.state
        self.set_audio_status = ctx.set_audio_status
        self.source_factory = source_factory or (lambda: open_source(settings.audio))
        self.voice_enabled = ctx.voice_enabled
        self.model: Any = None
        self.status = "off"
        self.stats = VoiceStats()
        """Triggers, near misses and detection latency, for the hub's metrics."""
        self._input = ReopeningInput("voice", self.source_factory, self._listen_once, on_fault=self._fault,
                                     on_end=self._ended, reopen_s=settings.audio.reopen_s,
                                     mic=settings.audio.source == "mic")

    def load(self) -> None:
        """Resolve and load the model and check the phrases' words; raises ModelError."""
        if self.model is None:
            speech = self.settings.speech
            path = resolve_model(speech.model, self.settings.hub.state_dir)
            self.model = load_model(Path(path))
            check_vocabulary(self.model, speech.phrases, speech.model)
            log.info("speech model %s loaded from %s", speech.model, path)

    def start(self) -> None:
        self.load()
        self._input.start()

    def stop(self) -> None:
        self._input.stop()

    def _report(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self.set_audio_status(status)

    def _fault(self, exc: Exception) -> None:
        self._report("fault")
        log.warning("audio fault: %s; reopening in %.0f s", exc, self.settings.audio.reopen_s)

    def _ended(self) -> None:
        self._report("off")
        log.info("audio ended; voice triggers off")

    def _listen_once(self, source: AudioSource) -> bool:
        """Feed the opened source to the detector; True when the audio ended normally."""
        speech = self.settings.speech
        capture = None
        if speech.capture_dir is not None:
            capture = ClipCapture(speech.capture_dir, source.rate, speech.capture_max_clips, speech.capture_max_mb)
            capture.start()

        def near_miss(miss: NearMiss) -> None:
            self.stats.near_miss(miss.reason)
            if capture is not None:
                capture.mark("refused" if GATED in miss.reason else "near-miss", miss.action or "none",
                             miss.phrase, miss.time, miss.phrase_end, miss.reason)

        detector = Detector(self.model, source.rate, speech.phrases, tuning_from(speech),
                            get_state=self.get_state, model_name=speech.model, on_near_miss=near_miss)
        self._report("ok")
        overflows = 0
        try:
            for block in source:
                if self._input.stopping():
                    return False
                triggers = detector.feed(block)
                if capture is not None:
                    capture.feed(block)
                if source.overflows != overflows:
                    log.warning("audio overflow: %d blocks lost so far (the Pi is too slow?)", source.overflows)
                    overflows = source.overflows
                for trigger in triggers:
                    self._fire(trigger, capture)
            for trigger in detector.flush():
                self._fire(trigger, capture)
            return True
        finally:
            if capture is not None:
                capture.stop()

    def _fire(self, trigger: Any, capture: ClipCapture | None = None) -> None:
        self.stats.trigger(trigger.action, trigger.time - trigger.phrase_end)
        kind, reason = "trigger", ""
        if not self.voice_enabled():
            log.info("voice off: ignoring %s (%r)", trigger.action, trigger.phrase)
            kind, reason = "refused", "voice off"
        else:
            log.info("voice: %s (%r, confidence %.2f, at %.2f s)", trigger.action, trigger.phrase,
                     trigger.confidence, trigger.time)
            try:
                outcome = self.submit(trigger.action, cause="voice", phrase=trigger.phrase,
                                      confidence=trigger.confidence)
            except Exception as exc:  # noqa: BLE001 - the controller's problem, not the listener's
                log.exception("submitting %s failed", trigger.action)
                kind, reason = "refused", f"submitting failed: {exc}"
            else:
                kind, reason = _outcome(outcome)
        if capture is not None:
            capture.mark(kind, trigger.action, trigger.phrase, trigger.time, trigger.phrase_end, reason,
                         confidence=trigger.confidence)


GATED = " not allowed while "
"""In a near miss's reason: the detector's own gate refused the phrase (the set state)."""


def _outcome(outcome: object) -> tuple[str, str]:
    """(clip kind, reason) of what the hub did with a voice trigger: an overruled or refused trigger
    is kept as such, so that a field check finds the calls the hub did not act on."""
    if getattr(getattr(outcome, "event", None), "overruled", False):
        return "overruled", str(getattr(outcome, "error", None) or "overruled")
    if getattr(outcome, "ok", True) is False:
        return "refused", str(getattr(outcome, "error", None) or "refused")
    return "trigger", ""
