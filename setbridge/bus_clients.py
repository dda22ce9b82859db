"""The MQTT client under the bus: the seam between :class:`setbridge.bus.Bus` and paho-mqtt.

Two implementations, chosen by ``[mqtt] client``:

- ``"fast"`` (default): :class:`setbridge.bus_client.BufferedClient`, paho with a cheaper network
  loop for bursts. It overrides paho's private packet handling, so it runs only on the paho-mqtt
  minor it was written for (:data:`PAHO_MINOR`) and only when every private name it touches is
  there (:data:`INTERNALS`); otherwise the bus falls back to paho's own client with one log line.
- ``"paho"``: paho's own client. On :data:`PAHO_MINOR` it reads a PUBLISH that paho's parser
  refuses (U+FEFF in a property) itself and never drops the connection for one message
  (:class:`setbridge.bus_guard.GuardedClient`); on any other paho it is paho's client as is.
"""

from __future__ import annotations

import importlib
import logging
import ssl
from collections.abc import Callable
from functools import cache
from typing import Any, Literal, Protocol

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

log = logging.getLogger(__name__)

PAHO_MINOR = "2.2"
"""The paho-mqtt minor release the fast client and the guard were written and tested against
(pyproject.toml pins it)."""
PLAIN_WINDOW = 20
"""QoS 1 publishes paho's own client sends unacknowledged: paho cannot narrow its window once
connected, so it starts at Mosquitto's default Receive Maximum."""

CLIENT_INTERNALS = (
    # methods overridden or called
    "_sock_recv", "_sock_send", "_packet_read", "_packet_handle", "_packet_queue", "_packet_write",
    "_handle_publish", "_handle_pubackcomp", "_handle_on_message", "_update_inflight", "_send_puback",
    "_send_pubrec", "_send_publish", "_mid_generate", "_raise_for_invalid_topic", "_loop_rc_handle",
    "_easy_log", "_do_on_publish", "_call_socket_register_write",
    # state read or written
    "_in_packet", "_out_packet", "_out_messages", "_out_message_mutex", "_inflight_messages",
    "_max_inflight_messages", "_max_queued_messages", "_msgtime_mutex", "_last_bytes_received",
    "_last_msg_out", "_logger", "_manual_ack", "_protocol", "_sock", "_sockpairW", "_thread",
    "_callback_api_version", "_callback_mutex", "_in_callback_mutex", "_userdata",
)
"""Every private name of paho's ``Client`` that the fast client or the guard uses."""
INFO_INTERNALS = ("_published", "_iterpos", "_set_as_published")
"""Private names of paho's ``MQTTMessageInfo`` the fast client's receipts use."""
MODULE_INTERNALS = ("time_func", "mqtt_ms_invalid", "mqtt_ms_queued", "mqtt_ms_wait_for_puback", "mqtt_ms_publish")
"""Undocumented names of ``paho.mqtt.client`` the fast client uses."""
IN_PACKET_KEYS = {"command", "have_remaining", "remaining_count", "remaining_mult", "remaining_length", "packet",
                  "to_process", "pos"}
"""The fields of paho's packet being read, which the fast client fills in itself."""

Kind = Literal["fast", "paho"]


class MqttClient(Protocol):
    """What the bus asks of its MQTT client: paho's public API, and a window it can narrow."""

    on_connect: Any
    on_disconnect: Any
    on_message: Any
    on_publish: Any
    on_connect_fail: Any
    on_subscribe: Any
    on_pre_connect: Any

    def reconnect_delay_set(self, min_delay: int = 1, max_delay: int = 120) -> None: ...
    def max_queued_messages_set(self, queue_size: int) -> Any: ...
    def username_pw_set(self, username: str | None, password: str | None = None) -> None: ...
    def tls_set(self, ca_certs: str | None = None, certfile: str | None = None, keyfile: str | None = None,
                cert_reqs: ssl.VerifyMode | None = None) -> None: ...
    def will_set(self, topic: str, payload: mqtt.PayloadType = None, qos: int = 0, retain: bool = False) -> None: ...
    def subscribe(self, topic: str, qos: int = 0, options: Any = None) -> tuple[MQTTErrorCode, int | None]: ...
    def connect_async(self, host: str, port: int = 1883, keepalive: int = 60, *, clean_start: Any = ...,
                      properties: Any = None) -> None: ...
    def loop_start(self) -> MQTTErrorCode: ...
    def loop_stop(self) -> MQTTErrorCode: ...
    def disconnect(self) -> MQTTErrorCode: ...
    def publish(self, topic: str, payload: mqtt.PayloadType = None, qos: int = 0, retain: bool = False,
                properties: Any = None) -> mqtt.MQTTMessageInfo: ...
    def socket(self) -> Any: ...

    @property
    def max_inflight_messages(self) -> int: ...

    def limit_inflight(self, most: int) -> None:
        """Send at most ``most`` QoS 1 publishes unacknowledged (the broker's Receive Maximum)."""


