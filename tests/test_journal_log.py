"""Under systemd (stderr is the journal's stream, named by ``JOURNAL_STREAM``) every log line
starts with its syslog priority, so ``journalctl -p err`` finds errors, and carries no second
time stamp; anywhere else lines keep their time and level. A real ``setbridge hub`` process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from conftest import write_config

from setbridge.sim.broker import free_port


def run_hub(config, log_path, journal: bool, *flags: str) -> str:
    """Run the hub until it has logged that it started and that the broker cannot be reached."""
    with open(log_path, "wb") as log:
        st = os.fstat(log.fileno())
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        if journal:
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        proc = subprocess.Popen([sys.executable, "-m", "setbridge", *flags, "hub", "--config", str(config)],
                                stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 30
        while "cannot connect" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()  # only its log matters here
        proc.wait(10)
    return log_path.read_text()


def hub_config(settings, tmp_path):
    closed = free_port()  # nothing listens: the hub logs an error at once
    return write_config(tmp_path / "hub.toml", settings, mqtt={"port": closed})


def test_under_the_journal_each_line_carries_its_priority_and_no_time(settings, tmp_path):
    text = run_hub(hub_config(settings, tmp_path), tmp_path / "journal.log", True, "-v")
    lines = text.splitlines()
    assert lines and all(re.match(r"<[2-7]>setbridge[.\w]*: ", line) for line in lines), lines
    assert any(line.startswith("<3>setbridge.bus: cannot connect to the MQTT broker") for line in lines), lines
    assert any(line.startswith("<6>") for line in lines), "info lines are <6> (shown with -v)"
    assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", text), "the journal stamps lines itself"


def test_a_terminal_or_a_file_keeps_time_and_level(settings, tmp_path):
    text = run_hub(hub_config(settings, tmp_path), tmp_path / "plain.log", False)
    line = next(line for line in text.splitlines() if "cannot connect" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ERROR setbridge.bus: ", line), line
    assert "<3>" not in text


def test_another_stream_named_by_journal_stream_is_not_taken_for_this_one(settings, tmp_path):
    other = tmp_path / "other"
    other.write_text("")
    st = os.stat(other)
    log_path = tmp_path / "mine.log"
    with open(log_path, "wb") as log:
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")  # inherited from a parent under systemd
        proc = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config",
                                 str(hub_config(settings, tmp_path))], stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + 30
        while "cannot connect" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()  # only its log matters here
        proc.wait(10)
    assert "<3>" not in log_path.read_text() and "ERROR setbridge.bus" in log_path.read_text()
