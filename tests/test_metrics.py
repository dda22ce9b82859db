"""The hub's Prometheus metrics: served by a real hub over HTTP when ``[metrics]`` says so,
read with prometheus_client's parser, named after Prometheus' conventions, labels bounded."""

from __future__ import annotations

import re
import socket

import pytest
from helpers import Probe, running_hub, wait_online, wait_until
from helpers.metrics import scrape, value

from setbridge.config import load_settings
from setbridge.sim.broker import free_port
from setbridge.hub import Hub
from setbridge.hub.metrics import HubMetrics
from setbridge.speech.stats import VoiceStats, near_miss_reason

METRICS = {"enabled": True, "port": 0}


def url(hub: Hub) -> str:
    (metrics,) = [c for c in hub.components if isinstance(c, HubMetrics)]
    assert metrics.port
    return f"http://127.0.0.1:{metrics.port}/metrics"


def test_metrics_are_off_by_default_and_only_on_this_machine_when_on():
    settings = load_settings(None)
    assert settings.metrics.enabled is False and settings.metrics.host == "127.0.0.1"


def test_a_hub_without_metrics_serves_none(broker, tmp_path):
    with running_hub(broker, tmp_path / "state") as hub:
        assert not any(isinstance(c, HubMetrics) for c in hub.components)


def test_the_hub_counts_requests_by_outcome_and_transitions_by_cause(broker, tmp_path):
    with running_hub(broker, tmp_path / "state", metrics=METRICS) as hub:
        wait_online(hub)
        before = scrape(url(hub))
        assert value(before, "setbridge_build_info", hub="hub-t", set="stage-t") == 1
        assert value(before, "setbridge_set_state", set="stage-t", state="idle") == 1
        assert value(before, "setbridge_mqtt_connected") == 1
        assert value(before, "setbridge_mqtt_connections_total") == 1
        assert value(before, "setbridge_state_dir_free_bytes") > 0
        assert value(before, "setbridge_offload_journal_fault") == 0
        assert value(before, "setbridge_offload_answers_shed_total") == 0
        assert value(before, "setbridge_hub_conflict") == 0
        assert value(before, "setbridge_timecode_status", status="off") == 1
        hub.set_timecode_health("fault", "no LTC", None)
        hub.set_audio_status("fault")
        faulty = scrape(url(hub))
        assert value(faulty, "setbridge_timecode_status", status="fault") == 1
        assert value(faulty, "setbridge_audio_status", status="fault") == 1
        assert value(faulty, "setbridge_audio_faults_total") == 1
        topics = hub.topics
        answers = Probe(broker.port, topics.set_response("stage-t"))
        try:
            request = topics.set_request("stage-t")
            answers.publish(request, {"v": 1, "action": "roll", "transaction": "tx-private-1", "source": "ipad"})
            answers.wait_for(lambda m: m.data is not None and m.data.get("transaction") == "tx-private-1")
            answers.publish(request, {"v": 1, "action": "roll", "transaction": "tx-private-1", "source": "ipad"})
            answers.publish(request, {"v": 1, "action": "fly", "transaction": "tx-private-2"})
            answers.publish(request, {"v": 1, "action": "cut", "transaction": "tx-private-3"})
            answers.wait_for(lambda m: m.data is not None and m.data.get("transaction") == "tx-private-3")
        finally:
            answers.close()
        wait_until(lambda: hub.worker.taken >= 3 and hub.requests.rejected.total >= 1, what="the requests to be answered")
        after = scrape(url(hub))
    assert value(after, "setbridge_requests_total", outcome="ok") == 2
    assert value(after, "setbridge_requests_total", outcome="repeated") == 1
    assert value(after, "setbridge_requests_total", outcome="malformed") == 1
    assert value(after, "setbridge_requests_total", outcome="busy") == 0
    assert value(after, "setbridge_set_transitions_total", state="rolling", cause="request") == 1
    assert value(after, "setbridge_set_transitions_total", state="idle", cause="request") == 1
    assert value(after, "setbridge_set_take", set="stage-t") == 1


