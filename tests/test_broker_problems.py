"""A hub that cannot reach its broker says why at once, in one line, then at a limited rate:
nothing listens, the name does not resolve, no route, a broker that stays silent on MQTT 5
(amqtt), a refused login. Real sockets, a real resolver, real Mosquitto and amqtt."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess

import pytest
from helpers import make_settings, wait_until

from setbridge.sim.amqtt_broker import AmqttBroker, find_amqtt
from setbridge.sim.broker import PrivateBroker, free_port
from setbridge.hub import Hub, service


@pytest.fixture(autouse=True)
def short_claim_wait(monkeypatch):
    """Every hub here starts without a broker to talk to: it looks for other hubs for CLAIM_WAIT_S (3 s),
    then starts anyway, as each test expects; what they check comes after that."""
    monkeypatch.setattr(service, "CLAIM_WAIT_S", 0.3)


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "MQTT broker" in r.getMessage()]


def started(broker, tmp_path, **mqtt) -> Hub:
    hub = Hub(make_settings(broker, tmp_path / "state", mqtt={"reconnect_max_s": 1, **mqtt}))
    hub.start()
    return hub


class Closed:
    """A port nothing listens on (for make_settings, which reads ``.port``)."""

    def __init__(self) -> None:
        self.port = free_port()


@pytest.mark.slow
def test_nothing_listening_is_said_at_once_then_at_a_limited_rate(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    broker = Closed()
    hub = started(broker, tmp_path)
    try:
        wait_until(lambda: errors(caplog), timeout=5, what="the first line")
        (first,) = errors(caplog)
        assert f"cannot connect to the MQTT broker 127.0.0.1:{broker.port}" in first
        assert f"): refused the connection: nothing listens on port {broker.port}" in first
        assert hub.bus.watch.problem is not None and hub.bus.watch.problem.kind == "unreachable"
        attempts = hub.bus.watch.log.total
        wait_until(lambda: hub.bus.watch.log.total >= attempts + 2, timeout=10, what="two more attempts")
        assert len(errors(caplog)) == 1, "repeated attempts are summed up, not logged one by one"
        assert hub.submit("roll", cause="button").ok  # the set keeps working without the broker
    finally:
        hub.stop()


@pytest.mark.integration
def test_the_broker_coming_up_is_said_too(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    closed = Closed()
    port = closed.port
    hub = started(closed, tmp_path)
    try:
        wait_until(lambda: errors(caplog), timeout=5, what="the first line")
        with PrivateBroker(port=port):
            assert hub.bus.wait_connected(10)
            wait_until(lambda: any(r.getMessage() == f"connected to the MQTT broker 127.0.0.1:{port}"
                                   for r in caplog.records), what="the line saying it is back")
            assert hub.bus.watch.problem is None
    finally:
        hub.stop()


@pytest.mark.slow
def test_a_name_that_does_not_resolve_is_named(tmp_path, caplog):
    hub = started(Closed(), tmp_path, host="no-such-broker.invalid")
    try:
        wait_until(lambda: errors(caplog), timeout=15, what="the first line")
        assert "the name no-such-broker.invalid does not resolve" in errors(caplog)[0]
    finally:
        hub.stop()


@pytest.mark.slow
def test_no_route_is_named(tmp_path, caplog):
    hub = started(Closed(), tmp_path, host="2001:db8::1", port=1883)  # the documentation prefix: routed nowhere
    try:
        wait_until(lambda: errors(caplog), timeout=20, what="the first line")
        assert "cannot connect to the MQTT broker 2001:db8::1:1883" in errors(caplog)[0]
        assert "no route to it (" in errors(caplog)[0]
    finally:
        hub.stop()


@pytest.mark.integration
@pytest.mark.skipif(find_amqtt() is None, reason="amqtt is not installed (pip install amqtt)")
def test_a_broker_silent_on_mqtt5_is_named_with_the_fix(tmp_path, caplog):
    with AmqttBroker() as broker:
        hub = started(broker, tmp_path)  # protocol "5" by default
        try:
            wait_until(lambda: errors(caplog), timeout=12, what="the first line")
            assert 'did not answer the MQTT 5 CONNECT within 5 s' in errors(caplog)[0]
            assert 'set [mqtt] protocol = "3.1.1"' in errors(caplog)[0]
            assert hub.bus.watch.problem.kind == "protocol"
        finally:
            hub.stop()


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="mosquitto_passwd is not installed")
def test_a_refused_login_is_said_once(tmp_path, caplog):
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "hub-t", "right"], check=True, capture_output=True)
    with PrivateBroker(extra_config=f"password_file {passwd}\n", anonymous=False, workdir=tmp_path / "b") as broker:
        hub = started(broker, tmp_path, username="hub-t", password="wrong")
        try:
            wait_until(lambda: errors(caplog), timeout=5, what="the first line")
            attempts = hub.bus.watch.log.total
            wait_until(lambda: hub.bus.watch.log.total > attempts, timeout=10, what="another attempt")
            (line,) = errors(caplog)
            assert "refused the connection (the login)" in line and "username/password" in line
            assert hub.bus.watch.problem.kind == "login"
        finally:
            hub.stop()


@pytest.mark.slow
def test_a_socket_that_takes_the_connection_and_says_nothing_over_3_1_1(tmp_path, caplog):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        closed = Closed()
        closed.port = silent.getsockname()[1]
        hub = started(closed, tmp_path, protocol="3.1.1")
        try:
            wait_until(lambda: errors(caplog), timeout=12, what="the first line")
            assert "did not answer the MQTT CONNECT within 5 s" in errors(caplog)[0]
        finally:
            hub.stop()
