"""``setbridge watch`` and ``status`` as real processes: retained vs live, and nothing from the bus
reaches the terminal unescaped."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading

from conftest import write_config

from setbridge.escape import json_line, terminal

FORGED = "ipad\x1b[2K\r\x1b[31mROLLING take 99\x9b0m\u202e\u2028"
"""A request ``source`` that would repaint the line as a forged state on a raw terminal."""


class Watch:
    """``setbridge watch`` as a child process, its lines read as they come."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "setbridge", "watch", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.lines.put(line)

    def until(self, needle: bytes, timeout: float = 20.0) -> list[bytes]:
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line with {needle!r}; saw {seen}") from None
            seen.append(line)
            if needle in line:
                return seen

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def test_escape_leaves_no_control_character():
    assert terminal(FORGED) == "ipad\\x1b[2K\\x0d\\x1b[31mROLLING take 99\\x9b0m\\u202e\\u2028"
    assert terminal("녹음 시작 — take 3") == "녹음 시작 — take 3"
    line = json_line({"source": FORGED, "phrase": "녹음 시작", "bad": "\ud800"})
    assert line.isprintable() and "녹음 시작" in line
    assert json.loads(line) == {"source": FORGED, "phrase": "녹음 시작", "bad": "\ud800"}


def test_watch_prints_a_forged_source_escaped_and_marks_retained(hub, settings, topics, tmp_path, probe_factory):
    hub.submit("roll", cause="test")
    cfg = write_config(tmp_path / "c.toml", settings)
    text, js = Watch("--config", str(cfg)), Watch("--config", str(cfg), "--json")
    try:
        text.until(b"ROLLING")  # the retained state: the watch is subscribed
        early = js.until(b'"rolling"')
        p = probe_factory(topics.set_response("stage-t"))
        p.publish(topics.set_request("stage-t"), {"v": 1, "action": "cut", "transaction": "esc", "source": FORGED})
        p.wait_for(lambda t, d, r: d and d.get("transaction") == "esc")
        shown = text.until(b"event cut")
        js_lines = early + js.until(b'"type": "cut"')
    finally:
        text.close()
        js.close()
    for line in shown + js_lines:
        body = line.rstrip(b"\n").decode()
        assert body.isprintable(), f"raw control character reached the terminal: {line!r}"
    event_line = shown[-1].decode()
    assert "from ipad\\x1b[2K\\x0d\\x1b[31mROLLING take 99" in event_line
    assert b"(retained)" not in shown[-1]
    records = [json.loads(line) for line in js_lines]
    retained_state = next(r for r in records if r["topic"].endswith("/set/stage-t/state"))
    assert retained_state["retained"] is True
    event = next(r for r in records if r["topic"].endswith("/event"))
    assert event["retained"] is False and event["payload"]["source"] == FORGED


def test_status_prints_escaped_ids_and_fields(hub, settings, topics, tmp_path, probe_factory):
    p = probe_factory(topics.all())
    light = "door\u202ex"  # Mosquitto refuses C0/C1 controls in topics, not a bidi override
    p.publish(f"{topics.base}/light/{light}/status", {"v": 1, "state": "online", "fw": "1\x1b]0;pwned\x07", "set": "stage-t"},
              retain=True)
    p.publish(f"{topics.base}/light/{light}/state", {"v": 1, "showing": "link-lost"}, retain=True)
    cfg = write_config(tmp_path / "c.toml", settings)
    out = subprocess.run([sys.executable, "-m", "setbridge", "status", "--config", str(cfg)], capture_output=True,
                         env={**os.environ, "PYTHONIOENCODING": "utf-8"}, timeout=30)
    p.publish(f"{topics.base}/light/{light}/status", b"", retain=True)
    p.publish(f"{topics.base}/light/{light}/state", b"", retain=True)
    for line in (out.stdout + out.stderr).splitlines():
        assert line.decode().isprintable(), f"raw control character reached the terminal: {line!r}"
    assert b"light door\\u202ex: online" in out.stdout and b"fw 1\\x1b]0;pwned\\x07" in out.stdout
    assert out.returncode == 7 and b"shows link-lost" in out.stderr  # 7: a light not alive (docs/deploy.md)


def test_watch_prints_a_light_when_it_changes_not_every_alive_message(hub, settings, tmp_path):
    """A real firmware light says "alive" every second; the watch prints it when it is first heard,
    when what it shows changes and when it goes silent, not at every message (``--all`` does)."""
    from firmware_helpers import running_light

    cfg = write_config(tmp_path / "c.toml", settings)
    quiet, every = Watch("--config", str(cfg)), Watch("--config", str(cfg), "--all")
    try:
        with running_light(settings, tmp_path, "door-w") as light:
            light.wait_showing("idle", timeout=15)
            quiet.until(b"light door-w: alive, shows idle")
            hub.submit("roll", cause="test")
            quiet.until(b"light door-w: alive, shows rolling (was idle)")
            alive_lines = [line for line in every.until(b"light door-w: alive, shows rolling")
                           + every.until(b"light door-w: alive, shows rolling") if b"door-w: alive" in line]
            assert len(alive_lines) >= 2, "--all prints every alive message"
            light.stop()
        gone = quiet.until(b"light door-w: NOT ALIVE")
    finally:
        quiet.close()
        every.close()
    repeats = [line for line in gone if b"door-w: alive" in line]
    assert repeats == [], f"an unchanged alive message was printed again: {repeats}"
