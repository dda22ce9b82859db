"""paho's MQTT client with a cheaper network loop for bursts of small messages.

paho reads a packet with three or more ``recv`` calls (command byte, each length byte, the rest),
writes each packet with its own ``send``, and wakes its loop with one byte on a socket pair for
every packet another thread queues. Under a burst of requests that is a dozen system calls per
request. :class:`BufferedClient` reads the socket in chunks, writes what is waiting in one
``send``, and wakes the loop once per batch; the MQTT behaviour is paho's own.

It overrides paho's private packet handling, so :func:`setbridge.bus_clients.make_client` builds it
only on the paho-mqtt minor it was written against, with every private name it touches present
(:data:`setbridge.bus_clients.CLIENT_INTERNALS`); otherwise the bus uses paho's own client.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .bus_guard import GuardedClient

READ_BURST = 50
"""Packets read before what is waiting (acknowledgements, answers, heartbeats) is written."""
READ_CHUNK = 16 * 1024
"""Bytes asked of the socket at once."""
WRITE_CHUNK = 64 * 1024
"""Bytes written with one ``send`` at most."""
TOPIC_CACHE = 1024
"""Topics whose encoded, checked form is remembered."""

_PUBLISH, _DISCONNECT = 0x30, 0xE0
_PASSABLE = {_PUBLISH, 0x40, 0x50, 0x60, 0x70, 0xC0}
"""Packets a heartbeat may go ahead of: publishes, their acknowledgements (PUBACK, PUBREC, PUBREL,
PUBCOMP, whose order among themselves stays), PINGREQ."""
_SUCCESS = ReasonCode(PacketTypes.PUBACK)
_NO_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]
_REASONS = {code: ReasonCode(PacketTypes.PUBACK, identifier=code) for code in (0x00, 0x10)}
"""PUBACK reason codes met in bursts: success and "no matching subscribers"."""
_NO_PUBLISH_PROPERTIES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
"""Shared by received messages that carry no properties (handlers only read them)."""
_INCOMING = mqtt.MQTTMessageInfo(0)
"""Shared by received messages: paho never uses an incoming QoS 0/1 message's delivery info."""


class _Receipt(mqtt.MQTTMessageInfo):
    """A publish's delivery info without paho's per-message condition lock: the bus waits on its
    own acknowledgements (:class:`setbridge.bus.Delivery`); :meth:`wait_for_publish` still works."""

    __slots__ = ()

    def __init__(self, mid: int):  # noqa: D107 - paho's fields, but no Condition
        self.mid = mid
        self._published = False
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _set_as_published(self) -> None:
        self._published = True

    def _check(self) -> None:
        """paho's refusals: a full queue, or another error than "try again"."""
        if self.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            raise ValueError("Message is not queued due to ERR_QUEUE_SIZE")
        if self.rc > 0 and self.rc != MQTTErrorCode.MQTT_ERR_AGAIN:
            raise RuntimeError(f"Message publish failed: {mqtt.error_string(self.rc)}")

    def is_published(self) -> bool:
        self._check()
        return self._published

    def wait_for_publish(self, timeout: float | None = None) -> None:
        self._check()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._published and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.005)


