"""The seam every audio source implements."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType

BLOCK_S = 0.05
"""Length of the blocks sources hand out, in seconds."""


class AudioSource:
    """16-bit mono PCM blocks at :attr:`rate`; iteration ends when the audio ends.

    A source raises :class:`~setbridge.errors.AudioError` when it cannot open or fails while
    running; whoever reads it decides whether to retry.
    """

    rate: int = 16000
    overflows: int = 0
    """Blocks lost because the reader fell behind (microphones only)."""

    def open(self) -> None:
        """Acquire the device or file; called once before iterating."""

    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    def blocks(self) -> Iterator[bytes]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[bytes]:
        return self.blocks()

    def __enter__(self) -> AudioSource:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
