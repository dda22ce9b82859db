"""LTC from an input of its own (``[timecode] device`` or ``file``): read on its own thread and
handed to the timecode input, reopened after an error as the voice listener does."""

from __future__ import annotations

import logging
import threading

from ..audio.base import AudioSource
from ..config import TimecodeSettings
from .ltc_input import LtcInput

log = logging.getLogger(__name__)


class LtcAudio:
    """A hub component: opens the LTC input, feeds :class:`LtcInput`, reports faults to it."""

    def __init__(self, settings: TimecodeSettings, ltc: LtcInput, reopen_s: float):
        self.settings = settings
        self.ltc = ltc
        self.reopen_s = reopen_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: AudioSource | None = None

    def open_source(self) -> AudioSource:
        if self.settings.file is not None:
            from ..audio.file import WavFileSource

            return WavFileSource(self.settings.file, realtime=True, channel=self.settings.channel or 1)
        from ..audio.mic import MicSource

        return MicSource(self.settings.device, self.settings.channel or 1)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="timecode-audio", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        source = self._source
        if source is not None:
            source.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                source = self._source = self.open_source()
                source.open()
                self.ltc.audio_fault(None)
                tap = self.ltc.receiver()
                for block in source:
                    if self._stop.is_set():
                        return
                    tap(block, source.rate)
                log.info("timecode input ended")
                self.ltc.audio_fault("the timecode input ended")
                return
            except Exception as exc:  # noqa: BLE001 - an input error must never end the hub
                if self._stop.is_set():
                    return
                self.ltc.audio_fault(str(exc))
                log.warning("timecode input fault: %s; reopening in %.0f s", exc, self.reopen_s)
            finally:
                opened, self._source = self._source, None
                if opened is not None:
                    opened.close()
            if self._stop.wait(self.reopen_s):
                return
            if self.settings.file is None:
                try:
                    from ..audio.mic import reinit_portaudio

                    reinit_portaudio()
                except Exception as exc:  # noqa: BLE001
                    log.warning("re-initialising PortAudio failed: %s", exc)
