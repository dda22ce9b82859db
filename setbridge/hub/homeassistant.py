"""Home Assistant MQTT discovery (``[homeassistant]``, opt-in): one device per set.

The hub publishes ``{prefix}/device/{base}-{set}/config`` (retained; ``setbridge-main`` by default), a device-based discovery
payload with ``device``, ``origin`` and ``components``:

- ``state``: an enum sensor of the set's state (idle, standby, rolling);
- ``rolling``: a binary sensor, on while the set rolls;
- ``roll``, ``cut``, ``standby``: buttons whose press publishes an ordinary request of the contract
  on ``{base}/set/{set}/request`` (source ``homeassistant``);
- ``timecode``: with a recorder source configured (``[timecode]``), a diagnostic enum sensor of its
  health (ok, fault, off) from the hub status, and ``recorder``: with one that starts and stops
  takes (rec-run code, a record tally), a binary sensor on while the recorder records;
- ``light_<id>``: per light following the set, a connectivity binary sensor, on while the light's
  ``alive`` messages keep coming (off 3 s after the last one), unavailable while the light's
  retained status says offline.

The set's entities are available while the hub's status says online. The payload is published
again when Home Assistant announces itself (``online`` on ``{prefix}/status``), when the hub
reconnects, and when a light joins or leaves the set (debounced). With the section disabled, a
discovery payload this set left on the broker is removed (an empty retained payload), so Home
Assistant forgets the device. Only the broker's ``hub`` role may publish discovery topics.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..codec import parse_payload
from ..messages import LightStatus
from ..errors import PayloadError
from ..config import HomeAssistantSettings, TimecodeSettings
from ..topics import Topics
from .component import HubContext

log = logging.getLogger(__name__)

SET_STATES = ("idle", "standby", "rolling")
TIMECODE_STATES = ("ok", "fault", "off")
BUTTONS = ("roll", "cut", "standby")
REQUEST_SOURCE = "homeassistant"
LIGHT_ALIVE_S = 3
"""A light's connectivity turns off this long after its last ``alive`` message (docs/mqtt.md)."""
DEBOUNCE_S = 1.0
"""Changes within this long (a burst of retained light statuses at connect) make one publish."""
MAX_LIGHTS = 500
"""Lights one discovery payload names at most (a flood of made-up light ids cannot grow it further)."""
SUPPORT_URL = "https://github.com/setbridge/setbridge/blob/main/docs/mqtt.md#home-assistant"


def object_id(base: str, set_id: str) -> str:
    """The device's id in discovery topics and unique ids (``[a-zA-Z0-9_-]`` only): the base topic
    and the set, so two stages' brokers bridged into one Home Assistant never collide
    (``setbridge-main`` for the set ``main`` under the default base)."""
    return f"{base.replace('/', '_')}-{set_id}"


def request_payload(action: str) -> str:
    """What a button press publishes: a request of the contract (no transaction: each press acts)."""
    return json.dumps({"v": 1, "action": action, "source": REQUEST_SOURCE}, separators=(",", ":"))


def discovery_payload(topics: Topics, settings: HomeAssistantSettings, hub_id: str, set_id: str,
                      lights: Sequence[str], removed: Sequence[str] = (),
                      timecode: TimecodeSettings | None = None) -> dict[str, Any]:
    """The device-based discovery payload for ``set_id`` with ``lights``; a light in ``removed``
    is sent as its platform alone, which tells Home Assistant to remove that entity. ``timecode``:
    the hub's recorder source, shown when one is configured."""
    oid = object_id(topics.base, set_id)
    hub_online = {"topic": topics.hub_status(hub_id), "value_template": "{{ value_json.state }}",
                  "payload_available": "online", "payload_not_available": "offline"}
    state_topic = topics.set_state(set_id)
    components: dict[str, dict[str, Any]] = {
        "state": {"platform": "sensor", "unique_id": f"{oid}-state", "name": "State", "device_class": "enum",
                  "options": list(SET_STATES), "state_topic": state_topic,
                  "value_template": "{{ value_json.state }}", "icon": "mdi:filmstrip"},
        "rolling": {"platform": "binary_sensor", "unique_id": f"{oid}-rolling", "name": "Rolling",
                    "device_class": "running", "state_topic": state_topic,
                    "value_template": "{{ 'ON' if value_json.state == 'rolling' else 'OFF' }}",
                    "payload_on": "ON", "payload_off": "OFF", "icon": "mdi:record-rec"},
    }
    if timecode is not None:
        components.update(recorder_components(oid, topics.hub_status(hub_id), timecode))
    for action in BUTTONS:
        components[action] = {"platform": "button", "unique_id": f"{oid}-{action}", "name": action.capitalize(),
                              "command_topic": topics.set_request(set_id), "payload_press": request_payload(action),
                              "qos": 1, "retain": False}
    for light in lights:
        components[f"light_{light}"] = {
            "platform": "binary_sensor", "unique_id": f"{oid}-light-{light}", "name": f"Light {light}",
            "device_class": "connectivity", "state_topic": topics.light_alive(light),
            "value_template": "ON", "payload_on": "ON", "off_delay": LIGHT_ALIVE_S,
            "availability": [{"topic": topics.light_status(light), "value_template": "{{ value_json.state }}",
                              "payload_available": "online", "payload_not_available": "offline"}],
        }
    for light in removed:
        components[f"light_{light}"] = {"platform": "binary_sensor"}
    return {
        "device": {"identifiers": [oid], "name": settings.device_name or f"setbridge {set_id}",
                   "manufacturer": "setbridge", "model": "stage hub", "sw_version": __version__,
                   "serial_number": hub_id},
        "origin": {"name": "setbridge", "sw_version": __version__, "support_url": SUPPORT_URL},
        "availability": [hub_online],
        "qos": 1,
        "components": components,
    }


