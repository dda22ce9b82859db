"""Requests as integrators send them, against a real Mosquitto and hub: strict known fields,
unknown fields ignored, every transaction echoed exactly, repeats answered without acting."""

from __future__ import annotations

import json
import logging

import pytest

from setbridge.hub.transactions import TransactionLog
from setbridge.messages import SetResponse


def ask(probe, topics, payload: bytes | dict, tx) -> dict:
    """Publish a request and return the response whose transaction is exactly ``tx`` (same JSON type)."""
    probe.publish(topics.set_request("stage-t"), payload)
    data = probe.wait_for(lambda m: m.topic.endswith("/response") and m.data is not None and "transaction" in m.data
                                and m.data["transaction"] == tx and type(m.data["transaction"]) is type(tx)).data
    return data


def test_an_unknown_field_is_ignored_and_the_request_runs(hub, topics, probe_factory):
    p = probe_factory(topics.set_response("stage-t"))
    answer = ask(p, topics, {"v": 1, "action": "roll", "transaction": "x1", "ts": 1795399504.0, "via": "node-red"}, "x1")
    assert answer["ok"] is True and answer["state"] == "rolling" and hub.state == "rolling"


def test_a_numeric_transaction_is_echoed_as_the_same_number(hub, topics, probe_factory):
    p = probe_factory(topics.set_response("stage-t"))
    now_ms = 1795399504123  # what Node-RED's Date.now() gives
    answer = ask(p, topics, {"v": 1, "action": "roll", "transaction": now_ms}, now_ms)
    assert answer["ok"] is True and answer["state"] == "rolling"
    raw = [m.data for m in p.seen if m.data and m.data.get("transaction") == now_ms]
    assert raw and isinstance(raw[0]["transaction"], int)


@pytest.mark.parametrize("tx, field", [
    ("t" * 129, "transaction"),
    (1.5, "transaction"),
    (True, "transaction"),
    ({"id": 7}, "transaction"),
    (2**53, "transaction"),
])
def test_a_refused_transaction_is_answered_with_it_exactly_and_changes_nothing(hub, topics, probe_factory, tx, field):
    p = probe_factory(topics.set_response("stage-t"))
    answer = ask(p, topics, {"v": 1, "action": "roll", "transaction": tx}, tx)
    assert answer["ok"] is False and answer["error"].startswith(f"{field}:") and "\n" not in answer["error"]
    assert answer["state"] == "idle" and hub.state == "idle"


@pytest.mark.parametrize("payload, field", [
    (b'{"v": true, "action": "roll", "transaction": "s1"}', "v:"),
    (b'{"v": 1.0, "action": "roll", "transaction": "s1"}', "v:"),
    (b'{"v": 1, "action": "roll", "action": "cut", "transaction": "s1"}', "action: duplicate key"),
    (b'{"v": 1, "action": "roll", "source": 5, "transaction": "s1"}', "source:"),
    (b'{"v": 1, "action": "roll", "source": "\xed\xa0\x80", "transaction": "s1"}', "payload is not UTF-8"),
])
def test_wrong_types_and_duplicate_keys_are_refused_in_one_line(hub, topics, probe_factory, caplog, payload, field):
    p = probe_factory(topics.set_response("stage-t"))
    with caplog.at_level(logging.WARNING, logger="setbridge"):
        answer = ask(p, topics, payload, "s1")
    assert answer["ok"] is False and answer["error"].startswith(field)
    assert hub.state == "idle"
    lines = [r for r in caplog.records if "malformed request" in r.getMessage()]
    assert len(lines) == 1 and topics.set_request("stage-t") in lines[0].getMessage() and field in lines[0].getMessage()


