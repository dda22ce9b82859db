"""The offload relay in a real hub against a real Mosquitto: MQTT reports, Hedge events, light
flashes, errors, and the ``setbridge offload`` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_settings, on, wait_online, write_config

from setbridge.sim.broker import PrivateBroker, free_port
from setbridge.hub import Hub
from setbridge.offload.journal import Journal


@pytest.fixture
def offload_hub(broker, tmp_path):
    settings = make_settings(broker, tmp_path / "state", offload={"flash_lights": ["cart-1"], "flash_s": 2})
    hub = Hub(settings)
    hub.start()
    assert hub.bus.wait_connected(5)
    wait_online(hub)
    yield hub
    hub.stop()


def report(**fields) -> dict:
    return {"v": 1, "roll": "A001R2EC", "status": "verified", "files": 214, "bytes": 512 * 10**9, **fields}


def copy(path: str, **extra) -> dict:
    """A destination verified by hash, holding what ``report()``'s source holds."""
    return {"path": path, "verified_by": "hash", "files": 214, "bytes": 512 * 10**9, **extra}


def test_report_becomes_event_and_retained_card(offload_hub, probe_factory):
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/#")
    probe.publish(f"{base}/offload/report", report(event_id="r1", camera="A",
                                                    destinations=[copy("/raid/A001R2EC"), copy("/shuttle/A001R2EC")]))
    message = probe.wait_for(on("/offload/event", event_id="r1"))
    event, retained = message.data, message.retained
    assert not retained and event["v"] == 1 and event["source"] == "mqtt" and event["camera"] == "A"
    assert event["copies"] == {"required": 2, "verified": 2} and event["safe_to_wipe"] is True
    card = probe.wait_for(on("/offload/card/A001R2EC", event_id="r1")).data
    assert card == event
    message = probe.wait_for(on("/light/cart-1/cmd"))
    flash, retained = message.data, message.retained
    assert not retained and flash["action"] == "flash" and flash["color"] == "green" and flash["duration_s"] == 2
    probe.publish(f"{base}/offload/report", report(roll="B002", status="failed", event_id="r2",
                                                    errors=[{"kind": "io", "detail": "Input/output error"}]))
    probe.wait_for(on("/offload/event", event_id="r2", safe_to_wipe=False))
    red = probe.wait_for(on("/light/cart-1/cmd", color="red")).data
    assert red["pattern"] == "fast"
    probe.wait_for(on("/offload/card/B002", event_id="r2"))  # the broker keeps it: a late subscriber gets it
    late = probe_factory(f"{base}/offload/card/+")
    cards = [late.wait_for(on(f"/card/{roll}")) for roll in ("A001R2EC", "B002")]
    assert [(m.data["status"], m.retained) for m in cards] == [("verified", True), ("failed", True)]


def test_bad_input_is_rejected_on_the_error_topic_and_the_hub_keeps_going(offload_hub, probe_factory):
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    bad = [
        (b"not json", "not JSON"),
        (json.dumps(report(roll="../etc", event_id="bad-roll")).encode(), "roll"),
        (json.dumps(report(bytes=-1, event_id="neg")).encode(), "bytes"),
        (json.dumps({**report(), "v": 7}).encode(), "version"),
        (json.dumps(report(pad="x" * 70000)).encode(), "limit"),
        (json.dumps({"v": 1, "hedge": {"event": "FileCopyCompleted"}}).encode(), "sourcePath"),
    ]
    for raw, _ in bad:
        probe.publish(f"{base}/offload/report", raw)
    errors = [probe.wait_for(lambda m, w=word: m.topic.endswith("/offload/error") and w in m.data["reason"]).data
              for _, word in bad]
    assert all("\n" not in e["reason"] and len(e.get("rejected", "")) <= 200 for e in errors)
    assert errors[1]["event_id"] == "bad-roll" and errors[1]["source"] == "mqtt"
    probe.publish(f"{base}/offload/report", report(event_id="after"))
    probe.wait_for(on("/offload/event", event_id="after"))
    assert not [msg.data for msg in probe.seen if msg.topic.endswith("/event") and msg.data["event_id"] != "after"]


def test_duplicate_event_id_is_published_once(offload_hub, probe_factory):
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    for _ in range(3):
        probe.publish(f"{base}/offload/report", report(event_id="same"))
    probe.wait_for(on("/offload/error", event_id="same", duplicate=True))
    probe.publish(f"{base}/offload/report", report(event_id="next"))
    probe.wait_for(on("/offload/event", event_id="next"))
    assert [msg.data["event_id"] for msg in probe.seen if msg.topic.endswith("/event")] == ["same", "next"]


