"""``setbridge web`` over HTTP against a real broker and hub: the board, the light stream,
login and control rights, CSRF, escaping of bus data, an unreachable broker, and a take log
that survives restarts."""

from __future__ import annotations

import csv
import io
import re
import time

import httpx
import pytest

from setbridge.sim.broker import free_port
from setbridge.hub import Hub
from setbridge.topics import Topics

from helpers import make_settings, wait_until
from helpers.web import (PASSWORD, Client, WebProcess, board_with_a_real_light, frozen, read_events, serving, web_section,
                         write_web_config)

pytestmark = pytest.mark.integration


def web_settings(broker, tmp_path, **web):
    return make_settings(broker, tmp_path / "state", web=web_section(data_dir=str(tmp_path / "web"), **web))


def showing(until: str):
    return lambda seen: seen[-1][0] == "view" and seen[-1][1]["showing"] == until


def test_board_and_light_stream_follow_the_hub(broker, tmp_path):
    settings = web_settings(broker, tmp_path)
    hub = Hub(settings)
    hub.start()
    try:
        with serving(settings) as url:
            read_events(f"{url}/light/stage-t/events", showing("idle"))
            page = httpx.get(url + "/").text
            assert re.search(r'data-set="stage-t" data-state="idle"', page)
            assert "Cannot reach the MQTT broker" not in page or 'alert" role="alert" hidden' in page
            stream = read_events(f"{url}/light/stage-t/events", lambda seen: (hub.submit("roll", "request"), True)[1])
            assert stream[0][1]["set"] == "stage-t"
            seen = read_events(f"{url}/light/stage-t/events", showing("rolling"))
            assert seen[-1][1]["take"] == 1 and seen[-1][1]["hub_online"] is True
            assert 'data-set="stage-t" data-state="rolling"' in httpx.get(url + "/").text
            board = read_events(f"{url}/events", lambda seen: seen[-1][0] == "board")
            (entry,) = board[-1][1]["sets"]
            assert entry["state"] == "rolling" and entry["hubs"][0]["id"] == "hub-t"
    finally:
        hub.stop()


def test_control_needs_a_user_with_the_right_and_the_csrf_token(broker, tmp_path, hub):
    settings = make_settings(broker, tmp_path / "state2", web=web_section(
        data_dir=str(tmp_path / "web"), control_username="web-control"))
    settings.mqtt.base_topic = hub.settings.mqtt.base_topic
    with serving(settings) as url:
        read_events(f"{url}/light/stage-t/events", showing("idle"))
        with Client(base_url=url) as anonymous:
            assert 'data-action="' not in anonymous.get("/").text
            token = anonymous.page_csrf("/login")
            r = anonymous.post("/set/stage-t/roll", data={"csrf": token})
            assert r.status_code == 403 and "log in as a user with control" in r.text
        with Client(base_url=url) as viewer:
            assert viewer.login("viewer").status_code == 303
            assert "Log out viewer" in viewer.get("/").text and 'data-action="' not in viewer.get("/").text
            assert viewer.post("/set/stage-t/roll", data={"csrf": viewer.page_csrf()}).status_code == 403
        with Client(base_url=url) as wrong:
            r = wrong.login("ad", "not the password")
            assert r.status_code == 401 and "wrong user name or password" in r.text
            assert wrong.login("nobody").status_code == 401
        with Client(base_url=url) as ad:
            assert ad.post("/login", data={"user": "ad", "password": "x"}).status_code == 403  # no CSRF token
            assert ad.login("ad").status_code == 303
            page = ad.get("/").text
            assert all(f'data-action="{a}"' in page for a in ("roll", "cut", "standby"))
            assert ad.post("/set/stage-t/roll", data={}).status_code == 403
            assert ad.post("/set/stage-t/roll", data={"csrf": "forged"}).status_code == 403
            token = ad.page_csrf()
            r = ad.post("/set/stage-t/roll", data={"csrf": token}, headers={"Origin": "http://evil.example"})
            assert r.status_code == 403 and hub.state == "idle"
            r = ad.post("/set/stage-t/roll", data={"csrf": token})
            assert r.status_code == 303 and hub.state == "rolling"
            assert "stage-t: rolling" in ad.get("/").text  # the hub's answer, shown once
            r = ad.post("/set/stage-t/standby", data={"csrf": token}, headers={"Accept": "application/json"})
            assert r.status_code == 409 and "refused: the set is rolling" in r.json()["message"]
            assert ad.post("/set/stage-t/cut", data={"csrf": token}).status_code == 303 and hub.state == "idle"
            assert ad.post("/set/stage-t/explode", data={"csrf": token}).status_code == 404
            assert ad.post("/set/no-such-set/roll", data={"csrf": token}).status_code == 404
            ad.post("/logout", data={"csrf": token})
            assert ad.post("/set/stage-t/roll", data={"csrf": token}).status_code == 403
    # a user with the right still gets no buttons when the web process has no control user
    plain = make_settings(broker, tmp_path / "state3", web=web_section(data_dir=str(tmp_path / "web3")))
    with serving(plain) as url, Client(base_url=url) as ad:
        ad.login("ad")
        assert 'data-action="' not in ad.get("/").text


