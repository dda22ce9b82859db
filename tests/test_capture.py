"""Clips around voice triggers and near misses: kept by the listener, bounded, off the audio path."""

from __future__ import annotations

import json
import logging
import shutil
import stat
import threading
import wave
from pathlib import Path

import pytest

from helpers.speech import RATE, listener_context, say, silence, steady_model, write_wav

from setbridge.audio import WavFileSource
from setbridge.config import Settings, load_settings
from setbridge.speech.capture import ClipCapture
from setbridge.speech.listener import VoiceListener

needs_speech = pytest.mark.skipif(not shutil.which("espeak-ng") or not shutil.which("sox"),
                                  reason="espeak-ng and sox are needed to synthesize speech")


def tone_block(seconds: float, value: int = 1000) -> bytes:
    return value.to_bytes(2, "little", signed=True) * int(RATE * seconds)


def capturing_settings(tmp_path: Path, take: Path, clips: Path, **speech: object) -> Settings:
    """A voice listener reading ``take`` with roll and cut phrases, keeping clips in ``clips``."""
    return load_settings(None, audio={"source": "file", "file": str(take)},
                         speech={"model": str(steady_model(tmp_path)), "capture_dir": str(clips),
                                 "phrases": {"roll": ["녹음 시작"], "cut": ["컷"]}, **speech},
                         hub={"state_dir": str(tmp_path / "state")})


def listen_to_the_end(settings: Settings, submit, get_state) -> None:
    """Run a VoiceListener over the configured file (as fast as it reads) until the file ends."""
    done = threading.Event()
    listener = VoiceListener(listener_context(settings, submit, get_state, lambda s: s == "off" and done.set()),
                             source_factory=lambda: WavFileSource(settings.audio.file, realtime=False))
    listener.start()
    try:
        assert done.wait(60)
    finally:
        listener.stop()


@pytest.mark.integration
@needs_speech
def test_the_listener_keeps_a_clip_per_trigger_and_near_miss_and_publishes_nothing_of_them(tmp_path):
    chatter = say("그 장면은 컷 하고 다시 가자", tmp_path / "chatter.wav")
    take = write_wav(tmp_path / "take.wav", silence(0.8) + say("녹음 시작", tmp_path / "r.wav") + silence(1.5)
                     + chatter + silence(1.0) + say("컷", tmp_path / "c.wav") + silence(1.5))
    clips = tmp_path / "clips"
    settings = capturing_settings(tmp_path, take, clips)
    state, submitted = {"now": "idle"}, []

    def submit(action, cause, **detail):
        submitted.append(action)
        state["now"] = {"roll": "rolling", "cut": "idle"}[action]

    listen_to_the_end(settings, submit, lambda: state["now"])
    assert submitted == ["roll", "cut"]
    wavs = sorted(clips.glob("*.wav"))
    metas = [json.loads(p.with_suffix(".json").read_text()) for p in wavs]
    kinds = [(m["kind"], m["action"]) for m in metas]
    assert kinds.count(("trigger", "roll")) == 1 and kinds.count(("trigger", "cut")) == 1
    assert any(kind == "near-miss" for kind, _ in kinds)  # "컷" inside the sentence
    assert len(wavs) == len(list(clips.iterdir())) // 2  # a sidecar per clip, nothing else
    for wav, meta in zip(wavs, metas):
        with wave.open(str(wav)) as w:
            seconds = w.getnframes() / w.getframerate()
        assert 1.0 < seconds <= 5.0 + 0.1
        assert 0 < meta["phrase_end_s"] <= meta["decided_s"] <= seconds
        assert meta["v"] == 1 and meta["file"] == wav.name
        assert stat.S_IMODE(wav.stat().st_mode) == 0o600
    assert stat.S_IMODE(clips.stat().st_mode) == 0o700


