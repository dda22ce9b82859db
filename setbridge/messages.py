"""The MQTT contract (v1) as pydantic models: one model per payload.

Every payload is a JSON object with ``"v": 1``. ``docs/mqtt.md`` and
``setbridge schema`` are generated from, or checked against, these models; inbound payloads are
decoded and validated against them by :mod:`setbridge.codec`.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from .actions import Action, EventType, State
from .ids import Id

SetStateName = State
LightShowing = Literal["idle", "standby", "rolling", "link-lost", "identify", "test"]


def now() -> float:
    """Wall-clock timestamp used in payloads (seconds since the epoch)."""
    return round(time.time(), 3)


def new_id() -> str:
    """A random 32-hex-digit id (UUID version 4). From the process's seeded generator, not the
    OS one: ids only need to be unique, and a burst makes thousands."""
    return uuid.UUID(int=random.getrandbits(128), version=4).hex


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
    offload: Literal["ok", "fault", "off"] = "ok"
    """``fault`` while the offload journal cannot be used (set state and lights are unaffected);
    ``off`` when this hub does not relay offload reports (another hub on the broker does)."""
    offload_reason: str | None = None
    """Why offload is at fault or off, in one line."""
    conflict: str | None = None
    """Another hub serves this set, or relays offload while this one does, in one line."""
    timecode: Literal["ok", "fault", "off"] = "off"
    """The recorder source (LTC timecode, record tally): ``fault`` when it cannot be trusted (voice and
    buttons then act alone), ``off`` when none is configured."""
    timecode_reason: str | None = None
    """Why the recorder source is at fault, in one line."""
    recorder: Literal["recording", "stopped"] | None = None
    """What the recorder source says, when one that starts and stops takes is configured."""
    ts: float = Field(default_factory=now)


MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a JavaScript client (Node-RED's ``Date.now()``) holds exactly."""
Counter = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]
"""``epoch``, ``seq`` and ``take``: 0 to 2**53 - 1, so every reader of the bus (JavaScript pages,
MicroPython lights, SQLite) holds the same number."""


class SetState(Payload):
    """``{base}/set/{set}/state`` — retained, the set's current state."""

    set: Id
    state: SetStateName
    epoch: Counter
    seq: Counter
    take: Counter
    cause: str
    ts: float = Field(default_factory=now)


class Heartbeat(Payload):
    """``{base}/set/{set}/heartbeat`` — QoS 0, every ``heartbeat_s``."""

    epoch: Counter
    seq: Counter
    state: SetStateName
    ts: float = Field(default_factory=now)


class SetEvent(Payload):
    """``{base}/set/{set}/event`` — one per accepted action (changes and no-ops)."""

    event_id: str = Field(default_factory=new_id)
    type: EventType
    changed: bool
    """False when the action left the state as it was (a roll while rolling)."""
    state: SetStateName
    cause: str
    source: str | None = None
    phrase: str | None = None
    confidence: float | None = None
    transaction: str | int | None = None
    epoch: Counter
    seq: Counter
    take: Counter
    timecode: str | None = None
    """The recorder's code ``HH:MM:SS:FF`` when a timecode source is configured: its first code for a
    roll and its last for a cut the recorder caused, else the latest code read."""
    fps: float | None = None
    """The timecode's frame rate (23.976, 24, 25, 29.97, 30)."""
    drop_frame: bool | None = None
    """True for drop-frame code (29.97 DF)."""
    overruled: bool | None = None
    """True for a voice action the recorder overruled (a cut while it records); the state did not change."""
    reason: str | None = None
    """Why the hub overruled or reverted an action, in one line."""
    ts: float = Field(default_factory=now)


MAX_TRANSACTION_CHARS = 128

