"""Shooting days for the voice benchmarks: the audio a hub hears between calls, not just the calls.

A shooting day is a run of setups, each: crew talk while idle (short words said alone, sentences
that hold a trigger word or a look-alike, babble), the 1st AD's roll call, a take of actors'
dialogue (scripts are full of short words, some said alone), the cut call, then the next setup::

    import shootday
    day = shootday.render_day(shootday.STYLES["hall"], "babble", seed=3, setups=4)
    day.audio                      # float32 mono at day.rate (16 kHz; walkie and rooms applied)
    day.calls                      # [{"action": "roll", "start": s, "end": s}, ...] in order
    day.takes                      # [(start, end), ...]: from the end of a roll call to the cut call
    shootday.write_day(folder, "hall_babble_3", day)   # WAV + JSON sidecar
    score = shootday.score_day(day, fired)             # fired: [(action, time), ...] after gating

A :class:`Style` is one independent generator: its own voices (espeak-ng Korean with different
variants), speeds, pitches, chatter texts, dialogue, rooms (sox ``reverb`` with its own settings,
or a synthetic impulse response), babble density and levels. Tune on one style, report on the
others. The conditions a day can be rendered in:

* ``quiet``: the hub's microphone near the AD on a quiet stage; the actors further away;
* ``babble``: two to four crew talking at once under the idle talk (quieter during takes);
* ``room``: the whole day through the style's room (a far, reverberant microphone);
* ``walkie``: the hub listens to a walkie receiver: the AD's calls and other crew traffic, keyed,
  band-limited and compressed; the cast never speaks into it, so takes are radio silence.

:class:`HubSim` replays a day's set state as the hub would hold it: voice triggers change it, and
where voice misses, the set's other means (a button, the recorder) put it right a little later.
The detector is gated by this state, as the hub's detector is by the hub's.
"""

from __future__ import annotations

import json
import random
import subprocess
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from setbridge.speech import fieldcheck

RATE = 16000
PHRASES = {"roll": ["녹음 시작"], "cut": ["컷"]}
MATCH_WINDOW_S = fieldcheck.LATE_S
"""A trigger is a call's up to this long after its end (``fieldcheck.match``, the field kit's rule)."""
FIX_MISSED_S = 2.0
"""A missed call is put right this long after it by the set's other means (button, recorder)."""
FIX_FALSE_S = 5.0
"""A false trigger's wrong state is put right this long after it (someone notices and presses)."""
CONDITIONS = ("quiet", "babble", "room", "walkie")


@dataclass(frozen=True)
class Style:
    """One generator of shooting days: who talks, what they say, in what room, how loud."""

    name: str
    ad_voices: tuple[str, ...]
    crew_voices: tuple[str, ...]
    actor_voices: tuple[str, ...]
    speeds: tuple[int, ...]
    pitches: tuple[int, ...]
    near_miss: tuple[str, ...]
    """Crew sentences with a trigger word or a look-alike inside."""
    short: tuple[str, ...]
    """Short words said on their own (look-alikes among them)."""
    dialogue: tuple[str, ...]
    """Actors' lines; a take strings several together, some short ones on their own."""
    room: str
    """``"sox"`` (sox reverb with ``reverb``) or ``"ir"`` (a synthetic exponential impulse response)."""
    reverb: tuple[float, ...]
    """sox reverberance (%) or the impulse response's RT60 (s), one chosen per day."""
    distance_db: float
    """How far below the AD the actors are at the hub's microphone (dB)."""
    babble_talkers: tuple[int, int]
    babble_db: tuple[float, float]
    """Babble level below the AD's call (dB), a range."""
    call_level_db: tuple[float, float]
    """The AD's call level around -20 dBFS (dB), a range."""
    idle_s: tuple[float, float] = (20.0, 30.0)
    take_s: tuple[float, float] = (15.0, 25.0)
    gaps_s: tuple[float, float] = (0.3, 1.5)


