"""The Node-RED example flow against a real broker and hub: its messages driven by paho with the
flow's own function code run by Node.js, and, where Node-RED is installed, the flow in Node-RED."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Probe, running_hub

from setbridge.sim.broker import PrivateBroker, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "examples" / "node-red" / "setbridge-flow.json"
HARNESS = r"""
// Runs a flow's function nodes as Node-RED would: one shared flow context, one message per line.
const nodes = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
const store = {};
const flow = {get: (k) => store[k], set: (k, v) => { store[k] = v; }};
const funcs = {};
for (const n of nodes) if (n.type === "function") funcs[n.id] = new Function("msg", "flow", "node", n.func);
require("readline").createInterface({input: process.stdin}).on("line", (line) => {
    const {id, msg} = JSON.parse(line);
    const out = funcs[id](msg, flow, {warn: () => {}, error: () => {}});
    process.stdout.write(JSON.stringify(out === undefined ? null : out) + "\n");
});
"""


def node_red() -> str | None:
    """Node-RED as ``script/setup`` installs it (``.node-red/``), or from ``$NODE_RED``."""
    for candidate in (os.environ.get("NODE_RED"), ROOT / ".node-red" / "node_modules" / ".bin" / "node-red"):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


class Functions:
    """The flow's function nodes, run by Node.js with a flow context that lasts across messages."""

    def __init__(self, flow_path: Path, tmp: Path):
        script = tmp / "harness.js"
        script.write_text(HARNESS)
        self.proc = subprocess.Popen(["node", str(script), str(flow_path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def run(self, node_id: str, msg: dict) -> dict | None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"id": node_id, "msg": msg}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def flow() -> dict[str, dict]:
    return {n["id"]: n for n in json.loads(FLOW.read_text())}


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[tuple[PrivateBroker, object]]:
    """A broker of its own with a hub on the documented names: base ``setbridge``, set ``main``."""
    with PrivateBroker() as broker, running_hub(broker, tmp_path / "state", hub={"set": "main", "id": "hub-1"},
                                                mqtt={"base_topic": "setbridge"}) as hub:
        yield broker, hub


def follow(flow: dict[str, dict], node_id: str, kind: str) -> dict:
    """The first node of type ``kind`` wired after ``node_id``."""
    for target in flow[node_id]["wires"][0]:
        if flow[target]["type"] == kind:
            return flow[target]
    raise AssertionError(f"{node_id} is not wired to a {kind} node")


def test_the_flow_uses_the_documented_topics(flow):
    topics = {n["topic"] for n in flow.values() if n["type"] in ("mqtt in", "mqtt out")}
    assert topics == {"setbridge/set/main/request", "setbridge/set/main/response", "setbridge/set/main/state"}
    assert all(n["qos"] == "1" for n in flow.values() if n["type"] in ("mqtt in", "mqtt out"))
    assert all(n["retain"] == "false" for n in flow.values() if n["type"] == "mqtt out")


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed (apt-get install nodejs)")
def test_the_flows_messages_roll_and_cut_and_match_their_answers(flow, stage, tmp_path):
    broker, hub = stage
    funcs = Functions(FLOW, tmp_path)
    answers = Probe(broker.port, flow["sb.answers"]["topic"])
    try:
        for inject, expected in (("sb.roll", "roll: ok, the set is rolling"), ("sb.cut", "cut: ok, the set is idle")):
            ask = follow(flow, inject, "function")
            msg = funcs.run(ask["id"], {"payload": flow[inject]["payload"]})
            assert msg is not None and isinstance(msg["payload"]["transaction"], int)  # Date.now()
            sent = msg["payload"]["sent_at"]  # it expires: never run after 5 s
            assert abs(sent - time.time()) < 5 and msg["payload"]["deadline"] == pytest.approx(sent + 5)
            assert msg["messageExpiryInterval"] == 5
            out = follow(flow, ask["id"], "mqtt out")
            answers.publish(out["topic"] or msg["topic"], msg["payload"])
            tx = msg["payload"]["transaction"]
            _, answer, _ = answers.wait_for(lambda t, d, r, tx=tx: d and d.get("transaction") == tx)
            # Someone else's answer passes by first: the flow drops it.
            assert funcs.run("sb.match", {"payload": {**answer, "transaction": tx + 1}}) is None
            shown = funcs.run(follow(flow, "sb.answers", "function")["id"], {"payload": answer})
            assert shown is not None and shown["payload"] == expected
        assert hub.state == "idle"
    finally:
        answers.close()
        funcs.close()


@pytest.mark.skipif(node_red() is None, reason="Node-RED is not installed (script/setup installs it into .node-red/ "
                                               "when npm is present; or set NODE_RED)")
def test_the_flow_runs_in_node_red(flow, stage, tmp_path):
    broker, hub = stage
    nodes = json.loads(FLOW.read_text())
    for n in nodes:
        if n["type"] == "mqtt-broker":
            n["broker"], n["port"] = "127.0.0.1", str(broker.port)
        if n["type"] == "debug":
            n["console"] = True  # debug output on stdout, where the test reads it
    flows = tmp_path / "flows.json"
    flows.write_text(json.dumps(nodes))
    port = free_port()
    proc = subprocess.Popen([node_red(), "-u", str(tmp_path), "-p", str(port), str(flows)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
    try:
        seen: list[str] = []

        def until(needle: str, timeout: float = 60.0) -> None:
            while True:
                try:
                    line = lines.get(timeout=timeout)
                except queue.Empty:
                    raise AssertionError(f"no {needle!r} from Node-RED: {''.join(seen[-20:])}") from None
                seen.append(line)
                if needle in line:
                    return

        until("[debug:state] idle")  # connected, subscribed, the retained state arrived
        for inject, expected in (("sb.roll", "roll: ok, the set is rolling"), ("sb.cut", "cut: ok, the set is idle")):
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/inject/{inject}", method="POST"),
                                   timeout=10).read()
            until(f"[debug:answer] {expected}")
        assert hub.state == "idle"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
