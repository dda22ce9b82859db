"""The speech front end: resampling to 16 kHz and WebRTC noise suppression, on real audio."""

from __future__ import annotations

import math
import random
import struct

import pytest

from setbridge.speech.frontend import RATE, FrontEnd


def white_noise(seconds: float, rate: int, level: float, seed: int = 1) -> bytes:
    rnd = random.Random(seed)
    return struct.pack(f"<{int(seconds * rate)}h", *(int(rnd.gauss(0, level)) for _ in range(int(seconds * rate))))


def tone(seconds: float, rate: int, hz: float = 440.0, level: float = 8000) -> bytes:
    n = int(seconds * rate)
    return struct.pack(f"<{n}h", *(int(level * math.sin(2 * math.pi * hz * i / rate)) for i in range(n)))


def rms(pcm: bytes) -> float:
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def run(front: FrontEnd, pcm: bytes, block: int) -> bytes:
    return b"".join(front.process(pcm[i:i + block]) for i in range(0, len(pcm), block))


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_output_is_16_khz_whatever_the_input_rate(rate):
    out = run(FrontEnd(rate, 0), tone(2.0, rate), block=1234)  # odd block sizes on purpose
    seconds = len(out) / 2 / RATE
    assert 1.9 < seconds <= 2.0


def test_a_tone_passes_at_its_level_after_resampling():
    out = run(FrontEnd(48000, 0), tone(2.0, 48000), block=4800)
    assert rms(out[RATE:]) == pytest.approx(rms(tone(1.0, 48000)), rel=0.15)


def test_steady_noise_is_suppressed():
    noise = white_noise(3.0, RATE, 2000)
    kept = run(FrontEnd(RATE, 0), noise, block=1600)
    suppressed = run(FrontEnd(RATE, 4), noise, block=1600)
    last = slice(-RATE, None)  # after the suppressor has learnt the noise
    assert 20 * math.log10(rms(kept[last]) / rms(suppressed[last])) > 10


@pytest.mark.parametrize("kwargs, message", [({"noise_suppression": 5}, "noise_suppression"),
                                             ({"noise_suppression": 2, "auto_gain_dbfs": 40}, "auto_gain")])
def test_out_of_range_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrontEnd(RATE, **kwargs)
