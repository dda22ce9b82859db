"""The take log: rolls paired with cuts, redeliveries stored once, CSV safe for spreadsheets,
a corrupt file named; and the password hashes behind the web login."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import sys

import pytest

from setbridge.cli import main
from setbridge.errors import SetbridgeError
from setbridge.messages import SetEvent
from setbridge.web.passwords import hash_password, verify_password
from setbridge.web.takes import TakeLog, to_csv

DAY = dt.date(2026, 5, 1)
T0 = dt.datetime.combine(DAY, dt.time(9, 0)).timestamp()


def ev(i: int, type_: str, changed: bool, state: str, take: int, at: float, **detail) -> SetEvent:
    return SetEvent(event_id=f"e{i}", type=type_, changed=changed, state=state, epoch=1, seq=i, take=take, ts=at,
                    **{"cause": "request", **detail})


def test_takes_pair_rolls_with_cuts_and_say_what_triggered_them(tmp_path):
    log = TakeLog(tmp_path / "takes.sqlite")
    events = [
        ev(1, "roll", True, "rolling", 1, T0, cause="voice", phrase="roll sound", confidence=0.93),
        ev(2, "roll", False, "rolling", 1, T0 + 5, source="ipad"),  # a roll while rolling: same take
        ev(3, "cut", True, "idle", 1, T0 + 42.5, cause="voice", phrase="cut", confidence=0.81),
        ev(4, "roll", True, "rolling", 2, T0 + 100, cause="button"),
        ev(5, "cut", False, "rolling", 2, T0 + 110, source="web:ad"),  # post-roll running
        ev(6, "post-roll-end", True, "idle", 2, T0 + 112, source=None),
        ev(7, "roll", True, "rolling", 3, T0 + 200, source="script-sup"),
    ]
    for e in events:
        assert log.record("stage-a", e)
    assert not log.record("stage-a", events[0])  # redelivered by the broker: stored once
    takes = log.takes(DAY)
    assert [(t.take, t.duration_s) for t in takes] == [(1, 42.5), (2, 12.0), (3, None)]
    assert takes[0].roll.describe() == 'voice "roll sound" (0.93)'
    assert takes[0].cut.describe() == 'voice "cut" (0.81)'
    assert takes[1].roll.describe() == "button" and takes[1].cut.describe() == "request from web:ad"
    assert takes[1].cut.at == T0 + 110 and takes[1].ended_at == T0 + 112
    assert takes[2].cut is None
    assert log.takes(DAY + dt.timedelta(days=1)) == [] and log.takes(DAY, "other-set") == []


def test_a_take_rolling_past_midnight_belongs_to_its_day(tmp_path):
    log = TakeLog(tmp_path / "takes.sqlite")
    late = dt.datetime.combine(DAY, dt.time(23, 59, 50)).timestamp()
    log.record("a", ev(1, "roll", True, "rolling", 1, late))
    log.record("a", ev(2, "cut", True, "idle", 1, late + 30))
    assert [(t.take, t.duration_s) for t in log.takes(DAY)] == [(1, 30.0)]
    assert log.takes(DAY + dt.timedelta(days=1)) == []


def test_csv_has_every_take_and_defuses_formulas(tmp_path):
    log = TakeLog(tmp_path / "takes.sqlite")
    log.record("a", ev(1, "roll", True, "rolling", 1, T0, source="=HYPERLINK(\"http://x\")"))
    log.record("a", ev(2, "cut", True, "idle", 1, T0 + 3, source="+1"))
    rows = list(csv.DictReader(io.StringIO(to_csv(log.takes(DAY)))))
    assert len(rows) == 1
    assert rows[0]["roll_source"] == "'=HYPERLINK(\"http://x\")" and rows[0]["cut_source"] == "'+1"
    assert rows[0]["duration_s"] == "3.0" and rows[0]["take"] == "1"


def test_a_corrupt_or_missing_take_log_is_named(tmp_path):
    bad = tmp_path / "takes.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SetbridgeError, match="takes.sqlite is unreadable"):
        TakeLog(bad)
    with pytest.raises(SetbridgeError, match="no take log at"):
        TakeLog(tmp_path / "absent.sqlite", readonly=True)


def test_setbridge_takes_prints_the_day_and_csv(tmp_path, capsys):
    data = tmp_path / "web"
    log = TakeLog(data / "takes.sqlite")
    log.record("a", ev(1, "roll", True, "rolling", 7, T0, cause="voice", phrase="roll sound", confidence=0.9))
    log.record("a", ev(2, "cut", True, "idle", 7, T0 + 61))
    log.close()
    config = tmp_path / "c.toml"
    config.write_text(f'[web]\ndata_dir = "{data}"\n')
    args = ["takes", "--config", str(config), "--date", DAY.isoformat()]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "takes on 2026-05-01: 1" in out and "take   7" in out and 'voice "roll sound" (0.90)' in out
    assert "61.0 s" in out
    assert main(args + ["--csv"]) == 0
    csv_out = capsys.readouterr().out
    assert csv_out.splitlines()[0].startswith("set,take,rolled_at") and ",7," in csv_out.splitlines()[1]
    with pytest.raises(SystemExit):
        main(args[:-1] + ["yesterday"])
    assert "not a date like" in capsys.readouterr().err
    config.write_text(f'[web]\ndata_dir = "{tmp_path / "nowhere"}"\n')
    assert main(args) == 1
    assert "no take log at" in capsys.readouterr().err


def test_password_hashes_verify_and_never_hold_the_password():
    stored = hash_password("correct horse battery")
    assert "correct" not in stored and stored.startswith("scrypt$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterz", stored)
    assert hash_password("correct horse battery") != stored  # salted
    for broken in ("", "scrypt$1$2", "md5$x$y$z$a$b", stored[:-4] + "!!!!", "scrypt$16384$8$1$%%%$abc"):
        assert not verify_password("correct horse battery", broken)


@pytest.mark.integration
def test_web_passwd_prints_a_config_entry(tmp_path):
    out = subprocess.run([sys.executable, "-m", "setbridge", "web", "passwd", "ad", "--control", "--stdin"],
                         input="a long enough password\n", capture_output=True, text=True, check=True).stdout
    assert out.startswith("[web.users.ad]\npassword_hash = \"scrypt$") and "control = true" in out
    assert "a long enough password" not in out
    config = tmp_path / "c.toml"
    config.write_text("[web]\n" + out.replace("[web.users.ad]\n", "users.ad.").replace("\ncontrol", "\nusers.ad.control"))
    from setbridge.config import load_settings

    user = load_settings(config).web.users["ad"]
    assert user.control and verify_password("a long enough password", user.password_hash)
    short = subprocess.run([sys.executable, "-m", "setbridge", "web", "passwd", "ad", "--stdin"], input="short\n",
                           capture_output=True, text=True)
    assert short.returncode == 1 and "shorter than 8" in short.stderr
