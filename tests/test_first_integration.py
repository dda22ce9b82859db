"""docs/mqtt.md's "First integration in 5 minutes", run literally with the Mosquitto clients
against a real broker and hub on the documented names."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from conftest import running_hub

from setbridge.dev.broker import PrivateBroker

DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt.md"


def commands() -> list[str]:
    section = DOC.read_text().split("## First integration in 5 minutes")[1].split("\n## ")[0]
    lines = [line for block in re.findall(r"```sh\n(.*?)\n```", section, flags=re.S) for line in block.splitlines()]
    assert lines[0].startswith('export MQTT="-h ')
    return lines[1:]


def test_the_five_minute_integration_works_as_written(tmp_path):
    sub, pub, rr = commands()
    assert sub.startswith("mosquitto_sub ") and pub.startswith("mosquitto_pub ") and rr.startswith("mosquitto_rr ")
    with PrivateBroker() as broker, running_hub(broker, tmp_path / "state", hub={"set": "main", "id": "hub-1"},
                                                mqtt={"base_topic": "setbridge"}) as hub:
        mqtt = f"-h 127.0.0.1 -p {broker.port}"  # what `export MQTT=...` says, for this broker

        def argv(line: str, *extra: str) -> list[str]:
            return shlex.split(line.replace("$MQTT", mqtt)) + list(extra)

        watching = subprocess.Popen(argv(sub, "-W", "20"), stdout=subprocess.PIPE, text=True)
        try:
            assert watching.stdout
            first = watching.stdout.readline()
            assert first.startswith("setbridge/set/main/state ") and json.loads(first.split(" ", 1)[1])["state"] == "idle"
            subprocess.run(argv(pub), check=True, timeout=20)
            seen = []
            while not any("editorial-1" in line and "/response " in line for line in seen):
                line = watching.stdout.readline()
                assert line, f"mosquitto_sub ended; saw {seen}"
                seen.append(line)
            answer = json.loads(next(line for line in seen if "/response " in line).split(" ", 1)[1])
            assert answer["transaction"] == "editorial-1" and answer["ok"] is True and answer["state"] == "rolling"
            assert any(line.startswith("setbridge/set/main/event ") and '"source":"editorial"' in line.replace(" ", "")
                       for line in seen)
        finally:
            watching.terminate()
            watching.wait(timeout=10)
        out = subprocess.run(argv(rr, "-W", "20"), capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert answer["ok"] is True and answer["state"] == "idle" and answer["transaction"] == "editorial-2"
        assert hub.state == "idle"
