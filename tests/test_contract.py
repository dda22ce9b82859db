"""docs/mqtt.md, the firmware and the payload models describe the contract setbridge/contract.py
declares, and contract v1 stays what it was byte for byte."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from setbridge import contract
from setbridge.broker.config import acl_text
from setbridge.contract import TOPICS
from setbridge.sim.lights import FIRMWARE_DIR
from setbridge.errors import PayloadError
from setbridge.codec import parse_payload
from setbridge.messages import CONTRACT, Heartbeat, LightAlive, LightState, SetEvent, SetRequest, SetResponse, SetState
from setbridge.topics import Topics

DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt.md"


def doc_examples() -> dict[str, list[str]]:
    """Topic heading → the JSON examples below it."""
    sections: dict[str, list[str]] = {}
    current = None
    for block in re.split(r"^### ", DOC.read_text(), flags=re.M)[1:]:
        heading, _, body = block.partition("\n")
        current = heading.strip().strip("`")
        sections[current] = re.findall(r"```json\n(.*?)\n```", body, flags=re.S)
    return sections


@pytest.mark.parametrize("pattern", sorted(CONTRACT))
def test_every_topic_is_documented_with_valid_examples(pattern):
    examples = doc_examples().get(f"{{base}}/{pattern}")
    assert examples, f"docs/mqtt.md has no section with an example for {{base}}/{pattern}"
    for example in examples:
        parse_payload(CONTRACT[pattern], example)


def test_every_documented_topic_is_in_the_table():
    table = DOC.read_text().split("## Hub")[0]
    for topic in doc_examples():
        assert f"`{topic}`" in table


@pytest.mark.integration
def test_schema_command_prints_every_payload():
    out = subprocess.run([sys.executable, "-m", "setbridge", "schema"], capture_output=True, text=True, check=True)
    schemas = json.loads(out.stdout)
    assert set(schemas) == {f"{{base}}/{p}" for p in CONTRACT}
    assert schemas["{base}/set/{set}/request"]["properties"]["action"]["enum"] == ["roll", "cut", "standby", "idle"]


@pytest.mark.parametrize("raw, reason", [
    (b"nope", "not JSON"),
    (b"[]", "JSON object"),
    (b'{"action": "roll"}', "version"),
    (b'{"v": "1", "action": "roll"}', "version"),
    (b'{"v": 1, "action": "dance"}', "action"),
    (b'{"v": true, "action": "roll"}', "v: unsupported"),
    (b'{"v": 1.0, "action": "roll"}', "v: unsupported"),
    (b'{"v": 1, "v": 1, "action": "roll"}', "v: duplicate key"),
    (b'{"v": 1, "action": "roll", "action": "cut"}', "action: duplicate key"),
    (b'{"v": 1, "action": "roll", "source": "\\ud800"}', "source: contains a lone UTF-16 surrogate"),
    (b'{"v": 1, "action": "roll", "tags": ["ok", "\\udc00"]}', "tags.1: contains a lone UTF-16 surrogate"),
    (b'{"v": 1, "action": "roll", "source": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate as bytes
    ('{"v": 1, "action": "roll"}'.encode("utf-16"), "not UTF-8"),
    (b'{"v": 1, "action": "roll", "x": NaN}', "not valid JSON"),
    (b'{"v": 1, "action": "roll", "x": 1e400}', "out of range"),
    (b'{"v": 1, "action": "roll", "x": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b'{"v": 1, "action": "roll", "transaction": true}', "transaction"),
    (b'{"v": 1, "action": "roll", "transaction": 1.5}', "transaction"),
    (b'{"v": 1, "action": "roll", "transaction": 9007199254740992}', "transaction"),
    (b'{"v": 1, "action": "roll", "transaction": "' + b"t" * 129 + b'"}', "transaction"),
    (b'{"v": 1, "action": "roll", "source": 7}', "source"),
    (b'{"v": 1}', "action"),
    (b"[" * 100000, "bytes"),
])
def test_bad_requests_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(PayloadError, match=reason) as info:
        parse_payload(SetRequest, raw)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("model, field", [(m, f) for m in (SetState, Heartbeat, SetEvent) for f in ("epoch", "seq")]
                         + [(LightState, "seq"), (LightAlive, "epoch"), (SetState, "take")])
def test_epoch_seq_and_take_stay_within_what_every_json_reader_holds(model, field):
    base = {"set": "main", "state": "idle", "epoch": 1, "seq": 1, "take": 1, "cause": "test", "type": "roll",
            "changed": True, "showing": "idle", "every_s": 1.0}
    fields = {k: v for k, v in base.items() if k in model.model_fields}
    parse_payload(model, json.dumps({"v": 1, **fields, field: 2**53 - 1}))
    for too_big in (2**53, 10**23):
        with pytest.raises(PayloadError, match=field):
            parse_payload(model, json.dumps({"v": 1, **fields, field: too_big}))


def test_a_leading_byte_order_mark_is_ignored():
    assert parse_payload(SetRequest, b'\xef\xbb\xbf{"v": 1, "action": "cut"}').action == "cut"


def test_unknown_fields_are_ignored_so_older_hubs_accept_newer_clients():
    request = parse_payload(SetRequest, b'{"v": 1, "action": "roll", "ts": 1795399504.0, "priority": {"x": 1}}')
    assert request.action == "roll"


@pytest.mark.parametrize("tx", ["a7f3", 1795399504123, 0, -5, "t" * 128])
def test_a_transaction_is_a_string_or_a_safe_integer(tx):
    assert parse_payload(SetRequest, json.dumps({"v": 1, "action": "roll", "transaction": tx})).transaction == tx


@pytest.mark.parametrize("raw, expected", [
    (b'{"v": 2, "action": "roll", "transaction": 1795399504123}', 1795399504123),
    (b'{"v": 1, "transaction": "' + b"t" * 300 + b'"}', "t" * 300),
    (b'{"v": 1, "transaction": {"id": [1, 2]}}', {"id": [1, 2]}),
    (b'{"v": 1, "action": "roll", "transaction": "\\ud800"}', "\ud800"),
    (b'not json "transaction": "tx-\\"quoted\\""', 'tx-"quoted"'),
    (b'{"v": 1, "pad": "' + b"x" * 70000 + b'", "transaction": "late"}', None),
    (b'{"v": 1, "transaction": 42, "pad": "' + b"x" * 70000 + b'"}', 42),
    (b'{"v": 1, "action": "roll"}', None),
    (b'{"v": 1, "action": "roll", "transaction": null}', None),
])
def test_the_transaction_of_a_rejected_request_is_found_exactly(raw, expected):
    from setbridge.codec import MISSING, transaction_of

    found = transaction_of(raw)
    assert (None if found is MISSING else found) == expected
    assert type(None if found is MISSING else found) is type(expected)


def test_a_response_echoes_a_refused_transaction_as_the_same_json_value():
    from setbridge.messages import SetResponse

    for tx in (42, "\ud800", "녹음", {"id": [1, 2]}, 1.5):
        data = json.loads(SetResponse(transaction=tx, ok=False, error="x").to_bytes())
        assert data["transaction"] == tx and type(data["transaction"]) is type(tx)


@pytest.mark.parametrize("field, value", [("files", True), ("files", "12"), ("bytes", 1.5), ("duration_s", "3")])
def test_offload_reports_take_exact_json_types(field, value):
    from setbridge.offload.models import parse_report

    report = {"v": 1, "roll": "A001", "status": "verified", field: value}
    with pytest.raises(PayloadError, match=f"^{field}: "):
        parse_report(json.dumps(report))


# -- the declaration against the docs, the firmware and v1 as shipped ----------------------------

ROLE_WORDS = {"hub": "hub", "light": "light", "integrator": "integrator"}


def doc_table() -> dict[str, tuple[str, str, str]]:
    """``docs/mqtt.md``'s topic table: pattern below the base → (writer, retained, QoS)."""
    rows = re.findall(r"^\| `\{base\}/([^`]+)` \| (.*?) \| (.*?) \| (.*?) \|$", DOC.read_text(), flags=re.M)
    return {pattern: (writer, retained, qos) for pattern, writer, retained, qos in rows}


