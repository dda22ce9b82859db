"""Offload payloads: the raw report integrators send, and the normalized event the hub publishes.

>>> report = parse_report(b'{"v": 1, "roll": "A001", "status": "verified", "files": 3, "bytes": 10}')
>>> event = normalize(report, copies_required=2)
"""

from __future__ import annotations

import json
import time
import unicodedata
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, ValidationError

from ..errors import PayloadError
from ..messages import Payload, parse_payload

Status = Literal["verified", "warnings", "failed", "cancelled"]
CopyState = Literal["verified", "copied", "warnings", "failed", "cancelled"]
"""A destination's state: ``copied`` means copied but not verified."""
Source = Literal["mqtt", "cli", "hedge", "mhl"]

MAX_FILES = 10_000_000
MAX_BYTES = 10**16  # 10 PB: more than any card or day of cards
_FORBIDDEN_IN_ROLL = set("/\\+#")


def _no_control(value: str) -> str:
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _roll_name(value: str) -> str:
    _no_control(value)
    if set(value) & _FORBIDDEN_IN_ROLL:
        raise ValueError("must not contain / \\ + or # (it names an MQTT topic level)")
    if value != value.strip() or value in (".", ".."):
        raise ValueError("must not be . or .. or start or end with whitespace")
    return value


Roll = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_roll_name)]
"""A card or roll name, e.g. ``A002R2EC``; it becomes the topic level ``offload/card/{roll}``."""
Text = Annotated[str, Field(max_length=256), AfterValidator(_no_control)]
"""Short single-line text: names, hosts, paths."""
PathText = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_no_control)]
EventId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Count = Annotated[int, Field(ge=0, le=MAX_FILES)]
Size = Annotated[int, Field(ge=0, le=MAX_BYTES)]
Timestamp = Annotated[float, Field(ge=0, le=32503680000)]  # before the year 3000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HashSummary(Strict):
    """Hash formats and per-file outcomes."""

    formats: list[Annotated[str, Field(pattern=r"^[a-z0-9]{1,16}$")]] = Field(default_factory=list, max_length=8)
    original: Count = 0
    """Files hashed for the first time (first seal)."""
    verified: Count = 0
    """Files whose hash matched an earlier record."""
    failed: Count = 0
    """Files whose hash did not match."""
    missing: Count = 0
    """Files recorded earlier but not found."""
    root: Annotated[str, Field(max_length=160)] | None = None
    """Root content hash as ``format:hex`` (the receipt to compare before wiping)."""


class Destination(Strict):
    """One copy of the card."""

    path: PathText
    name: Text | None = None
    state: CopyState | None = None
    """Filled from the report's status when not given."""
    process: Literal["transfer", "in-place", "flatten", "copy"] | None = None
    generation: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    manifest: PathText | None = None
    bytes: Size | None = None
    duration_s: Annotated[float, Field(ge=0, le=10**7)] | None = None


class Tool(Strict):
    name: Text
    version: Text | None = None


class ErrorItem(Strict):
    """What went wrong, passed through as the tool said it."""

    kind: Annotated[str, Field(pattern=r"^[a-z][a-z_-]{0,31}$")]
    path: PathText | None = None
    detail: Annotated[str, Field(max_length=2000)] | None = None


class ReportFields(Strict):
    """Fields a report and an event share."""

    status: Status
    roll: Roll
    camera: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$")] | None = None
    media: Literal["camera", "sound", "other"] | None = None
    files: Count | None = None
    bytes: Size | None = None
    hash: HashSummary | None = None
    destinations: list[Destination] = Field(default_factory=list, max_length=32)
    tool: Tool | None = None
    host: Text | None = None
    operator: Text | None = None
    errors: list[ErrorItem] = Field(default_factory=list, max_length=100)
    started_at: Timestamp | None = None
    duration_s: Annotated[float, Field(ge=0, le=10**7)] | None = None


class OffloadReport(ReportFields, Payload):
    """``{base}/offload/report`` — what an integrator, the CLI or a watcher says about one card."""

    model_config = ConfigDict(extra="forbid")
    event_id: EventId | None = None
    """Chosen by the sender to make retries safe; the hub makes one when absent."""
    ts: Timestamp | None = None
    source: Source | None = None


