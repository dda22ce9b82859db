"""Slow and half-open connections cannot starve the web process of file descriptors.

Every connection the web server holds is one open file. A client that opens connections and
never finishes a request (slowloris) would otherwise hold them until the process hits its limit
and can accept nobody, phone lights included. The guard:

- serves at most ``max_connections`` at once, well under the open-file limit (``RESERVE_FDS``
  stay free for the broker connections, the take log and the files the server reads, and room
  for the connections accepted before the guard sees them: :func:`connection_limits`);
- closes a connection that has not been answered ``request_timeout_s`` after it opened, or after
  its previous answer ended (headers and body trickled in slowly count the same);
- when full, makes room by closing the connection that has waited longest without an answer,
  so a newcomer that sends its request at once (a phone) always gets in; open event streams
  (answered) are never closed for it: :mod:`.streams` bounds those.

It is two small pieces around uvicorn: an HTTP protocol (uvicorn's own h11 one, which calls
the application from ``data_received``) that registers each connection and marks it current
while it reads, and an ASGI wrapper that sees when that connection's answer starts and ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import resource
import time
from collections import OrderedDict
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

RESERVE_FDS = 64
"""Open files kept free for everything but client connections."""
SWEEP_S = 1.0
"""How often connections past their deadline are looked for."""

_CURRENT: contextvars.ContextVar[Connection] = contextvars.ContextVar("setbridge_connection")


class Connection:
    __slots__ = ("transport", "since", "answered")

    def __init__(self, transport: asyncio.Transport, since: float):
        self.transport = transport
        self.since = since
        self.answered = False


def connection_limits() -> tuple[int, int]:
    """(client connections, listen backlog) that fit under this process's open-file limit (soft).

    asyncio accepts up to ``backlog`` connections in one go before the guard sees any of them, and
    closing the ones it sheds takes another turn of the loop: four such bursts stay free as well,
    so the server never runs out of files (where asyncio would stop accepting, phones included)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft > 1_000_000:
        soft = 1_000_000
    backlog = max(8, min(2048, soft // 16))
    return max(16, soft - RESERVE_FDS - 4 * backlog), backlog


class ConnectionGuard:
    """Counts the server's connections and closes the slow ones; runs on the event loop only."""

    def __init__(self, max_connections: int, request_timeout_s: float, clock: Any = time.monotonic):
        self.max_connections = max_connections
        self.request_timeout_s = request_timeout_s
        self.clock = clock
        self.open = 0
        self.waiting: OrderedDict[Connection, None] = OrderedDict()
        """Connections without an answer under way, the longest waiting first."""
        self.shed = 0
        self.timed_out = 0
        self._sweeping = False

    # -- the protocol's side -----------------------------------------------------------------
    def opened(self, transport: asyncio.Transport) -> Connection:
        conn = Connection(transport, self.clock())
        if not self._sweeping:
            self._sweeping = True
            asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)
        if self.open >= self.max_connections:
            if self.waiting:
                oldest, _ = self.waiting.popitem(last=False)
                self._count("shed", f"{self.max_connections} connections are open; closed the one waiting "
                                    "longest without a request")
                oldest.transport.abort()  # connection_lost follows and calls closed()
            else:
                self._count("shed", f"{self.max_connections} connections are open, every one being answered; "
                                    "refused a new one")
                conn.answered = True  # never counted as waiting
                self.open += 1
                transport.abort()
                return conn
        self.open += 1
        self.waiting[conn] = None
        return conn

    def closed(self, conn: Connection) -> None:
        self.open -= 1
        self.waiting.pop(conn, None)

    # -- the application's side --------------------------------------------------------------
    def answering(self, conn: Connection) -> None:
        conn.answered = True
        self.waiting.pop(conn, None)

    def answered(self, conn: Connection) -> None:
        """The answer ended; the connection may carry another request, within the deadline again."""
        if conn.answered and not conn.transport.is_closing():
            conn.answered = False
            conn.since = self.clock()
            self.waiting[conn] = None

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` telling this guard when each connection's answers start and end."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            conn = _CURRENT.get(None)
            if conn is None or scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def watched(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self.answering(conn)
                elif message["type"] == "http.response.body" and not message.get("more_body", False):
                    self.answered(conn)
                await send(message)

            await app(scope, receive, watched)

        return guarded

    def protocol(self) -> type[asyncio.Protocol]:
        """uvicorn's h11 HTTP protocol with this guard watching every connection."""
        from uvicorn.protocols.http.h11_impl import H11Protocol

        guard = self

        class GuardedH11Protocol(H11Protocol):
            _guarded: Connection | None = None

            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                self._guarded = guard.opened(transport)
                super().connection_made(transport)

            def data_received(self, data: bytes) -> None:
                token = _CURRENT.set(self._guarded) if self._guarded is not None else None
                try:
                    super().data_received(data)  # the request's task starts here, in this context
                finally:
                    if token is not None:
                        _CURRENT.reset(token)

            def connection_lost(self, exc: Exception | None) -> None:
                if self._guarded is not None:
                    guard.closed(self._guarded)
                    self._guarded = None
                super().connection_lost(exc)

        return GuardedH11Protocol

    # -- deadlines ---------------------------------------------------------------------------
    def _sweep(self) -> None:
        deadline = self.clock() - self.request_timeout_s
        while self.waiting:
            conn = next(iter(self.waiting))
            if conn.since > deadline:
                break
            del self.waiting[conn]
            self._count("timed_out", f"closed a connection without a request for {self.request_timeout_s:g} s")
            conn.transport.abort()
        asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)

    def _count(self, what: str, message: str) -> None:
        total = getattr(self, what) + 1
        setattr(self, what, total)
        if total in (1, 10, 100) or total % 1000 == 0:
            log.warning("web: %s (%d so far)", message, total)
