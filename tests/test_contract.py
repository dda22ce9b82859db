"""docs/mqtt.md and the payload models describe the same contract."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from setbridge.errors import PayloadError
from setbridge.messages import CONTRACT, SetRequest, parse_payload

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
    from setbridge.messages import MISSING, transaction_of

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
