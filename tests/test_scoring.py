"""One matching rule for the field kit (``detect --labels``) and the voice benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path

from setbridge.speech.fieldcheck import EARLY_S, LATE_S, Call, Fired, match

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_a_labelled_span_is_exact_at_its_start_and_a_labelled_time_has_slack() -> None:
    span = Call("a.wav", "roll", time=1.8, start=1.0)
    point = Call("b.wav", "roll", time=1.8)
    fired = [Fired("a.wav", "roll", 0.9), Fired("a.wav", "roll", 2.1),
             Fired("b.wav", "roll", 1.8 - EARLY_S + 0.05), Fired("b.wav", "roll", 2.5)]
    m = match([span, point], fired)
    assert [(c.file, f.time) for c, f in m.pairs] == [("a.wav", 2.1), ("b.wav", 1.8 - EARLY_S + 0.05)]
    assert [round(x, 2) for x in m.latencies] == [0.3, round(0.05 - EARLY_S, 2)]
    assert [(f.file, f.time) for f in m.false] == [("a.wav", 0.9), ("b.wav", 2.5)]


def test_a_trigger_is_a_calls_up_to_late_s_after_its_end_and_only_for_its_action_and_file() -> None:
    call = Call("a.wav", "cut", time=5.0, start=4.6)
    m = match([call], [Fired("a.wav", "roll", 5.1), Fired("b.wav", "cut", 5.1), Fired("a.wav", "cut", 5.0 + LATE_S + 0.01)])
    assert m.pairs == [] and m.misses == [call] and len(m.false) == 3
    assert match([call], [Fired("a.wav", "cut", 5.0 + LATE_S)]).misses == []


def test_the_benchmarks_score_with_the_same_rule() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import shootday
        import speech
    finally:
        sys.path.remove(str(BENCH))
    clip = speech.Clip("a.wav", "call", "quiet", 10.0, [{"action": "roll", "start": 1.0, "end": 1.8},
                                                        {"action": "cut", "start": 5.0, "end": 5.3}])
    score = speech.Score()
    score.add(clip, [("roll", 0.5), ("roll", 2.1), ("cut", 5.3 + LATE_S + 0.1)], cpu=0.0)
    assert (score.hits, score.positives, score.misses) == (1, 2, ["a.wav:cut"])
    assert score.false_at == ["a.wav:roll@0.50", f"a.wav:cut@{5.3 + LATE_S + 0.1:.2f}"]
    assert shootday.MATCH_WINDOW_S == LATE_S
