"""The Starlette application: the board, phone recording lights, the take log, login and control.

Pages are Jinja2 templates (autoescaped) with one stylesheet and two small scripts served from
the package: nothing comes from outside, so it works on a set network without internet.
Event streams are Server-Sent Events. Control requests are POSTs that need a logged-in user
with the control right, the session's CSRF token and, when the browser sends one, a matching
Origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..actions import PANEL_ACTIONS
from ..config import Settings
from .feed import BOARD, Fanout, Feed, frame
from .lot_app import LotPages
from .metrics import MetricsPage
from .passwords import dummy_hash, verify_password
from .stage import Stage, dumps
from .takes import TakeLog, as_dict, to_csv

if TYPE_CHECKING:
    from ..topics import Topics

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SET_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
MAX_STREAMS = 1000
"""Open event streams the web process serves at once; more are answered 503 (the browser retries)."""
LOGIN_FAILURES, LOGIN_WINDOW_S = 5, 60.0
"""Failed logins per client address within the window before further tries are refused for a while."""
KEEPALIVE_S = 10.0
"""An idle event stream sends a comment this often, so proxies and phones keep it open."""
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def session_key(data_dir: Path) -> str:
    """The key that signs login cookies: made once, kept readable by this user only."""
    path = data_dir / "session.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            with open(path, "x") as f:
                path.chmod(0o600)
                f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


class WebApp:
    """Holds the stage, the feed and the take log; builds the Starlette app."""

    def __init__(self, settings: Settings, connect: bool = True):
        self.settings = settings
        web = settings.web
        dummy_hash()  # made now: the first login of an unknown user takes no longer than any other
        self.data_dir = settings.web_data_dir()
        self.stage = Stage(_topics(settings), link_timeout_s=web.link_timeout_s)
        self.fanout = Fanout()
        self.takes = TakeLog(self.data_dir / "takes.sqlite")
        self.feed = Feed(settings, self.stage, self.fanout, self.takes)
        self.connect = connect
        self.streams = 0
        self._failures: dict[str, list[float]] = {}
        self.env = Environment(loader=PackageLoader("setbridge.web", "templates"),
                               autoescape=select_autoescape(default=True, default_for_string=True))
        self.env.filters["clock"] = _clock
        routes = [
            Route("/", self.board),
            Route("/events", self.board_events),
            Route("/light/{set_id}", self.light),
            Route("/light/{set_id}/events", self.light_events),
            Route("/takes", self.takes_page),
            Route("/takes.csv", self.takes_csv),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/set/{set_id}/{action}", self.control, methods=["POST"]),
            Route("/metrics", MetricsPage(self.stage, web, self.user).page),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        self.lot: LotPages | None = None
        if web.lot:  # the central board of a lot
            self.lot = LotPages(settings, self.feed.live, self.page, self.denied)
            routes[:0] = self.lot.routes()
        middleware = [Middleware(SessionMiddleware, secret_key=session_key(self.data_dir), session_cookie="setbridge",
                                 max_age=int(web.session_hours * 3600), same_site="strict",
                                 https_only=web.secure_cookies)]
        self.app = Starlette(routes=routes, middleware=middleware, lifespan=self._lifespan)

    # -- lifecycle -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self.connect:
            self.feed.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            self.feed.stop_timers()
            await run_in_threadpool(self.feed.stop)
            self.takes.close()

    # -- helpers ---------------------------------------------------------------------------
    def user(self, request: Request) -> dict[str, Any] | None:
        name = request.session.get("user")
        entry = self.settings.web.users.get(name) if isinstance(name, str) else None
        return {"name": name, "control": entry.control} if entry else None

    def can_control(self, user: dict[str, Any] | None) -> bool:
        return bool(user and user["control"] and self.feed.control is not None)

    def csrf(self, request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = request.session["csrf"] = secrets.token_urlsafe(24)
        return token

    def csrf_ok(self, request: Request, form_token: object) -> bool:
        origin = request.headers.get("origin")
        if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
            return False
        token = request.session.get("csrf")
        return isinstance(token, str) and isinstance(form_token, str) and hmac.compare_digest(token, form_token)

    def denied(self, request: Request) -> Response | None:
        """A redirect to the login page when viewing needs a login and nobody is logged in."""
        if self.settings.web.login_to_view and self.user(request) is None:
            if request.url.path.endswith("/events") or request.url.path.endswith(".csv"):
                return PlainTextResponse("log in first", status_code=401)
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return None

    def page(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        user = self.user(request)
        m = self.settings.mqtt
        html = self.env.get_template(template).render(
            user=user, csrf=self.csrf(request), version=__version__, broker=f"{m.host}:{m.port}",
            broker_up=self.stage.broker_connected, login_needed=self.settings.web.login_to_view,
            has_users=bool(self.settings.web.users), flash=request.session.pop("flash", None), **context)
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    # -- pages -----------------------------------------------------------------------------
    async def board(self, request: Request) -> Response:
        if (r := self.denied(request)) is not None:
            return r
        if self.lot is not None:
            return RedirectResponse("/lot", status_code=303)
        user = self.user(request)
        board = self.stage.board()
        return self.page(request, "board.html", status_code=200 if board["broker"] else 503, board=board,
                         board_json=dumps(board), control=self.can_control(user), actions=PANEL_ACTIONS)

    async def light(self, request: Request) -> Response:
        if (r := self.denied(request)) is not None:
            return r
        set_id = request.path_params["set_id"]
        if not SET_ID.match(set_id):
            return PlainTextResponse("a set id is lower-case letters, digits and dashes\n", status_code=404)
        view = self.stage.light_view(set_id)
        return self.page(request, "light.html", view=view, set_id=set_id,
                         timeout_ms=int(self.settings.web.link_timeout_s * 1000))

    async def takes_page(self, request: Request) -> Response:
        if (r := self.denied(request)) is not None:
            return r
        day = _day(request.query_params.get("date"))
        if day is None:
            return self.page(request, "takes.html", status_code=400, takes=[], day=None,
                             error="date must look like 2026-05-01")
        takes = await run_in_threadpool(self.takes.takes, day, request.query_params.get("set") or None)
        return self.page(request, "takes.html", takes=[as_dict(t) | {"obj": t} for t in takes], day=day, error=None)

    async def takes_csv(self, request: Request) -> Response:
        if (r := self.denied(request)) is not None:
            return r
        day = _day(request.query_params.get("date"))
        if day is None:
            return PlainTextResponse("date must look like 2026-05-01\n", status_code=400)
        takes = await run_in_threadpool(self.takes.takes, day, request.query_params.get("set") or None)
        return Response(to_csv(takes), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="takes-{day.isoformat()}.csv"', **SECURITY_HEADERS})

    # -- event streams ---------------------------------------------------------------------
    async def board_events(self, request: Request) -> Response:
        if (r := self.denied(request)) is not None:
            return r
        return self._stream(request, BOARD, ("board", lambda: dumps(self.stage.board())))

    async def light_events(self, request: Request) -> Response:
        if (r := self.denied(request)) is not None:
            return r
        set_id = request.path_params["set_id"]
        if not SET_ID.match(set_id):
            return PlainTextResponse("a set id is lower-case letters, digits and dashes\n", status_code=404)
        return self._stream(request, f"light:{set_id}", ("view", lambda: dumps(self.stage.light_view(set_id))))

    def _stream(self, request: Request, channel: str, first: tuple[str, Any]) -> Response:
        if self.streams >= MAX_STREAMS:
            log.warning("web: refused an event stream: %d are open already", self.streams)
            return PlainTextResponse("too many open pages; retrying\n", status_code=503, headers={"Retry-After": "5"})
        self.streams += 1
        sub = self.fanout.subscribe(channel)

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 1000\r\n" + frame(first[0], first[1]())
                while True:
                    item = None if sub.dropped else await sub.next(KEEPALIVE_S)
                    if item is not None:
                        yield item
                    elif sub.dropped:  # too slow: end the stream; the browser reconnects for a snapshot
                        break
                    else:
                        yield b": keepalive\r\n\r\n"
            finally:
                self.fanout.unsubscribe(channel, sub)
                self.streams -= 1

        return EventSourceResponse(events(), ping=None, headers={"Cache-Control": "no-store",
                                                                 "X-Accel-Buffering": "no"})

    # -- login and control -----------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        next_url = request.query_params.get("next", "/")
        if not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
            next_url = "/"  # only a page of this board, never another site
        if request.method == "GET":
            return self.page(request, "login.html", error=None, next_url=next_url)
        form = await request.form()
        if not self.csrf_ok(request, form.get("csrf")):
            return self.page(request, "login.html", status_code=403, next_url=next_url,
                             error="the form expired; reload the page and try again")
        name, password = str(form.get("user", ""))[:64], str(form.get("password", ""))[:1024]
        client = request.client.host if request.client else "?"
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, []) if now - t < LOGIN_WINDOW_S]
        if len(recent) >= LOGIN_FAILURES:
            return self.page(request, "login.html", status_code=429, next_url=next_url,
                             error=f"too many failed logins from this device; wait {LOGIN_WINDOW_S:.0f} s")
        entry = self.settings.web.users.get(name)
        good = await run_in_threadpool(verify_password, password, entry.password_hash if entry else dummy_hash())
        if not (entry and good):
            log.warning("web: failed login for %r from %s", name, client)
            if len(self._failures) > 10000:
                self._failures.clear()
            self._failures[client] = recent + [now]
            return self.page(request, "login.html", status_code=401, next_url=next_url,
                             error="wrong user name or password")
        self._failures.pop(client, None)
        request.session.clear()
        request.session["user"] = name
        self.csrf(request)  # a fresh token for the logged-in session
        log.info("web: %s logged in", name)
        return RedirectResponse(next_url, status_code=303)

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if self.csrf_ok(request, form.get("csrf")):
            request.session.clear()
        return RedirectResponse("/", status_code=303)

    async def control(self, request: Request) -> Response:
        set_id, action = request.path_params["set_id"], request.path_params["action"]
        user = self.user(request)
        form = await request.form()
        if action not in PANEL_ACTIONS or set_id not in self.stage.sets:
            return PlainTextResponse(f"unknown set or action: {set_id}/{action}\n", status_code=404)
        if not self.can_control(user):
            return PlainTextResponse("you may not control the set; log in as a user with control = true\n",
                                     status_code=403)
        if not self.csrf_ok(request, form.get("csrf")):
            return PlainTextResponse("the request lacks this session's CSRF token; reload the page\n", status_code=403)
        assert user is not None
        response = await self.feed.request(set_id, action, source=f"web:{user['name']}")
        if response is None:
            message, ok = f"{action} sent to {set_id}, but no hub answered within 3 s", False
        elif response.ok:
            message, ok = f"{set_id}: {response.state}" + ("" if response.changed else " (unchanged)"), True
        else:
            message, ok = f"{action} refused: {response.error}", False
        log.info("web: %s asked %s to %s: %s", user["name"], set_id, action, message)
        if request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse({"ok": ok, "message": message}, status_code=200 if ok else 409)
        request.session["flash"] = message
        return RedirectResponse("/", status_code=303)


def _topics(settings: Settings) -> Topics:
    from ..topics import Topics

    return Topics(settings.mqtt.base_topic)


def _day(text: str | None) -> dt.date | None:
    if not text:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _clock(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "—"


def create_app(settings: Settings, connect: bool = True) -> Starlette:
    """The ASGI application for ``settings`` (``connect=False``: no MQTT, for page tests)."""
    return WebApp(settings, connect).app
