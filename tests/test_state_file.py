"""The state file: written before the state changes, refused cleanly when the disk is full,
and a bad file never crash-loops the hub nor makes seq fall (real files, a real full tmpfs,
a real broker and the real light firmware)."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import Probe, make_settings
from firmware_helpers import running_light

from setbridge.hub import Hub
from setbridge.hub.controller import SetController
from setbridge.hub.state_store import StateStore
from setbridge.offload.relay import OffloadRelay

GOOD = {"epoch": 3, "seq": 40, "state": "rolling", "take": 5}
BAD_FILES = {
    "epoch as a string": json.dumps({**GOOD, "epoch": "7"}).encode(),
    "unknown state": json.dumps({**GOOD, "state": "exploding"}).encode(),
    "fractional seq": json.dumps({**GOOD, "seq": 12.5}).encode(),
    "negative seq": json.dumps({**GOOD, "seq": -5}).encode(),
    "boolean take": json.dumps({**GOOD, "take": True}).encode(),
    "truncated": json.dumps(GOOD).encode()[:17],
    "not an object": b"[3, 40]",
    "null": b"null",
    "binary": b"\x00\xff\xfe garbage",
    "empty": b"",
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_state_file_starts_the_hub_with_one_line_and_is_moved_aside(name, tmp_path, caplog):
    path = tmp_path / "set-main.json"
    path.write_bytes(BAD_FILES[name])
    caplog.set_level(logging.ERROR)
    before = time.time()
    c = SetController("main", StateStore(tmp_path, "main"), lambda s: None, lambda e: None)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    line = errors[0].getMessage()
    assert "\n" not in line and str(path) in line and "moved it to set-main.json.bad-" in line
    aside = list(tmp_path.glob("set-main.json.bad-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == BAD_FILES[name]
    # Above anything counted before: the epoch from the clock, seq from the clock in ms.
    assert c.state == "idle" and c.epoch >= int(before) and c.seq >= int(before * 1000)
    restored = c.restore()
    assert restored.seq > 0 and c.apply("roll", "t").seq == restored.seq + 1
    assert json.loads(path.read_text())["seq"] == c.seq  # the new file is good again


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _good_elsewhere(path: Path) -> None:
    (path.parent / "elsewhere.json").write_text(json.dumps(GOOD))
    path.symlink_to(path.parent / "elsewhere.json")


NOT_FILES = {
    "a FIFO": (_fifo, "it is a FIFO"),  # reading one would block the hub's start for ever
    "a directory": (lambda p: p.mkdir(), "is a directory"),
    "a dangling symbolic link": (lambda p: p.symlink_to(p.parent / "gone.json"), "symbolic link"),
    "a symbolic link to a good file": (_good_elsewhere, "symbolic link"),
}


def load_within(tmp_path: Path, timeout: float = 10) -> SetController:
    """The controller, built on a thread so that a start that blocks fails the test instead."""
    made: list[SetController] = []
    thread = threading.Thread(target=lambda: made.append(
        SetController("main", StateStore(tmp_path, "main"), lambda s: None, lambda e: None)), daemon=True)
    thread.start()
    thread.join(timeout)
    assert made, "loading the state file blocked the hub's start"
    return made[0]


@pytest.mark.parametrize("name", NOT_FILES)
def test_a_state_file_that_is_not_a_regular_file_is_moved_aside(name, tmp_path, caplog):
    make, says = NOT_FILES[name]
    path = tmp_path / "set-main.json"
    make(path)
    caplog.set_level(logging.ERROR)
    before = time.time()
    c = load_within(tmp_path)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    line = errors[0].getMessage()
    assert "\n" not in line and says in line and "moved it to set-main.json.bad-" in line
    assert len(list(tmp_path.glob("set-main.json.bad-*"))) == 1
    assert c.state == "idle" and c.epoch >= int(before) and c.seq >= int(before * 1000)  # seq never falls
    assert c.apply("roll", "t").ok
    assert path.is_file() and not path.is_symlink() and json.loads(path.read_text())["seq"] == c.seq
    if name == "a symbolic link to a good file":
        assert json.loads((tmp_path / "elsewhere.json").read_text()) == GOOD, "the link's target was written"


@pytest.mark.integration
def test_a_state_file_the_hub_may_not_read_is_moved_aside(tmp_path):
    """Root reads any file, so as root the check runs without the capabilities that allow it."""
    (tmp_path / "set-main.json").write_text(json.dumps(GOOD))
    (tmp_path / "set-main.json").chmod(0o000)
    code = ("import logging, sys; logging.basicConfig(stream=sys.stdout, format='%(levelname)s %(message)s'); "
            "from setbridge.hub.controller import SetController; from setbridge.hub.state_store import StateStore; "
            f"c = SetController('main', StateStore({str(tmp_path)!r}, 'main'), lambda s: None, lambda e: None); "
            "print('seq', c.seq, c.apply('roll', 't').ok)")
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("needs setpriv to run without the capability to read any file")
        caps = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *command]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1])
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-600:]
    errors = [line for line in out.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "permission denied" in errors[0] and "moved it to" in errors[0], out.stdout
    last = out.stdout.strip().splitlines()[-1].split()
    assert last[0] == "seq" and int(last[1]) >= GOOD["seq"] and last[2] == "True", out.stdout


def test_a_hub_whose_state_file_is_a_fifo_comes_online(broker, tmp_path, probe_factory):
    state = tmp_path / "state"
    state.mkdir()
    os.mkfifo(state / "set-stage-t.json")
    settings = make_settings(broker, state)
    probe = probe_factory(f"{settings.mqtt.base_topic}/set/#")
    hub = Hub(settings)
    started = threading.Thread(target=hub.start, daemon=True)
    started.start()
    try:
        started.join(10)
        assert not started.is_alive(), "the hub's start blocked on the FIFO"
        _, data, _ = probe.wait_for(lambda t, d, r: t.endswith("/state") and d is not None)
        assert data["state"] == "idle" and data["epoch"] == hub.controller.epoch
    finally:
        hub.stop()


def test_the_reason_names_the_field(tmp_path, caplog):
    (tmp_path / "set-main.json").write_text(json.dumps({**GOOD, "epoch": "7"}))
    caplog.set_level(logging.ERROR)
    SetController("main", StateStore(tmp_path, "main"), lambda s: None, lambda e: None)
    assert "epoch" in caplog.records[0].getMessage() and '"7"' in caplog.records[0].getMessage()


def test_a_bad_file_never_makes_the_published_seq_fall(broker, tmp_path, probe_factory):
    settings = make_settings(broker, tmp_path / "state")
    seen = probe_factory(f"{settings.mqtt.base_topic}/set/#")
    path = tmp_path / "state" / f"set-{settings.hub.set}.json"
    for bad in (None, json.dumps({**GOOD, "seq": -5}), json.dumps({**GOOD, "epoch": "7"}), None):
        if bad is not None:
            path.write_text(bad)
        hub = Hub(settings)
        hub.start()
        try:
            assert hub.bus.wait_connected(5)
            for action in ("roll", "cut"):
                hub.submit(action, cause="test")
            seen.wait_for(lambda t, d, r: t.endswith("/state") and d and d["seq"] == hub.controller.seq)  # noqa: B023 - used within the iteration
        finally:
            hub.stop()
    published = [(d["epoch"], d["seq"]) for t, d, _ in seen.seen if t.endswith(("/state", "/heartbeat", "/event"))]
    assert all(seq > 0 for _, seq in published)
    assert [seq for _, seq in published] == sorted(seq for _, seq in published)
    assert [e for e, _ in published] == sorted(e for e, _ in published)


def test_lights_follow_a_hub_restarted_from_a_bad_file(broker, tmp_path, probe_factory):
    """A light holding epoch 1 seq 52 must follow the next hub even though its file was lost:
    restarting from epoch 1 seq 0 (the old behaviour) would leave the light dark through a take."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    settings = make_settings(broker, state_dir)
    (state_dir / f"set-{settings.hub.set}.json").write_text(json.dumps({"epoch": 0, "seq": 49, "state": "idle", "take": 0}))
    hub = Hub(settings)
    hub.start()
    try:
        assert hub.bus.wait_connected(5) and hub.controller.epoch == 1
        with running_light(settings, tmp_path) as light:
            light.wait_showing("idle")
            mark = light.mark()
            hub.submit("roll", cause="test")
            light.wait_showing("rolling", after=mark)
            hub.submit("cut", cause="test")
            shown = light.wait_showing("idle", after=mark)
            assert (shown.data["epoch"], shown.data["seq"]) == (1, 52)
            hub.stop()
            (state_dir / f"set-{settings.hub.set}.json").write_text('{"epoch": 1, "seq": 5')  # torn
            hub = Hub(settings)
            hub.start()
            assert hub.bus.wait_connected(5)
            mark = light.mark()
            hub.submit("roll", cause="test")
            shown = light.wait_showing("rolling", after=mark, timeout=10)
            assert shown.data["epoch"] == hub.controller.epoch and shown.data["seq"] == hub.controller.seq
    finally:
        hub.stop()


