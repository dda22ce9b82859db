"""Accept one validated input into the journal: a report, or a Hedge event (held until its
source is idle). Shared by the hub and by ``setbridge offload ... --journal``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import PayloadError
from . import hedge
from .journal import Journal
from .models import HedgeReport, OffloadEvent, OffloadReport, Source


@dataclass(frozen=True)
class Accepted:
    """What became of an input: a new ``event``, a ``duplicate`` (already journaled), a Hedge copy
    ``held`` for its source's DiskIdle, or an ``ignored`` Hedge event."""

    kind: Literal["event", "duplicate", "held", "ignored"]
    event: OffloadEvent | None = None
    note: str = ""


def accept(journal: Journal, item: OffloadReport | HedgeReport, copies_required: int, source: Source) -> Accepted:
    """Journal ``item`` (committed before this returns); raise :class:`PayloadError` if it is unusable."""
    if item.event_id and journal.contains(item.event_id):
        return Accepted("duplicate", note=f"duplicate event_id {item.event_id}: already accepted; published once")
    if isinstance(item, OffloadReport):
        if item.source is None:
            item = item.model_copy(update={"source": source})
        event, new = journal.append(item, copies_required)
        return Accepted("event" if new else "duplicate", event)
    name = hedge.event_name(item.hedge)
    if name == hedge.COPY_EVENT:
        copy = hedge.parse_copy(item.hedge)
        journal.add_hedge_copy(copy.source, copy.as_dict())
        return Accepted("held", note=f"copy to {copy.destination} held until {copy.source} is idle")
    if name == hedge.IDLE_EVENT:
        idle = hedge.parse_idle(item.hedge)
        if not idle.is_source:
            return Accepted("ignored", note="DiskIdle of a destination disk")
        copies = journal.hedge_copies(idle.path)
        if not copies:
            raise PayloadError(f"hedge: DiskIdle for {idle.path} but no FileCopyCompleted was received for that source")
        report = hedge.combine(copies, idle, item.event_id)
        event, new = journal.append(report, copies_required, hedge_source=idle.path)
        return Accepted("event" if new else "duplicate", event)
    if name in hedge.OTHER_EVENTS:
        return Accepted("ignored", note=f"{name} carries no offload result")
    raise PayloadError(f"hedge: unknown event {name[:40]!r}; expected {hedge.COPY_EVENT} or {hedge.IDLE_EVENT}")