def test_viewing_can_require_a_login(broker, tmp_path):
    settings = web_settings(broker, tmp_path, login_to_view=True)
    with serving(settings) as url, Client(base_url=url) as c:
        for path in ("/", "/light/stage-t", "/takes"):
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}"
        assert c.get("/events").status_code == 401 and c.get("/takes.csv").status_code == 401
        assert c.get("/light/stage-t/events").status_code == 401
        token = c.page_csrf("/login")
        r = c.post("/login?next=//evil.example/", data={"user": "viewer", "password": PASSWORD, "csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/"  # never off-site
        assert c.get("/").status_code == 200




def test_everything_from_the_bus_is_escaped(broker, tmp_path, probe_factory):
    settings = web_settings(broker, tmp_path)
    t = Topics(settings.mqtt.base_topic)
    probe = probe_factory(f"{t.base}/#")
    evil = "<img src=x onerror=alert(1)>"
    probe.publish(t.hub_status("hub-x"), {"v": 1, "state": "online", "hub": "hub-x", "set": "stage-t",
                                          "version": "<script>alert(2)</script>", "audio": "ok"}, retain=True)
    probe.publish(t.light_status("door-1"), {"v": 1, "state": "online", "fw": "<b>fw</b>", "set": "stage-t"},
                  retain=True)
    probe.publish(t.offload_card("A001" + evil), {"v": 1, "event_id": "x1", "ts": time.time(), "status": "verified",
                                                  "roll": "A001" + evil, "copies": {"required": 2, "verified": 2},
                                                  "safe_to_wipe": True}, retain=True)
    with serving(settings) as url:
        board = read_events(f"{url}/events", lambda seen: seen[-1][1]["cards"] and seen[-1][1]["sets"])
        assert board[-1][1]["cards"][0]["roll"] == "A001" + evil
        probe.publish(t.set_event("stage-t"), {"v": 1, "event_id": "e1", "type": "roll", "changed": True,
                                               "state": "rolling", "cause": "voice", "phrase": "</ul><script>x()</script>",
                                               "confidence": 0.9, "epoch": 1, "seq": 1, "take": 1})
        read_events(f"{url}/events", lambda seen: seen[-1][1]["sets"][0]["voice"])
        page = httpx.get(url + "/").text
        assert evil not in page and "<script>x()" not in page and "<b>fw" not in page
        assert "A001&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;/ul&gt;&lt;script&gt;" in page
        assert "script-src 'self'" in httpx.get(url + "/").headers["content-security-policy"]
    for topic in (t.hub_status("hub-x"), t.light_status("door-1"), t.offload_card("A001" + evil)):
        probe.publish(topic, b"", retain=True)


def test_an_unreachable_broker_gets_a_clear_page(tmp_path):
    from setbridge.config import load_settings

    settings = load_settings(None, mqtt={"host": "127.0.0.1", "port": free_port(), "reconnect_max_s": 1},
                             hub={"state_dir": str(tmp_path / "state")},
                             web=web_section(data_dir=str(tmp_path / "web")))
    with serving(settings, subscribed=False) as url:
        r = httpx.get(url + "/")
        assert r.status_code == 503
        assert f"Cannot reach the MQTT broker at 127.0.0.1:{settings.mqtt.port}" in r.text
        assert 'class="alert" role="alert" >' in r.text or 'role="alert" hidden' not in r.text.split("broker-alert")[1][:60]
        view = read_events(f"{url}/light/stage-a/events", lambda seen: True)[0][1]
        assert view["showing"] == "link-lost" and view["lost"] == "broker"
        assert 'data-showing="link-lost"' in httpx.get(url + "/light/stage-a").text


def takes_csv(url: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(httpx.get(url + "/takes.csv").text)))


def wait_takes(url: str, count: int, timeout: float = 10) -> list[dict]:
    """The take log once ``count`` takes in it have ended."""
    wait_until(lambda: len([r for r in takes_csv(url) if r["ended_at"]]) >= count, timeout,
               what=f"{count} ended takes in {url}/takes.csv")
    return takes_csv(url)


@pytest.mark.slow
def test_the_take_log_keeps_every_take_across_restarts(broker, tmp_path, capsys):
    settings = web_settings(broker, tmp_path)
    config = write_web_config(tmp_path / "setbridge.toml", settings, data_dir=tmp_path / "web", host="127.0.0.1")
    web = WebProcess(config).start()
    # Its session is new: what the hub says before it has subscribed is not kept for it.
    wait_until(lambda: httpx.get(web.url + "/").status_code == 200, 20, "the web process on the broker")
    hub = Hub(settings)
    hub.start()
    try:
        assert hub.bus.wait_connected(5)
        hub.submit("roll", "request", source="t1")
        hub.submit("cut", "request", source="t1")
        assert len(wait_takes(web.url, 1)) == 1
        web.kill()  # kill -9: the broker keeps the log's session and queues what follows
        for _ in (2, 3):
            hub.submit("roll", "voice", phrase="roll sound", confidence=0.9)
            hub.submit("cut", "button")
        hub.stop()  # and the hub restarts too
        hub = Hub(settings)
        hub.start()
        assert hub.bus.wait_connected(5)
        hub.submit("roll", "request", source="t4")
        hub.submit("cut", "request", source="t4")
        web = WebProcess(config, port=web.port).start()
        rows = wait_takes(web.url, 4)
        assert [(r["take"], r["roll_by"], r["cut_by"]) for r in rows] == [
            ("1", "request", "request"), ("2", "voice", "button"), ("3", "voice", "button"), ("4", "request", "request")]
        assert rows[1]["roll_phrase"] == "roll sound" and rows[0]["roll_source"] == "t1"
        page = httpx.get(web.url + "/takes").text
        assert "Takes on" in page and page.count("<tr data-take=") == 4
        assert web.stop() in (0, -15)  # uvicorn re-raises SIGTERM after a graceful shutdown
        assert "Finished server process" in web.proc.stdout.read().decode()
    finally:
        web.kill()
        hub.stop()
    from setbridge.cli import main

    assert main(["takes", "--config", str(config)]) == 0
    assert "takes on" in capsys.readouterr().out


def test_the_board_judges_a_real_light_alive_by_its_alive_messages(broker, tmp_path, hub):
    with board_with_a_real_light(broker, tmp_path, hub) as (url, light):
        def news(seen):
            event, data = seen[-1]
            return event == "beats" and (data["lights"].get("door-1") or {}).get("alive") is True
        read_events(f"{url}/events", news)
        (entry,) = httpx.get(url + "/").text.split('data-light="door-1"')[1:2]
        assert 'data-alive="yes"' in entry[:40]
        with frozen(light):
            frozen_at = time.monotonic()
            read_events(f"{url}/events", lambda seen: seen[-1][0] == "beats"
                        and seen[-1][1]["lights"]["door-1"]["alive"] is False, timeout=8)
            assert time.monotonic() - frozen_at < 5.0
            assert "OFFLINE" not in httpx.get(url + "/").text  # the broker still thinks it online


def test_losing_the_broker_turns_every_light_page_to_link_lost_at_once(own_broker, tmp_path):
    settings = web_settings(own_broker, tmp_path)
    hub = Hub(settings)
    hub.start()
    try:
        with serving(settings) as url:
            read_events(f"{url}/light/stage-t/events", showing("idle"))
            with httpx.stream("GET", f"{url}/light/stage-t/events", timeout=15) as stream:
                lines = stream.iter_lines()
                own_broker.stop()
                stopped = time.monotonic()
                for line in lines:
                    if line.startswith("data:") and '"broker":false' in line:
                        assert '"showing":"link-lost"' in line and '"lost":"broker"' in line
                        break
                assert time.monotonic() - stopped < 2.0  # pushed at the disconnect, not found by a timeout
            assert httpx.get(url + "/").status_code == 503
            own_broker.start()
            read_events(f"{url}/light/stage-t/events", showing("idle"), timeout=15)
    finally:
        hub.stop()


def test_guessing_passwords_is_throttled_and_bad_ids_are_refused(broker, tmp_path):
    settings = web_settings(broker, tmp_path)
    with serving(settings) as url, Client(base_url=url) as c:
        token = c.page_csrf("/login")
        r = c.post("/login?next=/\\evil.example", data={"user": "viewer", "password": PASSWORD, "csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/"  # a browser reads /\ as //: never off-site
    with serving(settings) as url, Client(base_url=url) as c:
        for _ in range(5):
            assert c.login("ad", "guess").status_code == 401
        r = c.login("ad")  # even the right password waits now
        assert r.status_code == 429 and "too many logins tried" in r.text
        for path in ("/light/Stage%20A", "/light/..%2f..", "/light/" + "a" * 80, "/light/x%3Cb%3E/events"):
            assert c.get(path).status_code == 404, path


def test_a_port_in_use_is_a_one_line_error(tmp_path):
    import socket
    import subprocess
    import sys

    config = tmp_path / "c.toml"
    config.write_text(f'[mqtt]\nport = {free_port()}\n[web]\ndata_dir = "{tmp_path / "web"}"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "setbridge", "web", "--config", str(config), "--host", "127.0.0.1",
                              "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (f"setbridge: cannot listen on 127.0.0.1:{port}; is the port in use? "
                                                   "choose another with --port")