class BufferedClient(GuardedClient):
    """A paho client whose network loop makes few system calls per message."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._rdata = b""
        self._rpos = 0
        self._rsock: object = None
        self._wake_sent = False
        """A wake-up byte is on its way to the loop, which has not written since."""
        self._urgent = False
        """A QoS 0 publish (a heartbeat) was queued: it goes ahead of waiting QoS 1 publishes."""
        self._topics: dict[str, bytes] = {}
        """Topics published before, encoded and checked once."""

    def limit_inflight(self, most: int) -> None:
        """Send at most ``most`` QoS 1/2 publishes unacknowledged: what the broker announced in its
        CONNACK (MQTT 5 Receive Maximum). paho's setter refuses a connected client, so this runs
        from ``on_connect``, before paho resends what is waiting."""
        if most > 0:
            self._max_inflight_messages = most

    # -- reading --------------------------------------------------------------------------
    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: nothing of the old one is kept
            self._rsock, self._rdata, self._rpos = self._sock, b"", 0
        data, pos = self._rdata, self._rpos
        if pos >= len(data):
            data = super()._sock_recv(max(bufsize, READ_CHUNK))  # BlockingIOError when there is nothing
            if len(data) <= bufsize:
                self._rdata, self._rpos = b"", 0
                return data
            pos = 0
        end = pos + bufsize
        self._rdata, self._rpos = data, end
        return data[pos:end]

    def _packet_read(self) -> MQTTErrorCode:
        """A packet that lies whole in the buffer is handled from there; a packet arriving in parts,
        or before the buffer holds anything, is read by paho's own code (through the buffer)."""
        if self._in_packet["command"] != 0 or self._rsock is not self._sock:
            return super()._packet_read()
        data, start = self._rdata, self._rpos
        size, i, length, shift = len(data), start + 1, 0, 0
        while i < size and i - start <= 4:
            byte = data[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        else:  # the length is not all here (or is too long: paho says so)
            return super()._packet_read()
        end = i + length
        if end > size:
            return super()._packet_read()
        self._rpos = end
        self._in_packet = {"command": data[start], "have_remaining": 1, "remaining_count": list(data[start + 1:i]),
                           "remaining_mult": 1 << shift, "remaining_length": length,
                           "packet": bytearray(data[i:end]), "to_process": 0, "pos": 0}
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
                           "remaining_length": 0, "packet": bytearray(), "to_process": 0, "pos": 0}
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return rc

    def buffered(self) -> int:
        """Bytes read from the socket that the client has not handled yet."""
        return len(self._rdata) - self._rpos if self._rsock is self._sock else 0

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read packets until the socket has no more, writing what is waiting after every
        ``READ_BURST`` of them, so acknowledgements and heartbeats never wait behind a burst.

        It returns only with nothing read but unhandled, so that select() sees what is left."""
        count = 0
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            count += 1
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN or count % READ_BURST == 0:
                if self._out_packet:
                    rc = self.loop_write()
                    if rc or self._sock is None:
                        return rc
                if not self.buffered() and (rc == MQTTErrorCode.MQTT_ERR_AGAIN or count >= 4 * READ_BURST):
                    return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- writing ---
    def publish(self, topic: str, payload: mqtt.PayloadType = None, qos: int = 0, retain: bool = False,
                properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        """paho's publish; a QoS 1 message of bytes is queued without paho's per-message lock and
        with its topic checked once. Everything else is paho's own path."""
        if qos != 1 or not topic or not isinstance(payload, bytes) or len(payload) > 268_435_455:
            return super().publish(topic, payload, qos, retain, properties)
        topic_bytes = self._topics.get(topic)
        if topic_bytes is None:
            topic_bytes = topic.encode("utf-8")
            self._raise_for_invalid_topic(topic_bytes)
            if len(self._topics) >= TOPIC_CACHE:
                self._topics.clear()
            self._topics[topic] = topic_bytes
        mid = self._mid_generate()
        message = mqtt.MQTTMessage.__new__(mqtt.MQTTMessage)
        message.timestamp, message.state, message.dup, message.mid = mqtt.time_func(), mqtt.mqtt_ms_invalid, False, mid
        message.topic, message.payload, message.qos, message.retain = topic_bytes, payload, 1, retain
        message.properties, message.info = properties, _Receipt(mid)
        info = message.info
        with self._out_message_mutex:
            if (0 < self._max_queued_messages <= len(self._out_messages)) or mid in self._out_messages:
                info.rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
                return info
            self._out_messages[mid] = message
            if self._max_inflight_messages and self._inflight_messages >= self._max_inflight_messages:
                message.state = mqtt.mqtt_ms_queued  # sent when an acknowledgement frees a slot
                return info
            self._inflight_messages += 1
            message.state = mqtt.mqtt_ms_wait_for_puback
            info.rc = self._send_publish(mid, topic_bytes, payload, 1, retain, False, info, properties)
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:  # kept, and sent after the next connect
                self._inflight_messages -= 1
                message.state = mqtt.mqtt_ms_publish
            return info

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> MQTTErrorCode:
        """Queue a packet; wake the loop only when it is not awake already.

        The loop's own thread never needs waking (it writes before it waits again), and another
        thread needs one byte per batch: the loop clears ``_wake_sent`` before it writes, so a
        packet queued after that wakes it again."""
        thread = self._thread
        if thread is None:
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0, "to_process": len(packet),
                                 "packet": packet, "info": info})
        if qos == 0 and command & 0xF0 == _PUBLISH:
            self._urgent = True
        if not self._wake_sent and threading.get_ident() != thread.ident:
            self._wake_sent = True
            sock = self._sockpairW
            if sock is not None:
                try:
                    sock.send(b"0")
                except BlockingIOError:
                    pass
        self._call_socket_register_write()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        """Write waiting packets, many at once; a DISCONNECT is left to paho's own writer."""
        self._wake_sent = False
        out = self._out_packet
        if self._urgent:
            self._urgent = False
            self._hoist_qos0()
        while out:
            if out[0]["command"] & 0xF0 == _DISCONNECT:
                return super()._packet_write()
            batch, size = [], 0
            while out and size < WRITE_CHUNK and out[0]["command"] & 0xF0 != _DISCONNECT:
                packet = out.popleft()
                batch.append(packet)
                size += packet["to_process"]
            data = b"".join(p["packet"][p["pos"]:] if p["pos"] else p["packet"] for p in batch)
            try:
                written = self._sock_send(data)
            except (AttributeError, ValueError):
                out.extendleft(reversed(batch))
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            except BlockingIOError:
                out.extendleft(reversed(batch))
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError as err:
                out.extendleft(reversed(batch))
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to send on socket: %s", err)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            done = 0
            for i, packet in enumerate(batch):
                left = packet["to_process"]
                if written - done < left:  # this one is written in part, the rest not at all
                    part = max(0, written - done)
                    packet["pos"] += part
                    packet["to_process"] -= part
                    out.extendleft(reversed(batch[i:]))
                    break
                done += left
                packet["pos"] += left
                packet["to_process"] = 0
                if packet["command"] & 0xF0 == _PUBLISH and packet["qos"] == 0:
                    self._qos0_written(packet)
            with self._msgtime_mutex:
                self._last_msg_out = mqtt.time_func()
            if written < size:
                return MQTTErrorCode.MQTT_ERR_AGAIN
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _hoist_qos0(self) -> None:
        """Move waiting QoS 0 publishes (heartbeats) ahead of the waiting QoS 1 publishes and
        acknowledgements, in their order: a burst of answers never delays a heartbeat. Nothing moves
        ahead of a packet already written in part, a CONNECT, (UN)SUBSCRIBE or DISCONNECT.
        Runs on the loop's thread, the only one taking packets off the queue."""
        out = self._out_packet
        waiting = list(out)  # others only append, so these positions stay right
        front = 1 if waiting and waiting[0]["pos"] else 0
        for i, packet in enumerate(waiting):
            kind = packet["command"] & 0xF0
            if i < front:
                continue
            if kind == _PUBLISH and packet["qos"] == 0:
                if i != front:
                    del out[i]
                    out.insert(front, packet)
                front += 1
            elif kind not in _PASSABLE:
                front = i + 1

    def _qos0_written(self, packet: Any) -> None:
        """What paho does once a QoS 0 PUBLISH is written: ``on_publish`` and the info's flag."""
        with self._callback_mutex:
            on_publish = self.on_publish
        if on_publish is not None:
            with self._in_callback_mutex:
                try:
                    if self._callback_api_version == CallbackAPIVersion.VERSION1:
                        on_publish(self, self._userdata, packet["mid"])  # type: ignore[call-arg]
                    else:
                        on_publish(self, self._userdata, packet["mid"], ReasonCode(PacketTypes.PUBACK),  # type: ignore[call-arg]
                                   Properties(PacketTypes.PUBACK))  # type: ignore[no-untyped-call]
                except Exception as err:
                    self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_publish: %s", err)
                    if not self.suppress_exceptions:
                        raise
        if packet["info"] is not None:
            packet["info"]._set_as_published()

    def _handle_pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        """A PUBACK without properties (a message id, perhaps a reason code such as "no matching
        subscribers") is handled with shared reason-code objects instead of decoding new ones."""
        packet = self._in_packet["packet"]
        if cmd != "PUBACK" or not 2 <= len(packet) <= 3:
            return super()._handle_pubackcomp(cmd)
        mid = (packet[0] << 8) | packet[1]
        reason = _REASONS.get(packet[2]) if len(packet) == 3 else _SUCCESS
        if reason is None:
            return super()._handle_pubackcomp(cmd)
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, reason, _NO_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_publish(self) -> MQTTErrorCode:
        """A received QoS 0/1 PUBLISH without properties, decoded in place. paho builds the same
        message with a new delivery info (and its lock) that nothing uses; anything else
        (QoS 2, properties, a malformed packet, paho's logging on) is left to paho."""
        if self._logger is not None or self.on_log is not None:
            return super()._handle_publish()
        header, packet = self._in_packet["command"], self._in_packet["packet"]
        qos, size = (header & 0x06) >> 1, len(packet)
        pos = 2 + ((packet[0] << 8) | packet[1]) if size >= 2 else size + 1
        mid = 0
        if qos == 1 and pos + 2 <= size:
            mid = (packet[pos] << 8) | packet[pos + 1]
            pos += 2
        v5 = self._protocol == mqtt.MQTTv5
        if qos > 1 or mid == 0 and qos or pos > size or (v5 and (pos >= size or packet[pos] != 0)) or pos == 2:
            return super()._handle_publish()
        message = mqtt.MQTTMessage.__new__(mqtt.MQTTMessage)
        message.timestamp, message.state, message.info = mqtt.time_func(), mqtt.mqtt_ms_invalid, _INCOMING
        message.mid, message.topic, message.qos = mid, bytes(packet[2:pos - 2 if qos else pos]), qos
        message.dup, message.retain = bool(header & 0x08), bool(header & 0x01)
        message.properties = _NO_PUBLISH_PROPERTIES if v5 else None
        message.payload = bytes(packet[pos + 1 if v5 else pos:])
        self._handle_on_message(message)
        if qos == 0 or self._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._send_puback(mid)

    def _update_inflight(self) -> MQTTErrorCode:
        """paho looks through every unacknowledged message after each acknowledgement; when none
        is waiting for a free slot there is nothing to look for."""
        if len(self._out_messages) <= self._inflight_messages:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._update_inflight()
