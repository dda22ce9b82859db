"""The hub's log under a client that loops on a bad, refused or repeated request (counted lines,
not one per request), and text from the bus in the log escaped (real Mosquitto, real hub)."""

from __future__ import annotations

import json
import logging
import re

from conftest import HubProcess, Probe, write_config

LOOPS = 300


def test_a_client_looping_on_bad_requests_does_not_flood_the_log(hub, topics, probe_factory, caplog):
    p = probe_factory(topics.set_response("stage-t"))
    request = topics.set_request("stage-t")
    hub.submit("roll", cause="test")
    caplog.set_level(logging.INFO, logger="setbridge.hub")
    kinds = {
        "malformed": lambda i: {"v": 2, "action": "roll", "transaction": f"m{i}"},
        "refused": lambda i: {"v": 1, "action": "standby", "source": "loop", "transaction": f"r{i}"},
        "repeated": lambda i: {"v": 1, "action": "standby", "source": "loop", "transaction": "r0"},
    }
    for make in kinds.values():
        for i in range(LOOPS):
            p.client.publish(request, json.dumps(make(i)), qos=1)
    # every request is answered, each exactly once
    expected = 2 * LOOPS + LOOPS  # m0..m299, r0..r299, then r0 again 300 times
    p.wait_for(lambda t, d, r: len([x for x in p.seen if x[0].endswith("/response")]) >= expected, timeout=30)
    answers = [d for t, d, _ in p.seen if t.endswith("/response")]
    assert len(answers) == expected and not any(a["ok"] for a in answers)
    assert hub.state == "rolling"
    for words in ("malformed request", "refused", "repeated transaction"):
        lines = [r.getMessage() for r in caplog.records if words in r.getMessage()]
        assert 1 <= len(lines) <= 3, f"{len(lines)} log lines for {words}: {lines[:3]}"


def test_text_from_the_bus_reaches_the_hubs_log_escaped(settings, tmp_path, broker):
    """A request's ``source`` with a newline and escape sequences: one log line, nothing raw."""
    hub = HubProcess(write_config(tmp_path / "hub.toml", settings)).start()
    base = settings.mqtt.base_topic
    probe = Probe(broker.port, f"{base}/set/#")
    try:
        probe.wait_for(lambda t, d, r: t.endswith("/state") and d is not None, timeout=20)
        request = f"{base}/set/{settings.hub.set}/request"
        probe.publish(request, {"v": 1, "action": "roll", "transaction": "t1"})
        probe.wait_for(lambda t, d, r: t.endswith("/response") and d and d.get("transaction") == "t1")
        forged = "wall\x1b[2K\r\n2026-01-01 00:00:00 INFO setbridge: FORGED cut\x1b]0;owned\x07"
        probe.publish(request, {"v": 1, "action": "standby", "source": forged, "transaction": "t2"})
        probe.wait_for(lambda t, d, r: t.endswith("/response") and d and d.get("transaction") == "t2")
        assert hub.terminate() == 0
    finally:
        probe.close()
        hub.kill()
    assert hub.proc is not None and hub.proc.stdout is not None
    out = hub.proc.stdout.read().decode()
    refused = [line for line in out.splitlines() if "refused" in line]
    assert len(refused) == 1 and "\\x1b[2K" in refused[0] and "FORGED" in refused[0], out[-800:]
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert not [line for line in out.splitlines() if "FORGED" in line and not line.startswith(refused[0][:19])]



def test_a_sender_looping_on_a_bad_report_does_not_flood_the_log(hub, topics, probe_factory, caplog):
    errors = probe_factory(topics.offload_error())
    caplog.set_level(logging.INFO, logger="setbridge.offload")
    for i in range(LOOPS):
        errors.client.publish(topics.offload_report(), json.dumps(
            {"v": 1, "event_id": f"bad-{i}", "roll": "A001", "status": "verified", "files": "12"}), qos=1)

    def accounted() -> tuple[list[str], int]:
        """The reports answered one by one, and how many more a ``shed:`` notice counted (answers
        beyond the hub's offload window are summed up, never silently dropped)."""
        answered = [d["event_id"] for _, d, _ in errors.seen if d and d.get("event_id")]
        shed = sum(int(re.match(r"shed: (\d+) ", d["reason"]).group(1)) for _, d, _ in errors.seen
                   if d and str(d.get("reason", "")).startswith("shed: "))
        return answered, shed

    errors.wait_for(lambda t, d, r: len(accounted()[0]) + accounted()[1] >= LOOPS, timeout=30)
    answered, shed = accounted()
    assert len(answered) + shed == LOOPS and set(answered) <= {f"bad-{i}" for i in range(LOOPS)}
    assert len(set(answered)) == len(answered), "each report answered once"
    lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert 1 <= len(lines) <= 3 and "files" in lines[0], lines[:3]
