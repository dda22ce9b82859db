"""The lot's generated bridge configuration: what crosses the bridge, and one-line refusals."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from broker_helpers import setbridge
from setbridge import contract, lot
from setbridge.cli import main


def fails(*args: str) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(args))
    assert code != 0
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_only_what_the_stage_writes_goes_out_and_only_requests_come_in_at_qos_0(tmp_path):
    setbridge("broker", "config", "--out", str(tmp_path), "--bridge", "127.0.0.1:1884",
              "--bridge-user", "stage-a", "--bridge-password", "pw")
    lines = (tmp_path / "setbridge.conf").read_text().splitlines()
    topics = [line.split() for line in lines if line.startswith("topic ")]
    assert [t[1:] for t in topics if t[2] == "in"] == [["set/+/request", "in", "0", "setbridge/lot/",
                                                         "setbridge/stage/stage-a/"]]
    assert not [t for t in topics if t[2] == "both"]
    out = {t[1] for t in topics if t[2] == "out"}
    for spec in contract.TOPICS:
        pattern = spec.filter("")[1:]
        # a stage user's private answers (an owned topic) stay on the stage
        stays = spec in (contract.SET_REQUEST, contract.LIGHT_CMD, contract.OFFLOAD_REPORT) or spec.owner
        assert (pattern in out) == (not stays), pattern
    assert all(t[5] == "setbridge/stage/stage-a/" for t in topics)
    # QoS 0 topics ride a connection of their own (else each holds the next roll behind Nagle).
    beats = lines.index("connection setbridge-lot-beats")
    main_topics = [line.split() for line in lines[:beats] if line.startswith("topic ")]
    beat_topics = [line.split() for line in lines[beats:] if line.startswith("topic ")]
    assert all(t[3] == "1" for t in main_topics if t[2] == "out")
    assert [t[1] for t in beat_topics] == ["set/+/heartbeat", "light/+/alive"] and all(t[3] == "0" for t in beat_topics)
    assert "remote_username stage-a-beats" in lines
    assert "bridge_protocol_version mqttv50" in lines and "cleansession false" in lines
    assert not any(line.startswith("local_cleansession") for line in lines)  # equal to cleansession
    assert "restart_timeout 1 3" in lines  # two values: 2.0.11 ignores one
    assert "notification_topic setbridge/stage/stage-a/bridge" in lines
    assert (tmp_path / "setbridge.conf").stat().st_mode & 0o007 == 0  # it holds the bridge's password


def test_a_bridge_over_the_network_needs_the_lots_ca(tmp_path):
    line = fails("broker", "config", "--out", str(tmp_path), "--bridge", "lot-office:8883",
                 "--bridge-user", "stage-a", "--bridge-password", "pw")
    assert "--bridge-ca" in line and "clear text" in line
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    setbridge("broker", "config", "--out", str(tmp_path), "--bridge", "lot-office:8883",
              "--bridge-user", "stage-a", "--bridge-password", "pw", "--bridge-ca", str(ca))
    text = (tmp_path / "setbridge.conf").read_text()
    assert f"bridge_cafile {ca}" in text and "bridge_insecure false" in text


@pytest.mark.parametrize("args, needle", [
    (("--bridge", "lot-office"), "HOST:PORT"),
    (("--bridge", "127.0.0.1:1884"), "--bridge-user"),
    (("--bridge-user", "stage-a"), "--bridge HOST:PORT"),
    (("--bridge", "127.0.0.1:1884", "--bridge-user", "Stage A", "--bridge-password", "pw"), "[a-z0-9]"),
    (("--central", "--bridge", "127.0.0.1:1884", "--bridge-user", "a", "--bridge-password", "pw"), "exclude"),
])
def test_a_wrong_bridge_is_one_line(tmp_path, args, needle):
    assert needle in fails("broker", "config", "--out", str(tmp_path), *args)


@pytest.mark.integration
def test_bridge_users_live_at_the_centre_and_name_their_stage(tmp_path):
    setbridge("broker", "config", "--out", str(tmp_path))
    assert "--stage" in fails("broker", "add-user", "stage-a", "--role", "bridge", "--dir", str(tmp_path))
    assert "central" in fails("broker", "add-user", "stage-a", "--role", "bridge", "--stage", "stage-a",
                              "--dir", str(tmp_path))
    setbridge("broker", "config", "--central", "--out", str(tmp_path))
    setbridge("broker", "add-user", "stage-a", "--role", "bridge", "--stage", "stage-a", "--password", "pw",
              "--dir", str(tmp_path))
    setbridge("broker", "add-user", "office", "--role", "integrator", "--password", "pw", "--dir", str(tmp_path))
    acl = (tmp_path / "setbridge.acl").read_text()
    assert "topic read setbridge/stage/stage-a/set/+/request" in acl
    assert "topic write setbridge/stage/stage-a/set/+/state" in acl
    assert re.search(r"^topic (read)?write setbridge/stage/\+/set/\+/request$", acl, re.M)  # the office asks any stage
    assert "light/+/cmd" not in acl  # nothing but requests crosses into a stage
    users = setbridge("broker", "users", "--dir", str(tmp_path))
    assert "stage-a  " in users and "stage-a-beats" in users and "bridge:stage-a" in users
    setbridge("broker", "remove-user", "stage-a", "--dir", str(tmp_path))
    assert "stage-a" not in setbridge("broker", "users", "--dir", str(tmp_path))


def test_a_central_client_names_its_answer_topic_under_the_stage():
    assert lot.answer_topic_allowed("setbridge", "main", "setbridge/stage/stage-a/set/main/response/office")
    for wanted in ("setbridge/stage/stage-a/set/other/response/office", "setbridge/stage/stage-a/set/main/response/",
                   "setbridge/stage/stage-a/set/main/response/+", "setbridge/stage/Stage A/set/main/response/x",
                   "setbridge/stage/stage-a/set/main/state", "elsewhere/stage/a/set/main/response/x"):
        assert not lot.answer_topic_allowed("setbridge", "main", wanted), wanted
