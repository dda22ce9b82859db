"""The shooting-day generator and its scoring (bench/shootday.py), which the voice and timecode benches share."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import shootday  # noqa: E402

CALLS = [{"action": "roll", "start": 10.0, "end": 11.0}, {"action": "cut", "start": 40.0, "end": 40.5},
         {"action": "roll", "start": 70.0, "end": 71.0}, {"action": "cut", "start": 100.0, "end": 100.5}]


def day() -> shootday.Day:
    return shootday.Day(np.zeros(120 * shootday.RATE, np.float32), shootday.RATE, CALLS, [(11.0, 40.0), (71.0, 100.0)])


def test_errors_are_scored_by_what_they_do_to_a_set():
    fired = [("roll", 11.3), ("cut", 20.0), ("cut", 25.0), ("cut", 40.8),  # a take darkened twice
             ("roll", 55.0),  # red for nothing while idle
             ("cut", 100.9)]  # the second roll was missed
    score = shootday.score_day(day(), fired, ungated=[("cut", 5.0)])
    assert (score.missed_rolls, score.missed_cuts) == (1, 0)
    assert (score.false_cuts, score.dark_takes, score.false_rolls) == (2, 1, 1)
    assert score.take_s == pytest.approx(58.0) and score.idle_s == pytest.approx(62.0)
    assert score.false_cuts_per_take_h() == pytest.approx(2 / (58 / 3600))
    assert score.ungated_false == 4  # three false triggers that fired and one the gate refused
    assert sorted(round(x, 2) for x in score.latencies) == [0.3, 0.3, 0.4]
    assert score.cost() == 3 * 1 + 3 * 2 + 1 * 1 + 0.5 * 0


def test_the_hub_state_is_put_right_after_a_missed_call_and_a_false_trigger():
    sim = shootday.HubSim(CALLS)
    sim.advance(12.0)
    assert sim.state == "idle"  # the roll was missed by voice ...
    sim.advance(11.0 + shootday.FIX_MISSED_S)
    assert sim.state == "rolling"  # ... and a button rolled
    sim.apply("cut", 20.0)  # a false cut mid-take
    assert sim.get_state() == "idle"
    sim.advance(20.0 + shootday.FIX_FALSE_S)
    assert sim.state == "rolling"  # someone rolled again
    sim.apply("cut", 40.8)  # the real cut
    sim.advance(60.0)
    assert sim.state == "idle"


@pytest.mark.integration  # espeak-ng and sox run
@pytest.mark.skipif(not shutil.which("espeak-ng") or not shutil.which("sox"), reason="espeak-ng and sox render the speech")
def test_a_rendered_day_has_a_roll_and_a_cut_around_each_take(tmp_path):
    rendered = shootday.render_day(shootday.STYLES["location"], "quiet", seed=5, setups=1)
    assert [c["action"] for c in rendered.calls] == ["roll", "cut"]
    (take_start, take_end), = rendered.takes
    assert rendered.calls[0]["end"] == take_start < take_end == rendered.calls[1]["start"] < rendered.duration
    assert 0.01 < float(np.sqrt(np.mean(rendered.audio ** 2))) < 0.5
    again = shootday.read_day(shootday.write_day(tmp_path, "day", rendered))
    assert again.calls == rendered.calls and again.takes == rendered.takes
    with pytest.raises(ValueError, match="condition 'stadium'"):
        shootday.render_day(shootday.STYLES["stage"], "stadium", seed=1)
