"""ASC MHL histories made with the ascmhl library: read, watched, and relayed by a real hub."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import make_settings, on
from offload_helpers import CARD, age, make_card, seal

from setbridge.hub import Hub
from setbridge.offload.mhl import MhlError, generation_reports
from setbridge.offload.watcher import MhlWatcher, find_histories


@pytest.fixture
def card(tmp_path: Path) -> Path:
    root = make_card(tmp_path / "day01" / "A001R2EC", CARD)
    assert seal(root) == 0
    return root


def test_clean_generation(card):
    [report] = generation_reports(card)
    assert not [m for m in sys.modules if m.startswith("ascmhl.cli")], "the CLI (which checks online for updates) stays unloaded"
    assert report.status == "verified" and report.roll == "A001R2EC" and report.source == "mhl"
    assert report.files == 3 and report.bytes == sum(len(v) for v in CARD.values())
    assert report.hash.formats == ["xxh64"] and report.hash.original == 3 and report.hash.failed == 0
    assert report.hash.root.startswith("xxh64:")
    [dest] = report.destinations
    assert dest.path == str(card) and dest.generation == 1 and dest.process == "in-place"
    assert dest.manifest.startswith("ascmhl/0001_A001R2EC_")
    assert report.tool.name == "ascmhl" and report.operator == "Data Wrangler" and report.started_at and report.ts


def test_second_verification_generation(card):
    assert seal(card) == 0
    first, second = generation_reports(card)
    assert second.status == "verified" and second.hash.verified == 3 and second.hash.original == 0
    assert second.destinations[0].generation == 2
    assert first.event_id != second.event_id
    assert [r.event_id for r in generation_reports(card)] == [first.event_id, second.event_id], "ids are stable"


def test_corrupted_file_fails_verification(card):
    (card / "Clips/A001C001.mov").write_bytes(b"bit rot" * 10)
    assert seal(card) == 11  # ascmhl writes the generation, then reports the mismatch
    latest = generation_reports(card)[-1]
    assert latest.status == "failed" and latest.hash.failed == 1 and latest.hash.verified == 2
    assert latest.errors[0].kind == "hash_mismatch" and latest.errors[0].path == "Clips/A001C001.mov"


def test_missing_file_fails(card):
    (card / "A001.xml").unlink()
    assert seal(card) == 10
    latest = generation_reports(card)[-1]
    assert latest.status == "failed" and latest.hash.missing == 1
    assert any(e.kind == "missing" and e.path == "A001.xml" for e in latest.errors)


def test_modified_or_missing_manifest_is_an_error(card):
    manifest = next((card / "ascmhl").glob("0001_*.mhl"))
    manifest.write_text(manifest.read_text().replace("Data Wrangler", "Someone Else"))
    with pytest.raises(MhlError, match="Modified"):
        generation_reports(card)
    manifest.unlink()
    with pytest.raises(MhlError, match="Missing"):
        generation_reports(card)


def test_find_histories_nested(tmp_path, card):
    other = make_card(tmp_path / "day01" / "SR001", {"take1.wav": b"RIFF...."})
    seal(other)
    assert sorted(p.name for p in find_histories(tmp_path)) == ["A001R2EC", "SR001"]


def test_watcher_waits_for_the_chain_to_settle(tmp_path, card):
    seen, errors = [], []
    known = lambda event_id: any(r.event_id == event_id for r in seen)  # noqa: E731 - the journal's role
    watcher = MhlWatcher([tmp_path], seen.append, errors.append, is_known=known, settle_s=30)
    watcher.scan()
    assert seen == [], "a chain file written just now is not read yet"
    age(card)
    watcher.scan()
    assert [r.roll for r in seen] == ["A001R2EC"]
    watcher.scan()
    assert len(seen) == 1, "an unchanged history is read once"
    seal(card)
    age(card)
    watcher.scan()
    assert [r.destinations[0].generation for r in seen] == [1, 2] and errors == []


def test_watcher_reports_a_broken_history_as_failed(tmp_path, card):
    seen, errors = [], []
    next((card / "ascmhl").glob("0001_*.mhl")).write_text("<not a manifest/>")
    age(card)
    MhlWatcher([tmp_path], seen.append, errors.append, is_known=lambda _: False, settle_s=1).scan()
    [report] = seen
    assert report.status == "failed" and report.roll == "A001R2EC" and report.errors[0].kind == "manifest"
    assert errors and "Modified" in errors[0] and str(card) in errors[0]


def test_hub_relays_mhl_generations(broker, tmp_path, probe_factory):
    watch = tmp_path / "cards"
    watch.mkdir()
    settings = make_settings(broker, tmp_path / "state",
                             offload={"watch": [str(watch)], "poll_s": 0.1, "settle_s": 0.3, "copies_required": 2})
    base = settings.mqtt.base_topic
    probe = probe_factory(f"{base}/offload/#")
    hub = Hub(settings)
    hub.start()
    try:
        raid = make_card(watch / "raid" / "A001R2EC", CARD)
        seal(raid)
        _, first, retained = probe.wait_for(lambda t, d, r: t == f"{base}/offload/event", timeout=10)
        assert first["status"] == "verified" and first["copies"] == {"required": 2, "verified": 1}
        assert not retained and first["safe_to_wipe"] is False
        shuttle = watch / "shuttle" / "A001R2EC"
        shutil.copytree(raid, shuttle, ignore=shutil.ignore_patterns("ascmhl"))
        seal(shuttle)
        _, second, _ = probe.wait_for(lambda t, d, r: t.endswith("/event") and d["event_id"] != first["event_id"], timeout=10)
        assert second["copies"]["verified"] == 2 and second["safe_to_wipe"] is True
        assert {d["path"] for d in second["destinations"]} == {str(raid), str(shuttle)}
        (shuttle / "A001.xml").write_bytes(b"<changed/>")
        seal(shuttle)
        _, failed, _ = probe.wait_for(lambda t, d, r: t.endswith("/event") and d["status"] == "failed", timeout=10)
        assert failed["safe_to_wipe"] is False and failed["hash"]["failed"] == 1
        # The card follows its event: once it is out, a newcomer must be given it retained.
        probe.wait_for(lambda t, d, r: t.endswith("/card/A001R2EC") and d["event_id"] == failed["event_id"])
        late = probe_factory(f"{base}/offload/card/+")
        _, card_state, retained = late.wait_for(lambda t, d, r: d is not None)
        assert retained and card_state["event_id"] == failed["event_id"]
        time.sleep(0.5)
        events = [d["event_id"] for t, d, r in probe.seen if t.endswith("/event")]
        assert len(events) == len(set(events)) == 3
    finally:
        hub.stop()


def test_a_fifo_in_a_history_is_skipped_with_a_reason_and_the_watcher_goes_on(broker, tmp_path, probe_factory):
    """A FIFO where the chain or a manifest should be would block a reader for ever: never opened."""
    watch = tmp_path / "cards"
    settings = make_settings(broker, tmp_path / "state", offload={"watch": [str(watch)], "poll_s": 0.1, "settle_s": 0})
    base = settings.mqtt.base_topic
    fifos = []
    for name, target in (("A000", "ascmhl_chain.xml"), ("A001", None)):
        card = make_card(watch / name, CARD)
        assert seal(card) == 0
        if target is None:
            target = next((card / "ascmhl").glob("0001_*.mhl")).name
        (card / "ascmhl" / target).unlink()
        os.mkfifo(card / "ascmhl" / target)
        fifos.append(card / "ascmhl" / target)
    outside = make_card(watch / "A002", CARD)  # its chain names a manifest out of its folder, a FIFO
    assert seal(outside) == 0
    chain = outside / "ascmhl" / "ascmhl_chain.xml"
    chain.write_text(re.sub(r"<path>[^<]*</path>", "<path>../../lure.mhl</path>", chain.read_text()))
    os.mkfifo(watch / "lure.mhl")
    fifos.append(watch / "lure.mhl")
    good = make_card(watch / "B002", CARD)
    assert seal(good) == 0
    probe = probe_factory(f"{base}/offload/#")
    hub = Hub(settings)
    hub.start()
    try:
        for name in ("A000", "A001", "A002"):
            _, error, _ = probe.wait_for(lambda t, d, r, n=name: t.endswith("/error") and f"/{n} skipped" in d["reason"],
                                         timeout=10)
            assert "is a FIFO, not a regular file" in error["reason"] and "\n" not in error["reason"]
        probe.wait_for(on("/offload/event", roll="B002", status="verified"), timeout=10)
        time.sleep(0.5)  # several scans: each skip is said once
        assert len([d for t, d, r in probe.seen if t.endswith("/error")]) == 3
        assert not [d for t, d, r in probe.seen if t.endswith("/event") and d["roll"] != "B002"]
    finally:
        for fifo in fifos:  # a reader blocked on a FIFO (without the fix) gets its end of file
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        hub.stop()
