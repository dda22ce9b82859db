"""Audio sources behind one seam: a microphone, a WAV file, or raw PCM on stdin.

Every source yields 16-bit little-endian mono PCM blocks at its own ``rate``::

    with open_source(settings.audio) as source:
        for block in source:
            detector.feed(block)
"""

from .base import AudioSource
from .factory import open_source
from .file import WavFileSource
from .stdin import PcmStreamSource

__all__ = ["AudioSource", "PcmStreamSource", "WavFileSource", "open_source"]
