"""The safe-to-wipe rule: when a card may be formatted for the next take.

A card is safe to wipe only after **one transfer of one known card** left enough copies that are
each verified by hash and hold the source's file count and bytes. In full (see ``docs/mqtt.md``,
Offload), every one of these must hold, and :func:`assess` names each one that does not:

- the report's status is ``verified``;
- the card is known by its roll or reel name, never only by a generic volume name that many cards
  share (``NO NAME``, ``Untitled 2``, ``EOS_DIGITAL``, ``NIKON D850``: :func:`generic_name`);
- the source's file count and bytes are known, and no file failed its hash or went missing;
- every copy of the transfer is ``verified`` with ``verified_by: "hash"`` and holds the source's file
  count and bytes; at least ``copies_required`` such copies exist, all of this one transfer (copies
  of other transfers are never counted: :func:`setbridge.offload.models.transfer_key`);
- there is no conflict: reports of the transfer that disagree on the source, or an ``event_id``
  reused with other content, are reasons in themselves, so a conflict is never safe.

What "verified" means follows the offload tools: a copy counts only when its checksums were read back
from the destination and compared (OffShoot's "Source & Destination" mode, Silverstack's "all
destinations" coverage, an ASC MHL generation). A size comparison alone (OffShoot's "Transfer" and
"Source" modes) is a copy, not a verified one.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Destination, HashSummary, OffloadEvent

GENERIC_VOLUME_NAMES = frozenset({
    # what operating systems and formatting tools name a volume they were given no name for
    "noname", "untitled", "untitledfolder", "newvolume", "localdisk", "removabledisk", "removable", "usbdisk",
    "usbdrive", "usb", "disk", "volume", "drive", "card", "memorycard", "sdcard", "sd", "sdhc", "sdxc", "microsd",
    "cfcard", "cf", "cfast", "cfexpress", "xqd", "sxs", "msdos", "fat", "fat32", "exfat", "ntfs", "hfs", "apfs",
    "data", "backup", "media", "storage", "boot", "recovery",
    # what cameras and recorders name every card they format
    "eosdigital", "canondc", "canon", "nikon", "nikond", "nikonz", "sony", "private", "xdcam", "avchd", "dcim",
    "lumix", "panasonic", "camsd", "gopro", "hero", "dji", "fujifilm", "olympus", "omsystem", "leica", "ricoh",
    "pentax", "sigma", "hasselblad", "insta360", "kodak", "zcam", "blackmagic", "bmpcc", "atomos", "ninja", "shogun",
    "red", "redmag", "arri", "codex", "camera", "recorder", "zoom", "tascam", "mixpre", "sounddevices",
    # what card makers name a card before it is formatted
    "sandisk", "lexar", "kingston", "samsung", "transcend", "prograde", "angelbird", "delkin", "toshiba", "kioxia",
    "pny", "sonytough",
})
"""Volume names, in :func:`name_key` form, that cameras, recorders, operating systems and card makers
give every card; they identify no card."""
_NOT_ALNUM = re.compile(r"[\W_]+")
_TRAILING_DIGITS = re.compile(r"\d+$")


def name_key(name: str) -> str:
    """``name`` as it is compared with :data:`GENERIC_VOLUME_NAMES`: NFKC (full-width letters become
    plain ones), case-folded, without spaces, underscores or punctuation (``NO_NAME``, ``NO  NAME``,
    ``ＮＯ ＮＡＭＥ`` and ``no.name`` are all ``noname``)."""
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", name).casefold())


def generic_name(name: str) -> bool:
    """Whether ``name`` is a name every card of some camera gets (``NO NAME``, ``Untitled 2``,
    ``EOS_DIGITAL``, ``NIKON D850``): its :func:`name_key`, with or without a trailing number
    (a counter or a model number), is a generic name, or nothing is left of it."""
    key = name_key(name)
    return not key or key in GENERIC_VOLUME_NAMES or _TRAILING_DIGITS.sub("", key) in GENERIC_VOLUME_NAMES


def _fmt_count(value: int | None, unit: str) -> str:
    return "not reported" if value is None else f"{value} {unit}"


def assess(status: str, roll: str, files: int | None, size: int | None, hashes: HashSummary | None,
           destinations: Sequence[Destination], copies_required: int, conflicts: Sequence[str]) -> tuple[int, list[str]]:
    """(copies verified by hash with the source's file count and bytes, every reason not to wipe).

    Safe to wipe exactly when the reasons are empty: the status is ``verified``; the roll is not a
    generic volume name; the source's file count and bytes are known; no file failed or is missing;
    every copy is verified by hash with the same file count and bytes as the source; and at least
    ``copies_required`` such copies exist in this one transfer.
    """
    reasons = list(conflicts)
    if status != "verified":
        reasons.append(f"status is {status}")
    if generic_name(roll):
        reasons.append(f"the card is known only by the generic volume name {roll!r}, which many cards share; "
                       "report it under its roll or reel name")
    if files is None:
        reasons.append("the source's file count is not reported")
    if size is None:
        reasons.append("the source's size in bytes is not reported")
    if hashes is not None and (hashes.failed or hashes.missing):
        reasons.append(f"{hashes.failed} files failed hash verification and {hashes.missing} are missing")
    good = 0
    for d in destinations:
        problems = []
        if d.state != "verified":
            problems.append(f"it is {d.state}")
        if d.verified_by != "hash":
            problems.append("it was verified by file size only" if d.verified_by == "size"
                            else "it does not say it was verified by hash")
        if files is not None and d.files != files:
            problems.append(f"it holds {_fmt_count(d.files, 'files')}, the source {files}")
        if size is not None and d.bytes != size:
            problems.append(f"it holds {_fmt_count(d.bytes, 'bytes')}, the source {size}")
        if problems:
            reasons.append(f"copy {d.path}: " + "; ".join(problems))
        elif files is not None and size is not None:
            good += 1
    if good < copies_required:
        reasons.append(f"{good} of {copies_required} required copies are verified by hash")
    return good, reasons


def in_doubt(latest: OffloadEvent, reason: str, source: str | None, now: float) -> OffloadEvent | None:
    """The card's next event after a conflict: ``latest`` with ``reason`` added to ``why_not_safe``
    and never safe to wipe; None when it already gives that reason."""
    if reason in latest.why_not_safe:
        return None
    return latest.model_copy(update={"event_id": uuid.uuid4().hex, "ts": round(now, 3), "reported_ts": None,
                                     "source": source, "safe_to_wipe": False,
                                     "why_not_safe": [*latest.why_not_safe, reason]})
