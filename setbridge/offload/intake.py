"""Accept validated inputs into the journal: reports, and Hedge events (the Hedge transfer tracker,
:mod:`setbridge.offload.hedge_tracker`, says what each one does; this applies it). Shared by the hub (many inputs per commit) and ``setbridge offload ... --journal``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import hedge_tracker
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
    step = hedge_tracker.track(item.hedge, item.event_id, tx.hedge_copies)
    events = [tx.append(report, copies_required)[0] for report in step.incomplete]
    new = True
    if step.report is not None:
        event, new = tx.append(step.report, copies_required, digest)
        events.append(event)
    if step.path is not None:
        if step.keep is not None:
            tx.drop_hedge_copies(step.path)
        for copy in (*(step.keep or ()), *step.add):
            tx.add_hedge_copy(step.path, copy)
    kind: Literal["event", "duplicate", "held", "ignored"] = (
        "held" if step.kind == "held" else "ignored" if step.kind == "ignored" else "event" if new else "duplicate")
    return Accepted(kind, tuple(events), note=step.note)
