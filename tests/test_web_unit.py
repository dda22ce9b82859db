"""systemd/setbridge-web.service verifies and keeps the web process apart from the hub's secrets."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "setbridge-web.service"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not available")
def test_web_unit_verifies(tmp_path):
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/setbridge/venv/bin/setbridge", str(Path(sys.executable).with_name("setbridge"))))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert out.returncode == 0 and not [line for line in out.stderr.splitlines() if UNIT.name in line], out.stderr


def test_web_unit_is_hardened_and_never_reads_the_hubs_config():
    text = UNIT.read_text()
    for line in ("DynamicUser=yes", "LoadCredential=web.toml:/etc/setbridge/web.toml", "--config %d/web.toml",
                 "StateDirectory=setbridge-web", "ProtectSystem=strict", "ProtectHome=yes", "PrivateDevices=yes",
                 "NoNewPrivileges=yes", "CapabilityBoundingSet=", "MemoryDenyWriteExecute=yes", "Restart=always",
                 "LimitNOFILE=4096"):
        assert line in text, line
    assert "setbridge.toml" not in text and "SupplementaryGroups" not in text
