"""Read an ASC MHL history with the ``ascmhl`` library (never its CLI, which goes online) and turn
each generation into an offload report.

A generation with a ``failed`` hash or missing files is a failed report; a history whose chain
does not match its manifests (modified or missing manifest, unreadable chain) is a failed report
for the whole folder.
"""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..codec import one_line
from ..errors import PayloadError
from .models import Destination, ErrorItem, HashSummary, OffloadReport, Tool, iso_ts, stable_id


FOLDER = "ascmhl"
CHAIN = "ascmhl_chain.xml"
MAX_ERRORS = 50
_NAME_TIME = re.compile(r"_(\d{4}-\d{2}-\d{2})_(\d{6})Z$")


class MhlError(Exception):
    """The history could not be read or does not match its chain; ``str()`` says why."""


class NotAFile(Exception):
    """Something in the ``ascmhl`` folder is not a regular file (a FIFO, a device, a socket): reading it
    could block for ever or never end, so the history is skipped; ``str()`` says which, in one line."""


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def check_regular(root: Path) -> None:
    """Raise :class:`NotAFile` unless everything below ``root/ascmhl`` (the chain, the manifests, anything
    the library might open) is a regular file or a folder; symbolic links count as what they point to."""
    folder = root / FOLDER
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            _check_file(root, Path(dirpath) / name)
    # the chain names the manifests it expects; a name may lead out of the folder ("../x.mhl")
    from ascmhl import chain_xml_parser  # imported late: it pulls in lxml

    try:
        chain = chain_xml_parser.parse(str(folder / CHAIN))
    except Exception:  # any parse error: the library says it when the history is read
        return
    for generation in chain.generations or []:
        manifest = getattr(generation, "ascmhl_filename", None)
        if manifest:
            _check_file(root, folder / str(manifest))


def _check_file(root: Path, path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # a dangling link or a file gone meanwhile: the library reports what it misses
    if not stat.S_ISREG(mode):
        kind = next((what for test, what in _KINDS if test(mode)), "not a regular file")
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        raise NotAFile(f"ASC MHL history {root} skipped: {shown} is {kind}, not a regular file (only regular "
                       "files are read); replace it with the file the offload tool wrote")


def _load(root: Path) -> Any:
    from ascmhl.history import MHLHistory  # imported late: it pulls in click and lxml

    try:
        return MHLHistory.load_from_path(str(root))
    except Exception as exc:  # ascmhl raises click exceptions, lxml and OS errors alike
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise MhlError(" ".join(str(message).split())) from None


def _started_at(manifest: str) -> float | None:
    match = _NAME_TIME.search(Path(manifest).stem)
    if not match:
        return None
    parsed = datetime.strptime(match.group(1) + match.group(2), "%Y-%m-%d%H%M%S")
    return parsed.replace(tzinfo=timezone.utc).timestamp()


def _process(hash_list: Any) -> str | None:
    process = hash_list.process_info.process
    name = getattr(process, "process_type", process)
    return name if name in ("transfer", "in-place", "flatten") else None


def generation_reports(root: Path, since: float = 0.0) -> list[OffloadReport]:
    """One report per generation of the history at ``root`` created at or after ``since``.

    Raises :class:`MhlError` when the history is unreadable or its chain does not match, and
    :class:`NotAFile` (before reading anything) when its folder holds anything but regular files.
    """
    check_regular(root)
    history = _load(root)
    chain_hashes = {int(g.generation_number): g.hash_string for g in (history.chain.generations if history.chain else [])}
    reports = []
    seen_paths: set[str] = set()
    for hash_list in history.hash_lists:
        files = [m for m in hash_list.media_hashes if not m.is_directory]
        paths = {m.path for m in files}
        missing = sorted(seen_paths - paths)
        seen_paths |= paths
        creator = hash_list.creator_info
        ts = iso_ts(creator.creation_date if creator else None)
        if ts is not None and ts < since:
            continue
        reports.append(_report(root, hash_list, files, missing, chain_hashes.get(hash_list.generation_number), ts))
    return reports


def _report(root: Path, hash_list: Any, files: list[Any], missing: list[str], chain_hash: str | None,
            ts: float | None) -> OffloadReport:
    formats: set[str] = set()
    counts = {"original": 0, "verified": 0, "failed": 0}
    errors: list[ErrorItem] = []
    for media in files:
        actions = set()
        for entry in media.hash_entries:
            formats.add(entry.hash_format)
            actions.add(entry.action)
        outcome = "failed" if "failed" in actions else "verified" if "verified" in actions else "original"
        counts[outcome] += 1
        if outcome == "failed" and len(errors) < MAX_ERRORS:
            errors.append(ErrorItem(kind="hash_mismatch", path=media.path, detail="hash differs from the earlier record"))
    for path in missing[: max(0, MAX_ERRORS - len(errors))]:
        errors.append(ErrorItem(kind="missing", path=path, detail="recorded in an earlier generation, not found"))
    root_hash = None
    root_media = hash_list.process_info.root_media_hash
    if root_media is not None and root_media.hash_entries:
        entry = root_media.hash_entries[0]
        root_hash = f"{entry.hash_format}:{entry.hash_string}"
    failed = counts["failed"] > 0 or bool(missing)
    manifest_name = Path(hash_list.file_path).name
    creator = hash_list.creator_info
    tool = Tool(name=creator.tool.name, version=creator.tool.version) if creator and creator.tool and creator.tool.name else None
    operator = creator.authors[0].name if creator and creator.authors and creator.authors[0].name else None
    status = "failed" if failed else "verified"
    try:
        return OffloadReport(
            event_id=stable_id("mhl", root, hash_list.generation_number, manifest_name, chain_hash),
            source="mhl",
            status=status,
            roll=root.name,
            files=len(files),
            bytes=sum(m.file_size or 0 for m in files),
            hash=HashSummary(formats=sorted(formats), missing=len(missing), root=root_hash, **counts),
            destinations=[Destination(path=str(root), state=status, process=_process(hash_list),
                                      verified_by="hash", files=len(files), bytes=sum(m.file_size or 0 for m in files),
                                      generation=hash_list.generation_number, manifest=f"{FOLDER}/{manifest_name}")],
            tool=tool,
            host=creator.host_name if creator else None,
            operator=operator,
            errors=errors,
            started_at=_started_at(manifest_name),
            ts=ts,
        )
    except ValidationError as exc:
        raise PayloadError(f"{root}: {one_line(exc)}") from None


def broken_history_report(root: Path, reason: str, signature: object) -> OffloadReport:
    """A failed report for a history that does not load (``signature`` makes its id stable)."""
    try:
        return OffloadReport(
            event_id=stable_id("mhl-broken", root, signature, reason),
            source="mhl",
            status="failed",
            roll=root.name,
            destinations=[Destination(path=str(root), state="failed")],
            errors=[ErrorItem(kind="manifest", path=f"{FOLDER}/{CHAIN}", detail=reason[:2000])],
        )
    except ValidationError as exc:
        raise PayloadError(f"{root}: {one_line(exc)}") from None
