"""Read a received PUBLISH packet as MQTT 5 defines it, for the packets paho's parser refuses.

paho-mqtt 2.2 refuses a string property holding U+FEFF ("[MQTT-1.5.4-3]"), although that rule
says a receiver must NOT skip or strip it: it is a legal character, and Mosquitto forwards it.
paho also refuses a Payload Format Indicator other than 0 or 1 with an exception that ends its
network thread. The broker has checked what it forwards (UTF-8, no duplicate properties, no
unknown identifiers), so this reader keeps every value as sent and refuses only what it cannot
read at all (:class:`UnreadablePacket`).
"""

from __future__ import annotations

import struct
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_BYTE, _INT16, _INT32, _VARINT, _BINARY, _STRING, _PAIR = range(7)
PUBLISH_PROPERTIES: dict[int, tuple[str, int]] = {
    1: ("PayloadFormatIndicator", _BYTE),
    2: ("MessageExpiryInterval", _INT32),
    3: ("ContentType", _STRING),
    8: ("ResponseTopic", _STRING),
    9: ("CorrelationData", _BINARY),
    11: ("SubscriptionIdentifier", _VARINT),
    35: ("TopicAlias", _INT16),
    38: ("UserProperty", _PAIR),
}
"""Property identifier → paho's attribute name and the value's type (MQTT 5 section 3.3.2.3)."""
_MULTIPLE = {"SubscriptionIdentifier", "UserProperty"}
"""Properties a PUBLISH may carry more than once; paho keeps them as lists."""


class UnreadablePacket(ValueError):
    """A PUBLISH this reader cannot read (cut short, an unknown property, text that is not UTF-8)."""


def read_publish(header: int, packet: bytes | bytearray, mqtt5: bool) -> mqtt.MQTTMessage:
    """The message of one PUBLISH packet (``header``: its first byte; ``packet``: what follows the
    remaining length), built as paho builds it, with properties as paho names them."""
    qos = (header & 0x06) >> 1
    if qos == 3:
        raise UnreadablePacket("QoS 3 does not exist")
    data = bytes(packet)
    topic, pos = _binary(data, 0, len(data))
    mid = 0
    if qos:
        mid, pos = _int(data, pos, 2), pos + 2
    properties = None
    if mqtt5:
        length, pos = _varint(data, pos)
        end = pos + length
        if end > len(data):
            raise UnreadablePacket(f"properties run {end - len(data)} bytes past the packet")
        properties = read_properties(data, pos, end)
        pos = end
    message = mqtt.MQTTMessage(mid=mid, topic=topic)
    message.dup, message.qos, message.retain = bool(header & 0x08), qos, bool(header & 0x01)
    message.properties, message.payload, message.timestamp = properties, data[pos:], time.monotonic()
    return message


def read_properties(data: bytes, pos: int, end: int) -> Properties:
    """The PUBLISH properties in ``data[pos:end]``, every value kept as sent."""
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    while pos < end:
        ident, pos = _varint(data, pos)
        try:
            name, kind = PUBLISH_PROPERTIES[ident]
        except KeyError:
            raise UnreadablePacket(f"property {ident} does not belong in a PUBLISH") from None
        value, pos = _value(data, pos, end, kind)
        if name in _MULTIPLE:
            value = [*getattr(properties, name, []), value]
        # Set past paho's own checks, which refuse legal values (see the module's docstring).
        object.__setattr__(properties, name, value)
    return properties


def publish_ids(header: int, packet: bytes | bytearray) -> tuple[int, int, bytes] | None:
    """QoS, packet id and topic of a PUBLISH whose rest may be unreadable: what its acknowledgement
    needs. None when not even these can be read."""
    qos, data = (header & 0x06) >> 1, bytes(packet)
    try:
        topic, pos = _binary(data, 0, len(data))
        mid = _int(data, pos, 2) if qos else 0
    except UnreadablePacket:
        return None
    return (qos, mid, topic) if qos < 3 and (mid or not qos) else None


def _value(data: bytes, pos: int, end: int, kind: int) -> tuple[object, int]:
    if kind == _BYTE:
        return _int(data, pos, 1, end), pos + 1
    if kind == _INT16:
        return _int(data, pos, 2, end), pos + 2
    if kind == _INT32:
        return _int(data, pos, 4, end), pos + 4
    if kind == _VARINT:
        return _varint(data, pos, end)
    if kind == _BINARY:
        return _binary(data, pos, end)
    if kind == _STRING:
        return _string(data, pos, end)
    key, pos = _string(data, pos, end)
    value, pos = _string(data, pos, end)
    return (key, value), pos


def _int(data: bytes, pos: int, size: int, end: int | None = None) -> int:
    stop = len(data) if end is None else end
    if pos + size > stop:
        raise UnreadablePacket(f"a {size}-byte integer runs past its end")
    return int.from_bytes(data[pos:pos + size], "big")


def _varint(data: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    stop = len(data) if end is None else end
    value = 0
    for i in range(4):
        if pos + i >= stop:
            raise UnreadablePacket("a variable byte integer runs past its end")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise UnreadablePacket("a variable byte integer is longer than 4 bytes")


def _binary(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    if pos + 2 > end:
        raise UnreadablePacket("a length runs past its end")
    (size,) = struct.unpack_from("!H", data, pos)
    start = pos + 2
    if start + size > end:
        raise UnreadablePacket(f"a {size}-byte field runs past its end")
    return data[start:start + size], start + size


def _string(data: bytes, pos: int, end: int) -> tuple[str, int]:
    raw, pos = _binary(data, pos, end)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise UnreadablePacket(f"a string property is not UTF-8 ({exc.reason})") from None
