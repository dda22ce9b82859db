"""Helpers for the firmware tests: simulated lights and a hand-driven stand-in for the hub."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from setbridge.config import Settings
from setbridge.sim.lights import SimLight
from setbridge.commands.provision import light_config
from setbridge.topics import Topics


class ScriptedHub:
    """Publishes hub status, set states and heartbeats exactly as a test dictates.

    Heartbeats (every 0.2 s) repeat the last state published with ``state()``,
    unless ``beating`` is cleared.
    """

    def __init__(self, settings: Settings):
        self.topics = Topics(settings.mqtt.base_topic)
        self.set_id = settings.hub.set
        self.hub_id = settings.hub.id
        self.current: dict | None = None
        self.beating = threading.Event()
        self.beating.set()
        self._stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"scripted-hub-{uuid.uuid4().hex[:6]}")
        self.client.connect(settings.mqtt.host, settings.mqtt.port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def raw(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def status(self, state: str = "online") -> None:
        body = {"v": 1, "state": state, "hub": self.hub_id, "set": self.set_id, "version": "test"}
        self.raw(self.topics.hub_status(self.hub_id), json.dumps(body), retain=True)

    def state(self, state: str, epoch: int, seq: int, beat: bool = True) -> None:
        body = {"v": 1, "set": self.set_id, "state": state, "epoch": epoch, "seq": seq, "take": 1,
                "cause": "test", "ts": 0}
        if beat:
            self.current = {"v": 1, "state": state, "epoch": epoch, "seq": seq, "ts": 0}
        self.raw(self.topics.set_state(self.set_id), json.dumps(body), retain=True)

    def _beat(self) -> None:
        while not self._stop.wait(0.2):
            if self.current and self.beating.is_set():
                self.client.publish(self.topics.set_heartbeat(self.set_id), json.dumps(self.current), qos=0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def running_light(settings: Settings, workdir: Path, light_id: str = "door-1", **extra) -> Iterator[SimLight]:
    """One light running the firmware under the Unix port; killed afterwards."""
    light = SimLight(light_id, light_config(settings, light_id, **extra), workdir)
    light.start()
    try:
        yield light
    finally:
        light.stop()
        light.restore_wifi()