STAGE = Style(
    name="stage",
    ad_voices=("ko", "ko+m3"), crew_voices=("ko+f2", "ko+f4", "ko+m3"), actor_voices=("ko+f2", "ko", "ko+f4"),
    speeds=(130, 165, 200), pitches=(35, 65),
    near_miss=("그 장면은 컷 하고 다시 가자", "아까 컷이 좀 길었어", "녹음 시작 버튼은 어디 있어요", "다음 컷은 클로즈업이야",
               "녹음 시작하기 전에 조용히 해 주세요", "우리 녹음 시작할까요", "컷 편집은 내일 해요", "여기 커트 라인 맞춰 주세요",
               "시작 신호 기다려 주세요", "감독님이 컷을 안 하셨어"),
    short=("네", "좋아요", "아니요", "잠깐", "오케이", "자", "다시", "가자", "컵", "커피"),
    dialogue=("어디 갔었어", "몰라", "그건 내 것이 아니야", "정말 그럴 거야", "왜", "그만해", "이것 좀 봐", "됐어",
              "우리 이제 어떻게 해", "가자", "컵 좀 줘", "지금 시작하면 늦어", "잠깐만", "아니", "녹음한 거 들었어"),
    room="sox", reverb=(50.0, 60.0, 70.0), distance_db=6.0, babble_talkers=(2, 3), babble_db=(6.0, 15.0),
    call_level_db=(-2.0, 2.0),
)
"""The first generator: the voices, texts and rooms of ``bench/speech.py``'s corpus."""

HALL = Style(
    name="hall",
    ad_voices=("ko+m1", "ko+f1"), crew_voices=("ko+m5", "ko+f5", "ko+m7"), actor_voices=("ko+m2", "ko+f3", "ko+m6"),
    speeds=(115, 150, 185), pitches=(25, 50, 75),
    near_miss=("컷 소리 들리면 멈춰요", "마지막 컷 다시 볼까요", "녹음 시작은 감독님이 해요", "그 컷 살리자",
               "녹음 시작 전에 휴대폰 꺼 주세요", "컷 나고 바로 이동", "이거 한 컷으로 가요", "녹음 시작 됐나요",
               "컷트 머리 하셨네요", "편집할 때 컷 붙여요"),
    short=("응", "그래", "저기", "컷트", "커", "시작", "녹음", "됐다", "예", "그치"),
    dialogue=("너 그거 알아", "그것 때문이야", "다 끝났어", "싫어", "먹을 것 좀 있어", "그래서", "거짓말", "컵이 깨졌어",
              "시작도 안 했어", "나가", "알겠어", "그 사람 누구야", "한 번만", "이건 아니지", "녹음 들어 봐"),
    room="sox", reverb=(40.0, 80.0), distance_db=10.0, babble_talkers=(3, 4), babble_db=(4.0, 10.0),
    call_level_db=(-8.0, 0.0), idle_s=(15.0, 35.0), take_s=(12.0, 28.0), gaps_s=(0.2, 1.0),
)
"""Another generator: other espeak-ng variants, slower and faster, other texts, a larger hall, denser babble,
quieter and more varied call levels, actors further away."""

LOCATION = Style(
    name="location",
    ad_voices=("ko+klatt2", "ko+m4"), crew_voices=("ko+m8", "ko+f3", "ko+klatt"), actor_voices=("ko+m6", "ko+f5", "ko+klatt3"),
    speeds=(140, 175, 220), pitches=(20, 45, 80),
    near_miss=("이 컷은 롱테이크예요", "녹음 시작 소리 못 들었어", "컷 하면 바로 물 주세요", "좋은 컷 나왔네",
               "녹음 시작이라고 했어요", "컷 없이 한 번에 가요", "저 컷 몇 번이에요", "녹음은 시작했어요",
               "그 것도 챙겨 주세요", "컷트라인 넘었어요"),
    short=("어", "음", "것", "커", "좋다", "갑시다", "시작", "컷트", "네네", "자자"),
    dialogue=("어서 와", "그거 내 거야", "것 봐", "들어가", "늦었어", "왜 그랬어", "그 컵 어디 있어", "다시 시작하자",
              "아무것도 아니야", "그만", "괜찮아", "이제 끝이야", "너 녹음했지", "가", "정말"),
    room="ir", reverb=(0.6, 1.2), distance_db=8.0, babble_talkers=(2, 2), babble_db=(8.0, 18.0),
    call_level_db=(-4.0, 4.0), idle_s=(18.0, 30.0), take_s=(15.0, 22.0), gaps_s=(0.4, 2.0),
)
"""A third generator: klatt voices, faster speech, other texts (the common look-alike 것 among them), a
synthetic room response instead of sox reverb, sparser babble, louder calls."""