def test_the_docs_topic_table_is_the_declaration():
    table = doc_table()
    assert list(table) == [t.pattern for t in TOPICS], "docs/mqtt.md's table lists other topics than setbridge/contract.py"
    for t in TOPICS:
        writer, retained, qos = table[t.pattern]
        assert retained == ("yes" if t.retain else "no"), f"{t.pattern}: docs say retained {retained}"
        assert qos == str(t.qos), f"{t.pattern}: docs say QoS {qos}"
        named = {role for role, word in ROLE_WORDS.items() if word in writer}
        assert named == set(t.writers), f"{t.pattern}: docs name writers {writer!r}, declared {t.writers}"


def test_the_firmware_copy_matches_the_declaration(monkeypatch):
    monkeypatch.syspath_prepend(str(FIRMWARE_DIR))  # payloads.py imports its neighbour strictjson.py
    spec = importlib.util.spec_from_file_location("firmware_payloads", FIRMWARE_DIR / "payloads.py")
    assert spec and spec.loader
    payloads = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(payloads)
    uses = {t.name for t in TOPICS if "light" in t.readers or "light" in t.writers}
    assert set(payloads.TOPICS) == uses
    for name, (pattern, qos, retain) in payloads.TOPICS.items():
        declared = contract.BY_NAME[name]
        assert (pattern, qos, retain) == (declared.pattern, declared.qos, declared.retain), name
    ids = {"set": "stage-a", "hub": "pi", "light": "door-1"}
    assert payloads.topic("setbridge", "light_state", ids) == "setbridge/light/door-1/state"


