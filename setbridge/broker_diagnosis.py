"""Why a broker connection fails, in one line: the name does not resolve, nothing listens, no
route, no answer to the MQTT CONNECT (a broker without MQTT 5, such as amqtt, stays silent), or
the broker refused the login.

paho only says that a connection failed; :func:`diagnose` asks the network what went wrong
(a DNS lookup, then a TCP connect), off paho's thread, so the hub can say it at once.

>>> diagnose("broker.lan", 1883).text
'the name broker.lan does not resolve ([Errno -2] Name or service not known); check [mqtt] host'
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import Literal

from .ratelog import RateLimitedLog

ProblemKind = Literal["unreachable", "login", "protocol"]

PROBE_TIMEOUT_S = 3.0
"""The longest the TCP probe waits for an answer (a silent drop looks like no route)."""


@dataclass(frozen=True)
class Problem:
    """A connection problem: its kind (``unreachable``, ``login``, ``protocol``) and one line."""

    kind: ProblemKind
    text: str


def diagnose(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> Problem:
    """What stops a TCP connection to ``host:port`` now (blocks up to the resolver's and ``timeout``)."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return Problem("unreachable", f"the name {host} does not resolve ({exc}); check [mqtt] host")
    except (OSError, UnicodeError) as exc:
        return Problem("unreachable", f"the name {host} cannot be looked up ({exc}); check [mqtt] host")
    last: OSError | None = None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(address)
            except ConnectionRefusedError:
                return Problem("unreachable", f"refused the connection: nothing listens on port {port} "
                                              "(is the broker running? check [mqtt] port)")
            except TimeoutError:
                last = TimeoutError(f"no answer within {timeout:g} s")
            except OSError as exc:
                last = exc
            else:
                return Problem("unreachable", "it takes TCP connections but the MQTT connection failed (TLS, or a "
                                              "broker that closes at once? check [mqtt] port and [mqtt.tls])")
    reason = last.strerror if last is not None and last.strerror else str(last)
    return Problem("unreachable", f"no route to it ({reason}); check the network, the address and any firewall "
                                  "between them")


def refused(reason: str, mqtt5: bool) -> Problem:
    """The broker answered the CONNECT and refused it (a CONNACK reason)."""
    lowered = reason.lower()
    if "protocol" in lowered:
        return Problem("protocol", f"the broker refused the connection: {reason}; set [mqtt] protocol = \"3.1.1\" "
                                   "for a broker without MQTT 5")
    if "not authori" in lowered or "bad user" in lowered or "password" in lowered or "identifier" in lowered:
        return Problem("login", f"the broker refused the connection (the login): {reason}; check [mqtt] "
                                "username/password (setbridge broker add-user)")
    return Problem("login", f"the broker refused the connection: {reason}")


def silent(host: str, port: int, waited_s: float, mqtt5: bool) -> Problem:
    """The broker took the TCP connection and never answered the MQTT CONNECT."""
    if mqtt5:
        return Problem("protocol", f"it did not answer the MQTT 5 CONNECT within {waited_s:g} s; a broker without "
                                   "MQTT 5 (amqtt) stays silent: set [mqtt] protocol = \"3.1.1\"")
    return Problem("unreachable", f"it did not answer the MQTT CONNECT within {waited_s:g} s; is it an MQTT broker "
                                  "(a TLS port? check [mqtt] port and [mqtt.tls])?")


CONNACK_WAIT_S = 5.0
"""A broker that takes the TCP connection and says nothing for this long is reported (amqtt with MQTT 5)."""
REPEAT_S = 60.0
"""After the first line at once, one summary line per this many seconds while the problem lasts."""


class ConnectionWatch:
    """Follows one client's connection attempts and says what stops them: the first problem is
    logged at once (ERROR), then one summary line per ``REPEAT_S``; :attr:`problem` holds the
    latest for ``setbridge status``. Called from paho's thread; the network probe runs on a
    thread of its own."""

    def __init__(self, host: str, port: int, mqtt5: bool, logger: logging.Logger):
        self.host, self.port, self.mqtt5 = host, port, mqtt5
        self.problem: Problem | None = None
        self.quiet = False
        """True: keep :attr:`problem` without logging it (a command-line tool reports it itself)."""
        self.log = RateLimitedLog(logger, f"cannot connect to the MQTT broker {host}:{port} (%(n)d attempt(s) in "
                                          "%(s).0f s): %(who)s", every_s=REPEAT_S, level=logging.ERROR)
        self._logger = logger
        self._lock = threading.Lock()
        self._attempt = 0
        self._up = False
        self._probing = False
        self._timer: threading.Timer | None = None
        self._stopped = False

    def report(self, problem: Problem) -> None:
        self.problem = problem
        if not (self._stopped or self.quiet):
            self.log.count(problem.text)

    def attempt(self) -> None:
        """A connection attempt starts: report it if the CONNACK never comes."""
        with self._lock:
            self._attempt += 1
            self._up = False
            if self._timer is not None:
                self._timer.cancel()
            if self._stopped:
                return
            self._timer = threading.Timer(CONNACK_WAIT_S, self._no_answer, args=(self._attempt,))
            self._timer.daemon = True
            self._timer.start()

    def _no_answer(self, attempt: int) -> None:
        with self._lock:
            if attempt != self._attempt or self._up or self._stopped:
                return
        self.report(silent(self.host, self.port, CONNACK_WAIT_S, self.mqtt5))

    def failed(self) -> None:
        """The TCP (or TLS) connection failed: find out why, off paho's thread."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self._probing or self._stopped:
                return
            self._probing = True
        threading.Thread(target=self._probe, name="broker-probe", daemon=True).start()

    def _probe(self) -> None:
        try:
            problem = diagnose(self.host, self.port)
        finally:
            with self._lock:
                self._probing = False
        with self._lock:
            if self._up:
                return
        self.report(problem)

    def refused(self, reason: str) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
        self.report(refused(reason, self.mqtt5))

    def connected(self) -> None:
        with self._lock:
            self._up = True
            if self._timer is not None:
                self._timer.cancel()
        if self.problem is not None:
            self.log.flush(due_only=False)
            self._logger.warning("connected to the MQTT broker %s:%d", self.host, self.port)
            self.problem = None

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