STYLES = {s.name: s for s in (STAGE, HALL, LOCATION)}


@dataclass
class Day:
    audio: np.ndarray
    rate: int
    calls: list[dict[str, object]]
    takes: list[tuple[float, float]]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.rate

    def take_s(self) -> float:
        return sum(end - start for start, end in self.takes)


# -- rendering ----------------------------------------------------------------------------------
def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


def write_wav(path: Path, audio: np.ndarray, rate: int = RATE) -> None:
    pcm = np.clip(np.rint(audio * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def _sox(audio: np.ndarray, *effects: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        write_wav(src, audio)
        _run("sox", str(src), str(dst), *effects)
        out = read_wav(dst)
    return np.pad(out, (0, max(0, len(audio) - len(out))))[:len(audio)]


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)) + 1e-9)


class Speaker:
    """espeak-ng renders, once per (text, voice, speed, pitch), trimmed, at about -20 dBFS RMS."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str, int, int], np.ndarray] = {}

    def say(self, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
        key = (text, voice, speed, pitch)
        if key not in self.cache:
            with tempfile.TemporaryDirectory() as tmp:
                raw, out = Path(tmp) / "raw.wav", Path(tmp) / "say.wav"
                _run("espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text)
                _run("sox", str(raw), "-r", str(RATE), "-b", "16", "-c", "1", str(out),
                     "silence", "1", "0.01", "0.1%", "reverse", "silence", "1", "0.01", "0.1%", "reverse")
                audio = read_wav(out)
            self.cache[key] = audio * (0.1 / _rms(audio))
        return self.cache[key]


class _Track:
    """A day's timeline: a foreground track (AD, crew, actors) and a babble track, mixed at the end."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, np.ndarray, str]] = []  # (first sample, audio, who: ad/crew/actor)
        self.length = 0

    def add(self, audio: np.ndarray, who: str, gap_s: float) -> tuple[float, float]:
        start = self.length + int(gap_s * RATE)
        self.parts.append((start, audio, who))
        self.length = start + len(audio)
        return start / RATE, self.length / RATE

    def mix(self, who: set[str], total: int) -> np.ndarray:
        out = np.zeros(total, np.float32)
        for start, audio, kind in self.parts:
            if kind in who:
                out[start:start + len(audio)] += audio[:max(0, total - start)]
        return out


def _babble(speaker: Speaker, style: Style, rnd: random.Random, seconds: float) -> np.ndarray:
    talkers = []
    for _ in range(rnd.randint(*style.babble_talkers)):
        voice, speed, pitch = rnd.choice(style.crew_voices), rnd.choice(style.speeds), rnd.choice(style.pitches)
        parts, length = [np.zeros(int(rnd.uniform(0, 1.5) * RATE), np.float32)], 0
        while length < seconds * RATE:
            text = rnd.choice(style.near_miss + style.short + style.dialogue)
            parts += [speaker.say(text, voice, speed, pitch) * rnd.uniform(0.6, 1.2),
                      np.zeros(int(rnd.uniform(0.1, 0.8) * RATE), np.float32)]
            length += len(parts[-1]) + len(parts[-2])
        talkers.append(np.concatenate(parts)[:int(seconds * RATE)])
    out = np.sum([np.pad(t, (0, int(seconds * RATE) - len(t))) for t in talkers], axis=0)
    return (out / _rms(out) * 0.1).astype(np.float32)


