"""Never the wrong card "safe to wipe": copies grouped by one transfer of one card, generic volume
names, one order for a card's history, retained reports — a real hub on a real Mosquitto, with
Hedge/OffShoot/Silverstack payloads modelled on their documentation (see offload_samples)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from helpers import make_settings, on, wait_online, write_config
from offload_samples import (SOURCE_BYTES, SOURCE_FILES, hedge_copy_completed, hedge_disk_added, hedge_disk_idle,
                             hedge_disk_removed, silverstack_report)

from setbridge.hub import Hub


@pytest.fixture
def offload_hub(broker, tmp_path):
    hub = Hub(make_settings(broker, tmp_path / "state"))
    hub.start()
    assert hub.bus.wait_connected(5)
    wait_online(hub)
    yield hub
    hub.stop()


def send_hedge(probe, base: str, event: dict, event_id: str | None = None) -> None:
    probe.publish(f"{base}/offload/report", {"v": 1, "hedge": event, **({"event_id": event_id} if event_id else {})})


def listing(hub: Hub, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    config = write_config(tmp_path / f"list-{uuid.uuid4().hex[:6]}.toml", hub.settings)
    return subprocess.run([sys.executable, "-m", "setbridge", "offload", "list", "--config", str(config), *extra],
                          capture_output=True, text=True, timeout=60)


def test_a_pulled_card_never_lends_its_copy_to_the_next_card_at_the_same_mount(offload_hub, probe_factory):
    """Issue case 1: A001's one copy, no DiskIdle, then B002 at /Volumes/Untitled with two copies."""
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    mount = "/Volumes/Untitled"
    send_hedge(probe, base, hedge_copy_completed(mount, "/Volumes/RAID/A001", label="A001"))
    send_hedge(probe, base, hedge_copy_completed(mount, "/Volumes/RAID/B002", label="B002"))
    send_hedge(probe, base, hedge_copy_completed(mount, "/Volumes/Shuttle/B002", label="B002"))
    send_hedge(probe, base, hedge_disk_idle(mount), event_id="b002-idle")
    b002 = probe.wait_for(on("/offload/event", event_id="b002-idle")).data
    assert b002["roll"] == "B002" and b002["copies"]["verified"] == 2 and b002["safe_to_wipe"] is True
    assert [d["path"] for d in b002["destinations"]] == ["/Volumes/RAID/B002", "/Volumes/Shuttle/B002"]
    a001 = probe.wait_for(on("/offload/event", roll="A001")).data
    assert a001["status"] == "cancelled" and a001["safe_to_wipe"] is False and a001["copies"]["verified"] == 1
    assert "status is cancelled" in a001["why_not_safe"]
    assert a001["errors"][0]["kind"] == "incomplete" and "another card" in a001["errors"][0]["detail"]
    assert a001["seq"] < b002["seq"]
    message = probe_factory(f"{base}/offload/card/A001").wait_for(on("/offload/card/A001"))
    card, retained = message.data, message.retained
    assert retained and card["status"] == "cancelled"


def test_a_removed_card_ends_its_transfer_even_without_names(offload_hub, probe_factory):
    """No sourceInfo at all: DiskRemoved / DiskAdded for the mount path end the transfer."""
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    mount = "/Volumes/CARD7"
    send_hedge(probe, base, hedge_disk_added(mount))
    send_hedge(probe, base, hedge_copy_completed(mount, "/Volumes/RAID/one"))
    send_hedge(probe, base, hedge_disk_removed(mount))
    first = probe.wait_for(on("/offload/event", roll="CARD7", status="cancelled")).data
    assert "removed" in first["errors"][0]["detail"] and not first["safe_to_wipe"]
    send_hedge(probe, base, hedge_disk_added(mount, mounted_at="20260501101010"))
    send_hedge(probe, base, hedge_copy_completed(mount, "/Volumes/RAID/two"))
    send_hedge(probe, base, hedge_disk_idle(mount), event_id="card7-second")
    second = probe.wait_for(on("/offload/event", event_id="card7-second")).data
    assert [d["path"] for d in second["destinations"]] == ["/Volumes/RAID/two"] and second["copies"]["verified"] == 1


def test_generic_volume_names_are_reported_but_never_safe(offload_hub, probe_factory):
    """Issue case 2: two different NO NAME cards with no source info."""
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    mount = "/Volumes/NO NAME"
    for n, dests in enumerate([["/raid/1", "/shuttle/1"], ["/raid/2"]]):
        for d in dests:
            send_hedge(probe, base, hedge_copy_completed(mount, d))
        send_hedge(probe, base, hedge_disk_idle(mount), event_id=f"noname-{n}")
    first = probe.wait_for(on("/offload/event", event_id="noname-0")).data
    second = probe.wait_for(on("/offload/event", event_id="noname-1")).data
    for event in (first, second):
        assert event["roll"] == "NO NAME" and event["safe_to_wipe"] is False
        assert "generic volume name 'NO NAME'" in event["why_not_safe"][0]
    assert first["copies"]["verified"] == 2, "its own two copies verify; only the name blocks it"
    assert second["copies"]["verified"] == 1 and [d["path"] for d in second["destinations"]] == ["/raid/2"]


