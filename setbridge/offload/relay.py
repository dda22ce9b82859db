"""The hub component that relays offload events.

Inputs: ``{base}/offload/report`` (reports and Hedge events), the ASC MHL watcher, and rows other
processes write into the journal. Three threads, none of them the MQTT network thread:

- the network thread only queues a report (or clears a retained one) and returns;
- the intake thread journals queued reports, many per commit, then answers rejections;
- the delivery thread publishes the journal in order, many events in flight, and marks them
  delivered in one commit once the broker acknowledged them all.

The relay sees the bus through :class:`RelayBus` only. A journal that cannot be opened puts
offload at fault (the context's ``set_offload_health``) and the rest of the hub runs on; a corrupt one is moved aside.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..bus import Delivery
from ..errors import PayloadError, SetbridgeError
from ..messages import OffloadError, Payload
from ..ratelog import RateLimitedLog
from .flash import LightFlash
from .intake import Accepted, accept_in
from .journal import Journal, JournalError, open_or_recover
from .models import HedgeReport, OffloadReport, event_id_of, parse_report
from .outbox import Outbox
from .watcher import MhlWatcher

if TYPE_CHECKING:
    from ..hub.component import HubContext

log = logging.getLogger(__name__)

REJECTED_CHARS = 200
"""How much of a rejected payload is echoed on ``{base}/offload/error``."""
KEEP_DAYS = 90
"""Delivered events are kept this long (a card's latest event is kept for good)."""
MAX_QUEUED = 20_000
"""Reports waiting for the journal; beyond this a report is answered ``busy`` (send it again)."""
REOPEN_S = 5.0
"""How often a journal at fault is tried again."""
CLEAR_EVERY_S = 10.0
"""How often cards past ``[offload] max_cards`` or ``card_max_age_h`` are looked for (and after each delivery)."""
CLEAR_SOON_S = 0.5
"""After a delivery, cards are looked at again no sooner than this (a large ingest delivers many rounds)."""
MARK_EVERY = 32
"""Acknowledged events marked delivered per commit (what a kill -9 can publish again, plus those in flight)."""
ANSWER_WINDOW = 100
"""Answers on ``{base}/offload/error`` waiting for the broker at most; beyond, answers are shed
(counted, logged, and summed up in one answer once there is room): a flood of reports never
fills the hub's send queue ahead of the set's messages."""
ANSWER_RATE = 200.0
"""Answers on ``{base}/offload/error`` per second at most (a second's worth at once); the rest are
shed the same way. A tool sends a handful of reports a minute; only a flood meets this."""
KNOWN_REPORTS = 4096
"""Reports remembered by their bytes once journaled: the same bytes again are answered duplicate
without being parsed or looked up (a script repeating one report costs a hash per copy)."""
EVENT_WINDOW = 64
"""Event and card publishes waiting for the broker at most (the delivery thread waits for room)."""

Handler = Callable[[str, bytes], None]
Health = Callable[[str, "str | None"], None]


class RelayBus(Protocol):
    """What the relay needs of the MQTT bus (``setbridge.bus.Bus`` provides it)."""

    connected: threading.Event

    def publish(self, topic: str, payload: Payload | bytes, *, qos: int | None = None,
                retain: bool | None = None) -> Delivery: ...

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1, commands: bool = False,
                  whole: bool = False, on_retained: Handler | None = None) -> None: ...

    def on_connect(self, hook: Callable[[], None]) -> None: ...


class _Input:
    """A report waiting for the journal: raw bytes from MQTT, or a report from the watcher."""

    __slots__ = ("raw", "report", "origin")

    def __init__(self, raw: bytes | None, report: OffloadReport | None, origin: str):
        self.raw, self.report, self.origin = raw, report, origin