def _room(audio: np.ndarray, style: Style, amount: float, nrnd: np.random.Generator) -> np.ndarray:
    """A far microphone in the style's room: the direct sound under the room's response."""
    if style.room == "sox":
        padded = np.concatenate([audio, np.zeros(RATE, np.float32)])
        wet = _sox(padded, "reverb", "-w", str(int(amount)), "50", "100", "0", "10", "4")[:len(audio)]
    else:  # an exponentially decaying noise burst with the RT60 ``amount`` (s), high frequencies dying first
        n = int(amount * RATE)
        t = np.arange(n) / RATE
        ir = nrnd.standard_normal(n) * np.exp(-6.9 * t / amount)
        ir = np.convolve(ir, np.ones(3) / 3, mode="same")
        ir[0] = 4.0
        spectrum = np.fft.rfft(audio, len(audio) + n)
        wet = np.fft.irfft(spectrum * np.fft.rfft(ir, len(audio) + n), len(audio) + n)[:len(audio)]
    wet = wet * (_rms(audio) / max(_rms(wet), 1e-9))
    return (0.3 * audio + 0.9 * wet).astype(np.float32)


def _walkie(audio: np.ndarray, keyed: list[tuple[float, float]], nrnd: np.random.Generator) -> np.ndarray:
    """A walkie receiver's earpiece: only keyed transmissions, band-limited, compressed and clipped;
    a click at key-up, hiss while keyed, a squelch burst when each ends."""
    gate = np.zeros(len(audio), np.float32)
    for start, end in keyed:
        gate[int(start * RATE):int(end * RATE)] = 1.0
    out = _sox(audio * gate, "sinc", "300-3000", "compand", "0.005,0.1", "6:-50,-50,-30,-12,0,-6", "-3")
    out = np.clip(out / max(1e-6, float(np.max(np.abs(out)))) * 1.2, -0.8, 0.8)
    hiss = _sox(0.01 * nrnd.standard_normal(len(out)).astype(np.float32), "sinc", "300-3000")
    squelch = _sox(0.1 * nrnd.standard_normal(RATE).astype(np.float32), "sinc", "300-3000")
    for start, end in keyed:
        a, b = int(start * RATE), int(end * RATE)
        out[a:a + 64] += 0.6 * np.sign(nrnd.standard_normal(len(out[a:a + 64])))
        tail = out[b:b + int(nrnd.uniform(0.12, 0.25) * RATE)]
        tail += squelch[:len(tail)]
    return (out + gate * hiss).astype(np.float32)