def recorder_components(oid: str, status_topic: str, timecode: TimecodeSettings) -> dict[str, dict[str, Any]]:
    """The recorder source's entities, read from the hub status: none without a source."""
    components: dict[str, dict[str, Any]] = {}
    if timecode.mode != "off" or timecode.tally_pin is not None:
        components["timecode"] = {
            "platform": "sensor", "unique_id": f"{oid}-timecode", "name": "Timecode", "device_class": "enum",
            "options": list(TIMECODE_STATES), "state_topic": status_topic, "value_template": "{{ value_json.timecode }}",
            "json_attributes_topic": status_topic,
            "json_attributes_template": "{{ {'reason': value_json.timecode_reason} | tojson }}",
            "entity_category": "diagnostic", "icon": "mdi:timer-outline"}
    if timecode.recorder():
        components["recorder"] = {
            "platform": "binary_sensor", "unique_id": f"{oid}-recorder", "name": "Recorder recording",
            "device_class": "running", "state_topic": status_topic,
            "value_template": "{{ 'ON' if value_json.recorder == 'recording' else 'OFF' }}",
            "payload_on": "ON", "payload_off": "OFF", "icon": "mdi:record-circle-outline"}
    return components


class HomeAssistantDiscovery:
    """A hub component. ``enabled=False`` only removes what an earlier enabled run left."""

    def __init__(self, ctx: HubContext):
        self.bus = ctx.bus
        self.timecode = ctx.settings.timecode
        self.topics = ctx.topics
        self.settings = ctx.settings.homeassistant
        self.hub_id = ctx.settings.hub.id
        self.set_id = ctx.settings.hub.set
        self.config_topic = f"{self.settings.prefix}/device/{object_id(self.topics.base, self.set_id)}/config"
        self.lights: set[str] = set()
        self._removed: set[str] = set()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._stopped = False
        self.published = 0
        """Discovery payloads published so far."""

    def start(self) -> None:
        """Subscribe and publish from here, once the hub serves the set: a hub that refuses to start
        (another hub serves this set) never touches the set's discovery."""
        if self.settings.enabled:
            self.bus.subscribe(f"{self.settings.prefix}/status", self._on_home_assistant_status)
            self.bus.subscribe(self.topics.light_status("+"), self._on_light_status)
            self.bus.on_connect(self.publish_soon)
            if self.bus.connected.is_set():
                self.publish_soon()
        else:
            self.bus.subscribe(self.config_topic, self._on_own_config)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()

    # -- inputs (paho's thread: quick, never blocking) -------------------------------------
    def _on_home_assistant_status(self, topic: str, payload: bytes) -> None:
        if payload.strip() == b"online":
            log.info("Home Assistant is online: publishing the discovery of set %s", self.set_id)
            self.publish_soon()

    def _on_light_status(self, topic: str, payload: bytes) -> None:
        light = topic.rsplit("/", 2)[-2]
        follows = False
        if payload:
            try:
                follows = parse_payload(LightStatus, payload).set == self.set_id
            except PayloadError:
                return
        with self._lock:
            if follows and light not in self.lights and len(self.lights) < MAX_LIGHTS:
                self.lights.add(light)
                self._removed.discard(light)
            elif not follows and light in self.lights:
                self.lights.discard(light)
                self._removed.add(light)
            else:
                return
        self.publish_soon()

    def _on_own_config(self, topic: str, payload: bytes) -> None:
        """Disabled: an earlier discovery payload of this set is still retained; remove it."""
        if payload:
            self.bus.publish(self.config_topic, b"", retain=True)
            log.info("[homeassistant] is disabled: removed the discovery of set %s from %s", self.set_id, topic)

    # -- publishing -------------------------------------------------------------------------
    def publish_soon(self) -> None:
        """Publish once, ``DEBOUNCE_S`` from the first of a burst of changes."""
        with self._lock:
            if self._stopped or self._timer is not None:
                return
            self._timer = threading.Timer(DEBOUNCE_S, self.publish_now)
            self._timer.daemon = True
            self._timer.start()

    def publish_now(self) -> None:
        with self._lock:
            self._timer = None
            lights, removed = sorted(self.lights), sorted(self._removed)
            self._removed.clear()
        payload = discovery_payload(self.topics, self.settings, self.hub_id, self.set_id, lights, removed,
                                    self.timecode)
        self.bus.publish(self.config_topic, json.dumps(payload, separators=(",", ":")).encode(), retain=True)
        self.published += 1
        if removed:
            self.publish_soon()  # once more without the removed lights, as Home Assistant's docs advise