V1 = [  # (topic, QoS, retained) exactly as contract v1 shipped
    ("setbridge/hub/pi/status", 1, True),
    ("setbridge/set/stage-a/state", 1, True),
    ("setbridge/set/stage-a/heartbeat", 0, False),
    ("setbridge/set/stage-a/event", 1, False),
    ("setbridge/set/stage-a/request", 1, False),
    ("setbridge/set/stage-a/response", 1, False),
    ("setbridge/light/door-1/status", 1, True),
    ("setbridge/light/door-1/state", 1, True),
    ("setbridge/light/door-1/alive", 0, False),
    ("setbridge/light/door-1/cmd", 1, False),
    ("setbridge/offload/report", 1, False),
    ("setbridge/offload/event", 1, False),
    ("setbridge/offload/card/A002R2EC", 1, True),
    ("setbridge/offload/error", 1, False),
]


def test_v1_topics_qos_and_retain_are_unchanged():
    t = Topics("setbridge")
    built = [t.hub_status("pi"), t.set_state("stage-a"), t.set_heartbeat("stage-a"), t.set_event("stage-a"),
             t.set_request("stage-a"), t.set_response("stage-a"), t.light_status("door-1"), t.light_state("door-1"),
             t.light_alive("door-1"), t.light_cmd("door-1"), t.offload_report(), t.offload_event(), t.offload_card("A002R2EC"),
             t.offload_error()]
    assert built == [topic for topic, _, _ in V1]
    for topic, qos, retain in V1:
        spec = contract.lookup("setbridge", topic)
        assert spec is not None and (spec.qos, spec.retain) == (qos, retain), topic
    assert contract.lookup("setbridge", "setbridge/set/stage-a/other") is None
    assert contract.lookup("setbridge", "other/set/stage-a/state") is None


def test_v1_payload_bytes_are_unchanged():
    state = SetState(set="stage-a", state="rolling", epoch=12, seq=431, take=27, cause="voice", ts=1795399504.011)
    assert state.to_bytes() == (b'{"v":1,"set":"stage-a","state":"rolling","epoch":12,"seq":431,"take":27,'
                                b'"cause":"voice","ts":1795399504.011}')
    assert Heartbeat(epoch=1, seq=2, state="idle", ts=3.5).to_bytes() == b'{"v":1,"epoch":1,"seq":2,"state":"idle","ts":3.5}'


HOME_ASSISTANT_ACL = {  # discovery: only a hub publishes it; Home Assistant (an integrator) reads it
    "integrator": {"topic read homeassistant/#", "topic write homeassistant/status"},
    "hub": {"topic readwrite homeassistant/device/+/config", "topic read homeassistant/status"},
}
SET_READ = {f"topic read b/set/+/{name}" for name in ("state", "heartbeat", "event", "response")}
"""What integrators and monitors read of the set: no longer ``set/#``, which held everyone's private answers."""
V1_ACL = {  # what the hand-written ACL granted each role (v1 plus the light's alive topic, less others' answers)
    "integrator": {*SET_READ, "topic readwrite b/set/+/request", "topic read b/hub/+/status",
                   "topic read b/light/+/status", "topic read b/light/+/state", "topic read b/light/+/alive",
                   "topic read b/offload/#", "topic write b/offload/report", "topic write b/light/+/cmd"},
    "light": {"topic readwrite b/light/u/status", "topic readwrite b/light/u/state", "topic write b/light/u/alive",
              "topic read b/light/u/cmd",
              "topic read b/set/+/state", "topic read b/set/+/heartbeat", "topic read b/hub/+/status"},
    "hub": {"topic readwrite b/#"},
    "monitor": {*SET_READ, "topic read b/set/+/request", "topic read b/hub/+/status", "topic read b/light/#",
                "topic read b/offload/#"},
}


