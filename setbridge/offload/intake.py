"""Accept validated inputs into the journal: reports, and Hedge events (copies held until their
source is idle). Shared by the hub (many inputs per commit) and ``setbridge offload ... --journal``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..errors import PayloadError
from . import hedge
from .journal import EventIdConflict, Journal, Tx
from .models import HedgeReport, OffloadEvent, OffloadReport, Source, content_digest


@dataclass(frozen=True)
class Accepted:
    """What became of an input: new ``events`` (usually one), a ``duplicate`` (already journaled),
    a Hedge copy ``held`` for its source's DiskIdle, an ``ignored`` Hedge event, or a ``conflict``:
    refused for reusing an accepted ``event_id`` with other content (``note`` says so in one line;
    ``events`` put the cards it names in doubt)."""

    kind: Literal["event", "duplicate", "held", "ignored", "conflict"]
    events: tuple[OffloadEvent, ...] = ()
    note: str = ""

    @property
    def event(self) -> OffloadEvent | None:
        """The input's own event (the last one)."""
        return self.events[-1] if self.events else None


def accept(journal: Journal, item: OffloadReport | HedgeReport, copies_required: int, source: Source) -> Accepted:
    """Journal one ``item`` in a commit of its own; raise :class:`PayloadError` if it is unusable."""
    with journal.batch() as tx:
        return accept_in(tx, item, copies_required, source)


def _incomplete(tx: Tx, copies: list[dict[str, Any]], why: str, copies_required: int) -> list[OffloadEvent]:
    """Each transfer in ``copies`` as a cancelled event: it ended before its source was idle."""
    events = []
    for group in hedge.groups(copies):
        event, _ = tx.append(hedge.combine(group, None, None, incomplete=why), copies_required)
        events.append(event)
    return events


def accept_in(tx: Tx, item: OffloadReport | HedgeReport, copies_required: int, source: Source) -> Accepted:
    """Journal ``item`` inside the transaction ``tx``; raise :class:`PayloadError` if it is unusable
    (its own writes are then undone, the rest of the batch is kept)."""
    with tx.item():
        return _accept(tx, item, copies_required, source)


def _conflict(tx: Tx, item: OffloadReport | HedgeReport, stored: OffloadEvent, source: Source) -> Accepted:
    """Refuse ``item`` loudly, and put the cards both name in doubt: never safe to wipe until a new report."""
    said = f"{item.roll} {item.status}" if isinstance(item, OffloadReport) else "a Hedge event"
    note = (f"conflict: event_id {item.event_id} was already accepted with other content ({stored.roll} "
            f"{stored.status}, safe_to_wipe {str(stored.safe_to_wipe).lower()}; this report: {said}); refused, "
            "nothing of it was kept and the card is no longer safe to wipe: check the card and send the report "
            "again with a new event_id")
    doubt = (f"a different report reusing event_id {item.event_id} was refused; check the card, then report it "
             "again with a new event_id")
    rolls = dict.fromkeys([stored.roll] + ([item.roll] if isinstance(item, OffloadReport) else []))
    events = tuple(e for e in (tx.doubt(roll, doubt, source) for roll in rolls) if e is not None)
    return Accepted("conflict", events, note=note)


def _accept(tx: Tx, item: OffloadReport | HedgeReport, copies_required: int, source: Source) -> Accepted:
    duplicate = f"duplicate event_id {item.event_id}: already accepted; published once"
    digest = content_digest(item)
    if item.event_id:
        try:
            if isinstance(item, OffloadReport):
                known = tx.recall(item.event_id, digest, item.roll, item.status)
            else:
                known = tx.recall(item.event_id, digest)
        except EventIdConflict as exc:
            return _conflict(tx, item, exc.stored, item.source if isinstance(item, OffloadReport) and item.source
                             else source)
        if known is not None:
            return Accepted("duplicate", note=duplicate)
    if isinstance(item, OffloadReport):
        if item.source is None:
            item = item.model_copy(update={"source": source})
        event, _ = tx.append(item, copies_required, digest, recalled=True)
        return Accepted("event", (event,))
    name = hedge.event_name(item.hedge)
    if name == hedge.COPY_EVENT:
        copy = hedge.parse_copy(item.hedge)
        held = tx.hedge_copies(copy.source)
        stale = [c for c in held if hedge.HedgeCopy(**c).group != copy.group]
        events: list[OffloadEvent] = []
        if stale:  # another card's copies at this mount path: that transfer never finished
            why = (f"transfer incomplete: copies of another card arrived from {copy.source} before this card's "
                   "source was idle (card pulled or remounted)")
            events = _incomplete(tx, stale, why, copies_required)
            tx.drop_hedge_copies(copy.source)
            for c in held:
                if c not in stale:
                    tx.add_hedge_copy(copy.source, c)
        tx.add_hedge_copy(copy.source, copy.as_dict())
        return Accepted("held", tuple(events), note=f"copy to {copy.destination} held until {copy.source} is idle")
    if name == hedge.IDLE_EVENT:
        idle = hedge.parse_idle(item.hedge)
        if not idle.is_source:
            return Accepted("ignored", note="DiskIdle of a destination disk")
        copies = tx.hedge_copies(idle.path)
        if not copies:
            raise PayloadError(f"hedge: DiskIdle for {idle.path} but no FileCopyCompleted was received for that source")
        *older, current = hedge.groups(copies)
        events = _incomplete(tx, [c for g in older for c in g],
                             f"transfer incomplete: another card's transfer from {idle.path} finished after it",
                             copies_required) if older else []
        event, new = tx.append(hedge.combine(current, idle, item.event_id), copies_required, digest)
        tx.drop_hedge_copies(idle.path)
        return Accepted("event" if new else "duplicate", (*events, event))
    if name in hedge.MOUNT_EVENTS:
        path = hedge.parse_mount(item.hedge)
        copies = tx.hedge_copies(path)
        if not copies:
            return Accepted("ignored", note=f"{name} for {path}")
        verb = "removed" if name == "DiskRemoved" else "mounted again"
        events = _incomplete(tx, copies, f"transfer incomplete: the card at {path} was {verb} before its source "
                                         "was idle", copies_required)
        tx.drop_hedge_copies(path)
        return Accepted("event", tuple(events))
    if name in hedge.OTHER_EVENTS:
        return Accepted("ignored", note=f"{name} carries no offload result")
    raise PayloadError(f"hedge: unknown event {name[:40]!r}; expected {hedge.COPY_EVENT} or {hedge.IDLE_EVENT}")
