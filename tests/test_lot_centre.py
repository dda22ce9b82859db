"""The lot's centre restarted or down, and ``status --lot`` telling a stage's troubles apart: real
brokers on the generated configs, as in ``test_lot.py`` (apart, so the two files run side by side)."""

from __future__ import annotations

import time

import pytest

from helpers import at, wait_until
from helpers.broker import password
from helpers.lot import central, lot, state_of
from setbridge.expiry import expiring

pytestmark = pytest.mark.integration


def test_the_central_broker_restart_is_caught_up_and_the_state_is_the_stages():
    with lot("stage-a", "stage-b") as the_lot:
        a = the_lot.stages["stage-a"]
        wall = the_lot.user("wall")
        wall.subscribe(central("+", "bridge"))
        wall.wait_for(at(central("stage-a", "bridge"), b"1"), 10)
        wall.wait_for(at(central("stage-b", "bridge"), b"1"), 10)
        the_lot.users.remove(wall)
        wall.close()
        started = time.monotonic()
        the_lot.centre.restart()
        assert a.hub.submit("roll", "button").ok  # while the centre is back but the bridge may not be
        office = the_lot.user()
        office.subscribe(central("+", "set/main/state"))
        wait_until(lambda: (state_of(office, central("stage-a", "set/main/state")) or {}).get("state") == "rolling",
                   10, "stage A's state at the restarted centre")
        assert time.monotonic() - started < 8
        office.wait_for(at(central("stage-b", "set/main/state"), b'"idle"'), 10)
        got = state_of(office, central("stage-a", "set/main/state"))
        assert got["seq"] == a.hub.controller.seq


def _status_lot(the_lot, tmp_path) -> tuple[int, str]:
    import contextlib
    import io

    from setbridge.cli import main

    cfg = tmp_path / "centre.toml"
    cfg.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {the_lot.centre.port}\nusername = "wall"\n'
                   f'password = "{password("wall")}"\n')
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["status", "--lot", "--config", str(cfg)])
    return code, out.getvalue()


def test_status_lot_tells_unreachable_hub_down_and_light_down_apart(tmp_path):
    from helpers.firmware import running_light

    with lot("stage-a", "stage-b", "stage-c") as the_lot:
        a, b, c = (the_lot.stages[n] for n in ("stage-a", "stage-b", "stage-c"))
        (a.dir / "light").mkdir()
        with running_light(a.settings, a.dir / "light", "sim-1", light_password=password("sim-1")) as light:
            light.wait_showing("idle", timeout=10)
            code, out = _status_lot(the_lot, tmp_path)
            assert code == 0, out
            assert "stage-a: set main idle, take 0, 1 light(s)" in out and "all is well" in out
            light.stop()  # its last will: offline
            code, out = _status_lot(the_lot, tmp_path)
            assert code == 7 and "DOWN: sim-1" in out, out
        b.stop_hub()
        code, out = _status_lot(the_lot, tmp_path)
        assert code == 5 and "stage-b: set main hub down (hub offline)" in out, out
        c.link.cut()
        code, out = _status_lot(the_lot, tmp_path)
        assert code == 9 and "stage-c: UNREACHABLE since" in out, out
        c.link.restore()


def test_with_the_centre_down_a_stage_answers_its_own_and_send_at_the_centre_works_after(tmp_path):
    import contextlib
    import io

    from setbridge.cli import main

    with lot("stage-a") as the_lot:
        a = the_lot.stages["stage-a"]
        the_lot.centre.stop()  # the office is down: the stage goes on alone
        crew = a.user("crew")
        crew.subscribe("setbridge/set/main/response")
        request, _ = expiring("roll", "local-1", "stage-crew", 5.0)
        crew.publish("setbridge/set/main/request", request.to_bytes().decode())
        crew.wait_for(at("setbridge/set/main/response", b'"local-1","ok":true'), 10)
        the_lot.centre.start()
        # A contract v1 tool at the centre, its base topic set to the stage's: `setbridge send`.
        cfg = tmp_path / "office.toml"
        cfg.write_text(f'[hub]\nset = "main"\n[mqtt]\nhost = "127.0.0.1"\nport = {the_lot.centre.port}\n'
                       f'username = "office"\npassword = "{password("office")}"\nbase_topic = "setbridge/stage/stage-a"\n')
        wait_until(lambda: the_lot.centre.process is not None, 5, "the centre")
        out = io.StringIO()
        for _ in range(20):  # until the bridge is back (it retries every 1-3 s)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                code = main(["send", "cut", "--config", str(cfg), "--timeout", "1"])
            if code == 0:
                break
        assert code == 0 and "main: idle" in out.getvalue()
        assert a.hub.state == "idle"
