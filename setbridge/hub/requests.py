"""MQTT requests to the set: admission, fair share per source, busy and shed answers, repeated
transactions, expiry and reply routing.

A request is parsed on the network thread (:meth:`RequestDesk.handle`) and offered to the
controller's worker without waiting; one it cannot take now is answered busy (or shed when the
broker is not taking answers). On the worker, :meth:`RequestDesk.run_batch` refuses expired
requests, answers repeated transactions from memory and applies the rest with one write to disk.

>>> desk = RequestDesk(context, controller)
>>> desk.start()        # the controller's thread
>>> desk.listen()       # subscribes to the set's request topics
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .. import expiry, lot
from ..codec import MISSING, parse_payload, transaction_of
from ..errors import PayloadError
from ..messages import SetRequest, SetResponse
from ..ratelog import RateLimitedLog
from .component import HubContext
from .controller import Action, Outcome, SetController
from .transactions import TransactionLog, key_of
from .worker import ActionWorker

log = logging.getLogger(__name__)


class ReplyRoute(NamedTuple):
    """Where a request's answer goes: a topic, and the MQTT 5 Correlation Data to send back."""

    topic: str
    correlation: bytes | None


REQUEST_QUEUE = 2000
"""Requests waiting for the controller at most; more are answered busy."""
SOURCE_SHARE = REQUEST_QUEUE // 4
"""Once the queue is this close to full, a ``source`` with this many requests waiting is answered
busy: a looping script cannot crowd out the others, and a lone client still has the queue."""
BACKLOG_BUSY = 5000
"""Unacknowledged publishes at which new requests are answered busy (the broker is slow)."""
BACKLOG_SHED = 20000
"""Unacknowledged publishes at which even busy answers are shed (counted and logged)."""
RETRY_AFTER_S = 1.0
"""The retry hint in a busy answer."""


@dataclass(frozen=True)
class _Request:
    """An MQTT request parsed on the network thread, waiting for the controller."""

    topic: str
    request: SetRequest
    route: ReplyRoute
    expires_at: float | None = None
    """When its MQTT 5 Message Expiry runs out (wall clock), if it has one."""


