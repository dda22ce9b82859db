"""examples/prometheus/: the rules pass ``promtool check rules`` and their unit tests, every alert
has a test, and a real Prometheus (Debian's ``prometheus``) scrapes a real hub and web process
with the rules loaded, and sees a frozen light while its set rolls."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import HubProcess, Probe, wait_until, write_config
from web_helpers import WebProcess, web_section, write_web_config

from setbridge.sim.broker import free_port
from setbridge.sim.lights import SimLight
from setbridge.commands.provision import light_config

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "prometheus"
RULE_FILES = sorted(p for p in EXAMPLES.glob("*.yml") if re.search(r"rules|alert", p.name))
APT = "sudo apt-get install -y prometheus"

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason=f"promtool missing; run: {APT}")
needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None, reason=f"prometheus missing; run: {APT}")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=EXAMPLES, capture_output=True, text=True, timeout=60)


def alerts() -> set[str]:
    return {rule["alert"] for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule}


@needs_promtool
def test_the_rules_and_the_scrape_config_are_clean():
    assert RULE_FILES
    result = promtool("check", "rules", *(p.name for p in RULE_FILES))
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_every_alert_has_a_unit_test_and_they_pass():
    tests = yaml.safe_load((EXAMPLES / "promtool-tests.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", [])}
    assert alerts() and alerts() <= tested, f"alerts without a promtool test: {alerts() - tested}"
    result = promtool("test", "rules", "promtool-tests.yml")
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


@needs_promtool
def test_a_wrong_rule_fails_its_unit_test(tmp_path):
    """The unit tests can fail: the same tests against a rule with the wrong threshold."""
    for path in RULE_FILES:
        text = path.read_text().replace("increase(setbridge_mqtt_connections_total[10m]) > 5",
                                        "increase(setbridge_mqtt_connections_total[10m]) > 50")
        (tmp_path / path.name).write_text(text)
    shutil.copy(EXAMPLES / "promtool-tests.yml", tmp_path)
    result = subprocess.run(["promtool", "test", "rules", "promtool-tests.yml"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and "SetbridgeMqttReconnectStorm" in result.stdout + result.stderr


class Prometheus:
    """A real Prometheus server on a free port, scraping every second."""

    def __init__(self, workdir: Path, hub: str, web: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for path in RULE_FILES:
            shutil.copy(path, workdir)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [p.name for p in RULE_FILES],
            "scrape_configs": [{"job_name": "setbridge-hub", "static_configs": [{"targets": [hub]}]},
                               {"job_name": "setbridge-web", "static_configs": [{"targets": [web]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def api(self, path: str, **params: str) -> object:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5)
        response.raise_for_status()
        return response.json()["data"]

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.proc.stderr.read().decode(errors="replace")[-2000:]
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]  # type: ignore[index]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@needs_prometheus
def test_a_real_prometheus_scrapes_a_real_hub_and_web_process_with_the_rules(settings, tmp_path):
    metrics_port = free_port()
    hub = HubProcess(write_config(tmp_path / "hub.toml", settings,
                                  metrics={"enabled": True, "host": "127.0.0.1", "port": metrics_port})).start()
    web = WebProcess(write_web_config(tmp_path / "web.toml", settings,
                                      **web_section(data_dir=str(tmp_path / "web"))))
    (tmp_path / "light").mkdir()
    (tmp_path / "prometheus").mkdir()
    light = SimLight("door-1", light_config(settings, "door-1"), tmp_path / "light")
    prometheus = None
    try:
        web.start()
        light.start()
        light.wait_showing("idle", timeout=15)
        prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{metrics_port}", f"127.0.0.1:{web.port}")
        wait_until(prometheus.ready, timeout=30, what="Prometheus to be ready")
        groups = prometheus.api("rules")["groups"]  # type: ignore[index]
        loaded = {rule["name"] for group in groups for rule in group["rules"]}
        assert loaded == alerts()
        assert all(rule["health"] != "err" for group in groups for rule in group["rules"])

        def seen(expr: str) -> bool:
            return bool(prometheus.query(expr))

        wait_until(lambda: seen('up{job="setbridge-hub"} == 1') and seen('up{job="setbridge-web"} == 1'),
                   timeout=20, what="both targets up")
        wait_until(lambda: seen('setbridge_set_state{set="stage-t", state="idle"} == 1')
                   and seen('setbridge_board_light_alive{light="door-1", set="stage-t"} == 1'),
                   timeout=10, what="the hub's and the board's metrics in Prometheus")
        probe = Probe(settings.mqtt.port, f"{settings.mqtt.base_topic}/set/stage-t/response")
        probe.publish(f"{settings.mqtt.base_topic}/set/stage-t/request", {"v": 1, "action": "roll",
                                                                          "transaction": "p-1"})
        probe.wait_for(lambda t, d, r: d is not None and d.get("transaction") == "p-1", timeout=10)
        probe.close()
        light.proc.send_signal(signal.SIGSTOP)  # frozen during the take: the alert must go pending, then fire
        try:
            def alert_state() -> str | None:
                for alert in prometheus.api("alerts")["alerts"]:  # type: ignore[index]
                    if alert["labels"]["alertname"] == "SetbridgeLightNotAliveWhileRolling":
                        assert alert["labels"]["light"] == "door-1" and alert["labels"]["set"] == "stage-t"
                        return str(alert["state"])
                return None

            wait_until(lambda: alert_state() in ("pending", "firing"), timeout=15,
                       what="SetbridgeLightNotAliveWhileRolling to go pending")
            assert seen('setbridge_requests_total{outcome="ok"} == 1')
        finally:
            light.proc.send_signal(signal.SIGCONT)
    finally:
        if prometheus is not None:
            prometheus.stop()
        light.stop()
        web.kill()
        hub.kill()