def test_names_follow_prometheus_conventions_and_no_label_carries_what_a_client_sent(broker, tmp_path):
    with running_hub(broker, tmp_path / "state", metrics=METRICS) as hub:
        wait_online(hub)
        hub.submit("roll", cause="button", source="gpio:roll")
        text_families = scrape(url(hub))
        probe = Probe(broker.port, hub.topics.set_response("stage-t"))
        probe.publish(hub.topics.set_request("stage-t"), {"v": 1, "action": "cut", "transaction": "tx-secret-9",
                                                          "source": "phrase typed by a user"})
        probe.wait_for(lambda m: m.data is not None and m.data.get("transaction") == "tx-secret-9")
        probe.close()
        import httpx
        text = httpx.get(url(hub)).text
    assert "tx-secret-9" not in text and "phrase typed" not in text
    for name, samples in text_families.items():
        assert name.startswith("setbridge_"), name
        for sample in samples:
            assert re.fullmatch(r"[a-z_]+", sample.name), sample.name
            if sample.name.endswith("_total"):
                assert name + "_total" == sample.name  # a counter
            assert not sample.name.endswith(("_ms", "_milliseconds", "_kb", "_mb")), "base units"


def test_a_busy_metrics_port_is_one_clear_error_and_the_hub_runs_on(broker, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("setbridge.hub.metrics.RETRY_S", 0.2)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    with running_hub(broker, tmp_path / "state", metrics={"enabled": True, "port": port}) as hub:
        assert hub.submit("roll", cause="button").ok  # the set runs without its metrics
        lines = [r.getMessage() for r in caplog.records if "[metrics] cannot listen" in r.getMessage()]
        assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "pick a free port" in lines[0]
        taken.close()  # whatever held the port lets it go: the metrics come up by themselves
        wait_until(lambda: url_or_none(hub) is not None, what="the metrics to listen")
        assert value(scrape(url(hub)), "setbridge_set_state", state="rolling") == 1
        assert len([r for r in caplog.records if "[metrics] cannot listen" in r.getMessage()]) == 1


def url_or_none(hub: Hub) -> str | None:
    (metrics,) = [c for c in hub.components if isinstance(c, HubMetrics)]
    return f"http://127.0.0.1:{metrics.port}/metrics" if metrics.port else None


def test_the_hub_process_serves_metrics_on_the_configured_port(hub_process, settings, tmp_path):
    from helpers import HubProcess, write_config

    port = free_port()
    process = HubProcess(write_config(tmp_path / "m.toml", settings, metrics={"enabled": True, "port": port,
                                                                             "host": "127.0.0.1"})).start()
    try:
        families: dict = {}

        def scraped() -> bool:
            try:
                families.update(scrape(f"http://127.0.0.1:{port}/metrics"))
            except Exception:  # noqa: BLE001 - not listening yet
                return False
            return value(families, "setbridge_mqtt_connected") == 1

        wait_until(scraped, timeout=20, what="the hub process's metrics")
        assert value(families, "setbridge_build_info", set="stage-t") == 1
    finally:
        process.kill()


@pytest.mark.parametrize("reason, label", [
    ("not a phrase alone", "not_alone"),
    ("no pause before it (0.05 s < 0.2 s)", "no_pause"),
    ("confidence 0.41 < 0.6", "low_confidence"),
    ("0.90 s per syllable outside (0.08, 0.6)", "pace"),
    ("phrase covers 0.40 s of 1.60 s of sound", "sound_span"),
    ("only 0.20 s of sound for a 0.60 s phrase", "sound_span"),
    ("filler words fit better (0.1 < 0.5 per syllable)", "filler"),
    ("only 3.0 dB above the sound just before it (< 6 dB)", "onset"),
    ("refractory", "refractory"),
    ("roll not allowed while rolling", "not_allowed"),
    ("something new", "other"),
])
def test_a_near_miss_reason_becomes_a_bounded_label(reason, label):
    assert near_miss_reason(reason) == label


def test_voice_stats_count_triggers_near_misses_and_latency():
    stats = VoiceStats()
    stats.trigger("roll", 0.32)
    stats.trigger("cut", 0.18)
    stats.near_miss("confidence 0.41 < 0.6")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for m in stats.collect() for s in m.samples}
    assert samples[("setbridge_voice_triggers_total", (("action", "roll"),))] == 1
    assert samples[("setbridge_voice_near_misses_total", (("reason", "low_confidence"),))] == 1
    assert samples[("setbridge_voice_detection_latency_seconds_count", ())] == 2
    assert samples[("setbridge_voice_detection_latency_seconds_bucket", (("le", "0.2"),))] == 1