class RequestDesk:
    """Takes the set's MQTT requests and answers each one: on the network thread and the controller's."""

    def __init__(self, ctx: HubContext, controller: SetController):
        settings = self.settings = ctx.settings
        self.bus = ctx.bus
        self.controller = controller
        self.topics = ctx.topics
        self.set_id = settings.hub.set
        self.worker = ActionWorker(self.run_batch, capacity=REQUEST_QUEUE)
        """The controller's thread: local actions (see ``Hub.submit``) and the queued requests."""
        self._waiting: dict[str, int] = {}
        """Requests queued per source (sources with none are not kept)."""
        self._waiting_lock = threading.Lock()
        self.busy = RateLimitedLog(log, "answered %(n)d request(s) busy in %(s).1f s: the controller had "
                                        f"{REQUEST_QUEUE} waiting, or the source {SOURCE_SHARE}, or the broker "
                                        "lagged (%(who)s)")
        self.shed = RateLimitedLog(log, "shed %(n)d request(s) unanswered in %(s).1f s, the broker is not "
                                        "taking the hub's answers (%(who)s)")
        self.rejected = RateLimitedLog(log, f"rejected %(n)d malformed request(s) on {self.topics.set_request(self.set_id)}"
                                            " in %(s).1f s (%(who)s)")
        self.refused = RateLimitedLog(log, "refused %(n)d request(s) in %(s).1f s (%(who)s)")
        self.repeated = RateLimitedLog(log, "answered %(n)d repeated transaction(s) again in %(s).1f s, nothing "
                                            "changed (%(who)s)", level=logging.INFO)
        """Per request, but counted: a client looping on a bad or refused request cannot flood the log."""
        self.transactions = TransactionLog(window_s=settings.hub.transaction_window_s)
        self._response_topic = self.topics.set_response(self.set_id)
        self._centre_request_topic = lot.centre_request_topic(self.topics.base, self.set_id)

    def start(self) -> None:
        """Start the controller's thread (requests are taken once :meth:`listen` subscribes)."""
        self.worker.start()

    def stop(self) -> None:
        """Finish what is queued and stop the controller's thread."""
        self.worker.stop()

    @property
    def tallies(self) -> tuple[RateLimitedLog, ...]:
        """The counted log lines, flushed by the heartbeat."""
        return self.busy, self.shed, self.rejected, self.refused, self.repeated

    @property
    def state(self) -> str:
        return self.controller.state

    def listen(self) -> None:
        """Take requests from now on: the set's request topic and the one a lot's centre bridges in."""
        self.bus.subscribe(self.topics.set_request(self.set_id), self.handle, commands=True, whole=True)
        self.bus.subscribe(self._centre_request_topic, self.handle, commands=True, whole=True)

    def handle(self, message: mqtt.MQTTMessage) -> None:
        """On the network thread: parse, then hand over to the controller's worker without waiting
        (answered in :meth:`_answer_requests`); a request it cannot take now is answered busy.

        An MQTT 5 request with a Response Topic under ``{base}/set/{set}/response/`` is answered
        there, with its Correlation Data; any other request on ``{base}/set/{set}/response``.
        """
        topic, payload = message.topic, bytes(message.payload)
        route, route_error = self._reply_route(message)
        try:
            request = parse_payload(SetRequest, payload)
        except PayloadError as exc:
            tx = transaction_of(payload)
            self.rejected.count(str(exc)[:160])
            if tx is not MISSING or route.correlation is not None:
                self._respond(SetResponse(transaction=None if tx is MISSING else tx, ok=False, error=str(exc),
                                          state=self.state, seq=self.controller.seq), route)
            return
        if not route_error and topic == self._centre_request_topic:  # crossed a lot's bridge
            route_error = lot.age_limit_missing(request, message)
        if route_error:
            log.warning("refused %s on %s: %s", request.action, topic, route_error)
            self._respond(SetResponse(transaction=request.transaction, ok=False, error=route_error, state=self.state,
                                      seq=self.controller.seq), route)
            return
        source = request.source or ""
        if self.bus.backlog < BACKLOG_BUSY:
            if not self._take_slot(source):
                self._refuse_busy(request, route, f"this source has {SOURCE_SHARE} requests waiting")
                return
            if self.worker.offer(_Request(topic, request, route, expiry.expires_at(message))):
                return
            self._release_slot(source)
        self._refuse_busy(request, route)

    def _take_slot(self, source: str) -> bool:
        """Count one more queued request of ``source``; False when it has its share of a queue
        that is nearly full (the rest is kept for other sources)."""
        with self._waiting_lock:
            mine = self._waiting.get(source, 0)
            if mine >= SOURCE_SHARE and self.worker.queued >= REQUEST_QUEUE - SOURCE_SHARE:
                return False
            self._waiting[source] = mine + 1
            return True

    def _release_slot(self, source: str) -> None:
        with self._waiting_lock:
            left = self._waiting.get(source, 0) - 1
            if left > 0:
                self._waiting[source] = left
            else:
                self._waiting.pop(source, None)

    def _refuse_busy(self, request: SetRequest, route: ReplyRoute,
                     why: str = "the hub has more requests than it can take") -> None:
        source = request.source or "no source"
        if self.bus.backlog >= BACKLOG_SHED:
            self.shed.count(source)
            return
        self.busy.count(source)
        s = self.controller.stored
        self._respond(SetResponse(
            transaction=request.transaction, ok=False, state=s.state, seq=s.seq, retry_after_s=RETRY_AFTER_S,
            error=f"busy: {why}; nothing changed, retry in {RETRY_AFTER_S:g} s"),
            route)

    def run_batch(self, items: list[Action | _Request]) -> list[Outcome | None]:
        """On the worker: local actions and queued requests, applied with one write to disk."""
        actions = [item if isinstance(item, Action) else None for item in items]
        requests: list[tuple[int, _Request]] = []
        now = time.time()
        for i, item in enumerate(items):
            if isinstance(item, _Request):
                r = item.request
                self._release_slot(r.source or "")
                late = expiry.refusal(r, item.expires_at, now, self.settings.hub.request_max_age_s)
                if late:
                    self._refuse_late(item, late)
                    continue
                requests.append((i, item))
                actions[i] = Action(r.action, "request", {"source": r.source, "transaction": r.transaction})
        answered = self._repeats(requests)
        run = [a for i, a in enumerate(actions) if a is not None and i not in answered]
        outcomes = iter(self.controller.apply_many(run) if run else [])
        results: list[Outcome | None] = [None if i in answered or actions[i] is None else next(outcomes)
                                         for i in range(len(items))]
        self._answer_requests(requests, results, answered)
        return results

    def _refuse_late(self, item: _Request, why: str) -> None:
        """Answer an expired request; it changes nothing and its transaction stays free for a retry."""
        r = item.request
        self.refused.count(f"{r.action} from {r.source or 'no source'}: {why.split(':')[0]} expired")
        if r.transaction is None and item.route.correlation is None:
            return
        s = self.controller.stored
        self._respond(SetResponse(transaction=r.transaction, ok=False, error=why, state=s.state, seq=s.seq),
                      item.route)

    def _repeats(self, requests: list[tuple[int, _Request]]) -> dict[int, int | SetResponse]:
        """Which requests repeat a transaction (answered from memory or from an earlier one in this batch)."""
        answered: dict[int, int | SetResponse] = {}
        first_in_batch: dict[str, int] = {}
        for i, item in requests:
            r = item.request
            if r.transaction is None:
                continue
            remembered = self.transactions.recall(r.transaction, (r.action, r.source))
            key = key_of(r.transaction)
            if remembered is not None:
                answered[i] = remembered
            elif key in first_in_batch:
                answered[i] = first_in_batch[key]
            else:
                first_in_batch[key] = i
        return answered

    def _answer_requests(self, requests: list[tuple[int, _Request]], results: list[Outcome | None],
                         answered: dict[int, int | SetResponse]) -> None:
        """Answer every request that carries a transaction, echoing it exactly; a transaction seen in
        the last ``[hub] transaction_window_s`` gets its first answer and changes nothing."""
        built: dict[int, SetResponse] = {}
        for i, item in requests:
            r, tx = item.request, item.request.transaction
            if i in answered:
                remembered = answered[i]
                if isinstance(remembered, int):  # repeated within this batch: its first answer is known now
                    remembered = self.transactions.recall(tx, (r.action, r.source)) or built[remembered]
                self.repeated.count(f"{r.source or 'no source'}: {key_of(tx)[:40]}")
                self._respond(remembered, item.route)
                continue
            outcome = results[i]
            assert outcome is not None
            if not outcome.ok:
                self.refused.count(f"{r.action} from {r.source or 'no source'}: {outcome.error}")
            response = SetResponse(transaction=tx, ok=outcome.ok, error=outcome.error,
                                   state=outcome.state, seq=outcome.seq, changed=outcome.changed)
            if tx is not None and not outcome.transient:
                self.transactions.remember(tx, (r.action, r.source), response, source=r.source or "")
            built[i] = response
            self._respond(response, item.route)

    def _reply_route(self, message: mqtt.MQTTMessage) -> tuple[ReplyRoute, str | None]:
        """Where to answer ``message``, and why its own Response Topic was refused (or None)."""
        shared = self._response_topic
        props = getattr(message, "properties", None)
        wanted = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        if wanted is None:
            return ReplyRoute(shared, correlation), None
        allowed = shared + "/"
        if wanted.startswith(allowed) and len(wanted) > len(allowed) and not set("+#\0") & set(wanted) or (
                lot.answer_topic_allowed(self.topics.base, self.set_id, wanted)):  # a client at a lot's centre
            return ReplyRoute(wanted, correlation), None
        return ReplyRoute(shared, correlation), (
            f"response topic {wanted[:80]!r} is not under {allowed}; name one below it (answered here instead)")

    def _respond(self, response: SetResponse, route: ReplyRoute | None = None) -> None:
        route = route or ReplyRoute(self._response_topic, None)
        props = None
        if route.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = route.correlation
        self.bus.publish(route.topic, response, properties=props)
