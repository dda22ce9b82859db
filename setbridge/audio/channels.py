"""Pick one channel of interleaved 16-bit PCM, or downmix all of them to mono."""

from __future__ import annotations

import numpy as np

from ..errors import AudioError


def check_channel(channel: int | None, channels: int, what: str, key: str = "[audio] channel") -> None:
    """Refuse a channel (``[audio] channel``, or ``key``) beyond what the input has, with a one-line reason."""
    if channel is not None and not 1 <= channel <= channels:
        raise AudioError(f"{what} has {channels} channel{'s' if channels != 1 else ''}; "
                         f"{key} {channel} does not exist (1 is the first, left)")


def to_mono(data: bytes, channels: int, channel: int | None) -> bytes:
    """Channel ``channel`` (1 = first) of ``channels`` interleaved, or their average when ``None``."""
    if channels == 1:
        return data
    frames = np.frombuffer(data[:len(data) - len(data) % (2 * channels)], dtype="<i2").reshape(-1, channels)
    if channel is not None:
        return bytes(np.ascontiguousarray(frames[:, channel - 1]).tobytes())
    return bytes(np.rint(frames.mean(axis=1)).astype("<i2").tobytes())
