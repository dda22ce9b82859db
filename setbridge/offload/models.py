"""Offload payloads: the raw report integrators send, and the normalized event the hub publishes.

>>> report = parse_report(b'{"v": 1, "roll": "A001", "status": "verified", "files": 3, "bytes": 10}')
>>> event = normalize(report, copies_required=2, ts=time.time())

Whether the card is safe to wipe is decided in :mod:`setbridge.offload.policy`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, ValidationError

from ..errors import PayloadError
from ..codec import one_line, parse_payload
from ..messages import Payload
from .policy import assess

Status = Literal["verified", "warnings", "failed", "cancelled"]
CopyState = Literal["verified", "copied", "warnings", "failed", "cancelled"]
"""A destination's state: ``copied`` means copied but not verified."""
Source = Literal["mqtt", "cli", "hedge", "mhl"]

MAX_FILES = 10_000_000
MAX_BYTES = 10**16  # 10 PB: more than any card or day of cards
_FORBIDDEN_IN_ROLL = set("/\\+#")


def _no_control(value: str) -> str:
    if value.isprintable():  # the common case, fast: nothing of category C (nor a line separator)
        return value
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
    verified_by: Literal["hash", "size"] | None = None
    """How this copy was checked: ``hash`` = its checksums were read back and compared with the
    source's; ``size`` = only file sizes were compared. Only ``hash`` copies count for wiping."""
    files: Count | None = None
    """Files on this copy; must equal the source's ``files`` to count."""
    process: Literal["transfer", "in-place", "flatten", "copy"] | None = None
    generation: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    manifest: PathText | None = None
    bytes: Size | None = None
    duration_s: Annotated[float, Field(ge=0, le=10**7)] | None = None


class Tool(Strict):
    name: Text
    version: Text | None = None


class Transfer(Strict):
    """Which transfer of which card a report belongs to. Reports of one card are combined only
    when they name the same transfer: the tool's own ``id``, or ``source_id`` with ``mount``."""

    id: Text | None = None
    """The offload tool's own job or transfer id."""
    source_id: Text | None = None
    """The card itself: volume UUID, file system serial or the card's serial number."""
    mount: Text | None = None
    """The mount session: mount time or the OS's mount id (a card mounted again is a new session)."""
    source_path: PathText | None = None
    """Where the card was mounted (informative: never an identity)."""
    volume: Text | None = None
    """The card's volume name (informative: never an identity)."""


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
    transfer: Transfer | None = None
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
    """When the sender says it happened; kept as the event's ``reported_ts``, never used for order."""
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
    seq: int | None = None
    """The journal's sequence number: the one order of a card's history (higher is newer)."""
    ts: Timestamp
    """When the hub journaled it."""
    reported_ts: Timestamp | None = None
    """The sender's ``ts``, if it gave one."""
    source: Source | None = None
    transfer_key: str
    """The transfer this event's copies belong to; copies of other transfers are never counted."""
    copies: Copies
    safe_to_wipe: bool
    """See :func:`setbridge.offload.policy.assess`: true only with no entry in ``why_not_safe``."""
    why_not_safe: list[str] = Field(default_factory=list)
    """Every reason the card is not safe to wipe, one line each (empty when it is)."""


class ReportPayload(RootModel[OffloadReport | HedgeReport]):
    """Everything ``{base}/offload/report`` accepts: a report, or one wrapped Hedge script event."""



class _Envelope(Payload):
    model_config = ConfigDict(extra="allow")


def parse_report(raw: bytes | str) -> OffloadReport | HedgeReport:
    """Validate a raw ``offload/report`` payload; raise :class:`PayloadError` with a one-line reason."""
    data = parse_payload(_Envelope, raw).model_dump()
    model: type[OffloadReport] | type[HedgeReport] = HedgeReport if "hedge" in data else OffloadReport
    try:
        return model.model_validate(data, strict=True)  # exact JSON types: true is not 1, "12" is not 12
    except ValidationError as exc:
        raise PayloadError(one_line(exc)) from None


_EVENT_ID = re.compile(rb'"event_id"\s*:\s*("(?:[^"\\]|\\.){1,256}")')


