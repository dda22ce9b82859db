"""The firmware's MQTT client (``firmware/lib/mqtt.py``) on its own, under the MicroPython Unix
port, against the real broker: what a light needs of it, and what it must survive."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from setbridge.sim.lights import FIRMWARE_LIB, find_micropython

SCRIPT = """
import sys, json, time
sys.path.insert(0, %(lib)r)
import mqtt
got = []
def say(**kw):
    print(json.dumps(kw))
c = mqtt.MQTTClient(%(cid)r, "127.0.0.1", %(port)d, keepalive=%(keepalive)d, max_packet=%(max_packet)d,
                    will=(%(base)r + "/will", b"gone", False, 1), log=lambda m: say(log=m))
c.on_message = lambda t, p, r: got.append([t, p.decode(), r])
c.on_connect = lambda: (c.subscribe([(%(base)r + "/in/#", 1)]), c.publish(%(base)r + "/in/ready", "ready", qos=1))
c.on_disconnect = lambda reason: say(ev="lost", reason=reason)
c.start()
deadline = time.ticks_add(time.ticks_ms(), %(run_ms)d)
sent = ready = False
while time.ticks_diff(deadline, time.ticks_ms()) > 0:
    c.poll()
    if not ready and any(m[1] == "ready" for m in got):  # our own message came back: subscribed
        ready = True
        say(ev="ready")
    if c.connected and not sent and any(m[1] == "go" for m in got):
        c.publish(%(base)r + "/out/q1", "hello-1", qos=1)
        c.publish(%(base)r + "/out/q0", "hello-0")
        sent = True
    if any(m[1] == "stop" for m in got):
        break
    c.wait(20)
say(ev="got", messages=[m for m in got if m[1] != "ready"])
if %(abrupt)r:
    c.close()
else:
    c.disconnect()
"""


def run(broker, base: str, *, keepalive: int = 10, max_packet: int = 4096, run_ms: int = 8000, abrupt: bool = False,
        publish=None) -> list[dict]:
    """Run the client for at most ``run_ms``; ``publish(proc)`` drives it from outside while it runs."""
    script = SCRIPT % {"lib": str(FIRMWARE_LIB), "cid": f"fw-{uuid.uuid4().hex[:6]}", "port": broker.port,
                       "keepalive": keepalive, "max_packet": max_packet, "base": base, "run_ms": run_ms,
                       "abrupt": abrupt}
    proc = subprocess.Popen([find_micropython(), "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    lines: list[dict] = []
    for raw in proc.stdout:
        line = json.loads(raw)
        lines.append(line)
        if line.get("ev") == "ready" and publish:
            publish()
    assert proc.wait(timeout=30) == 0, lines
    return lines


@pytest.fixture
def base() -> str:
    return f"fwmqtt-{uuid.uuid4().hex[:8]}"


def test_retained_then_live_in_order_and_qos1_and_qos0_out(broker, probe_factory, base) -> None:
    probe = probe_factory(f"{base}/#")
    probe.publish(f"{base}/in/state", "retained-1", retain=True)
    probe.wait_for(lambda t, d, r: t.endswith("/in/state"))

    def drive() -> None:
        probe.publish(f"{base}/in/live", "live-1")
        probe.publish(f"{base}/in/live", "go")
    lines = run(broker, base, publish=drive, run_ms=6000)
    probe.wait_for(lambda t, d, r: t.endswith("/out/q1"))
    probe.wait_for(lambda t, d, r: t.endswith("/out/q0"))
    probe.publish(f"{base}/in/state", b"", retain=True)
    got = next(line["messages"] for line in lines if line.get("ev") == "got")
    assert got[0] == [f"{base}/in/state", "retained-1", True]
    assert [m[1] for m in got[1:3]] == ["live-1", "go"] and not got[1][2]
    assert probe.qos[f"{base}/out/q1"] == 1 and probe.qos[f"{base}/out/q0"] == 0


def test_an_oversized_message_is_skipped_and_the_next_one_arrives(broker, probe_factory, base) -> None:
    probe = probe_factory(f"{base}/#")

    def drive() -> None:
        probe.publish(f"{base}/in/big", "x" * 20000)  # more than max_packet, sent in many reads
        probe.publish(f"{base}/in/small", "after")
        probe.publish(f"{base}/in/small", "stop")
    lines = run(broker, base, max_packet=1024, publish=drive)
    got = next(line["messages"] for line in lines if line.get("ev") == "got")
    assert [m[1] for m in got] == ["after", "stop"]
    assert any("ignored a" in line.get("log", "") and "limit is 1024" in line["log"] for line in lines)
    assert not any(line.get("ev") == "lost" for line in lines), "the connection survives an oversized message"


def test_keepalive_pings_hold_a_quiet_connection(broker, probe_factory, base) -> None:
    probe = probe_factory(f"{base}/#")
    lines = run(broker, base, keepalive=1, run_ms=3500)  # ~7 pings' worth of quiet at 1 s keepalive
    assert not any(line.get("ev") == "lost" for line in lines), lines
    assert not any(t.endswith("/will") for t, _d, _r in probe.seen), "the broker never dropped it"


def test_the_will_is_sent_on_an_abrupt_close_not_on_a_clean_disconnect(broker, probe_factory, base) -> None:
    probe = probe_factory(f"{base}/#")
    run(broker, base, run_ms=200)
    run(broker, base, run_ms=200, abrupt=True)
    probe.wait_for(lambda t, d, r: t.endswith("/will"))
    assert sum(t.endswith("/will") for t, _d, _r in probe.seen) == 1