def test_a_reused_event_id_with_other_content_is_refused_and_puts_the_card_in_doubt(offload_hub, probe_factory, caplog):
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    copies = [copy("/raid/A001R2EC"), copy("/shuttle/A001R2EC")]
    probe.publish(f"{base}/offload/report", report(event_id="v1", destinations=copies, ts=1795399600.0))
    probe.wait_for(on("/offload/event", event_id="v1", safe_to_wipe=True))
    # a retry: the same content, sent again with another ts and the defaults spelled out, is a duplicate
    probe.publish(f"{base}/offload/report", report(event_id="v1", ts=1795399999.5, camera=None, source="mqtt",
                                                    destinations=[dict(c, state="verified") for c in copies]))
    probe.wait_for(on("/offload/error", event_id="v1", duplicate=True))
    # the same id saying the card failed: refused loudly, and the card is no longer safe to wipe
    probe.publish(f"{base}/offload/report", report(event_id="v1", status="failed", destinations=copies))
    error = probe.wait_for(on("/offload/error", event_id="v1", conflict=True)).data
    assert "already accepted with other content" in error["reason"] and "new event_id" in error["reason"]
    assert not error.get("duplicate") and "\n" not in error["reason"]
    doubt = probe.wait_for(on("/offload/event", roll="A001R2EC", safe_to_wipe=False)).data
    assert doubt["event_id"] != "v1" and doubt["status"] == "verified"
    assert any("reusing event_id v1" in why for why in doubt["why_not_safe"])
    probe.wait_for(on("/offload/card/A001R2EC", safe_to_wipe=False, event_id=doubt["event_id"]))  # the broker keeps it: a late subscriber gets it
    late = probe_factory(f"{base}/offload/card/+")
    message = late.wait_for(on("/offload/card/A001R2EC"))
    card, retained = message.data, message.retained
    assert retained and card["safe_to_wipe"] is False and card["event_id"] == doubt["event_id"]
    assert any("reused an accepted event_id" in r.getMessage() for r in caplog.records)
    # a verified report reusing a failed one's id never upgrades it; repeated, it changes nothing more
    probe.publish(f"{base}/offload/report", report(roll="B002", event_id="f1", status="failed"))
    probe.wait_for(on("/offload/event", event_id="f1", safe_to_wipe=False))
    for _ in range(2):
        probe.publish(f"{base}/offload/report", report(roll="B002", event_id="f1", destinations=copies))
    probe.wait_for(lambda m: m.topic.endswith("/error") and m.data["event_id"] == "f1" and m.data.get("conflict")
                   and sum(1 for msg in probe.seen if msg.topic.endswith("/error") and msg.data["event_id"] == "f1") == 2)
    probe.publish(f"{base}/offload/report", report(roll="C003", event_id="after"))
    probe.wait_for(on("/offload/event", event_id="after"))
    b002 = [msg.data for msg in probe.seen if msg.topic.endswith("/offload/event") and msg.data["roll"] == "B002"]
    assert len(b002) == 2 and not any(d["safe_to_wipe"] for d in b002)  # the failure, then one doubt


@pytest.mark.parametrize("roll", ["NO_NAME", "NONAME", "NO  NAME", "ＮＯ ＮＡＭＥ", "no.name", "Untitled-3",
                                  "EOS DIGITAL", "NIKON D850", "Ｕｎｔｉｔｌｅｄ"])
def test_a_generic_volume_name_in_any_spelling_is_never_safe_to_wipe(offload_hub, probe_factory, roll):
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    copies = [copy(f"/raid/{roll}"), copy(f"/shuttle/{roll}")]
    probe.publish(f"{base}/offload/report", report(roll=roll, event_id="generic", destinations=copies))
    event = probe.wait_for(on("/offload/event", event_id="generic")).data
    assert event["safe_to_wipe"] is False and event["copies"]["verified"] == 2
    assert any("generic volume name" in why for why in event["why_not_safe"]), event["why_not_safe"]


def hedge_copy(dest: str, state: str = "Success", verified: str = "YES") -> dict:
    return {"event": "FileCopyCompleted", "sourcePath": "/Volumes/A002R1", "destinationPath": dest,
            "bytesCopied": 2048, "duration": 30, "startedAt": "20260101120000", "verified": verified, "state": state,
            "verification": "Source & Destination", "filesCopied": 12, "sourceFileCount": 12, "totalSize": 2048}


def test_hedge_copies_are_combined_when_the_source_is_idle(offload_hub, probe_factory):
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    probe.publish(f"{base}/offload/report", {"v": 1, "hedge": hedge_copy("/Volumes/RAID/A002R1")})
    probe.publish(f"{base}/offload/report", {"v": 1, "hedge": {"event": "DiskIdle", "diskType": "Destination",
                                                               "diskPath": "/Volumes/RAID"}})
    probe.publish(f"{base}/offload/report", {"v": 1, "hedge": hedge_copy("/Volumes/Shuttle/A002R1")})
    probe.publish(f"{base}/offload/report", {"v": 1, "event_id": "h1", "hedge": {
        "event": "DiskIdle", "diskType": "Source", "sourcePath": "/Volumes/A002R1", "hasFailedTransfers": "NO"}})
    event = probe.wait_for(on("/offload/event", event_id="h1")).data
    assert event["roll"] == "A002R1" and event["status"] == "verified" and event["source"] == "hedge"
    assert event["copies"]["verified"] == 2 and event["safe_to_wipe"] and event["bytes"] == 2048
    assert [msg.data for msg in probe.seen if msg.topic.endswith("/event")] == [event], "one event per card, not per copy"
    probe.publish(f"{base}/offload/report", {"v": 1, "event_id": "h2", "hedge": {
        "event": "DiskIdle", "diskType": "Source", "sourcePath": "/Volumes/A002R1"}})
    error = probe.wait_for(on("/offload/error", event_id="h2")).data
    assert "no FileCopyCompleted" in error["reason"]


def test_hedge_failed_copy_fails_the_card(offload_hub, probe_factory):
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    probe.publish(f"{base}/offload/report", {"v": 1, "hedge": hedge_copy("/Volumes/RAID/A002R1")})
    probe.publish(f"{base}/offload/report", {"v": 1, "hedge": {**hedge_copy("/Volumes/Shuttle/A002R1", "Warnings"),
                                                               "reason": "checksum mismatch"}})
    probe.publish(f"{base}/offload/report", {"v": 1, "event_id": "h3", "hedge": {
        "event": "DiskIdle", "diskType": "Source", "sourcePath": "/Volumes/A002R1"}})
    event = probe.wait_for(on("/offload/event", event_id="h3")).data
    assert event["status"] == "warnings" and not event["safe_to_wipe"]
    assert event["errors"][0]["detail"] == "checksum mismatch"


# -- the CLI ----------------------------------------------------------------------------------
def cli(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "setbridge", "offload", *args, "--config", str(config)],
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_cli_report_is_acknowledged_by_the_hub(offload_hub, tmp_path, probe_factory):
    config = write_config(tmp_path / "setbridge.toml", offload_hub.settings)
    args = ("report", "--roll", "A003", "--status", "verified", "--files", "12", "--bytes", "4096",
            "--camera", "A", "--destination", "/raid/A003", "--event-id", "cli-1")
    done = cli(config, *args)
    assert done.returncode == 0, done.stderr
    assert "A003: verified, 1/2 copies, not safe to wipe: 1 of 2 required copies are verified by hash" in done.stdout
    again = cli(config, *args)  # a retry: the same content under the same event_id
    assert again.returncode == 0 and "already accepted" in again.stdout
    body = json.dumps(report(roll="A004", destinations=[copy("/a"), copy("/b")]))
    piped = cli(config, "report", "--json-file", "-", stdin=body)
    assert piped.returncode == 0 and "safe to wipe" in piped.stdout and "not safe" not in piped.stdout
    bad = cli(config, "report", "--roll", "A/5", "--status", "verified")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "roll" in bad.stderr
    hedge = cli(config, "hedge", json.dumps(hedge_copy("/Volumes/RAID/A002R1")))
    assert hedge.returncode == 0 and "idle" in hedge.stdout
    idle = cli(config, "hedge", stdin=json.dumps({"event": "DiskIdle", "diskType": "Source",
                                                  "sourcePath": "/Volumes/A002R1"}))
    assert idle.returncode == 0 and "A002R1: verified, 1/2 copies" in idle.stdout
    listing = cli(config, "list")
    assert listing.returncode == 0
    rows = {line.split()[2]: line for line in listing.stdout.splitlines()[1:]}
    assert set(rows) == {"A003", "A004", "A002R1"} and "yes" in rows["A004"]
    as_json = [json.loads(line) for line in cli(config, "list", "--json").stdout.splitlines()]
    assert {e["roll"] for e in as_json} == set(rows)


def test_cli_without_a_hub_or_broker_says_so(broker, tmp_path):
    settings = make_settings(broker, tmp_path / "state")
    config = write_config(tmp_path / "setbridge.toml", settings)
    no_hub = cli(config, "report", "--roll", "A005", "--status", "verified", "--timeout", "1")
    assert no_hub.returncode == 2 and "no hub answered" in no_hub.stderr and no_hub.stderr.count("\n") == 1
    down = make_settings(PrivateBroker(port=free_port()), tmp_path / "state")  # nothing listens there
    config = write_config(tmp_path / "down.toml", down)
    refused = cli(config, "report", "--roll", "A005", "--status", "verified", "--timeout", "1")
    assert refused.returncode == 1 and "cannot reach the MQTT broker" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "--journal" in refused.stderr
    queued = cli(config, "report", "--roll", "A005", "--status", "verified", "--journal")
    assert queued.returncode == 0 and "journaled A005" in queued.stdout
    assert [e.roll for _, e in Journal(down.hub.state_dir).pending()] == ["A005"]
    empty = cli(write_config(tmp_path / "other.toml", make_settings(broker, tmp_path / "none")), "list")
    assert empty.returncode == 1 and "no offload journal" in empty.stderr


def test_every_input_gives_the_same_normalized_event(offload_hub, tmp_path, probe_factory):
    from setbridge.offload.models import OffloadEvent

    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/event")
    dests = ["/Volumes/RAID/{roll}", "/Volumes/Shuttle/{roll}"]
    probe.publish(f"{base}/offload/report", report(roll="R1", event_id="via-mqtt", files=12, bytes=2048,
                                                    destinations=[{**copy(d.format(roll="R1")), "files": 12, "bytes": 2048}
                                                                  for d in dests]))
    config = write_config(tmp_path / "setbridge.toml", offload_hub.settings)
    args = [a for d in dests for a in ("--destination", d.format(roll="R2"))]
    assert cli(config, "report", "--roll", "R2", "--status", "verified", "--event-id", "via-cli", "--files", "12",
               "--bytes", "2048", *args).returncode == 0
    for d in dests:
        probe.publish(f"{base}/offload/report", {"v": 1, "hedge": {**hedge_copy(d.format(roll="R3")), "sourcePath": "/Volumes/R3"}})
    probe.publish(f"{base}/offload/report", {"v": 1, "event_id": "via-hedge", "hedge": {
        "event": "DiskIdle", "diskType": "Source", "sourcePath": "/Volumes/R3"}})
    events = {}
    for event_id in ("via-mqtt", "via-cli", "via-hedge"):
        data = probe.wait_for(on("/offload/event", event_id=event_id)).data
        events[event_id] = OffloadEvent.model_validate(data)
    assert [e.source for e in events.values()] == ["mqtt", "cli", "hedge"]
    for event in events.values():
        assert event.status == "verified" and event.copies.verified == 2 and event.safe_to_wipe
        assert [d.path for d in event.destinations] == [d.format(roll=event.roll) for d in dests]


def test_offload_list_json_prints_text_from_the_bus_escaped_and_still_json(offload_hub, tmp_path, probe_factory):
    """A tool's error ``detail`` is passed through as the tool said it: C1 controls (``\\x9b`` is CSI
    on many terminals) and bidi overrides reach the terminal only as ``\\u`` escapes."""
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/#")
    detail = "read error\x9b2J\u202eevil\x1b]0;owned\x07\r\nFORGED"
    probe.publish(f"{base}/offload/report", report(roll="A009", status="failed", event_id="esc-1",
                                                    errors=[{"kind": "io", "detail": detail}]))
    probe.wait_for(on("/offload/event", event_id="esc-1"))
    config = write_config(tmp_path / "setbridge.toml", offload_hub.settings)
    out = cli(config, "list", "--json")
    assert out.returncode == 0, out.stderr
    assert not any(ch in out.stdout for ch in "\x9b\u202e\x1b\x07\r"), repr(out.stdout)
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["errors"][0]["detail"] == detail
    table = cli(config, "list")
    assert not any(ch in table.stdout for ch in "\x9b\u202e\x1b\x07\r")


def test_a_report_too_big_to_read_is_answered_with_its_event_id(offload_hub, probe_factory):
    base = offload_hub.topics.base
    probe = probe_factory(f"{base}/offload/error")
    big = json.dumps({"v": 1, "event_id": "too-big-1", "roll": "A011", "status": "verified",
                      "operator": "x" * 200_000})
    probe.publish(f"{base}/offload/report", big)
    error = probe.wait_for(lambda m: m.data is not None and m.data.get("event_id") == "too-big-1").data
    assert error["reason"].startswith("payload is") and "limit" in error["reason"]
