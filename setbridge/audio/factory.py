"""Build the source ``[audio]`` asks for."""

from __future__ import annotations

from ..config import AudioSettings
from ..errors import AudioError
from .base import AudioSource
from .file import WavFileSource
from .stdin import PcmStreamSource


def open_source(audio: AudioSettings) -> AudioSource:
    """A new, unopened source for ``[audio] source``; ``none`` is an error here."""
    if audio.source == "mic":
        from .mic import MicSource

        return MicSource(audio.device, audio.channel)
    if audio.source == "file":
        if audio.file is None:
            raise AudioError("[audio] source = \"file\" needs [audio] file = \"PATH.wav\"")
        return WavFileSource(audio.file, realtime=True, channel=audio.channel)
    if audio.source == "stdin":
        return PcmStreamSource(audio.stdin_rate)
    raise AudioError("[audio] source is \"none\"; set it to mic, file or stdin for voice triggers")
