"""examples/setbridge.toml loads, and documents every key of the settings model."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from setbridge.config import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "setbridge.toml"


def leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += leaf_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_example_config_loads():
    settings = load_settings(EXAMPLE)
    assert settings.hub.heartbeat_s == 1.0


def test_example_config_documents_every_key():
    text = EXAMPLE.read_text()
    sections = re.split(r"^\[([^\]]+)\]\s*$", text, flags=re.M)
    by_section = {sections[i]: sections[i + 1] for i in range(1, len(sections), 2)}
    missing = []
    for key in leaf_keys(Settings):
        section, _, name = key.rpartition(".")
        body = by_section.get(section, "")
        if not re.search(rf"^#?\s*{re.escape(name)}\s*=", body, flags=re.M) and f"[{key}]" not in text:
            missing.append(key)
    assert not missing, f"examples/setbridge.toml does not document: {missing}"
