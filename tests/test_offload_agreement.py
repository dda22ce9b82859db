"""One order for a card's history: after any sequence of reports (random, by hypothesis) the
retained cards, the events on ``offload/event``, ``offload list`` and ``offload list --json`` agree
— a real hub, a real Mosquitto and the real journal."""

from __future__ import annotations

import contextlib
import io
import json
import uuid

from helpers import Probe, make_settings, wait_online, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from offload_samples import hedge_copy_completed, hedge_disk_idle, hedge_disk_removed

from setbridge.cli import main as cli_main
from setbridge.hub import Hub

ROLLS = ["A001", "A002", "Untitled"]
MOUNTS = ["/Volumes/Untitled", "/Volumes/A002"]
DESTS = ["/raid", "/shuttle", "/lto"]

copies = st.lists(st.fixed_dictionaries({
    "path": st.sampled_from(DESTS),
    "state": st.sampled_from(["verified", "verified", "failed", "copied"]),
    "verified_by": st.sampled_from(["hash", "hash", "size"]),
    "files": st.sampled_from([10, 10, 9]),
    "bytes": st.sampled_from([1000, 1000, 999]),
}), max_size=3, unique_by=lambda d: d["path"])
reports = st.fixed_dictionaries({
    "roll": st.sampled_from(ROLLS),
    "status": st.sampled_from(["verified", "verified", "failed", "warnings", "cancelled"]),
    "files": st.just(10),
    "bytes": st.just(1000),
    "destinations": copies,
}, optional={
    "ts": st.floats(min_value=0, max_value=4e9, allow_nan=False),
    "transfer": st.sampled_from([{"id": "job-1"}, {"id": "job-2"}, {"source_id": "CF-9", "mount": "m1"}]),
})
operations = st.one_of(
    st.tuples(st.just("report"), reports, st.integers(0, 5)),  # the int picks an event_id: repeats happen
    st.tuples(st.just("copy"), st.sampled_from(MOUNTS), st.sampled_from(["A001", "A002", None]),
              st.sampled_from(DESTS), st.sampled_from(["Success", "Failed"])),
    st.tuples(st.just("idle"), st.sampled_from(MOUNTS)),
    st.tuples(st.just("removed"), st.sampled_from(MOUNTS)),
)


def run_list(config, *extra: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["offload", "list", "--config", str(config), *extra]) == 0
    return out.getvalue()


def test_retained_cards_events_and_lists_agree_after_any_sequence(broker, tmp_path):
    hub_settings = make_settings(broker, tmp_path / "state")
    config = write_config(tmp_path / "setbridge.toml", hub_settings)
    base = hub_settings.mqtt.base_topic
    hub = Hub(hub_settings)
    hub.start()
    assert hub.bus.wait_connected(5)
    wait_online(hub)
    events = Probe(broker.port, f"{base}/offload/#")
    sender = Probe(broker.port, f"{base}/offload/error")
    latest: dict[str, dict] = {}
    seqs: list[int] = []
    run = [0]

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
    @given(ops=st.lists(operations, min_size=1, max_size=12))
    def check(ops):
        run[0] += 1
        tag = f"x{run[0]}"
        for op in ops:
            if op[0] == "report":
                _, body, n = op
                sender.publish(f"{base}/offload/report", {"v": 1, **body, "event_id": f"{tag}-{n}"})
            elif op[0] == "copy":
                _, mount, label, dest, state = op
                event = hedge_copy_completed(mount, f"{dest}/{label or 'card'}", label=label, state=state)
                sender.publish(f"{base}/offload/report", {"v": 1, "hedge": event})
            elif op[0] == "idle":
                sender.publish(f"{base}/offload/report", {"v": 1, "hedge": hedge_disk_idle(op[1])})
            else:
                sender.publish(f"{base}/offload/report", {"v": 1, "hedge": hedge_disk_removed(op[1])})
        sentinel = f"{tag}-end"
        sender.publish(f"{base}/offload/report", {"v": 1, "roll": "SENTINEL", "status": "failed", "event_id": sentinel})
        for topic in ("event", "card/SENTINEL"):  # the card is stored by the broker before it is forwarded
            events.wait_for(lambda m, end=topic: m.topic.endswith(end) and m.data is not None and m.data["event_id"] == sentinel,
                            timeout=20)
        arrived = [msg.data for msg in list(events.seen) if msg.topic.endswith("/event") and msg.data["seq"] not in seqs]
        for event in sorted(arrived, key=lambda e: e["seq"]):
            seqs.append(event["seq"])
            assert event["safe_to_wipe"] is (event["why_not_safe"] == [])
            if event["roll"] not in latest or latest[event["roll"]]["seq"] < event["seq"]:
                latest[event["roll"]] = event
        assert seqs == sorted(seqs), "events arrive in the journal's order"

        cards = Probe(broker.port, f"{base}/offload/card/+")
        marker = f"{base}/offload/card/marker-{uuid.uuid4().hex[:8]}"
        cards.publish(marker, b"{}")
        cards.wait_for(lambda m: m.topic == marker)
        retained = {msg.topic.rsplit("/", 1)[1]: msg.data for msg in cards.seen if msg.retained}
        cards.close()
        assert retained == latest, "the retained cards are the latest events"

        listed = {e["roll"]: e for e in map(json.loads, run_list(config, "--json").splitlines())}
        assert listed == latest, "offload list --json is the latest events"
        header, *rows = run_list(config).splitlines()
        wipe = header.index("wipe")
        table = {r.split()[2]: (int(r.split()[0]), r.split()[3], r[wipe:wipe + 4].strip() == "yes") for r in rows}
        assert table == {roll: (e["seq"], e["status"], e["safe_to_wipe"]) for roll, e in latest.items()}

    try:
        check()
    finally:
        events.close()
        sender.close()
        hub.stop()