@pytest.fixture
def full_disk(tmp_path: Path):
    """A real 256 KiB tmpfs for the state directory, and a way to fill it to the last byte."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs mounts to make a full disk")

    def fill() -> Path:
        filler = mount / "filler"
        with open(filler, "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        for i in range(1000):  # and the inodes' last blocks
            try:
                (mount / f"pad-{i}").write_bytes(b"\0" * 64)
            except OSError:
                break
        return filler

    try:
        yield mount, fill
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_refuses_the_action_and_changes_nothing(broker, full_disk, tmp_path, caplog):
    mount, fill = full_disk
    settings = make_settings(broker, mount / "state")
    topics_base = settings.mqtt.base_topic
    probe = Probe(broker.port, f"{topics_base}/set/#")
    hub = Hub(settings)
    hub.start()
    try:
        assert hub.bus.wait_connected(5)
        probe.wait_for(lambda t, d, r: t.endswith("/state") and d is not None)
        seq = hub.controller.seq
        # The offload journal shares the directory: stopped, so that none of its files is removed
        # (freeing blocks) once the disk is full.
        next(c for c in hub.components if isinstance(c, OffloadRelay)).stop()
        fill()
        caplog.set_level(logging.ERROR)
        request = f"{topics_base}/set/{hub.set_id}/request"
        tx = uuid.uuid4().hex
        probe.publish(request, {"v": 1, "action": "roll", "transaction": tx})
        _, answer, _ = probe.wait_for(lambda t, d, r: t.endswith("/response") and d and d.get("transaction") == tx)
        assert answer["ok"] is False and "\n" not in answer["error"]
        assert "cannot save the set state" in answer["error"] and "No space left" in answer["error"]
        assert answer["state"] == "idle" and answer["seq"] == seq
        assert hub.state == "idle" and hub.controller.seq == seq and hub.controller.take == 0
        assert not hub.submit("roll", cause="button").ok  # voice and buttons are refused the same way
        mark = len(probe.seen)
        probe.wait_for(lambda t, d, r: t.endswith("/heartbeat") and len(probe.seen) > mark + 3)
        assert all(d["state"] == "idle" for t, d, _ in probe.seen[mark:] if t.endswith("/heartbeat"))
        assert not [d for t, d, _ in probe.seen if t.endswith("/state") and d["state"] == "rolling"]
        assert any("cannot save the set state" in r.getMessage() for r in caplog.records)
        for leftover in mount.glob("pad-*"):
            leftover.unlink()
        (mount / "filler").unlink()
        tx = uuid.uuid4().hex  # the same request again once there is room
        probe.publish(request, {"v": 1, "action": "roll", "transaction": tx})
        _, answer, _ = probe.wait_for(lambda t, d, r: t.endswith("/response") and d and d.get("transaction") == tx)
        assert answer["ok"] is True and answer["state"] == "rolling" and answer["seq"] == seq + 1
        probe.wait_for(lambda t, d, r: t.endswith("/state") and d["state"] == "rolling" and d["seq"] == seq + 1)
    finally:
        hub.stop()
        probe.close()


def test_a_hub_restarted_on_a_full_disk_keeps_the_set_and_refuses_actions(broker, full_disk, caplog):
    """The lights keep the state the hub had (not link lost, not a crash loop); actions wait for room."""
    mount, fill = full_disk
    state = mount / "state"
    state.mkdir()
    (state / "set-stage-t.json").write_text(json.dumps(GOOD))  # it was rolling take 5 at epoch 3
    fill()
    settings = make_settings(broker, state)
    probe = Probe(broker.port, f"{settings.mqtt.base_topic}/set/#")
    caplog.set_level(logging.ERROR)
    before = time.time()
    hub = Hub(settings)
    hub.start()
    try:
        _, data, _ = probe.wait_for(lambda t, d, r: t.endswith("/state") and d is not None)
        assert data["state"] == "rolling" and data["take"] == 5 and data["seq"] == GOOD["seq"]
        assert data["epoch"] >= int(before), "an unsaved epoch must come from the clock, never one used before"
        lines = [r.getMessage() for r in caplog.records if "starting rolling at epoch" in r.getMessage()]
        assert len(lines) == 1 and "No space left" in lines[0] and "\n" not in lines[0]
        assert not [r for r in caplog.records if r.exc_info], "a traceback in the log"
        refused = hub.submit("cut", cause="button")
        assert not refused.ok and "No space left" in (refused.error or "") and hub.state == "rolling"
        for leftover in mount.glob("pad-*"):
            leftover.unlink()
        (mount / "filler").unlink()
        assert hub.submit("cut", cause="button").state == "idle"
        saved = json.loads((state / "set-stage-t.json").read_text())
        assert saved["epoch"] == data["epoch"] and saved["state"] == "idle" and saved["seq"] == GOOD["seq"] + 1
    finally:
        hub.stop()
        probe.close()
