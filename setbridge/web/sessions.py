"""Logins the server can end. The session cookie (signed) carries the user, a random login id and
when the login began; the server keeps the ids of logins that logged out until they would have
expired anyway, in a small file beside the take log. So a cookie and CSRF token copied before a
logout are worthless after it, also across restarts, and a login ends ``[web] session_hours``
after it began however often it is used (the cookie's own expiry restarts with every answer).

>>> logins = Logins(Path("revoked-logins.json"), lifetime_s=12 * 3600)
>>> logins.begin(session, "ad"); logins.user(session)
'ad'
>>> logins.end(session); logins.user(session) is None
True
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Logins:
    """Begins, checks and ends logins kept in a session mapping (Starlette's ``request.session``)."""

    def __init__(self, path: Path, lifetime_s: float, clock: Callable[[], float] = time.time):
        self.path = path
        self.lifetime_s = lifetime_s
        self.clock = clock
        self.not_before = 0.0
        self.revoked: dict[str, float] = {}
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
            self.revoked = {str(k): float(v) for k, v in data.items()}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # the logged-out ids are lost: end every login that began before now instead
            self.not_before = clock()
            log.warning("web: %s is unreadable (%s); every login must log in again", path, exc)

    def begin(self, session: MutableMapping[str, Any], user: str) -> None:
        session.clear()
        session.update(user=user, login=secrets.token_urlsafe(16), since=self.clock())

    def user(self, session: MutableMapping[str, Any]) -> str | None:
        """The logged-in user of ``session``, or None (never logged in, logged out, or expired)."""
        user, login, since = session.get("user"), session.get("login"), session.get("since")
        if not (isinstance(user, str) and isinstance(login, str) and isinstance(since, (int, float))):
            return None
        if since < self.not_before or self.clock() >= since + self.lifetime_s or login in self.revoked:
            return None
        return user

    def end(self, session: MutableMapping[str, Any]) -> None:
        """Log out: the login's id is refused from now on, wherever its cookie was copied to."""
        login, since = session.get("login"), session.get("since")
        session.clear()
        if not (isinstance(login, str) and isinstance(since, (int, float))):
            return
        now = self.clock()
        self.revoked = {k: v for k, v in self.revoked.items() if v > now}
        self.revoked[login] = since + self.lifetime_s
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                json.dump(self.revoked, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:  # still refused in memory until a restart
            log.warning("web: could not save a logout in %s (%s); it holds until the web process restarts",
                        self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
