"""A small non-blocking MQTT 3.1.1 client for MicroPython (and CPython).

Written from the MQTT 3.1.1 specification. One TCP connection, driven by
``poll(now_ms)`` from the application's main loop: nothing here blocks except
the name lookup of the broker host (use an IP address on a set).

    c = MQTTClient("door-1", "192.168.1.10", will=("t/status", b"offline", True, 1))
    c.on_message = lambda topic, payload, retain: ...
    c.on_connect = lambda: c.subscribe([("t/state", 1)])
    c.start(now)              # begin connecting
    while True:
        c.poll(now)           # read, write, keep alive
        c.wait(50)            # sleep until the socket is readable or 50 ms pass

Supports QoS 0 and 1 in both directions, retained messages, a last will,
user/password, keepalive PINGREQ with a PINGRESP deadline, and oversized
inbound packets skipped without buffering them.

TLS (MicroPython's ``ssl``): pass ``tls=(context, server_name)``; the handshake
runs inside ``poll`` without blocking, the broker's certificate is checked
against the context's CA and name, and a client built with ``tls`` never sends
a byte in clear text: a failed handshake is a failed connect, retried over TLS.
"""

import select
import socket
import time

from clock import diff as _diff
from clock import ticks as _ticks

CLOSED = 0
CONNECTING = 1  # TCP connect in progress
WAIT_CONNACK = 2
CONNECTED = 3

_EAGAIN = (11, 115, 114, 119)  # EAGAIN/EWOULDBLOCK, EINPROGRESS, EALREADY (Linux, lwIP)

CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class MQTTError(Exception):
    pass


