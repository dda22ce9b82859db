"""Replay a WAV file, paced in real time (as the hub does) or as fast as possible."""

from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from pathlib import Path

from ..errors import AudioError
from .base import BLOCK_S, AudioSource
from .channels import check_channel, to_mono


class WavFileSource(AudioSource):
    """A 16-bit PCM WAV file at any rate; of a multi-channel file, ``channel`` (1 = first) or the downmix.

    >>> with WavFileSource("take.wav", realtime=False) as src:
    ...     pcm = b"".join(src)
    """

    def __init__(self, path: Path | str, realtime: bool = True, channel: int | None = None):
        self.path = Path(path)
        self.realtime = realtime
        self.channel = channel
        self._wav: wave.Wave_read | None = None

    def open(self) -> None:
        try:
            self._wav = wave.open(str(self.path), "rb")
        except (OSError, EOFError, wave.Error) as exc:
            raise AudioError(f"{self.path}: cannot read as a WAV file ({exc}); give a 16-bit PCM .wav") from None
        if self._wav.getsampwidth() != 2:
            self.close()
            raise AudioError(f"{self.path}: only 16-bit PCM WAV is supported; convert with "
                             f"`sox {self.path.name} -b 16 out.wav`")
        self.rate = self._wav.getframerate()
        try:
            check_channel(self.channel, self._wav.getnchannels(), str(self.path))
            for channel, _ in self.taps:
                check_channel(channel, self._wav.getnchannels(), str(self.path), "[timecode] channel")
        except AudioError:
            self.close()
            raise

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    def blocks(self) -> Iterator[bytes]:
        if self._wav is None:
            self.open()
        assert self._wav is not None
        channels = self._wav.getnchannels()
        frames = max(1, int(self.rate * BLOCK_S))
        started = time.monotonic()
        sent = 0
        while True:
            data = self._wav.readframes(frames)
            if not data:
                return
            mono = to_mono(data, channels, self.channel)
            sent += len(mono) // 2
            if self.realtime:
                delay = started + sent / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if self.taps:  # at the same moment as the block itself, as a microphone hands both out
                self._feed_taps(data, channels)
            yield mono

