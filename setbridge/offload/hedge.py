"""Hedge (OffShoot, FoolCat) script events → offload reports.

Hedge runs a script per event and hands it the event's parameters, each named after its event
(``FileCopyCompleted_destinationPath``, ``DiskAdded_mountedAt``); the prefix is optional here, and
older spellings are accepted. ``FileCopyCompleted`` fires once per destination, so the copies are
kept (in the journal) until ``DiskIdle`` arrives for the source; then one report combines them.

Copies are held per transfer of one card: the mount path together with the card's name from
``sourceInfo``, its mount time and the tool's transfer id when the script passes them. A
``DiskAdded`` or ``DiskRemoved`` for that path, or copies of another card at the same path, end
the transfer: its copies become an incomplete (``cancelled``) report and never join another card.

A copy counts as verified by hash only when the script passes OffShoot's verification mode and it
is "Source & Destination" (every destination read back and compared); "Transfer" and "Source"
compare destination sizes only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import PurePath
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ValidationError

from ..codec import one_line
from ..errors import PayloadError
from .models import CopyState, Destination, ErrorItem, OffloadReport, Status, Transfer

COPY_EVENT = "FileCopyCompleted"
IDLE_EVENT = "DiskIdle"
MOUNT_EVENTS = {"DiskAdded", "DiskRemoved"}
OTHER_EVENTS = {"DiskBusy", "DisksIdle", "CheckpointIssue", "VerificationIssue", "OffShootStarted"}
KNOWN_EVENTS = {COPY_EVENT, IDLE_EVENT, *MOUNT_EVENTS, *OTHER_EVENTS}
_EVENT_KEYS = ("event", "_event", "eventType", "type", "name")
_HASH_MODES = {"source & destination", "source and destination", "source-and-destination", "archive",
               "checkpoint on (archive)"}
_SIZE_MODES = {"transfer", "source", "backup", "checkpoint off", "checkpoint on (backup)"}


def unprefixed(data: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(event name from the parameters' ``Event_`` prefix, the parameters without it)."""
    events = {k.split("_", 1)[0] for k in data if "_" in k.strip("_") and k.split("_", 1)[0] in KNOWN_EVENTS}
    name = next(iter(events)) if len(events) == 1 else None
    if name is None:
        return None, data
    cut = len(name) + 1
    return name, {(k[cut:] if k.startswith(name + "_") else k): v for k, v in data.items()}


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
        name, _ = unprefixed(data)
    if not isinstance(name, str):
        raise PayloadError("hedge: no event name (expected one of the keys " + ", ".join(_EVENT_KEYS)
                           + ", or parameters named like FileCopyCompleted_state)")
    return name.strip()


def _params(data: dict[str, Any]) -> dict[str, Any]:
    return unprefixed(data)[1]


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
    verified_by: Literal["hash", "size"] | None = None
    files: int | None = None
    source_files: int | None = None
    source_bytes: int | None = None
    mounted_at: str | None = None
    transfer_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def group(self) -> tuple[str, str, str, str]:
        """The transfer this copy belongs to (see the module docstring)."""
        return (self.source, self.roll or "", self.mounted_at or "", self.transfer_id or "")


def parse_copy(data: dict[str, Any]) -> HedgeCopy:
    """Map a ``FileCopyCompleted`` payload; raise :class:`PayloadError` naming the bad field."""
    data = _params(data)
    sources = _get(data, "sourcePath", "sourcePaths", "source", "_sourcePath")
    if isinstance(sources, list) and len(sources) == 1:
        sources = sources[0]
    source = source_key(_text(sources, "sourcePath"))
    destination = _text(_get(data, "destinationPath", "destination", "_destinationPath"), "destinationPath")
    state = str(_get(data, "state", "status", "_status") or "").strip().lower()
    mode = str(_get(data, "verificationMode", "verification") or "").strip().lower()
    verified = _yes(_get(data, "verified", "_verified")) or mode in _HASH_MODES or mode in _SIZE_MODES
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
    size = _number(_get(data, "bytesCopied"), "bytesCopied")
    info = _get(data, "sourceInfo", "_sourceInfo")
    if isinstance(info, str):
        try:
            info = json.loads(info)
        except ValueError:
            raise PayloadError("hedge.sourceInfo: expected a JSON object") from None
    roll = _get(info, "Source Name", "sourceName", "label", "name") if isinstance(info, dict) else None
    reason = _get(data, "reason", "error", "_error")
    files = _number(_get(data, "filesCopied", "fileCount"), "filesCopied")
    source_files = _number(_get(data, "sourceFileCount", "totalFiles"), "sourceFileCount")
    source_bytes = _number(_get(data, "totalSize", "sourceSize"), "totalSize")
    transfer = _get(data, "transferId", "transferID", "jobId")
    mounted = _get(data, "mountedAt")
    return HedgeCopy(source=source, destination=destination, state=mapped,
                     bytes=int(size) if size is not None else None,
                     duration_s=_number(_get(data, "duration"), "duration"),
                     started_at=_started(_get(data, "startedAt")),
                     reason=str(reason)[:2000] if reason is not None else None,
                     roll=str(roll)[:64] if roll is not None else None,
                     verified_by="hash" if mode in _HASH_MODES else "size" if mode in _SIZE_MODES else None,
                     files=int(files) if files is not None else None,
                     source_files=int(source_files) if source_files is not None else None,
                     source_bytes=int(source_bytes) if source_bytes is not None else None,
                     mounted_at=str(mounted)[:64] if mounted is not None else None,
                     transfer_id=str(transfer)[:128] if transfer is not None else None)