def _str(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def _remaining_length(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def packet(first, body):
    """One MQTT control packet: fixed header byte, remaining length, body."""
    return bytes((first,)) + _remaining_length(len(body)) + body


class MQTTClient:
    """Non-blocking MQTT 3.1.1 client; see the module docstring."""

    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=10,
                 will=None, max_packet=4096, connect_timeout_ms=5000, log=None, tls=None):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.keepalive = keepalive
        self.will = will  # (topic, payload bytes, retain, qos)
        self.max_packet = max_packet
        self.connect_timeout_ms = connect_timeout_ms
        self.tls = tls  # (ssl context, server name) or None
        self.log = log or (lambda msg: None)
        self.on_message = None  # fn(topic: str, payload: bytes, retain: bool)
        self.on_connect = None  # fn()
        self.on_disconnect = None  # fn(reason: str)
        self.state = CLOSED
        self.sock = None
        self._poller = None
        self._in = bytearray()
        self._out = bytearray()
        self._skip = 0  # bytes of an oversized packet still to discard
        self._polling = False  # inside poll(): writes are sent together at its end
        self._pid = 0
        self._since = 0  # when the current phase began
        self._last_tx = 0
        self._last_rx = 0
        self._ping_sent = None
        self._addr = None

    # -- connection ----------------------------------------------------------------
    def start(self, now=None):
        """Begin a non-blocking connect; progress happens in ``poll``."""
        self.close()
        now = _ticks() if now is None else now
        if self._addr is None:
            self._addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: no Nagle delay on small packets
        except (OSError, AttributeError):
            pass
        s.setblocking(False)
        self.sock = s
        self._poller = select.poll()
        self._poller.register(s, select.POLLIN | select.POLLOUT)
        self._in = bytearray()
        self._out = bytearray()
        self._skip = 0
        self._ping_sent = None
        self._since = now
        self.state = CONNECTING
        try:
            s.connect(self._addr)
        except OSError as exc:
            if exc.args[0] not in _EAGAIN:
                self._fail("connect failed: %r" % (exc,), notify=False)
                return False
        return True

    def _connect_packet(self):
        flags = 0x02  # clean session
        payload = _str(self.client_id)
        if self.will:
            topic, msg, retain, qos = self.will
            flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
            payload += _str(topic) + _str(msg)
        if self.user is not None:
            flags |= 0x80
            payload += _str(self.user)
            if self.password is not None:
                flags |= 0x40
                payload += _str(self.password)
        body = _str("MQTT") + bytes((4, flags, self.keepalive >> 8, self.keepalive & 0xFF)) + payload
        return packet(0x10, body)

    def close(self):
        """Drop the connection without a DISCONNECT (the broker then sends our will)."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self._poller = None
        self.state = CLOSED

    def disconnect(self):
        """Clean DISCONNECT: the broker discards our will."""
        if self.state == CONNECTED:
            self._send(b"\xe0\x00")
            self._flush()
        self.close()

    def _fail(self, reason, notify=True):
        was = self.state
        self.close()
        self.log("mqtt: " + reason)
        if notify and was != CLOSED and self.on_disconnect:
            self.on_disconnect(reason)

    @property
    def connected(self):
        return self.state == CONNECTED

    # -- sending -------------------------------------------------------------------
    def _send(self, data):
        self._out += data
        self._last_tx = _ticks()
        if len(self._out) > 16 * self.max_packet:
            self._fail("send buffer full; the broker is not reading")
            return
        if not self._polling:
            self._flush()

    def _flush(self):
        while self._out and self.sock is not None and self.state != CONNECTING:
            try:
                n = self.sock.send(self._out)
            except OSError as exc:
                if exc.args[0] in _EAGAIN:
                    return
                self._fail("send failed: %r" % (exc,))
                return
            except ValueError as exc:  # MicroPython's ssl: the broker's certificate was refused
                self._fail(self._tls_refused(exc), notify=self.state == CONNECTED)
                return
            if not n:
                return
            self._out = self._out[n:]

    def _next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    def publish(self, topic, payload, retain=False, qos=0):
        """Queue a PUBLISH; returns False when not connected (nothing is queued then)."""
        if self.state != CONNECTED:
            return False
        if isinstance(payload, str):
            payload = payload.encode()
        body = _str(topic)
        if qos:
            pid = self._next_pid()
            body += bytes((pid >> 8, pid & 0xFF))
        self._send(packet(0x30 | (qos << 1) | (1 if retain else 0), body + payload))
        return True

    def subscribe(self, topics):
        """Subscribe to ``[(filter, qos), ...]`` in one SUBSCRIBE packet."""
        if self.state != CONNECTED:
            return False
        pid = self._next_pid()
        body = bytes((pid >> 8, pid & 0xFF))
        for topic, qos in topics:
            body += _str(topic) + bytes((qos,))
        self._send(packet(0x82, body))
        return True

    # -- the loop --------------------------------------------------------------------
    def wait(self, timeout_ms):
        """Sleep until the socket has something for ``poll`` or ``timeout_ms`` pass."""
        if self._poller is None:
            time.sleep_ms(timeout_ms) if hasattr(time, "sleep_ms") else time.sleep(timeout_ms / 1000)
            return
        self._poller.poll(max(0, int(timeout_ms)))

    def poll(self, now=None):
        """Do all pending I/O and timers; call often (it never blocks)."""
        if self.sock is None:
            return
        now = _ticks() if now is None else now
        if self.state == CONNECTING:
            self._poll_connecting(now)
            return
        self._polling = True
        try:
            self._poll_io(now)
        finally:
            self._polling = False
        if self.sock is not None:
            self._flush()
            self._timers(now)

    def _poll_io(self, now):
        events = self._poller.poll(0)
        for _obj, ev in events:
            if ev & (select.POLLERR | select.POLLHUP) and not ev & select.POLLIN:
                self._fail("connection lost")
                return
            if ev & select.POLLIN:
                self._read(now)

    def _poll_connecting(self, now):
        events = self._poller.poll(0)
        for _obj, ev in events:
            if ev & (select.POLLERR | select.POLLHUP):
                self._fail("broker %s:%d refused the connection" % (self.host, self.port), notify=False)
                return
            if ev & select.POLLOUT:
                self._poller.modify(self.sock, select.POLLIN)
                if self.tls is not None and not self._wrap():
                    return
                self.state = WAIT_CONNACK
                self._since = now
                self._last_rx = now
                self._send(self._connect_packet())
                return
        if _diff(now, self._since) > self.connect_timeout_ms:
            self._fail("connect to %s:%d timed out" % (self.host, self.port), notify=False)

    def _wrap(self):
        """Put TLS over the connected TCP socket; the handshake runs in later reads and writes."""
        context, name = self.tls
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=name, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            self._fail(self._tls_refused(exc), notify=False)
            return False
        self._poller = select.poll()
        self._poller.register(self.sock, select.POLLIN)
        return True

    def _tls_refused(self, exc):
        text = str(exc).strip() or repr(exc)
        return "TLS with %s:%d failed: %s" % (self.host, self.port, text)

    def _timers(self, now):
        if self.state == WAIT_CONNACK:
            if _diff(now, self._since) > self.connect_timeout_ms:
                self._fail("no CONNACK from the broker", notify=False)
            return
        if not self.keepalive:
            return
        if self._ping_sent is not None and _diff(now, self._ping_sent) > max(2000, self.keepalive * 500):
            self._fail("no PINGRESP; the broker is unreachable")
            return
        if self._ping_sent is None and _diff(now, self._last_tx) > self.keepalive * 500:
            self._ping_sent = now
            self._send(b"\xc0\x00")

    def _read(self, now):
        try:
            data = self.sock.recv(2048)
        except OSError as exc:
            if exc.args[0] in _EAGAIN:
                return True
            self._fail("receive failed: %r" % (exc,), notify=self.state == CONNECTED)
            return False
        except ValueError as exc:  # MicroPython's ssl: the broker's certificate was refused
            self._fail(self._tls_refused(exc), notify=self.state == CONNECTED)
            return False
        if data is None:  # TLS: a handshake or record still in progress
            return True
        if not data:
            self._fail("the broker closed the connection", notify=self.state == CONNECTED)
            return False
        self._last_rx = now
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        self._in += data
        return self._parse()

    def _parse(self):
        while self.sock is not None:
            buf = self._in
            if len(buf) < 2:
                return True
            length = 0
            mult = 1
            i = 1
            while True:
                if i >= len(buf):
                    return True  # the length is not complete yet
                byte = buf[i]
                length += (byte & 0x7F) * mult
                mult <<= 7
                i += 1
                if not byte & 0x80:
                    break
                if i > 4:
                    self._fail("malformed packet length from the broker")
                    return False
            if length > self.max_packet:
                first = buf[0]
                have = len(buf) - i
                if have >= length:
                    self._in = buf[i + length:]
                else:
                    self._skip = length - have
                    self._in = bytearray()
                self.log("mqtt: ignored a %d-byte packet (type %d); the limit is %d"
                         % (length, first >> 4, self.max_packet))
                if first >> 4 == 3 and (first >> 1) & 3 == 1 and have >= 4:
                    pid_at = i + 2 + ((buf[i] << 8) | buf[i + 1])
                    if pid_at + 2 <= len(buf):
                        self._send(b"\x40\x02" + bytes(buf[pid_at:pid_at + 2]))
                continue
            if len(buf) < i + length:
                return True
            first = buf[0]
            body = bytes(buf[i:i + length])
            self._in = buf[i + length:]
            self._handle(first, body)
        return False

    def _handle(self, first, body):
        kind = first >> 4
        if kind == 2:  # CONNACK
            if len(body) < 2 or body[1] != 0:
                code = body[1] if len(body) > 1 else -1
                self._fail("broker refused the connection: %s" % CONNACK_REASONS.get(code, code), notify=False)
                return
            self.state = CONNECTED
            if self.on_connect:
                self.on_connect()
        elif kind == 3:  # PUBLISH
            qos = (first >> 1) & 3
            if len(body) < 2:
                return
            tlen = (body[0] << 8) | body[1]
            pos = 2 + tlen
            try:
                topic = body[2:pos].decode()
            except UnicodeError:
                topic = None
            if qos:
                pid = body[pos:pos + 2]
                pos += 2
                if qos == 1:
                    self._send(b"\x40\x02" + pid)
                else:  # we never subscribe with QoS 2; complete the flow anyway
                    self._send(b"\x50\x02" + pid)
            if topic is not None and self.on_message:
                self.on_message(topic, body[pos:], bool(first & 1))
        elif kind == 6:  # PUBREL (QoS 2 flow)
            self._send(b"\x70\x02" + body[:2])
        elif kind == 13:  # PINGRESP
            self._ping_sent = None
        # PUBACK (4), SUBACK (9), UNSUBACK (11): nothing to do