def test_a_lone_surrogate_is_refused_in_one_line_without_a_traceback(hub, topics, probe_factory, caplog):
    p = probe_factory(topics.set_response("stage-t"))
    with caplog.at_level(logging.DEBUG):
        answer = ask(p, topics, b'{"v": 1, "action": "roll", "transaction": "\\ud800"}', "\ud800")
    assert answer["ok"] is False and "surrogate" in answer["error"] and hub.state == "idle"
    assert not [r for r in caplog.records if r.exc_info], "a traceback reached the log"
    rejected = [r.getMessage() for r in caplog.records if "malformed request" in r.getMessage()]
    assert len(rejected) == 1 and "transaction: contains a lone UTF-16 surrogate" in rejected[0]
    assert ask(p, topics, {"v": 1, "action": "roll", "transaction": "after"}, "after")["ok"] is True


def test_a_repeated_transaction_gets_its_first_answer_and_changes_nothing(hub, topics, probe_factory):
    events = probe_factory(topics.set_event("stage-t"))
    p = probe_factory(topics.set_response("stage-t"))
    first = ask(p, topics, {"v": 1, "action": "roll", "transaction": "take-1", "source": "ipad"}, "take-1")
    assert first["ok"] is True and first["state"] == "rolling"
    cut = ask(p, topics, {"v": 1, "action": "cut", "transaction": "cut-1", "source": "ipad"}, "cut-1")
    assert cut["state"] == "idle"
    seq = hub.controller.seq
    events.wait_for(lambda m: m.data and m.data.get("transaction") == "cut-1")
    seen_events = len(events.seen)
    p.seen.clear()
    retry = ask(p, topics, {"v": 1, "action": "roll", "transaction": "take-1", "source": "ipad"}, "take-1")
    assert retry == first, "a retry must get the first answer, byte for byte"
    assert hub.state == "idle" and hub.controller.seq == seq
    reused = ask(p, topics, {"v": 1, "action": "standby", "transaction": "cut-1", "source": "ipad"}, "cut-1")
    assert reused["ok"] is False and "already used" in reused["error"]
    assert hub.state == "idle" and hub.controller.seq == seq
    # The next new request's event comes right after; no event was published for the repeats.
    ask(p, topics, {"v": 1, "action": "standby", "transaction": "sb-1"}, "sb-1")
    events.wait_for(lambda m: m.data and m.data.get("transaction") == "sb-1")
    assert [msg.data.get("transaction") for msg in events.seen[seen_events:]] == ["sb-1"]


def test_42_and_the_string_42_are_different_transactions(hub, topics, probe_factory):
    p = probe_factory(topics.set_response("stage-t"))
    assert ask(p, topics, {"v": 1, "action": "roll", "transaction": 42}, 42)["state"] == "rolling"
    assert ask(p, topics, {"v": 1, "action": "cut", "transaction": "42"}, "42")["state"] == "idle"


def test_answers_are_forgotten_after_the_window_and_memory_is_bounded():
    clock = [0.0]
    log = TransactionLog(window_s=600, capacity=3, share=3, clock=lambda: clock[0])
    answer = SetResponse(transaction="a", ok=True, state="rolling", seq=3)
    log.remember("a", ("roll", None), answer)
    clock[0] = 599
    assert log.recall("a", ("roll", None)) is answer
    clock[0] = 601
    assert log.recall("a", ("roll", None)) is None
    for i in range(10):
        log.remember(i, ("roll", None), SetResponse(transaction=i, ok=True))
    assert len(log) == 3 and log.recall(0, ("roll", None)) is None and log.recall(9, ("roll", None)) is not None
    refused = log.recall(9, ("cut", None))
    assert refused is not None and refused.ok is False and json.loads(refused.to_bytes())["transaction"] == 9


def test_one_source_forgets_its_own_oldest_answers_never_another_sources():
    log = TransactionLog(window_s=600, capacity=8, share=2)
    first = SetResponse(transaction="cut-1", ok=True, state="idle", seq=2)
    log.remember("cut-1", ("cut", "editorial"), first, source="editorial")
    for i in range(100):
        log.remember(f"noop-{i}", ("idle", "script"), SetResponse(transaction=f"noop-{i}", ok=True), source="script")
    assert log.recall("cut-1", ("cut", "editorial")) is first
    assert log.held_by("script") == 2 and log.recall("noop-97", ("idle", "script")) is None
    assert log.recall("noop-99", ("idle", "script")) is not None
