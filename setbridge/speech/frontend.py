"""Audio clean-up before recognition: resample to 16 kHz, then WebRTC noise suppression.

Vosk's models are trained on 16 kHz speech, and a one-syllable word such as "cut" disappears
into steady noise (fans, generators, air conditioning) unless the noise is taken out first.
WebRTC's audio processing (high-pass filter, noise suppression, optional automatic gain)
works on 10 ms frames of 16 kHz audio, so a microphone running at its own rate (often 44.1 or
48 kHz) is resampled first with libsoxr. A little dither (about 2 LSB) is added so that
digital silence (a padded file, a muted input) does not make the suppressor take the first
word after it for noise.
"""

from __future__ import annotations

import numpy as np
import soxr
from webrtc_noise_gain import AudioProcessor

RATE = 16000
"""The rate the front end delivers."""
FRAME_BYTES = RATE // 100 * 2
"""One 10 ms frame of 16-bit mono audio at 16 kHz."""
DITHER_LSB = 2.0
"""Standard deviation of the dither added before noise suppression, in 16-bit steps."""
FLOOR_LSB = 16.0
"""Standard deviation of the steady noise floor added after noise suppression, in 16-bit steps
(about -66 dBFS). Kaldi dithers its features with random noise of about 1 step; on the near
silence the suppressor leaves, that noise would decide how silence scores, differently in each
recognizer and each run. Over a floor 16 times louder, it no longer does."""


class FrontEnd:
    """Feed 16-bit mono PCM at ``rate``; get cleaned 16-bit mono PCM at 16 kHz back.

    ``noise_suppression`` is WebRTC's level, 0 (high-pass filter only) to 4 (strongest);
    ``auto_gain_dbfs`` is its automatic gain target, 0 (off) to 31.
    """

    def __init__(self, rate: int, noise_suppression: int, auto_gain_dbfs: int = 0):
        if not 0 <= noise_suppression <= 4:
            raise ValueError(f"noise_suppression must be 0-4, not {noise_suppression}")
        if not 0 <= auto_gain_dbfs <= 31:
            raise ValueError(f"auto_gain_dbfs must be 0-31, not {auto_gain_dbfs}")
        self._resampler = soxr.ResampleStream(rate, RATE, 1, dtype="int16") if rate != RATE else None
        self._processor = AudioProcessor(auto_gain_dbfs, noise_suppression)
        self._dither = np.random.default_rng(0)
        self._floor = np.random.default_rng(1)
        self._pending = b""

    def process(self, pcm: bytes) -> bytes:
        """Clean a block; audio short of a whole 10 ms frame waits for the next block."""
        samples = np.frombuffer(pcm, dtype="<i2")
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        samples = samples + self._dither.normal(0.0, DITHER_LSB, len(samples))
        data = self._pending + np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes()
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        cleaned = b"".join(self._processor.Process10ms(data[i:i + FRAME_BYTES]).audio
                           for i in range(0, whole, FRAME_BYTES))
        if not cleaned or FLOOR_LSB <= 0:
            return cleaned
        out = np.frombuffer(cleaned, dtype="<i2") + self._floor.normal(0.0, FLOOR_LSB, len(cleaned) // 2)
        return np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes()