def render_day(style: Style, condition: str, seed: int, setups: int = 4) -> Day:
    """One shooting day of ``setups`` setups in ``condition`` (see the module docstring)."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition {condition!r}: expected one of {', '.join(CONDITIONS)}")
    rnd, nrnd = random.Random(f"{style.name}/{condition}/{seed}"), np.random.default_rng(seed)
    speaker = Speaker()
    track = _Track()
    calls: list[dict[str, object]] = []
    takes: list[tuple[float, float]] = []
    keyed: list[tuple[float, float]] = []
    ad = rnd.choice(style.ad_voices), rnd.choice(style.speeds[:2]), rnd.choice(style.pitches)
    actor_gain = 10 ** (-style.distance_db / 20)

    def idle(seconds: float) -> None:
        until = track.length + seconds * RATE
        while track.length < until:
            voice = rnd.choice(style.crew_voices)
            text = rnd.choice(style.short) if rnd.random() < 0.35 else rnd.choice(style.near_miss)
            audio = speaker.say(text, voice, rnd.choice(style.speeds), rnd.choice(style.pitches))
            span = track.add(audio * rnd.uniform(0.5, 1.1), "crew", rnd.uniform(*style.gaps_s))
            if rnd.random() < 0.5:  # half of the crew talk goes over the walkie too
                keyed.append((span[0] - 0.3, span[1] + 0.15))

    def call(action: str) -> tuple[float, float]:
        gain = 10 ** (rnd.uniform(*style.call_level_db) / 20)
        start, end = track.add(speaker.say(PHRASES[action][0], *ad) * gain, "ad", rnd.uniform(1.0, 2.0))
        calls.append({"action": action, "start": round(start, 3), "end": round(end, 3)})
        keyed.append((start - rnd.uniform(0.2, 0.5), end + 0.15))
        return start, end

    def take(seconds: float) -> None:
        until = track.length + seconds * RATE
        cast = rnd.sample(style.actor_voices, 2)
        while track.length < until:
            voice = rnd.choice(cast)
            line = rnd.choice(style.dialogue)
            audio = speaker.say(line, voice, rnd.choice(style.speeds), rnd.choice(style.pitches))
            track.add(audio * actor_gain * rnd.uniform(0.6, 1.4), "actor", rnd.uniform(*style.gaps_s))

    track.add(np.zeros(RATE, np.float32), "crew", 0)
    for _ in range(setups):
        idle(rnd.uniform(*style.idle_s))
        _, roll_end = call("roll")
        take(rnd.uniform(*style.take_s))
        cut_start, _ = call("cut")
        takes.append((round(roll_end, 3), round(cut_start, 3)))
    idle(rnd.uniform(*style.idle_s) / 2)
    total = track.length + 2 * RATE
    if condition == "walkie":
        audio = _walkie(track.mix({"ad", "crew"}, total), keyed, nrnd)
    else:
        audio = track.mix({"ad", "crew", "actor"}, total)
        if condition == "babble":
            babble = _babble(speaker, style, rnd, total / RATE) * 10 ** (-rnd.uniform(*style.babble_db) / 20)
            hush = np.ones(total, np.float32)
            for start, end in takes:  # the crew hush during a take: babble 12 dB down
                hush[int(start * RATE):int(end * RATE)] = 0.25
            audio = audio + babble * hush
        elif condition == "room":
            audio = _room(audio, style, rnd.choice(style.reverb), nrnd)
    audio = audio + 0.0003 * nrnd.standard_normal(total).astype(np.float32)  # never digital silence
    return Day(audio.astype(np.float32), RATE, calls, takes)


def write_day(folder: Path, name: str, day: Day) -> Path:
    """``name``.wav and ``name``.json (calls and takes) in ``folder``; returns the WAV's path."""
    folder.mkdir(parents=True, exist_ok=True)
    write_wav(folder / f"{name}.wav", day.audio, day.rate)
    (folder / f"{name}.json").write_text(json.dumps({"calls": day.calls, "takes": day.takes}))
    return folder / f"{name}.wav"


def read_day(wav: Path) -> Day:
    meta = json.loads(wav.with_suffix(".json").read_text())
    return Day(read_wav(wav), RATE, meta["calls"], [tuple(t) for t in meta["takes"]])


# -- the hub's state through a day ---------------------------------------------------------------
class HubSim:
    """The set state as the hub would hold it through a labelled day.

    Voice triggers change it (:meth:`apply`); a missed call is put right ``FIX_MISSED_S`` after it
    and a false trigger's state ``FIX_FALSE_S`` after it (:meth:`advance`), as a button or the
    recorder would. Give ``get_state`` to the detector and call :meth:`advance` as audio goes by.
    """

    def __init__(self, calls: list[dict[str, object]]):
        self.state = "idle"
        self._fixes: list[tuple[float, str]] = []
        for c in calls:
            end = float(c["end"])  # type: ignore[arg-type]
            self._fixes.append((end + FIX_MISSED_S, "rolling" if c["action"] == "roll" else "idle"))
        self._fixes.sort()
        self._true = sorted((float(c["end"]), "rolling" if c["action"] == "roll" else "idle")  # type: ignore[arg-type]
                            for c in calls)

    def get_state(self) -> str:
        return self.state

    def truth(self, at: float) -> str:
        state = "idle"
        for when, s in self._true:
            if when <= at:
                state = s
        return state

    def advance(self, at: float) -> None:
        while self._fixes and self._fixes[0][0] <= at:
            _, self.state = self._fixes.pop(0)

    def apply(self, action: str, at: float) -> None:
        new = {"roll": "rolling", "cut": "idle"}.get(action)
        if new is None or new == self.state:
            return
        self.state = new
        if new != self.truth(at + MATCH_WINDOW_S):  # a false trigger: someone puts it right
            self._fixes.append((at + FIX_FALSE_S, self.truth(at + FIX_FALSE_S)))
            self._fixes.sort()


