"""The web pages in a real browser: headless Chromium (Debian's) driven by Selenium, against a real
broker, a real hub and ``setbridge web``. One Chromium serves the whole module.

Screenshots of every page go to ``$SETBRIDGE_SCREENSHOTS`` when set, else to pytest's temporary
directory; the path is printed (run with ``-s`` to see it).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from helpers import HubProcess, Probe, make_settings, on, wait_until, write_config
from helpers.firmware import running_light
from helpers.web import PASSWORD, WebProcess, serving, web_section, write_web_config

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

LINK_TIMEOUT_S = 2.0
"""The pages' heartbeat timeout in these tests (2.5 s by default): the 3 s promise is asserted in
full, and a second of slack absorbs a browser whose timers run late on a loaded test machine."""


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = Path(os.environ.get("SETBRIDGE_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    where.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the web pages: {where}")
    return where


READ = "return [...document.querySelectorAll(arguments[0])].map(e => [e.getAttribute(arguments[1]), e.dataset.since])"


def wait_attr(driver, css: str, attr: str, value: str, timeout: float) -> float:
    """Wait until ``css``'s ``attr`` is ``value``; the page's own time of the change (data-since, s).

    Read in one script call: the board rebuilds its elements as news arrives."""
    deadline = time.monotonic() + timeout
    while True:
        found = driver.execute_script(READ, css, attr)
        for got, since in found:
            if got == value:
                return int(since) / 1000 if since else time.time()
        if time.monotonic() > deadline:
            raise AssertionError(f"{css} [{attr}] never became {value!r} within {timeout} s (is {found})")
        time.sleep(0.02)


def showing(driver, value: str, timeout: float) -> float:
    return wait_attr(driver, "body", "data-showing", value, timeout)


def request(probe: Probe, settings, action: str) -> float:
    """A roll/cut request on the bus, as an integrator sends it; the time it was sent."""
    sent = time.time()
    probe.publish(f"{settings.mqtt.base_topic}/set/{settings.hub.set}/request",
                  {"v": 1, "action": action, "transaction": f"browser-{action}-{sent}", "source": "browser-test"})
    return sent


def test_board_and_light_page_show_rolling_within_a_second(browser, broker, tmp_path, hub, shots, probe_factory):
    settings = make_settings(broker, tmp_path / "w", web=web_section(data_dir=str(tmp_path / "web")))
    settings.mqtt.base_topic = hub.settings.mqtt.base_topic
    probe = probe_factory(f"{settings.mqtt.base_topic}/set/+/response")
    with serving(settings) as url:
        browser.get(f"{url}/light/stage-t")
        light_tab = browser.current_window_handle
        showing(browser, "idle", 5)
        browser.switch_to.new_window("tab")
        browser.get(url + "/")
        board_tab = browser.current_window_handle
        wait_attr(browser, '[data-set="stage-t"]', "data-state", "idle", 5)
        sent = request(probe, settings, "roll")
        board_at = wait_attr(browser, '[data-set="stage-t"]', "data-state", "rolling", 2)
        browser.switch_to.window(light_tab)
        light_at = showing(browser, "rolling", 2)
        assert browser.find_element(By.ID, "word").text == "ROLLING"
        assert light_at - sent < 1.0 and board_at - sent < 1.0, (light_at - sent, board_at - sent)
        browser.save_screenshot(str(shots / "light-rolling.png"))
        browser.switch_to.window(board_tab)
        assert "ROLLING" in browser.find_element(By.CSS_SELECTOR, '[data-set="stage-t"] .state').text
        browser.save_screenshot(str(shots / "board-rolling.png"))
        request(probe, settings, "cut")
        wait_attr(browser, '[data-set="stage-t"]', "data-state", "idle", 2)
        browser.get(url + "/takes")
        assert browser.find_elements(By.CSS_SELECTOR, 'tr[data-take="1"]')
        browser.save_screenshot(str(shots / "takes.png"))
        browser.close()
        browser.switch_to.window(light_tab)


def test_light_page_shows_link_lost_within_3_s_of_the_hub_dying_and_recovers(browser, broker, tmp_path, shots):
    settings = make_settings(broker, tmp_path / "state",
                             web=web_section(data_dir=str(tmp_path / "web"), link_timeout_s=LINK_TIMEOUT_S))
    hub = HubProcess(write_config(tmp_path / "hub.toml", settings)).start()
    try:
        with serving(settings) as url:
            browser.get(f"{url}/light/stage-t")
            showing(browser, "idle", 15)  # the hub process starts
            assert hub.proc
            hung = time.time()
            hub.proc.send_signal(signal.SIGSTOP)  # a hung hub: its connection stays, its heartbeats stop
            try:
                lost_at = showing(browser, "link-lost", 4)
                assert lost_at - hung < 3.0, lost_at - hung
                assert "no heartbeat" in browser.find_element(By.ID, "detail").text
                browser.save_screenshot(str(shots / "light-link-lost.png"))
            finally:
                hub.proc.send_signal(signal.SIGCONT)
            showing(browser, "idle", 5)
            killed = time.time()
            hub.kill()  # kill -9: the broker sends the hub's last will (offline)
            lost_at = showing(browser, "link-lost", 4)
            assert lost_at - killed < 3.0, lost_at - killed
            hub.start()
            showing(browser, "idle", 15)
            stopped = time.time()
            hub.terminate()  # a clean stop says offline at once
            offline_at = showing(browser, "link-lost", 4)
            assert offline_at - stopped < 3.0
            assert "hub offline" in browser.find_element(By.ID, "detail").text
    finally:
        hub.kill()


def test_light_page_turns_link_lost_when_its_event_stream_dies(browser, broker, tmp_path, hub):
    settings = make_settings(broker, tmp_path / "w", web=web_section(data_dir=str(tmp_path / "web"),
                                                                     link_timeout_s=LINK_TIMEOUT_S))
    settings.mqtt.base_topic = hub.settings.mqtt.base_topic
    hub.submit("roll", "request")
    web = WebProcess(write_web_config(tmp_path / "web.toml", settings, data_dir=tmp_path / "web",
                                      link_timeout_s=LINK_TIMEOUT_S)).start()
    try:
        browser.get(f"{web.url}/light/stage-t")
        showing(browser, "rolling", 10)
        killed = time.time()
        web.kill()  # the page must not keep showing red from a dead stream
        lost_at = showing(browser, "link-lost", 4)
        assert lost_at - killed < 3.0
        web = WebProcess(web.config, port=web.port).start()
        showing(browser, "rolling", 10)  # EventSource reconnects by itself
    finally:
        web.kill()
        hub.submit("cut", "request")


def test_control_buttons_only_for_a_user_with_the_right(browser, broker, tmp_path, hub, shots, probe_factory):
    settings = make_settings(broker, tmp_path / "w", web=web_section(data_dir=str(tmp_path / "web"),
                                                                     control_username="web-control"))
    settings.mqtt.base_topic = hub.settings.mqtt.base_topic
    t = settings.mqtt.base_topic
    evil = "<img src=x onerror=alert(1)>"
    probe = probe_factory(f"{t}/#")
    probe.publish(f"{t}/offload/card/A001{evil}", {
        "v": 1, "event_id": "x1", "ts": time.time(), "status": "verified", "roll": "A001" + evil,
        "copies": {"required": 2, "verified": 2}, "safe_to_wipe": True}, retain=True)
    try:
        with serving(settings) as url:
            browser.delete_all_cookies()
            browser.get(url + "/")
            wait_attr(browser, '[data-set="stage-t"]', "data-state", "idle", 5)
            assert not browser.find_elements(By.CSS_SELECTOR, "button.action")
            WebDriverWait(browser, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#cards tr[data-card]"))
            cell = browser.find_element(By.CSS_SELECTOR, "#cards tr[data-card] td")
            assert cell.text == "A001" + evil  # shown as text, never as markup
            assert not browser.find_elements(By.CSS_SELECTOR, "#cards img")
            for user, right in (("viewer", False), ("ad", True)):
                browser.get(url + "/login")
                WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.NAME, "user"))
                browser.find_element(By.NAME, "user").send_keys(user)
                browser.find_element(By.NAME, "password").send_keys(PASSWORD)
                browser.save_screenshot(str(shots / "login.png"))
                browser.find_element(By.CSS_SELECTOR, "form.loginform button").click()
                wait_attr(browser, '[data-set="stage-t"]', "data-state", "idle", 5)
                assert bool(browser.find_elements(By.CSS_SELECTOR, "button.action")) is right
                if not right:
                    browser.find_element(By.CSS_SELECTOR, "header form button").click()
                    # the logout's own navigation ends before the next page is asked for
                    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, 'header a[href="/login"]'))
            browser.find_element(By.CSS_SELECTOR, '[data-set="stage-t"] button[data-action="roll"]').click()
            wait_attr(browser, '[data-set="stage-t"]', "data-state", "rolling", 3)
            assert "stage-t: rolling" in browser.find_element(By.CSS_SELECTOR, ".flash").text
            assert hub.state == "rolling"
            browser.save_screenshot(str(shots / "board-control.png"))
            browser.find_element(By.CSS_SELECTOR, '[data-set="stage-t"] button[data-action="cut"]').click()
            wait_attr(browser, '[data-set="stage-t"]', "data-state", "idle", 3)
    finally:
        probe.publish(f"{t}/offload/card/A001{evil}", b"", retain=True)


def light_row(driver, light: str) -> tuple[str, str, str]:
    row = driver.find_element(By.CSS_SELECTOR, f'[data-set="stage-t"] tr[data-light="{light}"]')
    return (row.find_element(By.CSS_SELECTOR, ".showing").text, row.find_element(By.CSS_SELECTOR, ".told").text,
            row.get_attribute("data-mismatch"))


def test_the_board_shows_what_each_light_was_told_beside_what_it_says(browser, broker, tmp_path, hub, probe_factory):
    """A light's word is its own: beside it the board shows its set's state, and flags a disagreement."""
    settings = make_settings(broker, tmp_path / "w", web=web_section(data_dir=str(tmp_path / "web")))
    settings.mqtt.base_topic = t = hub.settings.mqtt.base_topic
    probe = probe_factory(f"{t}/set/+/#")
    state = probe.wait_for(on("/set/stage-t/state")).data
    liar = f"{t}/light/liar"
    probe.publish(f"{liar}/status", {"v": 1, "state": "online", "fw": "0", "set": "stage-t"}, retain=True)
    probe.publish(f"{liar}/state", {"v": 1, "showing": "rolling", "epoch": state["epoch"], "seq": state["seq"]},
                  retain=True)
    hub_settings = hub.settings.model_copy(deep=True)
    try:
        with running_light(hub_settings, tmp_path, "door-1") as door, serving(settings) as url:
            door.wait_showing("idle")
            browser.get(url + "/")
            # the board redraws a row at each update: an element found just before may be gone
            wait = WebDriverWait(browser, 5, ignored_exceptions=(StaleElementReferenceException,))
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-set="stage-t"] tr[data-light="door-1"]'))
            # it says rolling, having applied the set's own idle state: flagged at once
            wait.until(lambda d: light_row(d, "liar") == ("rolling", "idle ≠", "yes"))
            wait.until(lambda d: light_row(d, "door-1") == ("idle", "idle", "no"))
            request(probe, settings, "roll")
            door.wait_showing("rolling")
            wait.until(lambda d: light_row(d, "door-1") == ("rolling", "rolling", "no"))
            wait.until(lambda d: light_row(d, "liar")[2] == "no")  # it agrees now (its word cannot be checked)
            request(probe, settings, "cut")
            door.wait_showing("idle")
            # stuck at an older seq: a light may lag a moment, not for good
            wait.until(lambda d: light_row(d, "liar") == ("rolling", "idle ≠", "yes"))
            wait.until(lambda d: light_row(d, "door-1") == ("idle", "idle", "no"))
    finally:
        probe.publish(f"{liar}/state", b"", retain=True)
        probe.publish(f"{liar}/status", b"", retain=True)


def junk_or_real(roll: str, host: str, n: int) -> dict:
    return {"v": 1, "event_id": f"{roll}-{n}", "roll": roll, "status": "verified", "files": 3, "bytes": 30,
            "host": host}


def test_made_up_cards_are_bounded_and_the_next_real_card_shows_first(browser, broker, tmp_path, probe_factory):
    """600 made-up cards from one sender, then a real one: the sender's day is bounded, the oldest
    retained cards are cleared, and the board shows the real card first."""
    settings = make_settings(broker, tmp_path / "state", web=web_section(data_dir=str(tmp_path / "web")))
    base = settings.mqtt.base_topic
    hub = HubProcess(write_config(tmp_path / "hub.toml", settings,
                                  offload={"max_cards": 20, "cards_per_source_per_day": 30})).start()
    probe = probe_factory(f"{base}/offload/#")
    try:
        with serving(settings) as url:
            browser.get(url + "/")
            wait_attr(browser, '[data-set="stage-t"]', "data-state", "idle", 15)
            for n in range(600):
                probe.client.publish(f"{base}/offload/report", json.dumps(junk_or_real(f"JUNK{n:03d}", "script", n)), qos=1)

            def refusals() -> tuple[list[dict], int]:
                """Refusals answered one by one, and those a ``shed:`` notice counted (a burst's answers
                beyond the hub's offload window are summed up, not sent one by one)."""
                errors = [msg.data for msg in probe.seen if msg.topic.endswith("/error") and msg.data]
                shed = sum(int(d["reason"].split()[1]) for d in errors if d["reason"].startswith("shed: "))
                return [d for d in errors if not d["reason"].startswith("shed: ")], shed

            answered = [0]  # refusals so far, one by one or counted by a notice: each message is looked at once

            def tally(m) -> bool:
                if m.topic.endswith("/error") and m.data:
                    reason = m.data["reason"]
                    answered[0] += int(reason.split()[1]) if reason.startswith("shed: ") else 1
                return answered[0] >= 570

            probe.wait_for(tally, timeout=30, what="570 refusals")
            refused, shed = refusals()
            assert len(refused) + shed == 570 and all(d["reason"].startswith("limit: mqtt:script") for d in refused)
            probe.publish(f"{base}/offload/report", junk_or_real("A001R1", "dit-cart", 1))
            probe.wait_for(on("/offload/event", roll="A001R1"))
            # the oldest made-up cards were cleared from the broker (an empty retained message)
            probe.wait_for(lambda m: m.topic.endswith("/card/JUNK010") and m.data is None, timeout=15)
            late = probe_factory(f"{base}/offload/card/+")
            wait_until(lambda: len(late.seen) >= 20, what="the retained cards")
            time.sleep(0.5)  # nothing more than the bound arrives
            kept = sorted(msg.topic.rsplit("/", 1)[1] for msg in late.seen if msg.retained and msg.data)
            assert kept == ["A001R1"] + [f"JUNK{n:03d}" for n in range(11, 30)], kept
            WebDriverWait(browser, 10).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, '#cards tr[data-card]')[0].get_attribute("data-card") == "A001R1")
            WebDriverWait(browser, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#cards tr[data-card]")) == 20)
            assert not browser.find_elements(By.CSS_SELECTOR, '#cards tr[data-card="JUNK000"]')
    finally:
        hub.terminate()


def test_a_card_without_news_expires_from_the_broker_and_the_board(browser, broker, tmp_path, probe_factory):
    settings = make_settings(broker, tmp_path / "state", web=web_section(data_dir=str(tmp_path / "web")))
    base = settings.mqtt.base_topic
    hub = HubProcess(write_config(tmp_path / "hub.toml", settings, offload={"card_max_age_h": 2 / 3600})).start()
    probe = probe_factory(f"{base}/offload/#")
    try:
        with serving(settings) as url:
            browser.get(url + "/")
            wait_attr(browser, '[data-set="stage-t"]', "data-state", "idle", 15)
            probe.publish(f"{base}/offload/report", junk_or_real("B002R1", "dit-cart", 1))
            probe.wait_for(on("/offload/card/B002R1"), timeout=10)
            WebDriverWait(browser, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#cards tr[data-card="B002R1"]'))
            probe.wait_for(lambda m: m.topic.endswith("/card/B002R1") and m.data is None, timeout=10)
            WebDriverWait(browser, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, '#cards tr[data-card]'))
            late = probe_factory(f"{base}/offload/card/+")
            time.sleep(0.5)
            assert not [msg.topic for msg in late.seen if msg.data]
            probe.publish(f"{base}/offload/report", junk_or_real("B002R1", "dit-cart", 2))  # news: shown again
            WebDriverWait(browser, 5).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#cards tr[data-card="B002R1"]'))
    finally:
        hub.terminate()
