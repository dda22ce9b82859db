"""[speech] is the one source of the detector's settable thresholds."""

from __future__ import annotations

from dataclasses import fields

from setbridge.config import SpeechSettings
from setbridge.speech.detector import SETTABLE, Tuning, tuning_from


def test_the_detector_defaults_are_the_speech_settings_defaults():
    assert tuning_from(SpeechSettings()) == Tuning()


def test_every_speech_setting_the_detector_knows_reaches_it():
    assert {"min_confidence", "trailing_silence_s", "fillers", "min_filler_margin"} <= set(SETTABLE)
    speech = SpeechSettings(min_confidence=0.77, fillers=["네", "아"], trailing_silence_s=0.5)
    tuning = tuning_from(speech)
    assert (tuning.min_confidence, tuning.fillers, tuning.trailing_silence_s) == (0.77, ("네", "아"), 0.5)
    untouched = {f.name for f in fields(Tuning)} - set(SETTABLE)
    assert all(getattr(tuning, name) == getattr(Tuning(), name) for name in untouched)


def test_timecode_settings_name_what_is_missing(tmp_path):
    import pytest as _pytest

    from setbridge.config import load_settings
    from setbridge.errors import ConfigError

    cases = [
        ({"timecode": {"mode": "rec-run"}, "audio": {"source": "mic", "channel": 1}}, "needs [timecode] channel"),
        ({"timecode": {"mode": "rec-run", "channel": 2}}, 'set [audio] source to "mic" or "file"'),
        ({"timecode": {"mode": "free-run", "channel": 2}, "audio": {"source": "mic"}}, "set [audio] channel"),
        ({"timecode": {"mode": "rec-run", "channel": 1}, "audio": {"source": "mic", "channel": 1}},
         "is also [audio] channel"),
        ({"timecode": {"mode": "rec-run", "device": "usb", "file": "x.wav"}}, "device and file are both set"),
    ]
    for sections, message in cases:
        with _pytest.raises(ConfigError) as err:
            load_settings(None, hub={"state_dir": str(tmp_path)}, **sections)
        assert message in str(err.value), (sections, str(err.value))
    ok = load_settings(None, hub={"state_dir": str(tmp_path)}, timecode={"mode": "rec-run", "device": "usb"})
    assert ok.timecode.own_input() and ok.timecode.recorder()