@pytest.mark.parametrize("role", sorted(V1_ACL))
def test_the_generated_acl_grants_what_v1_granted(role):
    lines = acl_text({"u": role}, base="b").split("user u\n")[1].strip().splitlines()
    assert len(lines) == len(set(lines)) and set(lines) == V1_ACL[role] | HOME_ASSISTANT_ACL.get(role, set())


def test_every_user_reads_its_own_answers_only():
    head = acl_text({"u": "integrator"}, base="b").split("user u\n")[0]
    assert "pattern read b/set/+/response/%u/#" in head.splitlines()


def test_the_hub_publishes_with_the_declared_qos_and_retain(hub, probe_factory):
    base = hub.topics.base
    live = probe_factory(f"{base}/#")
    live.publish(hub.topics.set_request("stage-t"), {"v": 1, "action": "roll", "transaction": "wire"})
    live.publish(hub.topics.offload_report(), {"v": 1, "roll": "A001", "status": "verified", "files": 1, "bytes": 1})
    live.publish(hub.topics.offload_report(), b"junk")
    for end in ("/response", "/event", "/offload/event", "/offload/card/A001", "/offload/error", "/heartbeat"):
        live.wait_for(lambda t, d, r, end=end: t.endswith(end))
    for topic, qos in live.qos.items():
        spec = contract.lookup(base, topic)
        assert spec is not None and qos == spec.qos, f"{topic} arrived with QoS {qos}"
    later = probe_factory(f"{base}/#")
    later.wait_for(lambda t, d, r: t.endswith("/heartbeat") and not r)  # retained messages come first
    retained = {contract.lookup(base, t).name for t, _, r in list(later.seen) if r}
    assert retained == {"hub_status", "set_state", "offload_card"}


def test_the_bus_takes_qos_and_retain_from_the_declaration(settings, topics, probe_factory):
    from setbridge.bus import Bus

    bus = Bus(settings.mqtt, "contract-bus")
    bus.start()
    try:
        assert bus.wait_connected(5)
        state = topics.set_state("stage-c")
        with pytest.raises(ValueError, match="declared QoS 1, retain True"):
            bus.publish(state, b"{}", retain=False)
        sent = bus.publish(state, b'{"v": 1}')
        assert sent.wait(5) and (sent.qos, sent.retain) == (1, True)
        beat = bus.publish(topics.set_heartbeat("stage-c"), b'{"v": 1}')
        assert beat.wait(5) and beat.qos == 0
        probe = probe_factory(state)
        probe.wait_for(lambda t, d, r: r and d == {"v": 1})
        assert bus.publish(state, b"", retain=True).wait(5)  # clearing a retained message
        fresh = probe_factory(topics.base + "/set/stage-c/#")
        bus.publish(topics.set_heartbeat("stage-c"), b'{"v": 1, "after": true}')
        fresh.wait_for(lambda t, d, r: t.endswith("/heartbeat"))  # retained messages would come first
        assert [t for t, _, _ in fresh.seen] == [topics.set_heartbeat("stage-c")]
    finally:
        bus.stop()


@pytest.mark.integration
def test_the_declaration_loads_without_the_payload_models():
    """Every CLI command imports the contract (through the broker ACL); it must stay cheap."""
    code = ("import sys, setbridge.contract as c, setbridge.broker.config; "
            "assert 'setbridge.offload.models' not in sys.modules and 'pydantic' not in sys.modules; "
            "print(c.OFFLOAD_CARD.model.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "OffloadEvent"


@pytest.mark.parametrize("text", [chr(c) for c in range(0x80)] + ["\u00e9", "\u2028", "\U0001f600", "\ud800"])
def test_an_answer_is_written_as_compact_ascii_json_whatever_it_holds(text):
    """Every answer is the JSON ``json.dumps`` writes (ASCII, non-ASCII escaped), whichever encoder writes it."""
    for answer in (SetResponse(transaction="a" + text, ok=False, error="e" + text, state="idle", seq=1),
                   SetResponse(transaction={"k" + text: [1, None, text]}, ok=False, error="x", retry_after_s=1.0)):
        expected = json.dumps(answer.model_dump(exclude_none=True), separators=(",", ":")).encode()
        assert answer.to_bytes() == expected
