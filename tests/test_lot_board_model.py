"""The lot board's judgement of each stage, fed messages as the central broker delivers them."""

from __future__ import annotations

import datetime as dt
import time

from setbridge.messages import Heartbeat, SetEvent, SetState
from setbridge.web.lot import LotBoard
from setbridge.web.takes import TakeLog


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def feed(board: LotBoard, stage: str, state: str, seq: int, ts: float) -> None:
    base = f"setbridge/stage/{stage}/set/main"
    board.handle(f"{base}/state", SetState(set="main", state=state, epoch=1, seq=seq, take=1, cause="button",
                                           ts=ts).to_bytes(), retained=True)
    board.handle(f"{base}/heartbeat", Heartbeat(epoch=1, seq=seq, state=state, ts=ts).to_bytes())


def event(kind: str, state: str, seq: int, ts: float, event_id: str) -> bytes:
    return SetEvent(event_id=event_id, type=kind, changed=True, state=state, cause="button", epoch=1, seq=seq,
                    take=1, ts=ts).to_bytes()


def test_a_stage_gone_quiet_is_unreachable_since_its_last_heartbeat_never_rolling():
    clock, wall = Clock(), Clock()
    wall.t = 1_795_000_000.0
    board = LotBoard("setbridge", link_timeout_s=2.5, clock=clock, wall=wall)
    board.broker(True)
    feed(board, "stage-a", "rolling", 5, wall.t)
    stage = board.snapshot()["stages"][0]
    assert stage["condition"] == "ok" and stage["sets"][0]["state"] == "rolling"
    heard_at = wall.t
    clock.t += 3.0
    wall.t += 3.0
    stage = board.snapshot()["stages"][0]
    assert stage["condition"] == "unreachable" and stage["since"] == heard_at
    assert stage["sets"][0]["state"] is None and stage["sets"][0]["showing"] == "link-lost"
    board.handle("setbridge/stage/stage-a/bridge", b"0")
    assert board.snapshot()["stages"][0]["bridge"] == "0"


def test_the_timeline_counts_a_redelivered_event_once_and_survives_a_restart(tmp_path):
    log = TakeLog(tmp_path / "takes.sqlite")
    board = LotBoard("setbridge", takes=log)
    board.broker(True)
    now = time.time()
    feed(board, "stage-a", "idle", 3, now)
    topic = "setbridge/stage/stage-a/set/main/event"
    for payload in (event("roll", "rolling", 2, now - 60, "e1"), event("roll", "rolling", 2, now - 60, "e1"),
                    event("cut", "idle", 3, now - 30, "e2")):
        board.handle(topic, payload)
    timeline = board.snapshot()["stages"][0]["sets"][0]["timeline"]
    assert [(t["take"], t["duration_s"]) for t in timeline] == [(1, 30.0)]
    again = LotBoard("setbridge", takes=log)  # the board restarted: the day is still there
    again.broker(True)
    feed(again, "stage-a", "idle", 3, now)
    assert [t["take"] for t in again.snapshot()["stages"][0]["sets"][0]["timeline"]] == [1]
    assert [t.set_id for t in log.takes(dt.date.fromtimestamp(now))] == ["stage-a/main"]
    log.close()
