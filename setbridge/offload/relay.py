"""The hub component that relays offload events.

Inputs: ``{base}/offload/report`` (reports and Hedge events), the ASC MHL watcher, and rows other
processes write into the journal. Each accepted input is journaled before the broker gets its
acknowledgement; a delivery thread then publishes the journal in order — the event on
``{base}/offload/event`` and the card's retained status on ``{base}/offload/card/{roll}`` — and
marks a row delivered only once the broker has acknowledged both.
"""

from __future__ import annotations

import importlib.util
import logging
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

from ..errors import PayloadError, SetbridgeError
from ..messages import LightCommand, OffloadError
from .intake import accept
from .journal import Journal
from .models import OffloadEvent, OffloadReport, event_id_of, parse_report
from .watcher import MhlWatcher

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger(__name__)

REJECTED_CHARS = 200
"""How much of a rejected payload is echoed on ``{base}/offload/error``."""
KEEP_DAYS = 90
"""Delivered events are kept this long (a card's latest event is kept for good)."""


def _journal_failed(exc: BaseException, journal: Journal) -> str:
    return f"could not write the offload journal {journal.path} ({exc}); the report was not kept, send it again"


class OffloadRelay:
    """``hub.add_component(OffloadRelay(hub))``: subscribes at once, delivers from ``start()``."""

    def __init__(self, hub: Hub):
        self.bus = hub.bus
        self.topics = hub.topics
        self.settings = hub.settings.offload
        try:
            self.journal = Journal(hub.settings.hub.state_dir)
        except (OSError, sqlite3.Error) as exc:
            raise SetbridgeError(f"cannot open the offload journal in {hub.settings.hub.state_dir} ({exc}); "
                                 "set [hub] state_dir to a directory this user owns") from None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.watcher = None
        if self.settings.watch:
            if importlib.util.find_spec("ascmhl") is None:
                raise SetbridgeError("[offload] watch needs the ascmhl package; install it with: pip install ascmhl")
            self.watcher = MhlWatcher(self.settings.watch, on_report=self.submit,
                                      on_error=lambda reason: self._reject(reason, source="mhl"),
                                      is_known=self.journal.contains, poll_s=self.settings.poll_s,
                                      settle_s=self.settings.settle_s, catch_up_h=self.settings.catch_up_h)
        self.bus.subscribe(self.topics.offload_report(), self._on_report)
        self.bus.on_connect(self._wake.set)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        pruned = self.journal.prune(KEEP_DAYS)
        if pruned:
            log.info("offload journal: forgot %d delivered events older than %d days", pruned, KEEP_DAYS)
        self._thread = threading.Thread(target=self._deliver_loop, name="offload-delivery", daemon=True)
        self._thread.start()
        if self.watcher:
            self.watcher.start()

    def stop(self) -> None:
        if self.watcher:
            self.watcher.stop()
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        # The journal stays open: a report arriving until the bus stops is still journaled.

    # -- inputs ---------------------------------------------------------------------------------
    def submit(self, report: OffloadReport) -> OffloadEvent | None:
        """Journal a report from inside the hub (the MHL watcher); returns the new event, if any."""
        try:
            outcome = accept(self.journal, report, self.settings.copies_required, source=report.source or "mhl")
        except PayloadError as exc:
            self._reject(str(exc), event_id=report.event_id, source=report.source)
            return None
        except (sqlite3.Error, OSError) as exc:
            self._reject(_journal_failed(exc, self.journal), event_id=report.event_id, source=report.source)
            return None
        if outcome.event is not None and outcome.kind == "event":
            log.info("offload %s: %s (%s)", outcome.event.roll, outcome.event.status, outcome.event.source)
        self._wake.set()
        return outcome.event

    def _on_report(self, topic: str, raw: bytes) -> None:
        try:
            item = parse_report(raw)
            outcome = accept(self.journal, item, self.settings.copies_required, source="mqtt")
        except PayloadError as exc:
            self._reject(str(exc), raw=raw, event_id=event_id_of(raw), source="mqtt")
            return
        except (sqlite3.Error, OSError) as exc:  # the sender hears it was not kept and can resend
            self._reject(_journal_failed(exc, self.journal), raw=raw, event_id=event_id_of(raw), source="mqtt")
            return
        if outcome.kind == "duplicate":
            self._reject(outcome.note, event_id=item.event_id, source="mqtt", duplicate=True)
        elif outcome.kind == "event" and outcome.event is not None:
            log.info("offload %s: %s accepted (%s)", outcome.event.roll, outcome.event.status, outcome.event.event_id)
            self._wake.set()
        else:
            log.info("offload: %s", outcome.note)

    def _reject(self, reason: str, raw: bytes | None = None, event_id: str | None = None,
                source: str | None = None, duplicate: bool | None = None) -> None:
        (log.info if duplicate else log.warning)("offload input rejected: %s", reason)
        if not self.bus.connected.is_set():
            return
        rejected = raw[:REJECTED_CHARS].decode("utf-8", "replace") if raw is not None else None
        self.bus.publish(self.topics.offload_error(), OffloadError(reason=reason, rejected=rejected, event_id=event_id,
                                                                  source=source, duplicate=duplicate))

    # -- delivery -----------------------------------------------------------------------------
    def _deliver_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)  # the timeout also picks up rows other processes journaled
            self._wake.clear()
            try:
                self._deliver_pending()
            except Exception:
                log.exception("offload delivery failed; retrying")
                self._stop.wait(1.0)

    def _deliver_pending(self) -> None:
        while not self._stop.is_set() and self.bus.connected.is_set():
            batch = self.journal.pending(50)
            if not batch:
                return
            for seq, event in batch:
                if not self._deliver(event):
                    return
                self.journal.mark_delivered(seq)
                self._flash(event)

    def _deliver(self, event: OffloadEvent) -> bool:
        """Publish one event and its card; True once the broker acknowledged both.

        A publish cut off by a disconnect is resent by the MQTT client when it reconnects, so this
        waits rather than publishing again (which would duplicate the event)."""
        data = event.to_bytes()
        sent = [self.bus.publish(self.topics.offload_event(), data),
                self.bus.publish(self.topics.offload_card(event.roll), data)]
        if any(d.queue_full for d in sent):
            log.warning("the MQTT client's queue is full; offload delivery retries shortly")
            self._stop.wait(1.0)
            return False
        while not all(d.acknowledged() for d in sent):
            if self._stop.wait(0.02):
                return False
        return True

    def _flash(self, event: OffloadEvent) -> None:
        s = self.settings
        if not s.flash_lights or event.status not in ("verified", "failed"):
            return
        if time.time() - event.ts > s.flash_max_age_s:
            return
        command = LightCommand(action="flash", duration_s=s.flash_s,
                               color="green" if event.status == "verified" else "red",
                               pattern="slow" if event.status == "verified" else "fast")
        for light in s.flash_lights:
            self.bus.publish(self.topics.light_cmd(light), command)
