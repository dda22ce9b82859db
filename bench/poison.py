"""Legal MQTT 5 messages that paho-mqtt 2.2's parser refuses: do they cost a connection?

Runs a private Mosquitto, ``setbridge hub`` and ``setbridge web`` as processes of their own, and
``--lights`` firmware lights (MicroPython Unix port). The set rolls; then, for each MQTT client
(``[mqtt] client``), 100 requests and offload reports whose Response Topic or User Property holds
U+FEFF are published live, and 100 more retained (requests, reports and a light's status, which the
web reads). Baseline, same run: the same 200 messages without U+FEFF. Printed per row: the hub's
and the web's dropped connections (their logs' "lost the MQTT broker" lines and the hub's offline
will), the lights' changes to link lost, and the requests answered. Goal: 0, 0, 0, all.
Usage: ``python bench/poison.py [--packets 100] [--lights 3] [--client fast paho]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from setbridge.config import load_settings
from setbridge.sim.broker import PrivateBroker, free_port
from setbridge.sim.lights import LightEvent, LightsSim
from setbridge.sim.raw_mqtt5 import BOM, RESPONSE_TOPIC, RawPublisher, string_prop, user_prop
from setbridge.topics import Topics
from report import print_table


class Watcher:
    """Counts the hub's offline wills and the answers to this run's requests."""

    def __init__(self, port: int, topics: Topics):
        self.offline, self.answers = 0, set()
        self.lock = threading.Lock()
        self.hub_status = topics.hub_status("bench")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{topics.base}/#", 1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if msg.topic == self.hub_status and data.get("state") == "offline":
                self.offline += 1
            if isinstance(data, dict) and "transaction" in data and "ok" in data:
                self.answers.add(data["transaction"])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_config(workdir: Path, port: int, base: str, kind: str) -> Path:
    path = workdir / f"{kind}.toml"
    path.write_text("\n".join([
        "[hub]", 'id = "bench"', 'set = "bench"', f'state_dir = "{workdir / kind / "state"}"', "heartbeat_s = 0.5",
        "[mqtt]", 'host = "127.0.0.1"', f"port = {port}", f'base_topic = "{base}"', "reconnect_max_s = 1",
        f'client = "{kind}"', "[web]", f'data_dir = "{workdir / kind / "web"}"', 'client_id = "bench-web"',
    ]) + "\n")
    return path


def run(broker: PrivateBroker, workdir: Path, kind: str, packets: int, lights: int, poison: bool) -> dict:
    base = f"b{uuid.uuid4().hex[:8]}"
    topics = Topics(base)
    config = write_config(workdir, broker.port, base, kind)
    hub_log, web_log = workdir / f"{base}-hub.log", workdir / f"{base}-web.log"
    hub = subprocess.Popen([sys.executable, "-m", "setbridge", "hub", "--config", str(config)],
                           stdout=hub_log.open("wb"), stderr=subprocess.STDOUT)
    web = subprocess.Popen([sys.executable, "-m", "setbridge", "web", "--config", str(config), "--host", "127.0.0.1",
                            "--port", str(free_port())], stdout=web_log.open("wb"), stderr=subprocess.STDOUT)
    watcher = Watcher(broker.port, topics)
    lost = 0
    showing: dict[str, str | None] = {}
    counting = threading.Event()

    def on_event(event: LightEvent) -> None:
        nonlocal lost
        if event.kind == "show" and showing.get(event.light) != event.showing:
            showing[event.light] = event.showing
            lost += counting.is_set() and event.showing == "link-lost"

    sim = LightsSim(load_settings(config), lights, on_event=on_event).start()
    sender = RawPublisher(broker.port)
    try:
        deadline = time.monotonic() + 30
        while sum(v == "idle" for v in showing.values()) < lights and time.monotonic() < deadline:
            time.sleep(0.05)
        request, report = topics.set_request("bench"), topics.offload_report()
        sender.publish(request, json.dumps({"v": 1, "action": "roll", "transaction": "roll"}))
        while sum(v == "rolling" for v in showing.values()) < lights and time.monotonic() < deadline:
            time.sleep(0.05)
        counting.set()
        mark = BOM if poison else ""
        for i in range(packets):  # live, while rolling: requests that change nothing, and reports
            if i % 2:
                sender.publish(request, json.dumps({"v": 1, "action": "roll", "transaction": f"live-{i}"}),
                               string_prop(RESPONSE_TOPIC, f"{mark}{topics.set_response('bench')}/x")
                               + user_prop("note", mark))
            else:
                sender.publish(report, json.dumps({"v": 1, "roll": f"A{i:03d}", "status": "verified", "files": 1,
                                                   "bytes": 1}), user_prop(f"note{mark}", mark))
        for i in range(packets):  # retained: a request, a report, a light's status, in turn
            topic = (request, report, topics.light_status(f"ghost-{i}"))[i % 3]
            body = {"v": 1, "state": "online", "fw": "1", "set": "bench"} if i % 3 == 2 else \
                {"v": 1, "action": "roll", "transaction": f"kept-{i}"}
            sender.publish(topic, json.dumps(body), user_prop("note", mark), retain=True)
        time.sleep(3.0)  # a dropped connection, and a light's link lost, show within this
        for i in range(2, packets, 3):
            sender.publish(topics.light_status(f"ghost-{i}"), b"", retain=True)
        with watcher.lock:
            answered = sum(1 for t in watcher.answers if t.startswith("live-"))
        return {"client": kind, "messages": "U+FEFF" if poison else "plain (baseline)", "sent": 2 * packets,
                "hub drops": max(watcher.offline, hub_log.read_text(errors="replace").count("lost the MQTT broker")),
                "web drops": web_log.read_text(errors="replace").count("lost the MQTT broker"),
                "link-lost changes": lost, "answered": f"{answered}/{packets // 2}"}
    finally:
        sender.close()
        sim.stop()
        watcher.close()
        for proc in (hub, web):
            proc.terminate()
            proc.wait(15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=100, help="messages live, and as many retained")
    ap.add_argument("--lights", type=int, default=3)
    ap.add_argument("--client", nargs="+", choices=["fast", "paho"], default=["fast", "paho"])
    args = ap.parse_args()
    rows = []
    with PrivateBroker() as broker, tempfile.TemporaryDirectory(prefix="setbridge-poison-") as tmp:
        for kind in args.client:
            for poison in (False, True):
                rows.append(run(broker, Path(tmp), kind, args.packets, args.lights, poison))
    print_table(rows, list(rows[0]))
    bad = [r for r in rows if r["hub drops"] or r["web drops"] or r["link-lost changes"]]
    print(f"\ngoal: 0 hub and web drops, 0 link-lost changes: {'met' if not bad else 'NOT met'}")


if __name__ == "__main__":
    main()