def test_offshoot_modes_and_silverstack_coverage(offload_hub, probe_factory):
    """Only copies read back and compared by checksum count; a size check is a copy, not a verified one."""
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    send_hedge(probe, base, hedge_copy_completed("/Volumes/A010", "/raid/A010", label="A010", mode="Transfer"))
    send_hedge(probe, base, hedge_copy_completed("/Volumes/A010", "/shuttle/A010", label="A010"))
    send_hedge(probe, base, hedge_disk_idle("/Volumes/A010"), event_id="a010")
    a010 = probe.wait_for(on("/offload/event", event_id="a010")).data
    assert not a010["safe_to_wipe"] and "copy /raid/A010: it was verified by file size only" in a010["why_not_safe"]
    send_hedge(probe, base, hedge_copy_completed("/Volumes/A011", "/raid/A011", label="A011", files=SOURCE_FILES - 1))
    send_hedge(probe, base, hedge_copy_completed("/Volumes/A011", "/shuttle/A011", label="A011"))
    send_hedge(probe, base, hedge_disk_idle("/Volumes/A011"), event_id="a011")
    a011 = probe.wait_for(on("/offload/event", event_id="a011")).data
    assert f"copy /raid/A011: it holds {SOURCE_FILES - 1} files, the source {SOURCE_FILES}" in a011["why_not_safe"]
    probe.publish(f"{base}/offload/report", {**silverstack_report("A012", ["/raid/A012", "/lto/A012"], "ss-1"),
                                             "event_id": "ss-all"})
    probe.publish(f"{base}/offload/report", {**silverstack_report("A013", ["/raid/A013", "/lto/A013"], "ss-2",
                                                                  coverage="first"), "event_id": "ss-first"})
    good = probe.wait_for(on("/offload/event", event_id="ss-all")).data
    partial = probe.wait_for(on("/offload/event", event_id="ss-first")).data
    assert good["safe_to_wipe"] and good["bytes"] == SOURCE_BYTES
    assert not partial["safe_to_wipe"] and partial["why_not_safe"][0].startswith("copy /lto/A013")


def test_a_late_report_with_an_older_ts_orders_by_the_journal(offload_hub, probe_factory, tmp_path):
    """Issue case 3: "failed" with an older ts after "verified": every view says failed."""
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    copies = [{"path": p, "verified_by": "hash", "files": 10, "bytes": 100} for p in ("/raid/C1", "/shuttle/C1")]
    verified = {"v": 1, "roll": "C001", "status": "verified", "files": 10, "bytes": 100, "destinations": copies,
                "event_id": "c1-ok", "ts": 1_900_000_000}
    probe.publish(f"{base}/offload/report", verified)
    probe.publish(f"{base}/offload/report", {**verified, "status": "failed", "event_id": "c1-bad", "ts": 1_000_000_000})
    ok = probe.wait_for(on("/offload/event", event_id="c1-ok")).data
    bad = probe.wait_for(on("/offload/event", event_id="c1-bad")).data
    assert ok["safe_to_wipe"] and bad["seq"] > ok["seq"] and bad["reported_ts"] == 1_000_000_000
    probe.wait_for(on("/offload/card/C001", event_id="c1-bad"))  # stored by the broker before it is forwarded
    late = probe_factory(f"{base}/offload/card/C001")
    message = late.wait_for(on("/offload/card/C001"))
    card, retained = message.data, message.retained
    assert retained and card["event_id"] == "c1-bad" and card["safe_to_wipe"] is False
    as_json = [json.loads(line) for line in listing(offload_hub, tmp_path, "--json").stdout.splitlines()]
    assert [(e["event_id"], e["safe_to_wipe"]) for e in as_json] == [("c1-bad", False)]
    table = listing(offload_hub, tmp_path).stdout.splitlines()
    assert len(table) == 2 and table[1].split()[2:4] == ["C001", "failed"] and " no " in table[1]


def test_a_retained_report_is_cleared_and_never_taken(broker, tmp_path, probe_factory):
    settings = make_settings(broker, tmp_path / "state")
    base = settings.mqtt.base_topic
    probe = probe_factory(f"{base}/offload/#")
    probe.publish(f"{base}/offload/report", {"v": 1, "roll": "R001", "status": "verified", "event_id": "kept"},
                  retain=True)
    for _ in range(2):  # each (re)start would take it again if it were taken at all
        hub = Hub(settings)
        hub.start()
        try:
            assert hub.bus.wait_connected(5)
            wait_online(hub)
            probe.publish(f"{base}/offload/report", {"v": 1, "roll": "R002", "status": "verified",
                                                     "event_id": f"live-{uuid.uuid4().hex[:6]}"})
            probe.wait_for(on("/offload/event", roll="R002"))
        finally:
            hub.stop()
    assert not [msg.data for msg in probe.seen if msg.topic.endswith("/offload/event") and msg.data["roll"] == "R001"]
    answers = [msg.data for msg in probe.seen if msg.topic.endswith("/offload/error")]
    assert len(answers) == 1 and answers[0]["reason"].startswith("retained:"), answers  # once, not at every start
    assert answers[0]["event_id"] == "kept"
    fresh = probe_factory(f"{base}/offload/report")
    marker = uuid.uuid4().hex
    fresh.publish(f"{base}/offload/report", {"marker": marker})
    fresh.wait_for(lambda m: m.data is not None and m.data.get("marker") == marker)
    assert not [m for m in fresh.seen if m.retained], "the retained report is gone from the broker"
