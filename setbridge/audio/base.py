"""The seam every audio source implements."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType

Tap = Callable[[bytes, int], None]
"""Receives another channel's 16-bit mono PCM and the rate, as it is read (it must not block)."""

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
    taps: tuple[tuple[int, Tap], ...] = ()
    """Other channels of the same input (1 = first) and who receives them (LTC timecode beside voice)."""

    def tap(self, channel: int, receiver: Tap) -> None:
        """Hand channel ``channel`` to ``receiver`` too, block by block (before :meth:`open`)."""
        self.taps = (*self.taps, (channel, receiver))

    def _feed_taps(self, data: bytes, channels: int) -> None:
        from .channels import to_mono

        for channel, receiver in self.taps:
            receiver(to_mono(data, channels, channel), self.rate)

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