def event_id_of(raw: bytes) -> str | None:
    """Best-effort ``event_id`` of a rejected report, so the sender can match the error (in the
    first 4 KiB of a report too big or too broken to decode)."""
    try:
        data = json.loads(raw) if len(raw) <= 65536 else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        data = None
    if data is None:
        match = _EVENT_ID.search(raw[:4096])
        try:
            data = {"event_id": json.loads(match.group(1))} if match else None
        except (UnicodeDecodeError, ValueError):
            data = None
    value = data.get("event_id") if isinstance(data, dict) else None
    return value[:128] if isinstance(value, str) else None


CANONICAL_EXCLUDED = frozenset({"v", "event_id", "ts", "source"})
"""Fields that are not a report's content: its version, its id, the sender's informative ``ts``
and ``source`` (which the hub fills in from the input it came by)."""


def canonical(item: OffloadReport | HedgeReport) -> bytes:
    """A report's content in one canonical form, to tell a retry from a different report that
    reuses its ``event_id``: the report as validated, without :data:`CANONICAL_EXCLUDED` and without
    fields that are null or absent, each destination's ``state`` filled from the report's status
    as the event fills it, as compact JSON in the model's field order (numbers as the model holds
    them: ``5`` and ``5.0`` in a float field are the same); a Hedge event's own fields sorted."""
    if isinstance(item, HedgeReport):
        return json.dumps(item.hedge, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if any(d.state is None for d in item.destinations):
        item = item.model_copy(update={"destinations": [d if d.state else d.model_copy(update={"state": item.status})
                                                        for d in item.destinations]})
    return item.model_dump_json(exclude=set(CANONICAL_EXCLUDED), exclude_none=True).encode()


def content_digest(item: OffloadReport | HedgeReport) -> str:
    """SHA-256 of :func:`canonical`, as the journal keeps it beside each event."""
    return hashlib.sha256(canonical(item)).hexdigest()


def transfer_key(report: OffloadReport, event_id: str) -> str:
    """The transfer ``report`` belongs to: the tool's job id, or the card's identity with its mount
    session, or (ASC MHL) the content's root hash; otherwise the report stands alone."""
    t = report.transfer
    tool = report.tool.name if report.tool else ""
    if t is not None and t.id:
        return f"job:{tool}:{t.id}"
    if t is not None and t.source_id and t.mount:
        return f"card:{t.source_id}@{t.mount}"
    if report.hash is not None and report.hash.root:
        return f"content:{report.hash.root}"
    return f"report:{event_id}"


def normalize(report: OffloadReport, copies_required: int, previous: OffloadEvent | None = None,
              ts: float | None = None) -> OffloadEvent:
    """The normalized event for ``report``; ``previous`` (the card's last event of the same
    transfer, or None) lends its copies. A destination reported again replaces its earlier state."""
    event_id = report.event_id or uuid.uuid4().hex
    key = transfer_key(report, event_id)
    if previous is not None and (previous.roll != report.roll or previous.transfer_key != key):
        previous = None
    default_state: CopyState = report.status
    fresh = [d if d.state else d.model_copy(update={"state": default_state}) for d in report.destinations]
    merged: dict[str, Destination] = {}
    if previous is not None:
        merged.update((d.path, d) for d in previous.destinations)
    merged.update((d.path, d) for d in fresh)
    destinations = list(merged.values())[-32:]
    fields = report.model_dump(exclude={"v", "event_id", "ts", "source", "destinations"})
    conflicts: list[str] = []
    if previous is not None:
        for name, unit in (("files", "files"), ("bytes", "bytes")):
            before, now_ = getattr(previous, name), fields.get(name)
            if now_ is None:
                fields[name] = before
            elif before is not None and before != now_:
                conflicts.append(f"the reports of this transfer disagree on the source: {before} then {now_} {unit}")
        earlier = previous.model_dump(include={"hash", "camera", "media", "transfer", "tool"})
        for name, value in earlier.items():
            if fields.get(name) is None:
                fields[name] = value
    hashes = HashSummary.model_validate(fields["hash"]) if fields.get("hash") else None
    good, reasons = assess(report.status, report.roll, fields.get("files"), fields.get("bytes"), hashes,
                           destinations, copies_required, conflicts)
    return OffloadEvent(
        **fields,
        event_id=event_id,
        ts=round(ts if ts is not None else time.time(), 3),
        reported_ts=report.ts,
        source=report.source,
        transfer_key=key,
        destinations=destinations,
        copies=Copies(required=copies_required, verified=good),
        safe_to_wipe=not reasons,
        why_not_safe=reasons,
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