@dataclass(frozen=True)
class HedgeIdle:
    """A ``DiskIdle``: ``is_source`` tells whether the source's transfers are all done."""

    path: str
    is_source: bool
    has_failed: bool


def parse_idle(data: dict[str, Any]) -> HedgeIdle:
    data = _params(data)
    path = source_key(_text(_get(data, "sourcePath", "rootFilePath", "diskPath", "path", "volumePath", "source"),
                            "sourcePath"))
    disk_type = str(_get(data, "diskType", "_diskType") or "Source").strip().lower()
    return HedgeIdle(path=path, is_source=disk_type == "source", has_failed=_yes(_get(data, "hasFailedTransfers")))


def parse_mount(data: dict[str, Any]) -> str:
    """The path of a ``DiskAdded`` / ``DiskRemoved``."""
    data = _params(data)
    return source_key(_text(_get(data, "rootFilePath", "diskPath", "path", "volumePath", "sourcePath"), "rootFilePath"))


def groups(copies: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Held copies split by transfer, in the order each transfer's last copy arrived."""
    by_group: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    last: dict[tuple[str, str, str, str], int] = {}
    for n, c in enumerate(copies):
        key = HedgeCopy(**c).group
        by_group.setdefault(key, []).append(c)
        last[key] = n
    return [by_group[k] for k in sorted(by_group, key=last.__getitem__)]


def _status(states: Sequence[str], has_failed: bool) -> Status:
    if has_failed or "failed" in states:
        return "failed"
    if "warnings" in states or "copied" in states:
        return "warnings"
    if "cancelled" in states:
        return "cancelled"
    return "verified"


def combine(copies: list[dict[str, Any]], idle: HedgeIdle | None, event_id: str | None,
            incomplete: str | None = None) -> OffloadReport:
    """The card's report from one transfer's stored copies (``HedgeCopy.as_dict()``) once the
    source is idle; with ``incomplete`` (why it ended early) a ``cancelled`` report."""
    items = [HedgeCopy(**c) for c in copies]
    path = items[0].source
    latest: dict[str, HedgeCopy] = {}
    for item in items:
        latest[item.destination] = item  # a retried destination replaces its earlier attempt
    states = [c.state for c in latest.values()]
    errors = [ErrorItem(kind="copy", path=c.destination, detail=c.reason or f"copy {c.state}")
              for c in latest.values() if c.state != "verified"]
    if incomplete:
        errors.insert(0, ErrorItem(kind="incomplete", path=path, detail=incomplete[:2000]))
    roll = next((c.roll for c in items if c.roll), None) or PurePath(path).name or path
    first = items[0]
    transfer = Transfer(id=first.transfer_id, mount=first.mounted_at, source_path=path, volume=PurePath(path).name or None)
    source_files = next((c.source_files for c in items if c.source_files is not None), None)
    source_bytes = next((c.source_bytes for c in items if c.source_bytes is not None), None)
    starts = [c.started_at for c in items if c.started_at is not None]
    durations = [c.duration_s for c in items if c.duration_s is not None]
    try:
        return OffloadReport(
            event_id=event_id,
            source="hedge",
            status="cancelled" if incomplete else _status(states, idle.has_failed if idle else False),
            roll=roll,
            files=source_files,
            bytes=source_bytes,
            destinations=[Destination(path=c.destination, state=c.state, process="copy", bytes=c.bytes, files=c.files,
                                      verified_by=c.verified_by,
                                      duration_s=c.duration_s) for c in latest.values()][:32],
            transfer=transfer,
            tool={"name": "Hedge"},
            errors=errors[:100],
            started_at=min(starts) if starts else None,
            duration_s=max(durations) if durations else None,
        )
    except ValidationError as exc:
        raise PayloadError(f"hedge: {one_line(exc)}") from None