class PlainClient(mqtt.Client):
    """paho's own client, through its public API only."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_inflight_messages_set(PLAIN_WINDOW)
        self._narrow_warned = False

    def limit_inflight(self, most: int) -> None:
        """Before connecting: the window, up to :data:`PLAIN_WINDOW`. paho cannot narrow it on a
        live connection, so a broker asking for fewer than it sends gets one warning."""
        if not self.is_connected():
            self.max_inflight_messages_set(max(1, min(most, PLAIN_WINDOW)))
        elif most < self.max_inflight_messages and not self._narrow_warned:
            self._narrow_warned = True
            log.warning("the broker takes at most %d unacknowledged messages, paho's client sends %d; set "
                        '[mqtt] client = "fast" or raise the broker\'s max_inflight_messages', most,
                        self.max_inflight_messages)


@cache
def unfit_reason() -> str | None:
    """Why the installed paho-mqtt is not the one the fast client and the guard were written
    against, or None when it is."""
    version = str(getattr(paho.mqtt, "__version__", "unknown"))
    if ".".join(version.split(".")[:2]) != PAHO_MINOR:
        return f"paho-mqtt {version} is not {PAHO_MINOR}.x"
    probe = mqtt.Client(CallbackAPIVersion.VERSION2)
    missing = [n for n in CLIENT_INTERNALS if not hasattr(probe, n)]
    missing += [f"MQTTMessageInfo.{n}" for n in INFO_INTERNALS if not hasattr(mqtt.MQTTMessageInfo, n)
                and n not in getattr(mqtt.MQTTMessageInfo, "__slots__", ())]
    missing += [f"paho.mqtt.client.{n}" for n in MODULE_INTERNALS if not hasattr(mqtt, n)]
    if not missing and set(getattr(probe, "_in_packet", {})) != IN_PACKET_KEYS:
        missing.append("_in_packet's fields")
    try:
        importlib.import_module("paho.mqtt.exception")  # the fast client and the guard import it
    except ImportError:
        missing.append("paho.mqtt.exception")
    return f"paho-mqtt {version} lacks {', '.join(missing)}" if missing else None


_fell_back: set[str] = set()


def make_client(kind: Kind, client_id: str, mqtt5: bool, persistent: bool) -> MqttClient:
    """A new client of ``kind``; paho's own client (and one log line per process) when the
    installed paho is not the one the fast client or the guard fits."""
    args: dict[str, Any] = {"client_id": client_id}
    if mqtt5:
        args["protocol"] = mqtt.MQTTv5
    else:
        args["clean_session"] = not persistent
    reason = unfit_reason()
    if reason is None:
        from .bus_client import BufferedClient
        from .bus_guard import GuardedClient
        factory: Callable[..., MqttClient] = BufferedClient if kind == "fast" else GuardedClient
        return factory(CallbackAPIVersion.VERSION2, **args)
    if kind not in _fell_back:
        _fell_back.add(kind)
        what = "the fast MQTT client" if kind == "fast" else "the guard against messages paho cannot read"
        log.warning("%s: %s is off, using paho's own client (pin paho-mqtt %s.* for it)", reason, what, PAHO_MINOR)
    return PlainClient(CallbackAPIVersion.VERSION2, **args)
