"""Raw 16-bit little-endian mono PCM from a stream, e.g. ``arecord -f S16_LE -r 16000 | setbridge hub``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import BinaryIO

from .base import BLOCK_S, AudioSource


class PcmStreamSource(AudioSource):
    """Reads blocks from ``stream`` (stdin by default) until end of file."""

    def __init__(self, rate: int = 16000, stream: BinaryIO | None = None):
        self.rate = rate
        self._stream = stream

    def blocks(self) -> Iterator[bytes]:
        stream = self._stream if self._stream is not None else sys.stdin.buffer
        size = max(2, int(self.rate * BLOCK_S)) * 2
        pending = b""
        while True:
            data = stream.read(size)
            if not data:
                return
            data = pending + data
            cut = len(data) - len(data) % 2
            pending = data[cut:]
            if cut:
                yield data[:cut]
