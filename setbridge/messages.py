"""The MQTT contract (v1) as pydantic models: one model per payload.

Every payload is a JSON object with ``"v": 1``. ``docs/mqtt.md`` and
``setbridge schema`` are generated from, or checked against, these models.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import Action, Id
from .errors import PayloadError

MAX_PAYLOAD_BYTES = 64 * 1024
"""Inbound payloads larger than this are rejected unread."""

SetStateName = Literal["idle", "standby", "rolling"]
LightShowing = Literal["idle", "standby", "rolling", "link-lost", "identify", "test"]


def now() -> float:
    """Wall-clock timestamp used in payloads (seconds since the epoch)."""
    return round(time.time(), 3)


def new_id() -> str:
    return uuid.uuid4().hex


class Payload(BaseModel):
    """Base of every payload: versioned, strict about unknown versions."""

    model_config = ConfigDict(extra="ignore")
    v: Literal[1] = 1

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class HubStatus(Payload):
    """``{base}/hub/{hub}/status`` — retained birth and last will."""

    state: Literal["online", "offline"]
    hub: Id
    set: Id
    version: str
    audio: Literal["ok", "fault", "off"] = "off"
    voice: bool | None = None
    """Voice triggers enabled (False when a "voice off" switch is on)."""
    ts: float = Field(default_factory=now)


class SetState(Payload):
    """``{base}/set/{set}/state`` — retained, the set's current state."""

    set: Id
    state: SetStateName
    epoch: int
    seq: int
    take: int
    cause: str
    ts: float = Field(default_factory=now)


class Heartbeat(Payload):
    """``{base}/set/{set}/heartbeat`` — QoS 0, every ``heartbeat_s``."""

    epoch: int
    seq: int
    state: SetStateName
    ts: float = Field(default_factory=now)


class SetEvent(Payload):
    """``{base}/set/{set}/event`` — one per accepted action (changes and no-ops)."""

    event_id: str = Field(default_factory=new_id)
    type: Literal["roll", "cut", "standby", "idle", "restore", "post-roll-end"]
    changed: bool
    """False when the action left the state as it was (a roll while rolling)."""
    state: SetStateName
    cause: str
    source: str | None = None
    phrase: str | None = None
    confidence: float | None = None
    transaction: str | None = None
    epoch: int
    seq: int
    take: int
    ts: float = Field(default_factory=now)


class SetRequest(Payload):
    """``{base}/set/{set}/request`` — from integrators and the CLI."""

    model_config = ConfigDict(extra="forbid")
    action: Action
    transaction: str | None = Field(None, max_length=128)
    source: str | None = Field(None, max_length=128)


class SetResponse(Payload):
    """``{base}/set/{set}/response`` — the hub's answer to a request."""

    transaction: str | None = None
    ok: bool
    error: str | None = None
    state: SetStateName | None = None
    seq: int | None = None
    changed: bool | None = None
    ts: float = Field(default_factory=now)


class LightStatus(Payload):
    """``{base}/light/{light}/status`` — retained birth and last will of a light."""

    state: Literal["online", "offline"]
    fw: str | None = None
    set: str | None = None


class LightState(Payload):
    """``{base}/light/{light}/state`` — retained, what the light shows."""

    showing: LightShowing
    epoch: int | None = None
    seq: int | None = None


class LightCommand(Payload):
    """``{base}/light/{light}/cmd`` — identify or test a light; never retained."""

    action: Literal["identify", "test", "flash"]
    duration_s: float = Field(5.0, gt=0, le=600)
    color: Literal["green", "red", "white", "amber"] | None = None
    """For ``flash``: the colour on NeoPixel lights (single-colour lights blink)."""
    pattern: Literal["slow", "fast"] | None = None


class OffloadError(Payload):
    """``{base}/offload/error`` — a rejected offload report."""

    reason: str
    rejected: str | None = None
    """The start of what was rejected (truncated)."""
    event_id: str | None = None
    """The rejected report's ``event_id``, when it had one (so a sender can match the answer)."""
    duplicate: bool | None = None
    """True when the report was an already accepted ``event_id``: ignored, nothing is lost."""
    source: str | None = None
    """Where the rejected input came from: mqtt, cli, hedge or mhl."""
    ts: float = Field(default_factory=now)


M = TypeVar("M", bound=Payload)


def parse_payload(model: type[M], raw: bytes | str) -> M:
    """Decode and validate ``raw`` as ``model``; raise :class:`PayloadError` with a one-line reason."""
    if isinstance(raw, str):
        raw = raw.encode()
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload is {len(raw)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("payload is nested too deeply") from None
    if not isinstance(data, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(data).__name__}")
    if data.get("v") != 1:
        raise PayloadError(f"unsupported payload version v={data.get('v')!r}; this hub speaks v=1")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "payload"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PayloadError(f"{loc}: {first['msg']}{more}") from None


_TRANSACTION = re.compile(rb'"transaction"\s*:\s*"([^"\\]{1,128})"')


def transaction_of(raw: bytes) -> str | None:
    """Best-effort transaction id of a rejected request, so that it still gets an answer.

    Looks only at the first 4 KiB, so oversized and truncated payloads are answered too.
    """
    if len(raw) <= MAX_PAYLOAD_BYTES:
        try:
            data = json.loads(raw)
            tx = data.get("transaction") if isinstance(data, dict) else None
            return tx[:128] if isinstance(tx, str) else None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            pass
    match = _TRANSACTION.search(raw[:4096])
    return match.group(1).decode("utf-8", "replace") if match else None


def __getattr__(name: str) -> object:
    """``CONTRACT`` (topic pattern → model) is derived from :mod:`setbridge.contract` on first use."""
    if name == "CONTRACT":
        from .contract import payload_models

        return payload_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
