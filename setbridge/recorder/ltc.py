"""A thin ctypes binding of libltc (Debian ``libltc11``): the LTC decoder, and the encoder that
tests and the bench use to make real timecode audio.

>>> decoder = LtcDecoder(48000, fps_hint=25)
>>> for frame in decoder.write_s16(pcm, position):   # 16-bit mono samples
...     frame.timecode, frame.drop_frame, frame.start
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import SetbridgeError

FRAME_BITS = 80
LTC_TV_525_60, LTC_TV_625_50, LTC_TV_1125_60, LTC_TV_FILM_24 = range(4)
"""``enum LTC_TV_STANDARD``: where the binary group flags and parity bit sit."""
LTC_USE_DATE, LTC_TC_CLOCK, LTC_BGF_DONT_TOUCH, LTC_NO_PARITY = 1, 2, 4, 8
"""``enum LTC_BG_FLAGS``."""


class LTCFrame(ctypes.Structure):
    """``struct LTCFrame`` (little-endian layout): 80 bits of bit-fields in 12 bytes."""

    _fields_ = [
        ("frame_units", ctypes.c_uint, 4), ("user1", ctypes.c_uint, 4),
        ("frame_tens", ctypes.c_uint, 2), ("dfbit", ctypes.c_uint, 1), ("col_frame", ctypes.c_uint, 1),
        ("user2", ctypes.c_uint, 4),
        ("secs_units", ctypes.c_uint, 4), ("user3", ctypes.c_uint, 4),
        ("secs_tens", ctypes.c_uint, 3), ("biphase_mark_phase_correction", ctypes.c_uint, 1),
        ("user4", ctypes.c_uint, 4),
        ("mins_units", ctypes.c_uint, 4), ("user5", ctypes.c_uint, 4),
        ("mins_tens", ctypes.c_uint, 3), ("binary_group_flag_bit0", ctypes.c_uint, 1),
        ("user6", ctypes.c_uint, 4),
        ("hours_units", ctypes.c_uint, 4), ("user7", ctypes.c_uint, 4),
        ("hours_tens", ctypes.c_uint, 2), ("binary_group_flag_bit1", ctypes.c_uint, 1),
        ("binary_group_flag_bit2", ctypes.c_uint, 1), ("user8", ctypes.c_uint, 4),
        ("sync_word", ctypes.c_uint, 16),
    ]


class LTCFrameExt(ctypes.Structure):
    """``struct LTCFrameExt``: a decoded frame and where it was in the stream (368 bytes)."""

    _fields_ = [
        ("ltc", LTCFrame),
        ("off_start", ctypes.c_longlong),
        ("off_end", ctypes.c_longlong),
        ("reverse", ctypes.c_int),
        ("biphase_tics", ctypes.c_float * FRAME_BITS),
        ("sample_min", ctypes.c_ubyte),
        ("sample_max", ctypes.c_ubyte),
        ("volume", ctypes.c_double),
    ]


class SMPTETimecode(ctypes.Structure):
    """``struct SMPTETimecode`` (13 bytes)."""

    _fields_ = [
        ("timezone", ctypes.c_char * 6),
        ("years", ctypes.c_ubyte), ("months", ctypes.c_ubyte), ("days", ctypes.c_ubyte),
        ("hours", ctypes.c_ubyte), ("mins", ctypes.c_ubyte), ("secs", ctypes.c_ubyte), ("frame", ctypes.c_ubyte),
    ]


_P = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "ltc_decoder_create": (_P, [ctypes.c_int, ctypes.c_int]),
    "ltc_decoder_free": (ctypes.c_int, [_P]),
    "ltc_decoder_write_s16": (None, [_P, ctypes.POINTER(ctypes.c_short), ctypes.c_size_t, ctypes.c_longlong]),
    "ltc_decoder_write_float": (None, [_P, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_longlong]),
    "ltc_decoder_read": (ctypes.c_int, [_P, ctypes.POINTER(LTCFrameExt)]),
    "ltc_frame_to_time": (None, [ctypes.POINTER(SMPTETimecode), ctypes.POINTER(LTCFrame), ctypes.c_int]),
    "ltc_encoder_create": (_P, [ctypes.c_double, ctypes.c_double, ctypes.c_int, ctypes.c_int]),
    "ltc_encoder_free": (None, [_P]),
    "ltc_encoder_set_timecode": (None, [_P, ctypes.POINTER(SMPTETimecode)]),
    "ltc_encoder_set_buffersize": (ctypes.c_int, [_P, ctypes.c_double, ctypes.c_double]),
    "ltc_encoder_get_buffersize": (ctypes.c_size_t, [_P]),
    "ltc_encoder_set_volume": (ctypes.c_int, [_P, ctypes.c_double]),
    "ltc_encoder_encode_frame": (None, [_P]),
    "ltc_encoder_copy_buffer": (ctypes.c_int, [_P, ctypes.POINTER(ctypes.c_ubyte)]),
    "ltc_encoder_inc_timecode": (ctypes.c_int, [_P]),
    "ltc_encoder_get_frame": (None, [_P, ctypes.POINTER(LTCFrame)]),
    "ltc_encoder_set_frame": (None, [_P, ctypes.POINTER(LTCFrame)]),
}


@lru_cache(maxsize=1)
def library() -> Any:
    """libltc, loaded once; :class:`SetbridgeError` with what to install when it is missing."""
    name = ctypes.util.find_library("ltc") or "libltc.so.11"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise SetbridgeError("libltc is not installed; install the libltc11 package "
                             "(apt-get install libltc11) to read timecode") from None
    for function, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, function)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


@dataclass(frozen=True)
class DecodedFrame:
    """One LTC frame as read: its code, the drop-frame flag, and its place in the stream (samples)."""

    hours: int
    minutes: int
    seconds: int
    frames: int
    drop_frame: bool
    start: int
    """Sample position where the frame began (as the positions given to ``write``)."""
    end: int
    volume_dbfs: float
    reverse: bool

    @property
    def timecode(self) -> str:
        """``HH:MM:SS:FF`` (drop-frame code too: :attr:`drop_frame` says which)."""
        return f"{self.hours:02d}:{self.minutes:02d}:{self.seconds:02d}:{self.frames:02d}"

    @property
    def key(self) -> int:
        """A number that rises by one per frame within a second and by 32 per second (for comparing codes)."""
        return ((self.hours * 60 + self.minutes) * 60 + self.seconds) * 32 + self.frames


class LtcDecoder:
    """A libltc decoder for one mono stream; feed it samples in order, read frames as they complete."""

    def __init__(self, rate: int, fps_hint: float = 25.0, queue_size: int = 64):
        self._lib = library()
        self._handle = self._lib.ltc_decoder_create(int(rate / fps_hint), queue_size)
        if not self._handle:
            raise MemoryError("ltc_decoder_create failed")
        self._frame = LTCFrameExt()
        self._time = SMPTETimecode()
        self.position = 0
        """Samples written so far."""

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle:
            self._lib.ltc_decoder_free(handle)

    def __del__(self) -> None:
        self.close()

    def write_s16(self, samples: bytes | np.ndarray) -> Iterator[DecodedFrame]:
        """Decode 16-bit mono samples (bytes or an int16 array); yields the frames they completed."""
        pcm = np.ascontiguousarray(np.frombuffer(samples, dtype="<i2") if isinstance(samples, bytes)
                                   else samples, dtype=np.int16)
        if len(pcm):
            self._lib.ltc_decoder_write_s16(self._handle, pcm.ctypes.data_as(ctypes.POINTER(ctypes.c_short)),
                                            len(pcm), self.position)
            self.position += len(pcm)
        return self._read()

    def skip(self, count: int) -> None:
        """Silence of ``count`` samples, not decoded: the positions of later frames move on by it.
        libltc sees the signal resume as it would after a dropout."""
        self.position += count

    def _read(self) -> Iterator[DecodedFrame]:
        lib, frame, stime = self._lib, self._frame, self._time
        while lib.ltc_decoder_read(self._handle, ctypes.byref(frame)):
            lib.ltc_frame_to_time(ctypes.byref(stime), ctypes.byref(frame.ltc), 0)
            yield DecodedFrame(stime.hours, stime.mins, stime.secs, stime.frame, bool(frame.ltc.dfbit),
                               int(frame.off_start), int(frame.off_end), float(frame.volume), bool(frame.reverse))


class LtcEncoder:
    """A libltc encoder: consecutive LTC frames as 16-bit samples (for tests, the bench and demos).

    >>> enc = LtcEncoder(48000, 25, start="10:00:00:00")
    >>> pcm = enc.encode(2.0)                     # two seconds of code, int16
    """

    def __init__(self, rate: int, fps: float, start: str = "00:00:00:00", drop_frame: bool = False,
                 level_dbfs: float = -3.0):
        self._lib = library()
        standard = LTC_TV_625_50 if round(fps) == 25 else LTC_TV_FILM_24 if round(fps) == 24 else LTC_TV_525_60
        self._handle = self._lib.ltc_encoder_create(float(rate), float(fps), standard, 0)
        if not self._handle:
            raise MemoryError("ltc_encoder_create failed")
        self._lib.ltc_encoder_set_buffersize(self._handle, float(rate), float(fps))
        self._buffer = (ctypes.c_ubyte * (int(self._lib.ltc_encoder_get_buffersize(self._handle)) + 16))()
        self.rate, self.fps, self.level_dbfs = rate, fps, level_dbfs
        self._lib.ltc_encoder_set_volume(self._handle, 0.0)
        hh, mm, ss, ff = (int(x) for x in start.replace(";", ":").split(":"))
        stime = SMPTETimecode(b"+0000", 0, 1, 1, hh, mm, ss, ff)
        self._lib.ltc_encoder_set_timecode(self._handle, ctypes.byref(stime))
        if drop_frame:
            frame = LTCFrame()
            self._lib.ltc_encoder_get_frame(self._handle, ctypes.byref(frame))
            frame.dfbit = 1
            self._lib.ltc_encoder_set_frame(self._handle, ctypes.byref(frame))
        self._carry = 0.0

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle:
            self._lib.ltc_encoder_free(handle)

    def __del__(self) -> None:
        self.close()

    def frame(self) -> np.ndarray:
        """The next frame's audio as int16 at ``level_dbfs``; the code then advances by one frame."""
        self._lib.ltc_encoder_encode_frame(self._handle)
        n = self._lib.ltc_encoder_copy_buffer(self._handle, self._buffer)
        self._lib.ltc_encoder_inc_timecode(self._handle)
        raw = np.frombuffer(memoryview(self._buffer).cast("B"), dtype=np.uint8, count=n).astype(np.float64) - 128.0
        scale = 32767.0 / 127.0 * 10 ** (self.level_dbfs / 20)
        out: np.ndarray = np.clip(np.rint(raw * scale), -32768, 32767).astype(np.int16)
        return out

    def encode(self, seconds: float) -> np.ndarray:
        """Whole frames of running code lasting about ``seconds``."""
        count = max(1, round(seconds * self.fps))
        return np.concatenate([self.frame() for _ in range(count)])
