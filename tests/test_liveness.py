"""Liveness that does not depend on the broker: a frozen hub (no heartbeats) and a frozen light
(no alive messages, the real firmware under MicroPython) are reported by ``setbridge status``
while the broker still holds their connections open (a long keepalive)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from conftest import HubProcess, Probe, make_settings, write_config
from firmware_helpers import running_light

from setbridge.hub import Hub
from setbridge.commands.stage_health import ALIVE_TIMEOUT_S


def status(cfg) -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-m", "setbridge", "status", "--config", str(cfg), "--json"],
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout), out.stderr


def test_a_frozen_light_is_reported_not_alive_though_the_broker_shows_it_online(broker, tmp_path):
    settings = make_settings(broker, tmp_path / "state", hub={"heartbeat_s": 0.5})
    base = settings.mqtt.base_topic
    cfg = write_config(tmp_path / "c.toml", settings)
    hub = Hub(settings)  # in this process: the light is the one that freezes
    hub.start()
    probe = Probe(broker.port, f"{base}/#")
    try:
        probe.wait_for(lambda t, d, r: t.endswith("/hub/hub-t/status") and d and d["state"] == "online", timeout=20)
        with running_light(settings, tmp_path, "door-1", mqtt={**_light_mqtt(settings), "keepalive_s": 600},
                           alive_s=0.5) as light:
            _, alive, _ = probe.wait_for(lambda t, d, r: t.endswith("/light/door-1/alive") and d is not None,
                                         timeout=20)
            light.wait_showing("idle", timeout=10)
            assert alive["every_s"] == 0.5 and not any(r for t, _, r in probe.seen if t.endswith("/alive"))
            healthy, _ = status(cfg)
            assert healthy["ok"] is True, healthy["problems"]
            assert healthy["lights"]["door-1"]["alive"]["showing"] == "idle"

            assert light.proc is not None
            os.kill(light.proc.pid, signal.SIGSTOP)  # frozen: its socket stays open, the broker sees nothing wrong
            try:
                frozen, err = status(cfg)
            finally:
                os.kill(light.proc.pid, signal.SIGCONT)
            assert frozen["ok"] is False
            assert frozen["lights"]["door-1"]["status"]["state"] == "online", "the broker still shows it online"
            assert f"light door-1: no alive message for {ALIVE_TIMEOUT_S:.0f} s; it is frozen or hung" in err
            # Thawed, it is alive again.
            mark = len(probe.seen)
            probe.wait_for(lambda t, d, r: any(m[0].endswith("/light/door-1/alive") for m in probe.seen[mark:]))
            assert status(cfg)[0]["ok"] is True
    finally:
        probe.close()
        hub.stop()


def test_a_frozen_hub_is_reported_within_the_status_window(broker, tmp_path):
    settings = make_settings(broker, tmp_path / "state", hub={"heartbeat_s": 0.5})
    cfg = write_config(tmp_path / "c.toml", settings)
    hub = HubProcess(cfg).start()
    probe = Probe(broker.port, f"{settings.mqtt.base_topic}/set/+/heartbeat")
    try:
        probe.wait_for(lambda t, d, r: d is not None, timeout=20)
        assert status(cfg)[0]["ok"] is True
        assert hub.proc is not None
        os.kill(hub.proc.pid, signal.SIGSTOP)  # keepalive_s = 30: the broker keeps the hub "online" for 45 s
        try:
            frozen, err = status(cfg)
        finally:
            os.kill(hub.proc.pid, signal.SIGCONT)
        assert frozen["ok"] is False and frozen["hubs"]["hub-t"]["state"] == "online"
        assert "set stage-t: no heartbeat from the hub for" in err and "frozen or hung" in err
    finally:
        probe.close()
        hub.terminate()


def _light_mqtt(settings) -> dict:
    m = settings.mqtt
    return {"host": m.host, "port": m.port, "base_topic": m.base_topic}
