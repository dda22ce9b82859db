"""The unit tier (tests/tiers.py): chosen from the fixtures each test uses, and guarded."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tiers


def test_a_unit_test_that_starts_a_process_fails_saying_how_to_move_it(request):
    assert request.node.get_closest_marker("unit") is not None
    with pytest.raises(tiers.UnitTierBreach, match=r"starts a process .*mark it @pytest.mark.integration"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_a_unit_test_that_loads_a_vosk_model_fails(tmp_path):
    import vosk

    with pytest.raises(tiers.UnitTierBreach, match="loads a Vosk model"):
        vosk.Model(str(tmp_path))


@pytest.mark.integration
def test_a_test_marked_integration_may_start_a_process(request):
    assert request.node.get_closest_marker("unit") is None
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_no_test_that_uses_a_process_fixture_is_in_the_unit_tier(request):
    using = [item for item in request.session.items if set(getattr(item, "fixturenames", ())) & tiers.PROCESS_FIXTURES]
    assert all(item.get_closest_marker("unit") is None for item in using)
    assert all(item.get_closest_marker("unit") is None for item in request.session.items
               if item.get_closest_marker("integration") or item.get_closest_marker("slow"))
