"""The central board of a lot in a real browser: every stage grouped, a day timeline per stage,
and an unreachable stage shown as "UNREACHABLE since …", never as its stale state."""

from __future__ import annotations


import pytest

from helpers.broker import password
from helpers.lot import BASE, lot
from setbridge.config import load_settings
from helpers.web import serving, web_section

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


pytestmark = pytest.mark.integration


def section(browser, stage: str):
    return browser.find_element(By.CSS_SELECTOR, f'section.stage[data-stage="{stage}"]')


def test_the_central_board_shows_every_stage_and_an_unreachable_one_as_such(browser, tmp_path):
    with lot("stage-a", "stage-b") as the_lot:
        a, b = the_lot.stages["stage-a"], the_lot.stages["stage-b"]
        settings = load_settings(None, hub={"state_dir": str(tmp_path)},
                                 mqtt={"host": "127.0.0.1", "port": the_lot.centre.port, "base_topic": BASE},
                                 web=web_section(lot=True, mqtt_username="wall", mqtt_password=password("wall"),
                                                 data_dir=str(tmp_path / "web")))
        with serving(settings) as url:
            for action in ("roll", "cut"):
                assert a.hub.submit(action, "button").ok  # a take on stage A's timeline
            assert b.hub.submit("roll", "button").ok
            browser.get(url + "/")  # leads to /lot
            wait = WebDriverWait(browser, 10, poll_frequency=0.2,  # a section redrawn under a lookup: look again
                                 ignored_exceptions=(StaleElementReferenceException,))
            wait.until(lambda d: "ROLLING" in section(d, "stage-b").text and "IDLE" in section(d, "stage-a").text)
            assert browser.current_url.endswith("/lot")
            wait.until(lambda d: section(d, "stage-a").find_elements(By.CSS_SELECTOR, "svg.timeline rect.take"))
            assert "take 1:" in section(browser, "stage-a").text
            b.link.cut()  # stage B goes on rolling, alone; the centre hears nothing more from it
            wait.until(lambda d: "UNREACHABLE since" in section(d, "stage-b").text)
            stage_b = section(browser, "stage-b").text
            assert "ROLLING" not in stage_b and section(browser, "stage-b").get_attribute("data-condition") == "unreachable"
            assert "IDLE" in section(browser, "stage-a").text  # the other stage is unaffected
            browser.get(url + "/lot/stage-b/light/main")
            assert "LINK LOST" in browser.find_element(By.CSS_SELECTOR, "main.lamp").text
            assert "unreachable" in browser.find_element(By.CSS_SELECTOR, "main.lamp").text
            b.link.restore()
            browser.get(url + "/lot")
            wait.until(lambda d: "ROLLING" in section(d, "stage-b").text)
