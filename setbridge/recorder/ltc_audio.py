"""LTC from an input of its own (``[timecode] device`` or ``file``): read on its own thread and
handed to the timecode input, reopened after an error as the voice listener is
(:class:`~setbridge.audio.reopen.ReopeningInput`)."""

from __future__ import annotations

import logging

from ..audio.base import AudioSource
from ..audio.reopen import ReopeningInput
from ..config import TimecodeSettings
from .ltc_input import LtcInput

log = logging.getLogger(__name__)


class LtcAudio:
    """A hub component: opens the LTC input, feeds :class:`LtcInput`, reports faults to it."""

    def __init__(self, settings: TimecodeSettings, ltc: LtcInput, reopen_s: float):
        self.settings = settings
        self.ltc = ltc
        self.reopen_s = reopen_s
        self._input = ReopeningInput("timecode-audio", lambda: self.open_source(), self._listen, on_fault=self._fault,
                                     on_end=self._ended, reopen_s=reopen_s, mic=settings.file is None)

    def open_source(self) -> AudioSource:
        if self.settings.file is not None:
            from ..audio.file import WavFileSource

            return WavFileSource(self.settings.file, realtime=True, channel=self.settings.channel or 1)
        from ..audio.mic import MicSource

        return MicSource(self.settings.device, self.settings.channel or 1)

    def start(self) -> None:
        self._input.start()

    def stop(self) -> None:
        self._input.stop()

    def _listen(self, source: AudioSource) -> bool:
        self.ltc.audio_fault(None)
        tap = self.ltc.receiver()
        for block in source:
            if self._input.stopping():
                return False
            tap(block, source.rate)
        return True

    def _fault(self, exc: Exception) -> None:
        self.ltc.audio_fault(str(exc))
        log.warning("timecode input fault: %s; reopening in %.0f s", exc, self.reopen_s)

    def _ended(self) -> None:
        log.info("timecode input ended")
        self.ltc.audio_fault("the timecode input ended")
