"""A TCP link between two brokers that can be cut, for the lot's tests and benchmark.

``cut()`` is a silent cut, as a pulled cable or a dead switch: nothing passes either way and
nothing is closed, so each end finds out by its own keepalive; a new connection fails. ``restore()``
lets held bytes through again (a short cut that TCP survives), ``drop()`` closes every
connection at once (a broker or a router restarting).

>>> with Link(central.port) as link:       # stages bridge to 127.0.0.1:link.port
...     link.cut(); ...; link.restore()
"""

from __future__ import annotations

import socket
import threading

from .broker import free_port


class Link:
    """Forwards 127.0.0.1:``port`` to ``target_host``:``target_port``."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(64)
        self._closed = False
        self.connections = 0
        """Connections accepted so far (a reconnecting bridge adds one)."""
        threading.Thread(target=self._accept, name="link-accept", daemon=True).start()

    @property
    def up(self) -> bool:
        return self._open.is_set()

    def cut(self) -> None:
        """Stop every byte, both ways, without closing anything."""
        self._open.clear()

    def restore(self) -> None:
        self._open.set()

    def drop(self) -> None:
        """Close every connection now (each end sees its connection reset)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._closed = True
        self._open.set()
        self._server.close()
        self.drop()

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                inner, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connect, args=(inner,), name="link-connect", daemon=True).start()

    def _connect(self, inner: socket.socket) -> None:
        if not self._open.is_set():  # during a cut a new connection fails at once, as to an unreachable host
            inner.close()
            return
        try:
            outer = socket.create_connection(self.target, timeout=5)
        except OSError:
            inner.close()
            return
        outer.settimeout(None)
        for s in (inner, outer):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the link adds no delay of its own
        with self._lock:
            self._sockets += [inner, outer]
        for src, dst in ((inner, outer), (outer, inner)):
            threading.Thread(target=self._pump, args=(src, dst), name="link-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._open.wait()
                dst.sendall(data)
        except OSError:
            pass
        self._open.wait()  # a close, too, crosses only a working link
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
