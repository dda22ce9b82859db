"""An MQTT 5 publisher that writes its packets byte by byte, so that it can send what paho's own
writer refuses (a Payload Format Indicator of 2) and what paho's reader refuses (U+FEFF): for the
tests and ``bench/poison.py``."""

from __future__ import annotations

import socket
import struct
import uuid

BOM = "\ufeff"


def varint(n: int) -> bytes:
    out = b""
    while True:
        digit, n = n % 128, n // 128
        out += bytes([digit | (0x80 if n else 0)])
        if not n:
            return out


def field(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return struct.pack("!H", len(raw)) + raw


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def string_prop(ident: int, text: str) -> bytes:
    return bytes([ident]) + field(text)


def user_prop(key: str, value: str) -> bytes:
    return bytes([38]) + field(key) + field(value)


RESPONSE_TOPIC, CONTENT_TYPE, CORRELATION_DATA = 8, 3, 9

LEGAL_ODDITIES: dict[str, bytes] = {
    "content type with U+FEFF": string_prop(CONTENT_TYPE, f"application/json{BOM}"),
    "response topic with U+FEFF": string_prop(RESPONSE_TOPIC, f"{BOM}answers/x"),
    "content type U+FEFF alone": string_prop(CONTENT_TYPE, BOM),
    "user property name with U+FEFF": user_prop(f"{BOM}note", "x"),
    "user property value with U+FEFF": user_prop("note", f"{BOM}x{BOM}"),
    "payload format indicator 2": bytes([1, 2]),
    "payload format 1, payload not UTF-8": bytes([1, 1]),
    "empty user property": user_prop("", ""),
    "one user property thrice": user_prop("k", "v") * 3,
    "2,000 user properties": b"".join(user_prop(f"k{i}", "v") for i in range(2000)),
    "a 65,535-byte user property": bytes([38]) + field("k") + field("x" * 65535),
    "binary correlation data": bytes([CORRELATION_DATA]) + field(b"\x00\xff\xfe\xef\xbb\xbf"),
    "empty correlation data": bytes([CORRELATION_DATA]) + field(b""),
    "message expiry 2^32-1": bytes([2]) + struct.pack("!L", 0xFFFFFFFF),
    "response topic with a wildcard": string_prop(RESPONSE_TOPIC, "a/#"),
    "empty response topic": string_prop(RESPONSE_TOPIC, ""),
    "topic alias 1": bytes([35]) + struct.pack("!H", 1),
}
"""PUBLISH properties that Mosquitto 2.0 forwards to MQTT 5 subscribers (measured)."""



def read_packet(sock: socket.socket) -> bytes:
    """One MQTT packet from ``sock``: its first byte and what follows its remaining length."""
    head = sock.recv(1)
    if not head:
        raise ConnectionError("the peer closed the connection")
    length, shift = 0, 0
    while True:
        byte = sock.recv(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    rest = b""
    while len(rest) < length:
        rest += sock.recv(length - len(rest))
    return head + rest

class RawPublisher:
    """One MQTT 5 connection that publishes QoS 1 packets with the property bytes it is given."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        body = field("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + b"\x00" + field(f"raw-{uuid.uuid4().hex[:8]}")
        self.sock.sendall(packet(0x10, body))
        if self._read()[0] != 0x20:
            raise ConnectionError("no CONNACK")
        self.mid = 0

    def _read(self) -> bytes:
        return read_packet(self.sock)

    def publish(self, topic: str, payload: bytes | str, props: bytes = b"", retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK (so the broker took it)."""
        self.mid = self.mid % 65535 + 1
        data = payload.encode() if isinstance(payload, str) else payload
        body = field(topic) + struct.pack("!H", self.mid) + varint(len(props)) + props + data
        self.sock.sendall(packet(0x32 | int(retain), body))
        ack = self._read()
        if ack[0] != 0x40 or ack[1:3] != struct.pack("!H", self.mid):
            raise ConnectionError(f"no PUBACK: {ack!r}")
        if len(ack) > 3 and ack[3] >= 0x80:
            raise ConnectionError(f"the broker refused the message: reason {ack[3]:#x}")

    def close(self) -> None:
        self.sock.sendall(packet(0xE0, b"\x00"))
        self.sock.close()
