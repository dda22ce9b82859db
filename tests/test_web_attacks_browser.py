"""A phone light in a real browser (headless Chromium) while the web process is attacked: slow
connections and idle event streams on made-up sets, at a lowered open-file limit so that a few
hundred sockets are more than the process could hold without its guards (bench/web_attack.py
shows the full size)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import make_settings
from test_web_attacks import open_stream, slow_connection
from test_web_browser import showing
from helpers.web import WebProcess, web_section, write_web_config


@pytest.mark.slow
def test_a_phone_light_shows_the_state_while_slow_connections_and_idle_streams_attack(browser, broker,  # noqa: F811
                                                                                       tmp_path, hub):
    settings = make_settings(broker, tmp_path / "state", web=web_section(data_dir=str(tmp_path / "web")))
    settings.mqtt.base_topic = hub.settings.mqtt.base_topic
    config = write_web_config(tmp_path / "web.toml", settings, **web_section(data_dir=tmp_path / "web"))
    web = WebProcess(config, nofile=256).start()
    socks = []
    try:
        with ThreadPoolExecutor(32) as pool:  # at once, as many phones and laptops would
            socks += pool.map(lambda n: slow_connection(web.port, f"127.0.6.{n % 250 + 1}"), range(300))
            socks += pool.map(lambda n: open_stream(web.port, f"/light/made-up-{n}/events", f"127.0.7.{n % 250 + 1}"),
                              range(300))
        time.sleep(0.5)
        began = time.time()
        browser.get(f"{web.url}/light/stage-t")
        shown = showing(browser, "idle", 10)
        assert shown - began < 5.0, shown - began
        hub.submit("roll", "request", source="attack-test")
        showing(browser, "rolling", 3)
        hub.submit("cut", "request", source="attack-test")
        showing(browser, "idle", 3)
    finally:
        for s in socks:
            s.close()
        web.kill()