Transaction = Annotated[str, Field(min_length=1, max_length=MAX_TRANSACTION_CHARS)] | Annotated[
    int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
"""A request's transaction: a string of 1-128 characters or an integer within ±(2**53 - 1)."""


_JSON_NAMES = {bool: "a boolean", float: "a number with a fraction", dict: "an object", list: "an array"}


class SetRequest(Payload):
    """``{base}/set/{set}/request`` — from integrators and the CLI. Unknown fields are ignored."""

    action: Action
    transaction: Transaction | None = None
    source: str | None = Field(None, max_length=128)
    sent_at: float | None = Field(None, allow_inf_nan=False)
    """When the request was sent (seconds since the epoch): the hub refuses one older than
    ``[hub] request_max_age_s``. (Not ``ts``: clients were told they may add a ``ts`` of their own.)"""
    deadline: float | None = Field(None, allow_inf_nan=False)
    """The request must not run after this (seconds since the epoch): the age limit of an MQTT 3.1.1
    client, which has no Message Expiry."""

    @field_validator("transaction", mode="before")
    @classmethod
    def _one_clear_reason(cls, value: Any) -> Any:
        if value is None or (type(value) is str and 1 <= len(value) <= MAX_TRANSACTION_CHARS) or (
                type(value) is int and abs(value) <= MAX_SAFE_INTEGER):
            return value
        got = (f"a {len(value)}-character string" if isinstance(value, str) else
               "an integer out of range" if type(value) is int else _JSON_NAMES.get(type(value), "another type"))
        raise ValueError(f"must be a string of 1-{MAX_TRANSACTION_CHARS} characters or an integer within "
                         f"±{MAX_SAFE_INTEGER}, got {got}; the answer echoes it")


_COMPACT = json.JSONEncoder(separators=(",", ":"))
"""``json.dumps(..., separators=(",", ":"))`` without building an encoder per call."""


class SetResponse(Payload):
    """``{base}/set/{set}/response`` — the hub's answer to a request."""

    transaction: JsonValue = None
    """The request's transaction, echoed as the same JSON value (also when it was refused)."""
    ok: bool
    error: str | None = None
    state: SetStateName | None = None
    seq: Counter | None = None
    changed: bool | None = None
    retry_after_s: float | None = None
    """Set on a "busy" refusal: send the request again (same transaction) after this many seconds."""
    ts: float = Field(default_factory=now)

    def to_bytes(self) -> bytes:
        # pydantic's encoder is the quickest; its output is kept when it is plain printable ASCII (then
        # it is byte for byte what json.dumps writes). json.dumps escapes the rest (non-ASCII, DEL), and
        # what pydantic cannot encode at all (a refused transaction's lone surrogate).
        try:
            quick = self.model_dump_json(exclude_none=True).encode()
        except ValueError:
            quick = b""
        if quick and quick.isascii() and b"\x7f" not in quick:
            return quick
        tx = self.transaction
        if tx is None or type(tx) is str or type(tx) is int:  # every field a plain value: no model_dump needed
            data = {k: v for k, v in self.__dict__.items() if v is not None}
        else:
            data = self.model_dump(exclude_none=True)
        return _COMPACT.encode(data).encode()


class LightStatus(Payload):
    """``{base}/light/{light}/status`` — retained birth and last will of a light."""

    state: Literal["online", "offline"]
    fw: str | None = None
    set: str | None = None


class LightState(Payload):
    """``{base}/light/{light}/state`` — retained, what the light shows."""

    showing: LightShowing
    epoch: Counter | None = None
    seq: Counter | None = None


class LightAlive(Payload):
    """``{base}/light/{light}/alive`` — QoS 0, not retained, every ``every_s`` while the light runs."""

    showing: LightShowing | Literal["flash"]
    every_s: float = Field(gt=0)
    """The light's own period; judge it not alive after 3 s (or 3 × ``every_s``, if longer) of silence."""
    epoch: Counter | None = None
    seq: Counter | None = None


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
    conflict: bool | None = None
    """True when the report reused an accepted ``event_id`` with other content: refused, and the card
    it names is published again as not safe to wipe."""
    source: str | None = None
    """Where the rejected input came from: mqtt, cli, hedge or mhl."""
    ts: float = Field(default_factory=now)


def __getattr__(name: str) -> object:
    """``CONTRACT`` (topic pattern → model) is derived from :mod:`setbridge.contract` on first use."""
    if name == "CONTRACT":
        from .contract import payload_models

        return payload_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
