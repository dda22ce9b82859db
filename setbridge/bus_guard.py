"""One message paho cannot read never costs the connection.

paho-mqtt drops the connection on a PUBLISH its parser refuses, and the broker then sends it
again on every reconnect (a retained message, or a persistent session's queue), for ever. The
hub's last will says "offline" each time and every light shows link lost. Such a packet has been
checked by the broker, so :class:`GuardedClient` reads it with :func:`setbridge.bus_decode.read_publish`
(which keeps U+FEFF, as MQTT 5 requires); a packet neither can read is acknowledged and skipped
with a rate-limited log line. Written against paho-mqtt 2.2 (see :mod:`setbridge.bus_clients`).
"""

from __future__ import annotations

import logging
import struct

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.exception import MQTTException

from .bus_clients import PlainClient
from .bus_decode import UnreadablePacket, publish_ids, read_publish
from .escape import terminal
from .ratelog import RateLimitedLog

log = logging.getLogger(__name__)

PAHO_REFUSES = (MQTTException, ValueError, KeyError, IndexError, TypeError, struct.error)
"""What paho's PUBLISH parser raises on a packet it will not read (MalformedPacket is an
MQTTException; a bad UTF-8 string a ValueError)."""

read_for_paho = RateLimitedLog(log, "read %(n)d MQTT message(s) paho's parser refuses, in %(s).1f s (%(who)s)",
                               every_s=60, level=logging.INFO)
"""Messages paho refused and :func:`read_publish` read (legal MQTT 5, such as U+FEFF in a property)."""
skipped = RateLimitedLog(log, "skipped %(n)d MQTT message(s) the client cannot read, in %(s).1f s, acknowledged "
                         "so the broker does not send them again (%(who)s)", every_s=10)
"""Messages neither paho nor :func:`read_publish` could read: acknowledged and dropped."""


class GuardedClient(PlainClient):
    """paho's own client, except for the PUBLISH packets its parser refuses."""

    _delivered = False
    """The packet being handled reached ``on_message``: an error after that is not a parse error."""

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        self._delivered = True
        super()._handle_on_message(message)

    def _handle_publish(self) -> MQTTErrorCode:
        self._delivered = False
        try:
            return super()._handle_publish()
        except PAHO_REFUSES as exc:
            if self._delivered:
                raise
            return self._handle_refused_publish(exc)

    def _handle_refused_publish(self, refusal: Exception) -> MQTTErrorCode:
        """Read a PUBLISH paho refused; deliver and acknowledge it, or acknowledge and skip it."""
        header, packet = self._in_packet["command"], self._in_packet["packet"]
        ids = publish_ids(header, packet)
        if ids is None:  # not even a packet id: the stream is out of step, as paho says
            log.warning("MQTT packet unreadable from its first bytes (%s); reconnecting", terminal(str(refusal))[:120])
            return MQTTErrorCode.MQTT_ERR_PROTOCOL
        qos, mid, topic = ids
        name = terminal(topic.decode("utf-8", "replace"))[:80]
        try:
            message = read_publish(header, packet, self._protocol == mqtt.MQTTv5)
        except UnreadablePacket as exc:
            skipped.count(f"{name}: {exc}")
            return self._acknowledge(qos, mid)
        read_for_paho.count(f"{name}: {terminal(str(refusal))[:60]}")
        if qos == 2:  # setbridge subscribes with QoS 1 at most; paho's QoS 2 flow is not repeated here
            skipped.count(f"{name}: QoS 2")
            return self._acknowledge(qos, mid)
        self._handle_on_message(message)
        return MQTTErrorCode.MQTT_ERR_SUCCESS if self._manual_ack else self._acknowledge(qos, mid)

    def _acknowledge(self, qos: int, mid: int) -> MQTTErrorCode:
        if qos == 1:
            return self._send_puback(mid)
        if qos == 2:
            return self._send_pubrec(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS
