"""A microphone through PortAudio (sounddevice), opened at the device's own default rate.

With ``channel`` set, the device is opened with that many channels and that one is kept (a
walkie on the left, timecode on the right); unset, a stereo device is downmixed to mono.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from typing import Any

from ..errors import AudioError
from .base import BLOCK_S, AudioSource
from .channels import check_channel, to_mono

log = logging.getLogger(__name__)

QUEUE_BLOCKS = 100
"""Blocks buffered between the capture callback and the reader (5 s); beyond that, overflow."""
STALL_S = 2.0
"""No audio for this long means the device is gone."""


def _sd() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # libportaudio2 missing
        raise AudioError(f"PortAudio is not available ({exc}); install the libportaudio2 package") from None
    return sounddevice


def reinit_portaudio() -> None:
    """Re-initialise PortAudio so that a replugged device shows up again."""
    sd = _sd()
    try:
        sd._terminate()
    except Exception:  # noqa: BLE001 - already terminated is fine
        pass
    sd._initialize()


def find_input_device(device: str | int | None) -> tuple[int, dict[str, Any]]:
    """The input device by index or by a case-insensitive substring of its name."""
    sd = _sd()
    try:
        devices = sd.query_devices()
        if device is None:
            index = sd.default.device[0]
            if index is None or index < 0:
                raise AudioError("no default input device; list them with `setbridge devices` and set [audio] device")
            return int(index), dict(devices[int(index)])
        if isinstance(device, int) or str(device).isdigit():
            index = int(device)
            if not 0 <= index < len(devices) or devices[index]["max_input_channels"] < 1:
                raise AudioError(f"[audio] device {index} is not an input device; see `setbridge devices`")
            return index, dict(devices[index])
        for index, info in enumerate(devices):
            if info["max_input_channels"] > 0 and str(device).lower() in info["name"].lower():
                return index, dict(info)
    except sd.PortAudioError as exc:
        raise AudioError(f"cannot list audio devices ({exc})") from None
    raise AudioError(f"[audio] device {device!r} matches no input device; see `setbridge devices`")


class MicSource(AudioSource):
    """Capture in PortAudio's callback into a bounded queue; a full queue counts an overflow."""

    def __init__(self, device: str | int | None = None, channel: int | None = None):
        self.device = device
        self.channel = channel
        self.channels = 1
        self.overflows = 0
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._stream: Any = None

    def open(self) -> None:
        sd = _sd()
        index, info = find_input_device(self.device)
        self.rate = int(info["default_samplerate"])
        available = int(info["max_input_channels"])
        check_channel(self.channel, available, f"microphone {info['name']!r}")
        for channel, _ in self.taps:
            check_channel(channel, available, f"microphone {info['name']!r}", "[timecode] channel")
        self.channels = self.channel if self.channel is not None else min(2, available)
        self.channels = max([self.channels, *(channel for channel, _ in self.taps)])
        try:
            self._stream = sd.RawInputStream(device=index, samplerate=self.rate, channels=self.channels, dtype="int16",
                                             blocksize=int(self.rate * BLOCK_S), callback=self._callback)
            self._stream.start()
        except sd.PortAudioError as exc:
            self._stream = None
            raise AudioError(f"cannot open microphone {info['name']!r} at {self.rate} Hz ({exc})") from None
        log.info("microphone %r open at %d Hz", info["name"], self.rate)

    def _callback(self, data: Any, frames: int, time: Any, status: Any) -> None:
        if status and status.input_overflow:
            self.overflows += 1
        if self.taps:
            self._feed_taps(bytes(data), self.channels)
        try:
            self._queue.put_nowait(to_mono(bytes(data), self.channels, self.channel))
        except queue.Full:
            self.overflows += 1

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001 - the device may already be gone
                log.debug("closing the microphone failed", exc_info=True)

    def blocks(self) -> Iterator[bytes]:
        if self._stream is None:
            self.open()
        while True:
            try:
                yield self._queue.get(timeout=STALL_S)
            except queue.Empty:
                active = self._stream is not None and self._stream.active
                raise AudioError(f"microphone {self.device!r} delivered no audio for {STALL_S:.0f} s"
                                 f"{'' if active else ' (stream stopped; unplugged?)'}") from None
