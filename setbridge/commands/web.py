"""``setbridge web``: the board, phone recording lights and the take log over HTTP;
``setbridge web passwd USER``: a password hash for ``[web.users]``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys

from ._common import add_config_arg, settings_from

MISSING = "the web board needs its extra packages; install them with: pip install 'setbridge[web]'"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("web", help="serve the live board, phone recording lights and the take log")
    add_config_arg(p)
    p.add_argument("--host", help="address to listen on (default: [web] host)")
    p.add_argument("--port", type=int, help="port to listen on (default: [web] port)")
    p.set_defaults(func=run)
    inner = p.add_subparsers(dest="web_command", metavar="SUBCOMMAND")
    pw = inner.add_parser("passwd", help="print a password hash for a [web.users] entry")
    pw.add_argument("user", help="user name (lower-case letters, digits, dashes)")
    pw.add_argument("--control", action="store_true", help="the user may roll, cut and stand by")
    pw.add_argument("--stdin", action="store_true", help="read the password from standard input")
    pw.set_defaults(func=passwd)


def run(args: argparse.Namespace) -> int:
    from ..errors import SetbridgeError

    try:
        import uvicorn

        from ..web.app import create_app
    except ImportError as exc:
        raise SetbridgeError(f"{MISSING} ({exc.name} is missing)") from None
    if args.verbose == 0:
        logging.getLogger().setLevel(logging.INFO)
    settings = settings_from(args)
    host = args.host or settings.web.host
    port = args.port or settings.web.port
    from ..web.connections import ConnectionGuard, connection_limits

    max_connections, backlog = connection_limits()
    guard = ConnectionGuard(max_connections, settings.web.request_timeout_s)
    streams = min(settings.web.max_streams, max_connections * 3 // 4)
    logging.getLogger(__name__).info("web: at most %d connections and %d event streams (from the open-file limit)",
                                     max_connections, streams)
    if streams < settings.web.max_streams:
        logging.getLogger(__name__).warning(
            "web: [web] max_streams = %d does not fit the open-file limit; serving %d (raise LimitNOFILE)",
            settings.web.max_streams, streams)
        settings = settings.model_copy(update={"web": settings.web.model_copy(update={"max_streams": streams})})
    app = create_app(settings)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    print(f"setbridge web: the board is at http://{shown}:{port}/ (lights at /light/<set>, takes at /takes)",
          flush=True)
    try:
        http: type[asyncio.Protocol] | str = guard.protocol()
    except ImportError as exc:  # a uvicorn without its h11 protocol module: serve, but say what is missing
        http = "auto"
        logging.getLogger(__name__).warning("web: slow connections are not bounded: this uvicorn has no h11 "
                                            "protocol to guard (%s)", exc)
    config = uvicorn.Config(guard.wrap(app), host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=2, lifespan="on", http=http, backlog=backlog)
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        raise SetbridgeError(f"cannot listen on {host}:{port}; is the port in use? choose another with --port") from exc
    return 0 if server.started else 1


def passwd(args: argparse.Namespace) -> int:
    import re

    from ..errors import SetbridgeError
    from ..web.passwords import hash_password

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", args.user):
        raise SetbridgeError(f"user name {args.user!r} must match [a-z0-9][a-z0-9-]*")
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.user}: ")
        if getpass.getpass("again: ") != password:
            raise SetbridgeError("the two passwords differ; nothing was written")
    if len(password) < 8:
        raise SetbridgeError("the password is shorter than 8 characters; choose a longer one")
    print(f"[web.users.{args.user}]\npassword_hash = \"{hash_password(password)}\"\n"
          f"control = {'true' if args.control else 'false'}")
    return 0
