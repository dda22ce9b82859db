"""docs/mqtt.md's "First integration in 5 minutes", run literally with the Mosquitto clients
against a broker made by `setbridge broker config` (one connection per user) and a hub, on the
documented names and users."""

from __future__ import annotations

import pytest
import json
import re
import shlex
import subprocess
from pathlib import Path

from broker_helpers import generated_broker, password
from conftest import running_hub

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt.md"


def section() -> str:
    return DOC.read_text().split("## First integration in 5 minutes")[1].split("\n## ")[0]


def users() -> dict[str, str]:
    """The broker users the page asks IT for: name → role."""
    return dict(re.findall(r"setbridge broker add-user (\S+) --role (\S+)", section()))


def commands() -> tuple[dict[str, str], list[str]]:
    """The ``export NAME="..."`` lines (name → connection options) and the other command lines."""
    lines = [line for block in re.findall(r"```sh\n(.*?)\n```", section(), flags=re.S) for line in block.splitlines()]
    exports = dict(re.findall(r'^export (\w+)="(.*)"$', "\n".join(lines), flags=re.M))
    return exports, [line for line in lines if not line.startswith("export ")]


def test_the_page_uses_one_broker_user_per_terminal():
    exports, _ = commands()
    logins = [re.search(r"-u (\S+)", options).group(1) for options in exports.values()]
    assert len(logins) == len(set(logins)) == 2, "two terminals logged in as one user take each other's session"
    assert set(logins) == set(users()), "every login is a user the page asks IT for"


def test_the_five_minute_integration_works_as_written_on_a_generated_broker(tmp_path):
    exports, (sub, pub, rr) = commands()
    assert sub.startswith("mosquitto_sub ") and pub.startswith("mosquitto_pub ") and rr.startswith("mosquitto_rr ")
    with generated_broker({"hub-1": "hub", **users()}) as broker, running_hub(
            broker, tmp_path / "state", hub={"set": "main", "id": "hub-1"},
            mqtt={"base_topic": "setbridge", "username": "hub-1", "password": password("hub-1")}) as hub:
        def argv(line: str, *extra: str) -> list[str]:
            for name, options in exports.items():  # what `export NAME=...` says, for this broker
                user = re.search(r"-u (\S+)", options).group(1)
                options = re.sub(r"-h \S+", f"-h 127.0.0.1 -p {broker.port}", options)
                line = line.replace(f"${name}", options.replace("its-password", password(user)))
            return shlex.split(line) + list(extra)

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
            out = subprocess.run(argv(rr, "-W", "20"), capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, out.stderr
            answer = json.loads(out.stdout)
            assert answer["ok"] is True and answer["state"] == "idle" and answer["transaction"] == "editorial-2"
            assert watching.poll() is None, "the first terminal is still watching (its session was not taken)"
        finally:
            watching.terminate()
            watching.wait(timeout=10)
        assert hub.state == "idle"
