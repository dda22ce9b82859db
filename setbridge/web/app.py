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
import math
import re
import secrets
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
from .feed import BOARD, Fanout, Feed, Subscriber, frame
from .lot_app import LotPages
from .metrics import MetricsPage
from .passwords import PasswordChecker, dummy_hash
from .sessions import Logins
from .streams import StreamGate
from .stage import Stage, dumps
from .takes import TakeLog, as_dict, day_problem, to_csv
from .throttle import DEVICE_COOKIE, DEVICE_DAYS, DeviceCookies, LoginThrottle

if TYPE_CHECKING:
    from ..topics import Topics

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SET_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
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
        self.streams = StreamGate(web.max_streams, web.streams_per_address)
        self._origin_warned = False
        self._refused_streams = 0
        self.throttle = LoginThrottle()
        self.passwords = PasswordChecker()
        secret = session_key(self.data_dir)
        self.devices = DeviceCookies(secret)
        self.logins = Logins(self.data_dir / "revoked-logins.json", lifetime_s=web.session_hours * 3600)
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
            Route("/metrics", MetricsPage(self.stage, web, self.user, self._metrics_password).page),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        self.lot: LotPages | None = None
        if web.lot:  # the central board of a lot
            self.lot = LotPages(settings, self.feed.live, self.takes, self.page, self.denied)
            routes[:0] = self.lot.routes()
        middleware = [Middleware(SessionMiddleware, secret_key=secret, session_cookie="setbridge",
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
            self.passwords.close()

    # -- helpers ---------------------------------------------------------------------------
    def user(self, request: Request) -> dict[str, Any] | None:
        name = self.logins.user(request.session)
        entry = self.settings.web.users.get(name) if name is not None else None
        return {"name": name, "control": entry.control} if entry else None

    def can_control(self, user: dict[str, Any] | None) -> bool:
        return bool(user and user["control"] and self.feed.control is not None)

    def csrf(self, request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = request.session["csrf"] = secrets.token_urlsafe(24)
        return token

    def csrf_ok(self, request: Request, form_token: object) -> bool:
        if self.origin_problem(request) is not None:
            return False
        token = request.session.get("csrf")
        return isinstance(token, str) and isinstance(form_token, str) and hmac.compare_digest(token, form_token)

    def origin_problem(self, request: Request) -> str | None:
        """Why the browser's ``Origin`` is not this board's own address (None when it is or is absent).

        Behind a reverse proxy that passes neither ``Host`` nor ``X-Forwarded-Proto``, every form
        looks cross-site: the message says so, and which headers to pass."""
        origin = request.headers.get("origin")
        here = f"{request.url.scheme}://{request.url.netloc}"
        if not origin or origin == here:
            return None
        problem = (f"the form was sent from {origin[:100]!r}, but this board sees its own address as {here!r}: "
                   "if a reverse proxy serves the board, it must pass the Host and X-Forwarded-Proto headers "
                   "(docs/web.md, \"Behind a reverse proxy\"); otherwise open the board at its own address")
        if not self._origin_warned:
            self._origin_warned = True
            log.warning("web: refused a form: %s", problem)
        return problem

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
        day, problem = _day(request.query_params.get("date"))
        if day is None:
            return self.page(request, "takes.html", status_code=400, takes=[], day=None, error=problem)
        takes = await run_in_threadpool(self.takes.takes, day, request.query_params.get("set") or None)
        return self.page(request, "takes.html", takes=[as_dict(t) | {"obj": t} for t in takes], day=day, error=None)

    async def takes_csv(self, request: Request) -> Response:
        if (r := self.denied(request)) is not None:
            return r
        day, problem = _day(request.query_params.get("date"))
        if day is None:
            return PlainTextResponse(f"{problem}\n", status_code=400)
        takes = await run_in_threadpool(self.takes.takes, day, request.query_params.get("set") or None)
        return Response(to_csv(takes), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="takes-{day.isoformat()}.csv"', **SECURITY_HEADERS})

    # -- event streams ---------------------------------------------------------------------
    async def board_events(self, request: Request) -> Response:
        if (r := self.denied(request)) is not None:
            return r
        return self._stream(request, BOARD, ("board", lambda: dumps(self.stage.board())), known=True)

    async def light_events(self, request: Request) -> Response:
        if (r := self.denied(request)) is not None:
            return r
        set_id = request.path_params["set_id"]
        if not SET_ID.match(set_id):
            return PlainTextResponse("a set id is lower-case letters, digits and dashes\n", status_code=404)
        return self._stream(request, f"light:{set_id}", ("view", lambda: dumps(self.stage.light_view(set_id))),
                            known=set_id in self.stage.sets)

    def _stream(self, request: Request, channel: str, first: tuple[str, Any], known: bool) -> Response:
        sub = Subscriber()
        refused = self.streams.admit(request.client.host if request.client else "?", known, sub)
        if refused is not None:
            self._refused_streams += 1
            if self._refused_streams in (1, 10, 100) or self._refused_streams % 1000 == 0:
                log.warning("web: refused an event stream (%d so far): %s", self._refused_streams, refused)
            return PlainTextResponse(f"{refused}\n", status_code=503, headers={"Retry-After": "5"})
        self.fanout.add(channel, sub)

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
                self.streams.release(sub)

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
                             error=self.origin_problem(request) or "the form expired; reload the page and try again")
        name, password = str(form.get("user", ""))[:64], str(form.get("password", ""))[:1024]
        status, error, retry = await self.check_password(request, name, password)
        if status != 200:
            response = self.page(request, "login.html", status_code=status, next_url=next_url, error=error)
            if retry:
                response.headers["Retry-After"] = str(retry)
            return response
        self.logins.begin(request.session, name)
        self.csrf(request)  # a fresh token for the logged-in session
        log.info("web: %s logged in", name)
        redirect = RedirectResponse(next_url, status_code=303)
        redirect.set_cookie(DEVICE_COOKIE, self.devices.issue(name), max_age=DEVICE_DAYS * 86400,
                            path="/login", httponly=True, samesite="strict", secure=self.settings.web.secure_cookies)
        return redirect

    async def check_password(self, request: Request, name: str, password: str) -> tuple[int, str, int]:
        """``name``'s password checked within the login throttle, one check at a time:
        (200, "", 0) when right, else (HTTP status, why, seconds to wait or 0)."""
        client = request.client.host if request.client else "?"
        device = self.devices.device(request.cookies.get(DEVICE_COOKIE), name)
        wait = self.throttle.admit(client, name, device)  # counted now, before the hash runs
        if wait:
            return (429, f"too many logins tried for this user from this address; wait {math.ceil(wait)} s "
                         "(a device that has logged in as this user before is not held back)", math.ceil(wait))
        entry = self.settings.web.users.get(name)
        good = await self.passwords.verify(password, entry.password_hash if entry else dummy_hash())
        if good is None:
            log.warning("web: refused a login for %r from %s: too many password checks queued", name, client)
            return 503, "the board is busy checking other logins; try again in a few seconds", 5
        if not (entry and good):
            log.warning("web: failed login for %r from %s", name, client)
            return 401, "wrong user name or password", 0
        self.throttle.succeeded(client, name, device)
        return 200, "", 0

    async def _metrics_password(self, request: Request, name: str, password: str) -> bool:
        return (await self.check_password(request, name, password))[0] == 200

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if self.csrf_ok(request, form.get("csrf")):
            self.logins.end(request.session)
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
            problem = self.origin_problem(request) or "the request lacks this session's CSRF token; reload the page"
            return PlainTextResponse(f"{problem}\n", status_code=403)
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


def _day(text: str | None) -> tuple[dt.date | None, str]:
    """The day a ``?date=`` asks for, or None and why not."""
    if not text:
        return dt.date.today(), ""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None, "date must look like 2026-05-01"
    problem = day_problem(day)
    return (None, problem) if problem else (day, "")


def _clock(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S") if ts else "—"


def create_app(settings: Settings, connect: bool = True) -> Starlette:
    """The ASGI application for ``settings`` (``connect=False``: no MQTT, for page tests)."""
    return WebApp(settings, connect).app
