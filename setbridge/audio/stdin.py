"""Raw 16-bit little-endian mono PCM from a stream, e.g. ``arecord -f S16_LE -r 16000 | setbridge hub``."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

from .base import BLOCK_S, AudioSource

POLL_S = 0.2
"""How often a reader waiting for input checks whether it was closed."""


class PcmStreamSource(AudioSource):
    """Reads blocks from ``stream`` (stdin by default) until end of file or :meth:`close`."""

    def __init__(self, rate: int = 16000, stream: BinaryIO | None = None):
        self.rate = rate
        self._stream = stream
        self._closed = False

    def open(self) -> None:
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def _reader(self, size: int) -> Callable[[], bytes | None]:
        stream = self._stream if self._stream is not None else sys.stdin.buffer
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return lambda: stream.read(size)  # an in-memory stream never blocks

        def read() -> bytes | None:
            # Unbuffered reads with a timeout, so that close() ends a reader waiting on a pipe.
            while not self._closed:
                if select.select([fd], [], [], POLL_S)[0]:
                    return os.read(fd, size)
            return b""
        return read

    def blocks(self) -> Iterator[bytes]:
        size = max(2, int(self.rate * BLOCK_S)) * 2
        read = self._reader(size)
        pending = b""
        while not self._closed:
            data = read()
            if not data:
                return
            data = pending + data
            cut = len(data) - len(data) % 2
            pending = data[cut:]
            if cut:
                yield data[:cut]
