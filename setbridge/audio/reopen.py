"""An audio input kept open on a thread of its own: after an error it reports the fault, waits,
re-initialises PortAudio for a microphone and opens the input again (the voice listener and the LTC
input both run this way)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .base import AudioSource

log = logging.getLogger(__name__)


class ReopeningInput:
    """Opens ``open_source()`` and hands it to ``listen``, which reads it and returns True when the
    input ended (a file or stdin) or False when it saw :meth:`stopping`. Any error while opening or
    reading goes to ``on_fault`` and the input is opened again ``reopen_s`` later; an ended input
    calls ``on_end`` and the thread ends. An error here never ends the hub."""

    def __init__(self, name: str, open_source: Callable[[], AudioSource], listen: Callable[[AudioSource], bool], *,
                 on_fault: Callable[[Exception], None], on_end: Callable[[], None], reopen_s: float, mic: bool):
        self.name, self.reopen_s, self.mic = name, reopen_s, mic
        self.open_source, self.listen = open_source, listen
        self.on_fault, self.on_end = on_fault, on_end
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: AudioSource | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading: closes the open source (which ends a blocked read) and waits for the thread."""
        self._stop.set()
        source = self._source
        if source is not None:
            source.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """The loop itself (``start`` runs it on the thread)."""
        while not self._stop.is_set():
            try:
                source = self._source = self.open_source()
                source.open()
                if self.listen(source):
                    self.on_end()
                    return
            except Exception as exc:  # noqa: BLE001 - an input error must never end the hub
                if self._stop.is_set():
                    return
                self.on_fault(exc)
            finally:
                opened, self._source = self._source, None
                if opened is not None:
                    opened.close()
            if self._stop.wait(self.reopen_s):
                return
            if self.mic:
                _reinit_portaudio()


def _reinit_portaudio() -> None:
    """Make a replugged microphone visible again; a failure is logged and the reopen goes ahead."""
    try:
        from . import mic

        mic.reinit_portaudio()
    except Exception as exc:  # noqa: BLE001
        log.warning("re-initialising PortAudio failed: %s", exc)
