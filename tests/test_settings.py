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
