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
    (b'{"v": 1, "action": "roll", "extra": 1}', "extra"),
    (b'{"v": 1}', "action"),
    (b"[" * 100000, "bytes"),
])
def test_bad_requests_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(PayloadError, match=reason) as info:
        parse_payload(SetRequest, raw)
    assert "\n" not in str(info.value)
