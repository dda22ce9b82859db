"""Home Assistant device-based MQTT discovery, from a real hub on a real broker.

Home Assistant itself needs a newer Python than this project supports, so each discovery payload
is checked against the configuration keys Home Assistant documents for device discovery and for
the sensor, binary sensor and button platforms (home-assistant.io, integrations/mqtt and
*.mqtt pages), and its templates are rendered with Jinja2 on the hub's real payloads."""

from __future__ import annotations

import json
import shutil
import threading
import time
from typing import Any

import jinja2
import paho.mqtt.client as mqtt
import pytest
from broker_helpers import User, generated_broker, password
from conftest import Probe, make_settings, running_hub, wait_online, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from setbridge.config import HomeAssistantSettings, TimecodeSettings
from setbridge.sim.lights import SimLight
from setbridge.hub.homeassistant import discovery_payload
from setbridge.codec import parse_payload
from setbridge.messages import HubStatus, SetRequest
from setbridge.commands.provision import light_config
from setbridge.topics import Topics

# -- Home Assistant's documented keys (full names; device discovery may also abbreviate) -------
DEVICE_ROOT = {"device", "origin", "components", "availability", "availability_mode", "availability_topic",
               "availability_template", "payload_available", "payload_not_available", "command_topic",
               "state_topic", "qos", "encoding"}
