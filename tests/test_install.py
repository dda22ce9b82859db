"""deploy/install.sh --dry-run lists every step and changes nothing."""

from __future__ import annotations

import pytest
import subprocess
from pathlib import Path

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "install.sh"
TOUCHED = [Path("/opt/setbridge"), Path("/etc/setbridge"), Path("/etc/systemd/system/setbridge-hub.service"),
           Path("/etc/systemd/system/setbridge-web.service"),
           Path("/etc/mosquitto/conf.d/setbridge.conf")]


def test_dry_run_lists_the_steps_and_changes_nothing():
    before = {p: p.exists() for p in TOUCHED}
    out = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--set", "stage-a"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    steps = [line for line in out.stdout.splitlines() if line.startswith("==> ")]
    assert [s.split()[1] for s in steps] == [f"{i}/8" for i in range(1, 9)]
    for words in ("Debian packages", "system user", "virtualenv", "Mosquitto", "configuration", "speech model",
                  "systemd unit", "web board"):
        assert any(words in s for s in steps), words
    assert "stage-a" in out.stdout
    assert out.stdout.rstrip().endswith("dry run: nothing was changed")
    assert {p: p.exists() for p in TOUCHED} == before


def test_bad_options_are_one_line_errors():
    for args, says in ((["--set", "Stage A", "--dry-run"], "--set"), (["--bogus"], "unknown option")):
        out = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
        assert out.returncode == 2 and says in out.stderr and len(out.stderr.strip().splitlines()) == 1
