"""Hedge (OffShoot, FoolCat) script events → offload reports.

Hedge runs a script per event. ``FileCopyCompleted`` fires once per destination, so the copies
are kept (in the journal) until ``DiskIdle`` arrives for the source; then one report for the
card combines them. Field names vary between Hedge versions, so several spellings are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError

from ..errors import PayloadError
from .models import CopyState, Destination, ErrorItem, OffloadReport, Status, one_line

COPY_EVENT = "FileCopyCompleted"
IDLE_EVENT = "DiskIdle"
OTHER_EVENTS = {"DiskAdded", "DiskBusy", "DiskRemoved"}
_EVENT_KEYS = ("event", "_event", "eventType", "type", "name")


def _get(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in data and data[key] not in (None, ""):
            return data[key]
    return None


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"hedge.{field}: expected a non-empty string")
    return value.strip()


def _number(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise PayloadError(f"hedge.{field}: expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PayloadError(f"hedge.{field}: expected a number, got {str(value)[:40]!r}") from None
    if not 0 <= number < 1e17:
        raise PayloadError(f"hedge.{field}: {number:g} is out of range")
    return number


def _yes(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("yes", "true", "1"))


def _started(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def event_name(data: dict[str, Any]) -> str:
    name = _get(data, *_EVENT_KEYS)
    if not isinstance(name, str):
        raise PayloadError("hedge: no event name (expected one of the keys " + ", ".join(_EVENT_KEYS) + ")")
    return name.strip()


def source_key(path: str) -> str:
    """The source a copy belongs to: its path without a trailing slash."""
    return path.rstrip("/\\") or path


@dataclass(frozen=True)
class HedgeCopy:
    """One ``FileCopyCompleted``: one destination of one source."""

    source: str
    destination: str
    state: CopyState
    bytes: int | None
    duration_s: float | None
    started_at: float | None
    reason: str | None
    roll: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_copy(data: dict[str, Any]) -> HedgeCopy:
    """Map a ``FileCopyCompleted`` payload; raise :class:`PayloadError` naming the bad field."""
    source = source_key(_text(_get(data, "sourcePath", "source", "_sourcePath"), "sourcePath"))
    destination = _text(_get(data, "destinationPath", "destination", "_destinationPath"), "destinationPath")
    state = str(_get(data, "state", "status", "_status") or "").strip().lower()
    verified = _yes(_get(data, "verified", "_verified"))
    mapped: CopyState
    if state in ("success", "succeeded", "completed", "done"):
        mapped = "verified" if verified else "copied"
    elif state in ("warnings", "warning"):
        mapped = "warnings"
    elif state in ("failed", "failure", "error"):
        mapped = "failed"
    elif state in ("cancelled", "canceled"):
        mapped = "cancelled"
    else:
        raise PayloadError(f"hedge.state: unknown copy state {state[:40]!r}; expected Success, Warnings, Failed or Cancelled")
    size = _number(_get(data, "bytesCopied", "totalSize"), "bytesCopied")
    info = data.get("_sourceInfo")
    roll = _get(info, "Source Name", "sourceName", "name") if isinstance(info, dict) else None
    reason = _get(data, "reason", "error", "_error")
    return HedgeCopy(source=source, destination=destination, state=mapped,
                     bytes=int(size) if size is not None else None,
                     duration_s=_number(_get(data, "duration"), "duration"),
                     started_at=_started(_get(data, "startedAt")),
                     reason=str(reason)[:2000] if reason is not None else None,
                     roll=str(roll) if roll is not None else None)


@dataclass(frozen=True)
class HedgeIdle:
    """A ``DiskIdle``: ``is_source`` tells whether the source's transfers are all done."""

    path: str
    is_source: bool
    has_failed: bool


def parse_idle(data: dict[str, Any]) -> HedgeIdle:
    path = source_key(_text(_get(data, "sourcePath", "diskPath", "path", "volumePath", "source"), "sourcePath"))
    disk_type = str(_get(data, "diskType", "_diskType") or "Source").strip().lower()
    return HedgeIdle(path=path, is_source=disk_type == "source", has_failed=_yes(_get(data, "hasFailedTransfers")))


def _status(states: list[str], has_failed: bool) -> Status:
    if has_failed or "failed" in states:
        return "failed"
    if "warnings" in states or "copied" in states:
        return "warnings"
    if "cancelled" in states:
        return "cancelled"
    return "verified"


def combine(copies: list[dict[str, Any]], idle: HedgeIdle, event_id: str | None) -> OffloadReport:
    """The card's report from its stored copies (``HedgeCopy.as_dict()``) once the source is idle."""
    items = [HedgeCopy(**c) for c in copies]
    latest: dict[str, HedgeCopy] = {}
    for item in items:
        latest[item.destination] = item  # a retried destination replaces its earlier attempt
    states = [c.state for c in latest.values()]
    errors = [ErrorItem(kind="copy", path=c.destination, detail=c.reason or f"copy {c.state}")
              for c in latest.values() if c.state != "verified"]
    roll = next((c.roll for c in items if c.roll), None) or PurePath(idle.path).name
    starts = [c.started_at for c in items if c.started_at is not None]
    durations = [c.duration_s for c in items if c.duration_s is not None]
    sizes = [c.bytes for c in items if c.bytes is not None]
    try:
        return OffloadReport(
            event_id=event_id,
            source="hedge",
            status=_status(states, idle.has_failed),
            roll=roll,
            bytes=max(sizes) if sizes else None,
            destinations=[Destination(path=c.destination, state=c.state, process="copy", bytes=c.bytes,
                                      duration_s=c.duration_s) for c in latest.values()][:32],
            tool={"name": "Hedge"},
            errors=errors[:100],
            started_at=min(starts) if starts else None,
            duration_s=max(durations) if durations else None,
        )
    except ValidationError as exc:
        raise PayloadError(f"hedge: {one_line(exc)}") from None