DEVICE_KEYS = {"configuration_url", "connections", "identifiers", "name", "manufacturer", "model", "model_id",
               "hw_version", "sw_version", "suggested_area", "serial_number", "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
ENTITY_KEYS = {"platform", "unique_id", "name", "object_id", "icon", "enabled_by_default", "entity_category",
               "entity_picture", "availability", "availability_mode", "availability_topic", "availability_template",
               "payload_available", "payload_not_available", "json_attributes_topic", "json_attributes_template",
               "qos", "encoding", "device"}
PLATFORM_KEYS = {
    "sensor": ENTITY_KEYS | {"state_topic", "value_template", "device_class", "options", "unit_of_measurement",
                             "state_class", "expire_after", "force_update", "suggested_display_precision",
                             "last_reset_value_template"},
    "binary_sensor": ENTITY_KEYS | {"state_topic", "value_template", "device_class", "payload_on", "payload_off",
                                    "off_delay", "expire_after", "force_update"},
    "button": ENTITY_KEYS | {"command_topic", "command_template", "payload_press", "device_class", "retain"},
}
REQUIRED = {"sensor": {"state_topic"}, "binary_sensor": {"state_topic"}, "button": set()}
BINARY_DEVICE_CLASSES = {"connectivity", "running", "problem", "power", "moving", "light"}


def render(template: str, payload: bytes) -> str:
    """A value template as Home Assistant renders it on an incoming message (Jinja2, ``value_json``)."""
    value = payload.decode()
    try:
        value_json: Any = json.loads(value)
    except ValueError:
        value_json = None
    return jinja2.Environment().from_string(template).render(value=value, value_json=value_json).strip()


def check_discovery(payload: dict, topics: Topics, set_id: str) -> None:
    """Raise AssertionError naming each key Home Assistant does not document, or a required one missing."""
    assert set(payload) <= DEVICE_ROOT, set(payload) - DEVICE_ROOT
    assert {"device", "origin", "components"} <= set(payload), "device discovery needs device, origin, components"
    assert set(payload["device"]) <= DEVICE_KEYS and payload["device"]["identifiers"]
    assert set(payload["origin"]) <= ORIGIN_KEYS and payload["origin"]["name"]
    for entry in payload.get("availability", []):
        assert set(entry) <= AVAILABILITY_KEYS and "topic" in entry
    ids = set()
    for key, component in payload["components"].items():
        platform = component["platform"]
        assert platform in PLATFORM_KEYS, platform
        if set(component) == {"platform"}:
            continue  # the removal of one component
        assert set(component) <= PLATFORM_KEYS[platform], (key, set(component) - PLATFORM_KEYS[platform])
        assert REQUIRED[platform] <= set(component), (key, REQUIRED[platform] - set(component))
        assert component["unique_id"] not in ids
        ids.add(component["unique_id"])
        for entry in component.get("availability", []):
            assert set(entry) <= AVAILABILITY_KEYS and "topic" in entry
        if component.get("device_class") == "enum":
            assert component["options"] and "unit_of_measurement" not in component
        if platform == "binary_sensor" and "device_class" in component:
            assert component["device_class"] in BINARY_DEVICE_CLASSES
        for name in ("state_topic", "command_topic"):
            if name in component:
                assert component[name].startswith(topics.base + "/"), component[name]


def test_the_payload_has_only_documented_keys_and_templates_that_read_the_contract():
    topics, settings = Topics("sb"), HomeAssistantSettings(enabled=True)
    payload = discovery_payload(topics, settings, "hub-1", "stage-a", ["door-1", "door-2"], removed=["door-9"])
    check_discovery(payload, topics, "stage-a")
    assert payload["device"]["identifiers"] == ["sb-stage-a"]
    assert json.dumps(payload)  # plain JSON
    c = payload["components"]
    assert set(c) == {"state", "rolling", "roll", "cut", "standby", "light_door-1", "light_door-2", "light_door-9"}
    assert c["light_door-9"] == {"platform": "binary_sensor"}
    for state in ("idle", "standby", "rolling"):
        message = json.dumps({"v": 1, "set": "stage-a", "state": state, "epoch": 1, "seq": 2, "take": 1,
                              "cause": "voice", "ts": 1.0}).encode()
        assert render(c["state"]["value_template"], message) == state
        assert state in c["state"]["options"]
        assert render(c["rolling"]["value_template"], message) == ("ON" if state == "rolling" else "OFF")
    alive = json.dumps({"v": 1, "showing": "rolling", "every_s": 1.0}).encode()
    assert render(c["light_door-1"]["value_template"], alive) == c["light_door-1"]["payload_on"]
    (availability,) = c["light_door-1"]["availability"]
    assert availability["topic"] == "sb/light/door-1/status"
    assert render(availability["value_template"], b'{"v": 1, "state": "offline"}') == "offline"
    (hub_online,) = payload["availability"]
    assert render(hub_online["value_template"], b'{"v": 1, "state": "online", "hub": "hub-1"}') == "online"
    for action in ("roll", "cut", "standby"):  # a press is a valid request of the contract
        assert parse_payload(SetRequest, c[action]["payload_press"].encode()).action == action
        assert c[action]["command_topic"] == "sb/set/stage-a/request"


def test_a_checker_that_cannot_fail_is_no_check():
    topics = Topics("sb")
    payload = discovery_payload(topics, HomeAssistantSettings(enabled=True), "hub-1", "stage-a", [])
    payload["components"]["state"]["stat_topic"] = "typo"
    with pytest.raises(AssertionError, match="stat_topic"):
        check_discovery(payload, topics, "stage-a")


class Discovery:
    """Records what arrives on one discovery topic (like Home Assistant's own subscription)."""

    def __init__(self, port: int, topic: str):
        self.messages: list[tuple[bytes, bool]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ha-{time.monotonic_ns()}")

        def on_message(c, u, msg):
            with self.cond:
                self.messages.append((bytes(msg.payload), msg.retain))
                self.cond.notify_all()
        subscribed = threading.Event()
        self.client.on_message = on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(5)

    def wait(self, predicate, timeout: float = 10) -> dict | None:
        with self.cond:
            assert self.cond.wait_for(lambda: any(predicate(p) for p, _ in self.messages), timeout), self.messages[-3:]
            payload = next(p for p, _ in reversed(self.messages) if predicate(p))
        return json.loads(payload) if payload else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def has_light(light: str):
    return lambda p: bool(p) and f"light_{light}" in json.loads(p)["components"]


def test_a_hub_publishes_its_set_with_each_light_and_a_button_press_rolls(broker, tmp_path):
    ha = {"enabled": True}
    with running_hub(broker, tmp_path / "state", homeassistant=ha) as hub:
        wait_online(hub)
        topic = f"homeassistant/device/{hub.topics.base}-stage-t/config"
        (tmp_path / "light").mkdir()
        light = SimLight("door-1", light_config(hub.settings, "door-1"), tmp_path / "light").start()
        try:
            light.wait_showing("idle", timeout=10)
            seen = Discovery(broker.port, topic)
            try:
                payload = seen.wait(has_light("door-1"))
                check_discovery(payload, hub.topics, "stage-t")
                late = Discovery(broker.port, topic)  # a Home Assistant started later gets it retained
                assert late.wait(has_light("door-1")) == payload and late.messages[0][1]
                late.close()
                states = Probe(broker.port, hub.topics.set_state("stage-t"))
                roll = payload["components"]["roll"]
                states.publish(roll["command_topic"], roll["payload_press"])  # what Home Assistant sends on a press
                states.wait_for(lambda t, d, r: d is not None and d["state"] == "rolling" and d["cause"] == "request")
                states.close()
                before = hub_published(hub)
                announce = Probe(broker.port, "homeassistant/status")
                announce.publish("homeassistant/status", "online")  # Home Assistant's birth message
                announce.close()
                wait_until(lambda: hub_published(hub) > before, what="a new discovery after Home Assistant's birth")
            finally:
                seen.close()
        finally:
            light.stop()


def hub_published(hub) -> int:
    from setbridge.hub.homeassistant import HomeAssistantDiscovery

    (component,) = [c for c in hub.components if isinstance(c, HomeAssistantDiscovery)]
    return component.published


def test_a_light_leaving_the_set_is_removed_then_left_out(broker, tmp_path):
    with running_hub(broker, tmp_path / "state", homeassistant={"enabled": True}) as hub:
        wait_online(hub)
        seen = Discovery(broker.port, f"homeassistant/device/{hub.topics.base}-stage-t/config")
        probe = Probe(broker.port, hub.topics.light_status("door-7"))
        try:
            probe.publish(hub.topics.light_status("door-7"), {"v": 1, "state": "online", "set": "stage-t"}, retain=True)
            seen.wait(has_light("door-7"))
            probe.publish(hub.topics.light_status("door-7"), {"v": 1, "state": "online", "set": "stage-x"}, retain=True)
            removal = seen.wait(lambda p: bool(p) and json.loads(p)["components"].get("light_door-7")
                                == {"platform": "binary_sensor"})
            check_discovery(removal, hub.topics, "stage-t")
            seen.wait(lambda p: bool(p) and "light_door-7" not in json.loads(p)["components"])
        finally:
            probe.publish(hub.topics.light_status("door-7"), b"", retain=True)
            probe.close()
            seen.close()


def test_disabling_removes_the_device_with_an_empty_retained_payload(broker, tmp_path):
    settings_dir = tmp_path / "state"
    with running_hub(broker, settings_dir, homeassistant={"enabled": True}) as hub:
        base = hub.settings.mqtt.base_topic
        topic = f"homeassistant/device/{base}-stage-t/config"
        wait_until(lambda: hub_published(hub) > 0, what="the discovery")
    seen = Discovery(broker.port, topic)
    try:
        seen.wait(bool)  # still retained on the broker
        settings = make_settings(broker, settings_dir, mqtt={"base_topic": base})
        from setbridge.hub import Hub

        hub = Hub(settings)
        hub.start()
        try:
            assert seen.wait(lambda p: p == b"") is None  # removed
        finally:
            hub.stop()
    finally:
        seen.close()
    late = Discovery(broker.port, topic)
    time.sleep(0.3)
    assert late.messages == [], "nothing is retained any more"
    late.close()


@pytest.mark.integration
def test_only_a_hub_may_publish_discovery_and_home_assistant_may_announce_itself():
    users = {"hub-1": "hub", "ha": "integrator", "wall": "monitor", "door-1": "light"}
    with generated_broker(users) as b:
        ha = User(b.port, "ha")
        ha.subscribe("homeassistant/#")  # what Home Assistant subscribes to
        hub = User(b.port, "hub-1")
        hub.subscribe("homeassistant/status")
        try:
            for intruder in ("ha", "wall", "door-1"):
                u = ha if intruder == "ha" else User(b.port, intruder)
                u.publish("homeassistant/device/setbridge-main/config", f'{{"by": "{intruder}"}}', retain=True)
                if u is not ha:
                    u.close()
            hub.publish("homeassistant/device/setbridge-main/config", '{"by": "hub"}', retain=True)
            assert ha.wait_for("homeassistant/device/setbridge-main/config", b'"hub"')
            assert not any(b'"by": "' + name.encode() in p for t, p in ha.received for name in ("ha", "wall", "door-1"))
            ha.publish("homeassistant/status", "online")
            assert hub.wait_for("homeassistant/status", b"online")
        finally:
            hub.publish("homeassistant/device/setbridge-main/config", "", retain=True)
            ha.close()
            hub.close()


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")
def test_on_a_generated_broker_home_assistant_as_an_integrator_sees_the_set_and_rolls_it(tmp_path):
    with generated_broker({"hub-1": "hub", "homeassistant": "integrator"}) as b:
        ha = User(b.port, "homeassistant")
        ha.subscribe("homeassistant/#")
        ha.subscribe("setbridge/set/main/state")
        try:
            with running_hub(b, tmp_path / "state", hub={"id": "hub-1", "set": "main"}, homeassistant={"enabled": True},
                             mqtt={"base_topic": "setbridge", "username": "hub-1", "password": password("hub-1")}) as hub:
                topic = "homeassistant/device/setbridge-main/config"
                assert ha.wait_for(topic), "the hub's discovery did not reach Home Assistant"
                payload = json.loads(next(p for t, p in ha.received if t == topic))
                check_discovery(payload, hub.topics, "main")
                roll = payload["components"]["roll"]
                ha.publish(roll["command_topic"], roll["payload_press"])
                assert ha.wait_for("setbridge/set/main/state", b'"rolling"')
                ha.publish("homeassistant/status", "online")  # its birth: the hub answers with the discovery again
                wait_until(lambda: hub_published(hub) >= 2, what="the discovery again")
        finally:
            ha.close()


def test_a_recorder_source_adds_its_health_and_recording_with_documented_keys():
    topics, settings = Topics("sb"), HomeAssistantSettings(enabled=True)
    tally = TimecodeSettings(tally_pin=23)
    payload = discovery_payload(topics, settings, "hub-1", "stage-a", [], timecode=tally)
    check_discovery(payload, topics, "stage-a")
    c = payload["components"]
    assert {"timecode", "recorder"} <= set(c) and c["timecode"]["state_topic"] == "sb/hub/hub-1/status"
    for health, reason, recorder in (("ok", None, "recording"), ("fault", "tally: stuck", "stopped")):
        status = HubStatus(state="online", hub="hub-1", set="stage-a", version="1", timecode=health,
                           timecode_reason=reason, recorder=recorder).model_dump_json().encode()
        assert render(c["timecode"]["value_template"], status) == health and health in c["timecode"]["options"]
        assert json.loads(render(c["timecode"]["json_attributes_template"], status)) == {"reason": reason}
        assert render(c["recorder"]["value_template"], status) == ("ON" if recorder == "recording" else "OFF")
    free_run = discovery_payload(topics, settings, "hub-1", "stage-a", [],
                                 timecode=TimecodeSettings(mode="free-run", channel=2))
    assert "timecode" in free_run["components"] and "recorder" not in free_run["components"]  # stamps only
    none = discovery_payload(topics, settings, "hub-1", "stage-a", [], timecode=TimecodeSettings())
    assert not {"timecode", "recorder"} & set(none["components"])


def test_a_hub_with_a_record_tally_shows_the_recorder_recording(broker, tmp_path):
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    Device.pin_factory = MockFactory()
    try:
        with running_hub(broker, tmp_path / "state", homeassistant={"enabled": True},
                         timecode={"tally_pin": 23}) as hub:
            wait_online(hub)
            seen = Discovery(broker.port, f"homeassistant/device/{hub.topics.base}-stage-t/config")
            try:
                payload = seen.wait(lambda p: bool(p) and "recorder" in json.loads(p)["components"])
                check_discovery(payload, hub.topics, "stage-t")
            finally:
                seen.close()
            recorder = payload["components"]["recorder"]
            status = Probe(broker.port, recorder["state_topic"])
            try:
                Device.pin_factory.pin(23).drive_low()  # the recorder records
                _, data, _ = status.wait_for(lambda t, d, r: d is not None and d.get("recorder") == "recording")
                message = json.dumps(data).encode()
                assert render(recorder["value_template"], message) == "ON"
                assert render(payload["components"]["timecode"]["value_template"], message) == "ok"
            finally:
                status.close()
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = None