class OffloadRelay:
    """``hub.add_component(OffloadRelay(context))``: ``[offload]`` settings, journal in ``[hub] state_dir``.

    Subscribes with :meth:`listen` (or at ``start()``); journals and delivers from ``start()``.
    """

    def __init__(self, ctx: HubContext):
        bus: RelayBus = ctx.bus
        topics = ctx.topics
        settings = ctx.settings.offload
        self.bus = bus
        self.topics = topics
        self.settings = settings
        self.state_dir = Path(ctx.settings.hub.state_dir)
        self.on_health: Health = ctx.set_offload_health
        self.batch_size = settings.journal_batch
        self.journal: Journal | None = None
        self.health: tuple[str, str | None] = ("ok", None)
        self.faults = 0
        """Times the health went to fault (for the hub's metrics)."""
        self.accepted: Counter[str] = Counter()
        """Offload events accepted, by status (for the hub's metrics)."""
        self._inbox: queue.Queue[_Input] = queue.Queue(MAX_QUEUED)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._unmarked: dict[int, bytes] = {}
        """Events the broker acknowledged whose delivery the journal could not record yet (a full disk)."""
        self._known: dict[bytes, str] = {}
        """Digest of a journaled report's bytes → its event_id (intake thread only; emptied when the
        journal is opened again or a report conflicts with an accepted one)."""
        self.flash = LightFlash(bus, topics, settings)
        """Flashes the set's lights for delivered offload results."""
        self._answers = Outbox(bus, ANSWER_WINDOW, rate=ANSWER_RATE)
        self._events = Outbox(bus, EVENT_WINDOW)
        self._shed_lock = threading.Lock()
        self._shed: dict[str, int] = {}
        """Answers not sent since the last shed notice, by kind (duplicate, busy, rejected)."""
        self._shed_since = 0.0
        self._shed_noticed = -float("inf")
        """When the last shed notice went out (at most one a second)."""
        self._shed_log = RateLimitedLog(log, "offload: shed %(n)d answer(s) on offload/error in %(s).1f s, the "
                                             f"broker had {ANSWER_WINDOW} unacknowledged (%(who)s)")
        self._rejections = RateLimitedLog(log, "offload: rejected %(n)d input(s) in %(s).1f s (%(who)s)")
        self._duplicates = RateLimitedLog(log, "offload: %(n)d duplicate report(s) in %(s).1f s, each published "
                                               "once (%(who)s)", level=logging.INFO)
        self._conflicts = RateLimitedLog(log, "offload: refused %(n)d report(s) in %(s).1f s that reused an accepted "
                                              "event_id with other content (%(who)s)", level=logging.ERROR)
        """Counted: a sender looping on a bad report cannot flood the log."""
        self.watcher = None
        if settings.watch:
            if importlib.util.find_spec("ascmhl") is None:
                raise SetbridgeError("[offload] watch needs the ascmhl package; install it with: pip install ascmhl")
            self.watcher = MhlWatcher(settings.watch, on_report=self.submit,
                                      on_error=lambda reason: self._reject(reason, source="mhl"),
                                      is_known=self._is_known, poll_s=settings.poll_s,
                                      settle_s=settings.settle_s, catch_up_h=settings.catch_up_h)
        self._listening = False
        bus.on_connect(self._wake.set)

    # -- lifecycle ----------------------------------------------------------------------------
    def listen(self) -> None:
        """Subscribe to reports (queued until ``start()``): the hub does it before its birth, once
        it knows no other hub on the broker relays offload."""
        if not self._listening:
            self._listening = True
            # a retained report never reaches _on_report: it is cleared and answered on the error topic
            self.bus.subscribe(self.topics.offload_report(), self._on_report, on_retained=self._on_retained_report)

    def start(self) -> None:
        self.listen()
        for target, name in ((self._intake_loop, "offload-intake"), (self._deliver_loop, "offload-delivery")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Journal what is already queued, then stop (the delivery thread at once)."""
        if self.watcher:
            self.watcher.stop()
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.journal is not None and not any(t.is_alive() for t in self._threads):
            self.journal.close()
            self.journal = None

    # -- health -------------------------------------------------------------------------------
    def _set_health(self, state: str, reason: str | None = None) -> None:
        if (state, reason) == self.health:
            return
        if state == "fault" and self.health[0] != "fault":
            self.faults += 1
        self.health = (state, reason)
        if state == "fault":
            log.error("offload: fault: %s", reason)
        else:
            log.info("offload: ok again")
        try:
            self.on_health(state, reason)
        except Exception:
            log.exception("offload health listener failed")

    def _open(self) -> bool:
        try:
            journal, note = open_or_recover(self.state_dir, self.settings.cards_per_source_per_day)
        except JournalError as exc:
            self._set_health("fault", f"{exc}; offload reports are refused until it can be opened "
                                      f"(set [hub] state_dir to a directory this user owns)")
            return False
        if note:
            self._reject(note, source="journal")
        self._known.clear()
        self.journal = journal
        self._set_health("ok")
        pruned = journal.prune(KEEP_DAYS)
        if pruned:
            log.info("offload journal: forgot %d delivered events older than %d days", pruned, KEEP_DAYS)
        return True

    @property
    def answers_shed(self) -> int:
        """Answers on ``{base}/offload/error`` not sent since start (beyond the window or the rate)."""
        return self._shed_log.total

    @property
    def waiting(self) -> int:
        """Reports queued for the journal."""
        return self._inbox.qsize()

    def _is_known(self, event_id: str) -> bool:
        journal = self.journal
        return journal is not None and journal.contains(event_id)

    # -- inputs (network thread: queue and return) ----------------------------------------------
    def _on_report(self, topic: str, raw: bytes) -> None:
        if not raw:
            return  # an empty payload is how a retained report is cleared, never a report
        self._enqueue(_Input(raw, None, "mqtt"))

    def _on_retained_report(self, topic: str, raw: bytes) -> None:
        """A retained report would be taken again at every hub (re)connect: clear it, say so, never take it."""
        if not raw:
            return  # a clear (this hub's own comes back retained, as published): clearing it again would loop
        self.bus.publish(topic, b"", retain=True)
        self._reject("retained: a report published with the retain flag is never taken (it would come back at "
                     "every hub restart); it was cleared from the broker, send it again without the flag",
                     raw=raw, event_id=event_id_of(raw), source="mqtt")

    def submit(self, report: OffloadReport) -> None:
        """Journal a report from inside the hub (the MHL watcher), as MQTT reports are."""
        self._enqueue(_Input(None, report, report.source or "mhl"))

    def _enqueue(self, item: _Input) -> None:
        try:
            self._inbox.put_nowait(item)
        except queue.Full:
            raw = item.raw
            event_id = event_id_of(raw) if raw is not None else (item.report.event_id if item.report else None)
            self._reject(f"busy: {MAX_QUEUED} offload reports are waiting for the journal; send it again in a few "
                         "seconds (a repeated event_id is published once)", raw=raw, event_id=event_id, source=item.origin)

    def _reject(self, reason: str, raw: bytes | None = None, event_id: str | None = None,
                source: str | None = None, duplicate: bool | None = None, conflict: bool | None = None) -> None:
        (self._duplicates if duplicate else self._conflicts if conflict else self._rejections).count(reason[:160])
        if not self.bus.connected.is_set():
            return
        self._send_shed_notice()

        def answer() -> OffloadError:  # built only when it is sent
            rejected = raw[:REJECTED_CHARS].decode("utf-8", "replace") if raw is not None else None
            return OffloadError(reason=reason, rejected=rejected, event_id=event_id, source=source,
                                duplicate=duplicate, conflict=conflict)

        if self._answers.offer(self.topics.offload_error(), answer) is None:
            kind = ("duplicate" if duplicate else "conflict" if conflict else "busy" if reason.startswith("busy")
                    else "rejected")
            self._shed_log.count(kind)
            with self._shed_lock:
                if not self._shed:
                    self._shed_since = time.monotonic()
                self._shed[kind] = self._shed.get(kind, 0) + 1

    def _send_shed_notice(self) -> None:
        """Say on ``{base}/offload/error`` how many answers were shed, once there is room for it."""
        with self._shed_lock:
            now = time.monotonic()
            if not self._shed or now - self._shed_noticed < 1.0 or self._answers.waiting >= ANSWER_WINDOW:
                return
            shed, self._shed = self._shed, {}
            covered, self._shed_noticed = now - self._shed_since, now
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(shed.items()))
        reason = (f"shed: {sum(shed.values())} answers on {self.topics.offload_error()} were not sent in the last "
                  f"{covered:.1f} s ({kinds}): reports arrived faster than the broker took the answers; a "
                  "duplicate was published once, a busy or rejected report was not kept: send again every report "
                  f"whose event did not appear on {self.topics.offload_event()}")
        self.bus.publish(self.topics.offload_error(), OffloadError(reason=reason))

    # -- intake thread ------------------------------------------------------------------------
    def _intake_loop(self) -> None:
        while True:
            stopping = self._stop.is_set()  # then journal what is queued, and end
            if self.journal is None and not self._open():
                self._refuse_waiting()
                if stopping or self._refuse_until(time.monotonic() + REOPEN_S):
                    return
                continue
            if self.watcher and not self.watcher.started and not stopping:
                self.watcher.start()  # once the journal can tell it what is already known
            try:
                first = self._inbox.get_nowait() if stopping else self._inbox.get(timeout=0.5)
            except queue.Empty:
                for counted in (self._rejections, self._duplicates, self._conflicts, self._shed_log):
                    counted.flush()
                self._send_shed_notice()
                if stopping:
                    return
                continue
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            try:
                self._journal_batch(batch)
            except Exception:
                log.exception("offload intake failed on a batch of %d reports", len(batch))

    def _refuse_waiting(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._refuse_at_fault(item)

    def _refuse_until(self, deadline: float) -> bool:
        """While the journal is at fault, until ``deadline`` (the next attempt to open it): refuse each
        report as it arrives, so its sender hears at once. True when stopping."""
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            try:
                item = self._inbox.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self._refuse_at_fault(item)
        return self._stop.is_set()

    def _refuse_at_fault(self, item: _Input) -> None:
        self._refuse(item, f"offload: fault: {self.health[1]}; the report was not kept, send it again")

    def _refuse(self, item: _Input, reason: str) -> None:
        event_id = event_id_of(item.raw) if item.raw is not None else (item.report.event_id if item.report else None)
        self._reject(reason, raw=item.raw, event_id=event_id, source=item.origin)

    def _journal_batch(self, batch: list[_Input]) -> None:
        parsed: list[tuple[_Input, OffloadReport | HedgeReport]] = []
        for item in batch:
            time.sleep(0)  # hands the interpreter lock to the set's threads between reports
            if item.report is not None:
                parsed.append((item, item.report))
                continue
            assert item.raw is not None
            known = self._known.get(_digest(item.raw))
            if known is not None:
                self._answer_duplicate(known, item.origin)
                continue
            try:
                parsed.append((item, parse_report(item.raw)))
            except PayloadError as exc:
                self._refuse(item, str(exc))
        if not parsed:
            return
        journal = self.journal
        assert journal is not None
        outcomes: list[tuple[_Input, OffloadReport | HedgeReport, Accepted | PayloadError]] = []
        copies = self.settings.copies_required
        try:
            with journal.batch() as tx:
                for item, report in parsed:
                    time.sleep(0)
                    try:
                        outcomes.append((item, report, accept_in(tx, report, copies, source=item.origin)))  # type: ignore[arg-type]
                    except PayloadError as exc:
                        outcomes.append((item, report, exc))
        except (sqlite3.Error, OSError) as exc:
            self._journal_failed(exc, [item for item, _ in parsed])
            return
        if self.health[0] != "ok":
            self._set_health("ok")
        for item, report, outcome in outcomes:
            if isinstance(outcome, PayloadError):
                self._refuse(item, str(outcome))
            elif outcome.kind == "conflict":
                self._known.clear()
                self._reject(outcome.note, event_id=report.event_id, source=item.origin, conflict=True)
                for event in outcome.events:
                    log.warning("offload %s: put in doubt, no longer safe to wipe (%s)", event.roll, event.event_id)
            elif outcome.kind == "duplicate":
                self._remember(item, report)
                self._answer_duplicate(report.event_id, item.origin)
            elif outcome.events:
                self._remember(item, report)
                for event in outcome.events:
                    self.accepted[event.status] += 1
                    log.info("offload %s: %s accepted (%s)", event.roll, event.status, event.event_id)
            else:
                log.info("offload: %s", outcome.note)
        self._wake.set()

    def _answer_duplicate(self, event_id: str | None, origin: str) -> None:
        self._reject(f"duplicate event_id {event_id}: already accepted; published once",
                     event_id=event_id, source=origin, duplicate=True)

    def _remember(self, item: _Input, report: OffloadReport | HedgeReport) -> None:
        """Remember a journaled plain report's bytes (a Hedge event may mean something new again)."""
        if item.raw is None or not isinstance(report, OffloadReport) or report.event_id is None:
            return
        if len(self._known) >= KNOWN_REPORTS:
            del self._known[next(iter(self._known))]
        self._known[_digest(item.raw)] = report.event_id

    def _journal_failed(self, exc: BaseException, items: list[_Input]) -> None:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        assert self.journal is not None
        if isinstance(exc, sqlite3.OperationalError) and "locked" in reason:
            why = f"the offload journal {self.journal.path} is locked by another program ({reason})"
        else:
            why = f"could not write the offload journal {self.journal.path} ({reason})"
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            self.journal.close()  # corrupt underneath us: moved aside at the next open
            self.journal = None
        self._set_health("fault", why)
        for item in items:
            self._refuse(item, f"{why}; the report was not kept, send it again")

    # -- delivery thread ----------------------------------------------------------------------
    def _deliver_loop(self) -> None:
        next_clear = last_clear = 0.0
        while not self._stop.is_set():
            woken = self._wake.wait(1.0)  # the timeout also picks up rows other processes journaled
            self._wake.clear()
            try:
                self._deliver_pending()
                now = time.monotonic()
                if now >= next_clear or (woken and now >= last_clear + CLEAR_SOON_S):
                    self._clear_old_cards()
                    last_clear = time.monotonic()
                    next_clear = last_clear + min(CLEAR_EVERY_S, self.settings.card_max_age_h * 900)
            except (sqlite3.Error, OSError) as exc:  # a full or locked disk: one line, no traceback
                path = self.journal.path if self.journal is not None else self.state_dir
                self._set_health("fault", f"could not write the offload journal {path} "
                                          f"({' '.join(str(exc).split()) or type(exc).__name__})")
                self._stop.wait(1.0)
            except Exception:
                log.exception("offload delivery failed; retrying")
                self._stop.wait(1.0)

    def _clear_old_cards(self) -> None:
        """Clear the retained card of every card past ``max_cards`` (oldest first) or ``card_max_age_h``:
        an empty retained message, recorded once the broker acknowledged it."""
        s = self.settings
        while not self._stop.is_set() and self.bus.connected.is_set() and (journal := self.journal) is not None:
            due = journal.to_clear(s.max_cards, s.card_max_age_h * 3600, limit=self.batch_size)
            if not due:
                return
            sent = []
            for roll, seq in due:  # through the events' window, so clearing never crowds the set's messages
                delivery = self._events.publish(self.topics.offload_card(roll), b"", self._stop)
                if delivery is None:
                    return  # stopping: cleared after the restart
                sent.append((roll, seq, delivery))
            if any(d.error for _, _, d in sent):
                return  # refused by the MQTT client: tried again at the next round
            for _, _, delivery in sent:
                while not delivery.wait(0.5):
                    if self._stop.is_set() or not self.bus.connected.is_set():
                        return
            journal.mark_cleared([(roll, seq) for roll, seq, _ in sent])
            log.info("offload: cleared %d retained card(s) past [offload] max_cards = %d or card_max_age_h = %g "
                     "(oldest first: %s%s)", len(sent), s.max_cards, s.card_max_age_h,
                     ", ".join(roll for roll, _, _ in sent[:5]), ", ..." if len(sent) > 5 else "")

    def _deliver_pending(self) -> None:
        while not self._stop.is_set() and self.bus.connected.is_set():
            journal = self.journal
            if journal is None:
                return
            if self._unmarked:  # acknowledged by the broker, never to be published again: mark them first
                self._mark(journal, sorted(self._unmarked.items()))
                self._unmarked.clear()
                self._set_health("ok")
            batch = journal.pending_raw(self.batch_size)
            if not batch or not self._deliver(journal, batch):
                return

    def _deliver(self, journal: Journal, batch: list[tuple[int, str, float, bytes]]) -> bool:
        """Publish the events as journaled and their cards, all in flight at once, marking them
        delivered (every ``MARK_EVERY``, one commit each) as the broker acknowledges them; True
        once every one was acknowledged.

        A publish cut off by a disconnect is resent by the MQTT client when it reconnects, so this
        waits for it rather than publishing again. A publish refused outright is retried from the
        journal later; an event published but not yet marked when the hub dies is published again
        after its restart. Either way the broker may see an event twice, with the same ``event_id``."""
        sent: list[tuple[int, bytes, Delivery, Delivery]] = []
        for seq, roll, _, data in batch:
            event = self._events.publish(self.topics.offload_event(), data, self._stop)
            card = self._events.publish(self.topics.offload_card(roll), data, self._stop)
            if event is None or card is None:  # stopping: what was sent is resent after the restart
                break
            sent.append((seq, data, event, card))
        refused = [d.error for _, _, *ds in sent for d in ds if d.error]
        if refused:
            log.warning("offload delivery: the MQTT client refused %d publishes (%s); retrying shortly",
                        len(refused), refused[0])
            self._stop.wait(1.0)
            return False
        acked: list[tuple[int, bytes]] = []
        for n, (seq, data, *deliveries) in enumerate(sent):
            for d in deliveries:
                while not d.wait(0.5):
                    if self._stop.is_set():
                        self._mark(journal, acked)
                        return False
            acked.append((seq, data))
            if len(acked) >= MARK_EVERY or n == len(sent) - 1:
                self._mark(journal, acked)
                acked = []
        return True

    def _mark(self, journal: Journal, acked: list[tuple[int, bytes]]) -> None:
        if not acked:
            return
        try:
            journal.mark_delivered([seq for seq, _ in acked])
        except (sqlite3.Error, OSError):
            self._unmarked.update(acked)  # kept until the journal takes the mark, never published again
            raise
        for _, data in acked:
            self.flash.delivered(data)


def _digest(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()