@pytest.mark.integration
@needs_speech
def test_refused_and_overruled_triggers_are_kept_as_such(tmp_path):
    """A roll the controller refuses, a roll another source overrules and a cut the set state refuses
    are kept with what happened to them, so a field check finds the calls the hub did not act on."""
    from setbridge.hub.controller import Outcome
    from setbridge.messages import SetEvent

    roll = say("녹음 시작", tmp_path / "r.wav")
    take = write_wav(tmp_path / "take.wav", silence(0.8) + roll + silence(2.0) + roll + silence(2.0)
                     + say("컷", tmp_path / "c.wav") + silence(1.5))
    clips = tmp_path / "clips"
    settings = capturing_settings(tmp_path, take, clips, refractory_s=0.5)
    overruled = SetEvent(type="roll", changed=False, state="idle", cause="voice", epoch=1, seq=1, take=0,
                         overruled=True, reason="the recorder is stopped")
    outcomes = iter([Outcome(False, "idle", 1, error="the state could not be saved", transient=True),
                     Outcome(False, "idle", 1, error="overruled: the recorder is stopped", event=overruled)])
    listen_to_the_end(settings, lambda action, cause, **detail: next(outcomes), lambda: "idle")
    metas = [json.loads(p.with_suffix(".json").read_text()) for p in sorted(clips.glob("*.wav"))]
    assert [(m["kind"], m["action"], m["reason"]) for m in metas] == [
        ("refused", "roll", "the state could not be saved"),
        ("overruled", "roll", "overruled: the recorder is stopped"),
        ("refused", "cut", "cut not allowed while idle"),
    ]


def test_the_folder_stays_within_its_bounds_oldest_first_and_foreign_files_are_kept(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "notes.txt").write_text("the IT manager's own file")
    old = folder / "20200101T000000_000_trigger_cut.wav"
    old.write_bytes(b"x" * 100)
    capture = ClipCapture(folder, RATE, max_clips=3, max_mb=1.0, before_s=1.0, after_s=0.5)
    capture.start()
    for i in range(6):
        capture.feed(tone_block(2.0, i))
        capture.mark("trigger", "cut", "컷", at=2.0 * (i + 1) - 0.5, phrase_end=2.0 * (i + 1) - 0.7)
    capture.feed(tone_block(1.0))
    capture.stop()
    kept = capture.clips()
    assert len(kept) == 3 and not old.exists()
    assert (folder / "notes.txt").exists()
    assert sum(p.stat().st_size + p.with_suffix(".json").stat().st_size for p in kept) <= 1024 * 1024
    with wave.open(str(kept[-1])) as w:  # the newest: 1.5 s of the last 2 s block
        assert w.getnframes() == int(1.5 * RATE)
        assert set(w.readframes(w.getnframes())[:4]) <= {5, 0}
    small = ClipCapture(folder, RATE, max_clips=100, max_mb=0.05, before_s=1.0, after_s=0.5)  # 50 KB: one clip
    small.start()
    small.feed(tone_block(2.0))
    small.mark("near-miss", "none", "컷 하고", at=1.5, phrase_end=1.2, reason="not a phrase alone")
    small.feed(tone_block(1.0))
    small.stop()
    assert len(small.clips()) == 1 and json.loads(small.clips()[0].with_suffix(".json").read_text())["kind"] == "near-miss"


def test_a_stuck_disk_never_holds_up_the_audio_and_drops_are_logged(tmp_path, caplog, monkeypatch):
    release = threading.Event()
    real_write = ClipCapture._write

    def stuck_write(self, clip):  # the disk seam: a write that hangs (NFS gone, SD card dying)
        release.wait(30)
        real_write(self, clip)

    monkeypatch.setattr(ClipCapture, "_write", stuck_write)
    capture = ClipCapture(tmp_path / "clips", RATE, before_s=0.2, after_s=0.1)
    capture.start()
    finished = threading.Event()

    def listen():
        for i in range(40):
            capture.feed(tone_block(0.5))
            capture.mark("trigger", "cut", "컷", at=0.5 * (i + 1) - 0.1, phrase_end=0.5 * (i + 1) - 0.2)
        finished.set()

    with caplog.at_level(logging.WARNING, logger="setbridge.speech.capture"):
        threading.Thread(target=listen, daemon=True).start()
        assert finished.wait(10)  # the audio side went on while the disk hung
        release.set()
        capture.stop()
    assert capture.dropped > 0 and "clip" in caplog.text and "dropped" in caplog.text
    assert 0 < len(capture.clips()) < 40


def test_an_unusable_folder_is_one_warning_and_listening_carries_on(tmp_path, caplog):
    blocker = tmp_path / "clips"
    blocker.write_text("a file where the folder should be")
    capture = ClipCapture(blocker, RATE, before_s=0.2, after_s=0.1)
    with caplog.at_level(logging.WARNING, logger="setbridge.speech.capture"):
        capture.start()
        for i in range(3):
            capture.feed(tone_block(0.5))
            capture.mark("trigger", "roll", "녹음 시작", at=0.5 * (i + 1) - 0.1, phrase_end=0.4)
        capture.stop()
    lines = [r for r in caplog.records if "voice capture" in r.getMessage()]
    assert len(lines) == 1 and str(blocker) in lines[0].getMessage()
