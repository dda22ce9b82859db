"""The Hedge transfer tracker: one Hedge script event in, the reports it completes out.

Pure: it reads the copies held for a source path through ``held_at`` and returns a :class:`Step`
saying which reports to journal and what to hold for that path afterwards; the journal only stores
(:func:`setbridge.offload.intake.accept_in` applies a step in one transaction). The rules:

- ``FileCopyCompleted``: the copy is held for its source path. Held copies of another card (another
  transfer) at that path end that transfer: it becomes an incomplete (``cancelled``) report.
- ``DiskIdle`` of a source: its latest transfer's copies become the card's report (with the event's
  ``event_id``); older transfers still held there are incomplete. A destination's ``DiskIdle`` is ignored.
- ``DiskAdded`` / ``DiskRemoved``: every transfer held at that path is incomplete.
- Other known events carry no result; an unknown event is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import PayloadError
from . import hedge
from .models import OffloadReport

Copy = dict[str, Any]
"""A held copy, as :meth:`setbridge.offload.hedge.HedgeCopy.as_dict` gives it (and the journal stores it)."""


@dataclass(frozen=True)
class Step:
    """What one Hedge event does: reports to journal (``incomplete`` ones first, then the card's own
    ``report``), and the copies held for ``path`` afterwards: ``keep`` replaces them (None: leave them
    as stored), then ``add`` is appended."""

    kind: Literal["held", "idle", "ended", "ignored"]
    note: str = ""
    path: str | None = None
    incomplete: tuple[OffloadReport, ...] = ()
    report: OffloadReport | None = None
    keep: tuple[Copy, ...] | None = None
    add: tuple[Copy, ...] = ()


def _incomplete(copies: list[Copy], why: str) -> tuple[OffloadReport, ...]:
    """Each transfer in ``copies`` as a cancelled report: it ended before its source was idle."""
    return tuple(hedge.combine(group, None, None, incomplete=why) for group in hedge.groups(copies))


def track(event: dict[str, Any], event_id: str | None, held_at: Callable[[str], list[Copy]]) -> Step:
    """The :class:`Step` for one Hedge ``event`` (its ``event_id`` goes to the card's report);
    raise :class:`PayloadError` when the event is unusable."""
    name = hedge.event_name(event)
    if name == hedge.COPY_EVENT:
        copy = hedge.parse_copy(event)
        held = held_at(copy.source)
        stale = [c for c in held if hedge.HedgeCopy(**c).group != copy.group]
        note = f"copy to {copy.destination} held until {copy.source} is idle"
        if not stale:
            return Step("held", note, copy.source, add=(copy.as_dict(),))
        # another card's copies at this mount path: that transfer never finished
        why = (f"transfer incomplete: copies of another card arrived from {copy.source} before this card's "
               "source was idle (card pulled or remounted)")
        return Step("held", note, copy.source, _incomplete(stale, why),
                    keep=tuple(c for c in held if c not in stale), add=(copy.as_dict(),))
    if name == hedge.IDLE_EVENT:
        idle = hedge.parse_idle(event)
        if not idle.is_source:
            return Step("ignored", "DiskIdle of a destination disk")
        copies = held_at(idle.path)
        if not copies:
            raise PayloadError(f"hedge: DiskIdle for {idle.path} but no FileCopyCompleted was received for that source")
        *older, current = hedge.groups(copies)
        incomplete = _incomplete([c for g in older for c in g],
                                 f"transfer incomplete: another card's transfer from {idle.path} finished after it"
                                 ) if older else ()
        return Step("idle", path=idle.path, incomplete=incomplete, report=hedge.combine(current, idle, event_id),
                    keep=())
    if name in hedge.MOUNT_EVENTS:
        path = hedge.parse_mount(event)
        copies = held_at(path)
        if not copies:
            return Step("ignored", f"{name} for {path}")
        verb = "removed" if name == "DiskRemoved" else "mounted again"
        return Step("ended", path=path, keep=(), incomplete=_incomplete(
            copies, f"transfer incomplete: the card at {path} was {verb} before its source was idle"))
    if name in hedge.OTHER_EVENTS:
        return Step("ignored", f"{name} carries no offload result")
    raise PayloadError(f"hedge: unknown event {name[:40]!r}; expected {hedge.COPY_EVENT} or {hedge.IDLE_EVENT}")
