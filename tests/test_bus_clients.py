"""The fence around the fast client: it is built only on the paho-mqtt it was written for, every
private paho name it or the guard touches is checked, and anything else gets paho's own client."""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path

import paho.mqtt
import paho.mqtt.client as mqtt
import pytest

import setbridge
from setbridge import bus_clients
from setbridge.bus import Bus
from setbridge.bus_client import BufferedClient
from setbridge.bus_clients import CLIENT_INTERNALS, PAHO_MINOR, PlainClient, make_client, unfit_reason
from setbridge.bus_guard import GuardedClient
from setbridge.config import MqttSettings
from setbridge.sim.broker import PrivateBroker

FORKED = [Path(setbridge.__file__).parent / name for name in ("bus_client.py", "bus_guard.py")]


def _private_names_used(path: Path) -> set[str]:
    """``self._x`` and ``super()._x`` in ``path`` that are paho's (not defined by the file itself)."""
    text = path.read_text()
    used = set(re.findall(r"(?:self|super\(\))\.(_[a-zA-Z]\w*)", text))
    own = set(re.findall(r"def (_\w+)\(", text)) | set(re.findall(r"self\.(_\w+)(?:: [^=]+)? = ", text))
    own |= set(re.findall(r"^    (_\w+)(?:: [^=]+)? = ", text, re.M))  # class attributes
    paho_client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    return {n for n in (used - own) | {n for n in own if hasattr(paho_client, n)} if not n.startswith("__")}


def test_every_private_paho_name_the_fork_uses_is_checked() -> None:
    used = set().union(*(_private_names_used(p) for p in FORKED))
    assert used - set(CLIENT_INTERNALS) == set(), "add these to setbridge.bus_clients.CLIENT_INTERNALS"
    receipt = re.findall(r"self\.(_\w+) = ", Path(FORKED[0]).read_text().split("class _Receipt")[1].split("class ")[0])
    assert set(receipt) - set(bus_clients.INFO_INTERNALS) == set(), "add these to bus_clients.INFO_INTERNALS"
    probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    assert [n for n in CLIENT_INTERNALS if not hasattr(probe, n)] == []
    assert paho.mqtt.__version__.startswith(PAHO_MINOR + ".") and unfit_reason() is None


def test_the_pin_is_the_minor_the_fork_was_written_for() -> None:
    pyproject = (Path(setbridge.__file__).parent.parent / "pyproject.toml").read_text()
    assert f'"paho-mqtt~={PAHO_MINOR}.0"' in pyproject


def test_each_kind_is_built_on_the_paho_it_fits() -> None:
    assert type(make_client("fast", "a", True, False)) is BufferedClient
    assert type(make_client("paho", "a", True, False)) is GuardedClient


@pytest.mark.parametrize("version, missing", [("2.1.0", None), ("2.3.0", None), ("2.2.0", "_last_bytes_received")])
def test_another_paho_gets_paho_s_own_client_and_one_log_line(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture, version: str,
                                                              missing: str | None) -> None:
    """A paho release other than the pinned minor (or one that renamed a name the fork uses, as
    2.2 renamed ``_last_msg_in``) falls back to paho's own client, saying so once."""
    monkeypatch.setattr(paho.mqtt, "__version__", version)
    if missing:
        monkeypatch.setattr(bus_clients, "CLIENT_INTERNALS", (*CLIENT_INTERNALS, missing + "_renamed"))
    monkeypatch.setattr(bus_clients, "_fell_back", set())
    unfit_reason.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="setbridge.bus_clients"):
            clients = [make_client(kind, "a", True, False) for kind in ("fast", "fast", "paho")]
        assert [type(c) for c in clients] == [PlainClient] * 3
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 2 and "using paho's own client" in lines[0] and (missing or version) in lines[0]
    finally:
        unfit_reason.cache_clear()


def test_the_plain_client_carries_a_burst_and_counts_its_backlog(broker: PrivateBroker) -> None:
    """paho's own client under the bus: every QoS 1 message acknowledged, the backlog back to 0."""
    settings = MqttSettings(host="127.0.0.1", port=broker.port, base_topic=f"t{uuid.uuid4().hex[:8]}", client="paho")
    bus = Bus(settings, f"tx-{uuid.uuid4().hex[:6]}")
    bus.start()
    try:
        assert bus.wait_connected(5) and type(bus._client) is GuardedClient
        deliveries = [bus.publish(f"{settings.base_topic}/x", b"%d" % i) for i in range(2000)]
        assert bus.backlog > 0 and bus.send_window == bus_clients.PLAIN_WINDOW
        assert all(d.wait(20) for d in deliveries)
        assert bus.backlog == 0
    finally:
        bus.stop()


def test_the_configured_client_is_the_one_built(settings) -> None:
    """``[mqtt] client`` (here from the environment, as ``.ci/run``'s second pass sets it) decides."""
    expected = {"paho": GuardedClient, "fast": BufferedClient}[os.environ.get("SETBRIDGE_MQTT__CLIENT", "fast")]
    assert settings.mqtt.client == os.environ.get("SETBRIDGE_MQTT__CLIENT", "fast")
    assert type(Bus(settings.mqtt, "a")._client) is expected