# -- scoring a day ------------------------------------------------------------------------------
@dataclass
class DayScore:
    """What a set bears from voice over shooting days."""

    rolls: int = 0
    cuts: int = 0
    missed_rolls: int = 0
    missed_cuts: int = 0
    false_rolls: int = 0
    """False rolls while idle."""
    false_cuts: int = 0
    """False cuts inside takes (the doors go dark mid-take)."""
    takes: int = 0
    dark_takes: int = 0
    """Takes with at least one false cut."""
    other_false: int = 0
    ungated_false: int = 0
    """Every trigger that passed the acoustic rules but was no call, whatever the state."""
    idle_s: float = 0.0
    take_s: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def add(self, other: DayScore) -> None:
        for name in ("rolls", "cuts", "missed_rolls", "missed_cuts", "false_rolls", "false_cuts", "takes",
                     "dark_takes", "other_false", "ungated_false", "idle_s", "take_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies += other.latencies

    @property
    def hours(self) -> float:
        return (self.idle_s + self.take_s) / 3600

    def false_rolls_per_idle_h(self) -> float:
        return self.false_rolls / max(self.idle_s / 3600, 1e-9)

    def false_cuts_per_take_h(self) -> float:
        return self.false_cuts / max(self.take_s / 3600, 1e-9)

    def ungated_per_h(self) -> float:
        return self.ungated_false / max(self.hours, 1e-9)

    def cost(self) -> float:
        """What the errors cost a set, weighted by their consequence (``COST``)."""
        return (COST["missed_roll"] * self.missed_rolls + COST["false_cut"] * self.false_cuts
                + COST["false_roll"] * self.false_rolls + COST["missed_cut"] * self.missed_cuts)


COST = {"missed_roll": 3.0, "false_cut": 3.0, "false_roll": 1.0, "missed_cut": 0.5}
"""Weights of the errors: a light dark during a take (a missed roll, a false cut mid-take) is the worst;
red for nothing until someone notices (a false roll) is milder; red a few seconds too long until a
button or the recorder (a missed cut) is the mildest."""


def score_day(day: Day, fired: list[tuple[str, float]], ungated: list[tuple[str, float]] | None = None) -> DayScore:
    """Score the triggers that fired through a day (after gating) against its calls and takes.

    ``ungated``: triggers refused only by the set state (the detector's gate), which count as
    false triggers ungated along with the fired ones that are no call.
    """
    score = DayScore(takes=len(day.takes), take_s=day.take_s())
    score.idle_s = day.duration - score.take_s
    calls = [fieldcheck.Call("day", str(c["action"]), float(c["end"]), float(c["start"]))  # type: ignore[arg-type]
             for c in day.calls]
    m = fieldcheck.match(calls, [fieldcheck.Fired("day", action, at) for action, at in fired])
    score.rolls = sum(c.action == "roll" for c in calls)
    score.cuts = len(calls) - score.rolls
    score.missed_rolls = sum(c.action == "roll" for c in m.misses)
    score.missed_cuts = len(m.misses) - score.missed_rolls
    score.latencies += m.latencies
    unused = [(f.action, f.time) for f in m.false]
    dark = set()
    for action, at in unused:
        take = next((i for i, (a, b) in enumerate(day.takes) if a <= at <= b + 0.5), None)
        if action == "cut" and take is not None:
            score.false_cuts += 1
            dark.add(take)
        elif action == "roll" and take is None:
            score.false_rolls += 1
        else:
            score.other_false += 1
    score.dark_takes = len(dark)
    score.ungated_false = len(unused) + len(ungated or [])
    return score