class HedgeReport(Payload):
    """``{base}/offload/report`` carrying one Hedge script event, as ``setbridge offload hedge`` sends it."""

    model_config = ConfigDict(extra="forbid")
    hedge: dict[str, Any]
    event_id: EventId | None = None
    """The id the card's combined event gets when this event completes it."""


class Copies(Strict):
    required: int
    verified: int


class OffloadEvent(ReportFields, Payload):
    """``{base}/offload/event`` and (retained) ``{base}/offload/card/{roll}`` — one card's normalized status."""

    model_config = ConfigDict(extra="ignore")
    event_id: EventId
    ts: Timestamp
    source: Source | None = None
    copies: Copies
    safe_to_wipe: bool
    """At least ``copies.required`` verified copies, status verified, and nothing failed."""


class ReportPayload(RootModel[OffloadReport | HedgeReport]):
    """Everything ``{base}/offload/report`` accepts: a report, or one wrapped Hedge script event."""



class _Envelope(Payload):
    model_config = ConfigDict(extra="allow")


def one_line(exc: ValidationError) -> str:
    """The first validation error as ``field: message (and N more)``."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc}: {first['msg']}{more}"


def parse_report(raw: bytes | str) -> OffloadReport | HedgeReport:
    """Validate a raw ``offload/report`` payload; raise :class:`PayloadError` with a one-line reason."""
    data = parse_payload(_Envelope, raw).model_dump()
    model: type[OffloadReport] | type[HedgeReport] = HedgeReport if "hedge" in data else OffloadReport
    try:
        return model.model_validate(data, strict=True)  # exact JSON types: true is not 1, "12" is not 12
    except ValidationError as exc:
        raise PayloadError(one_line(exc)) from None


def event_id_of(raw: bytes) -> str | None:
    """Best-effort ``event_id`` of a rejected report, so the sender can match the error."""
    try:
        data = json.loads(raw) if len(raw) <= 65536 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    value = data.get("event_id") if isinstance(data, dict) else None
    return value[:128] if isinstance(value, str) else None


def _root_conflict(a: HashSummary | None, b: HashSummary | None) -> bool:
    return bool(a and b and a.root and b.root and a.root != b.root)


def normalize(report: OffloadReport, copies_required: int, previous: OffloadEvent | None = None) -> OffloadEvent:
    """The normalized event for ``report``; copies of the same card from ``previous`` are kept.

    ``previous`` is the card's last event; it is merged unless its root hash differs (another card
    with the same name). A destination reported again replaces its earlier state.
    """
    default_state: CopyState = report.status
    fresh = [d if d.state else d.model_copy(update={"state": default_state}) for d in report.destinations]
    merged: dict[str, Destination] = {}
    if previous is not None and previous.roll == report.roll and not _root_conflict(previous.hash, report.hash):
        merged.update((d.path, d) for d in previous.destinations)
    merged.update((d.path, d) for d in fresh)
    destinations = list(merged.values())[-32:]
    verified = sum(1 for d in destinations if d.state == "verified")
    nothing_failed = all(d.state != "failed" for d in destinations) and not (report.hash and (report.hash.failed or report.hash.missing))
    fields = report.model_dump(exclude={"v", "event_id", "ts", "source", "destinations"})
    return OffloadEvent(
        **fields,
        event_id=report.event_id or uuid.uuid4().hex,
        ts=report.ts or round(time.time(), 3),
        source=report.source,
        destinations=destinations,
        copies=Copies(required=copies_required, verified=verified),
        safe_to_wipe=report.status == "verified" and verified >= copies_required and nothing_failed,
    )


def stable_id(*parts: object) -> str:
    """A deterministic event id for inputs seen again after a restart (MHL generations)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "setbridge-offload:" + "\x1f".join(map(str, parts))).hex


def iso_ts(value: str | None) -> float | None:
    """Seconds since the epoch from an ISO 8601 date, or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()
