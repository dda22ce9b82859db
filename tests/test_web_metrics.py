"""``/metrics`` of ``setbridge web``: the board's view of sets, hubs and real lights, scraped over
HTTP and read with prometheus_client's parser; behind the login when viewing needs one."""

from __future__ import annotations


import httpx
from helpers import make_settings, wait_until
from helpers.metrics import scrape, value
from helpers.web import PASSWORD, Client, board_with_a_real_light, frozen, serving, web_section



def test_the_board_metrics_follow_the_hub_and_a_real_light(broker, tmp_path, hub):
    with board_with_a_real_light(broker, tmp_path, hub) as (url, light):
        families: dict = {}

        def has(sample: str, expected: float, **labels: str) -> bool:
            families.clear()
            families.update(scrape(url + "/metrics"))
            try:
                return value(families, sample, **labels) == expected
            except AssertionError:
                return False

        wait_until(lambda: has("setbridge_board_light_alive", 1, light="door-1", set="stage-t"), timeout=10,
                   what="the light to be alive on /metrics")
        assert value(families, "setbridge_board_broker_connected") == 1
        assert value(families, "setbridge_board_set_state", set="stage-t", state="idle") == 1
        assert value(families, "setbridge_board_hub_online", hub="hub-t", set="stage-t") == 1
        assert value(families, "setbridge_board_lights", set="stage-t", status="online") == 1
        assert value(families, "setbridge_board_lights", set="stage-t", status="offline") == 0
        assert 0 <= value(families, "setbridge_board_light_last_seen_age_seconds", light="door-1") < 3
        hub.submit("roll", cause="test")
        wait_until(lambda: has("setbridge_board_set_state", 1, set="stage-t", state="rolling"),
                   what="rolling on /metrics")
        with frozen(light):
            wait_until(lambda: has("setbridge_board_light_alive", 0, light="door-1", set="stage-t"), timeout=8,
                       what="the frozen light to be not alive")
            assert value(families, "setbridge_board_lights", set="stage-t", status="online") == 1  # still
            assert value(families, "setbridge_board_light_last_seen_age_seconds", light="door-1") > 2.5


def test_metrics_need_the_login_when_viewing_does(broker, tmp_path):
    settings = make_settings(broker, tmp_path / "state", web=web_section(data_dir=str(tmp_path / "web"),
                                                                        login_to_view=True))
    with serving(settings) as url:
        anonymous = httpx.get(url + "/metrics")
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(url + "/metrics", auth=("viewer", "wrong")).status_code == 401
        assert httpx.get(url + "/metrics", auth=("nobody", PASSWORD)).status_code == 401
        for _ in range(2):  # the second is answered from the remembered credential
            assert "setbridge_board_broker_connected" in scrape(url + "/metrics", auth=("viewer", PASSWORD))
        with Client(base_url=url) as c:
            c.login("viewer")
            assert c.get("/metrics").status_code == 200


def test_metrics_are_open_when_viewing_is(broker, tmp_path):
    settings = make_settings(broker, tmp_path / "state", web=web_section(data_dir=str(tmp_path / "web")))
    with serving(settings) as url:
        assert "setbridge_board_broker_connected" in scrape(url + "/metrics")
