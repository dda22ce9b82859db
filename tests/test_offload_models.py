"""Offload parsing and normalization: good reports, absurd values, and random payloads."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from setbridge.errors import PayloadError
from setbridge.offload import hedge
from setbridge.offload.journal import Journal
from setbridge.offload.models import (HedgeReport, OffloadEvent, OffloadReport, canonical, content_digest, normalize,
                                      parse_report)


def report(**fields) -> bytes:
    return json.dumps({"v": 1, "roll": "A001R2EC", "status": "verified", **fields}).encode()


def copy(path: str, files: int = 214, size: int = 5 * 10**11, **extra) -> dict:
    """A destination verified by hash with the given counts."""
    return {"path": path, "verified_by": "hash", "files": files, "bytes": size, **extra}


def test_report_normalizes_to_event():
    parsed = parse_report(report(files=214, bytes=5 * 10**11, camera="A",
                                 destinations=[copy("/mnt/raid/A001R2EC"), copy("/mnt/shuttle/A001R2EC")]))
    event = normalize(parsed, copies_required=2)
    assert event.v == 1 and event.event_id and event.ts > 0
    assert [d.state for d in event.destinations] == ["verified", "verified"]
    assert event.copies.verified == 2 and event.safe_to_wipe and event.why_not_safe == []


@pytest.mark.parametrize("change, why", [
    ({"status": "warnings"}, "status is warnings"),
    ({"roll": "NO NAME"}, "generic volume name 'NO NAME'"),
    ({"roll": "Untitled 2"}, "generic volume name"),
    ({"roll": "EOS_DIGITAL"}, "generic volume name"),
    ({"files": None}, "source's file count is not reported"),
    ({"bytes": None}, "source's size in bytes is not reported"),
    ({"destinations": [copy("/raid"), copy("/shuttle", files=213)]}, "copy /shuttle: it holds 213 files, the source 214"),
    ({"destinations": [copy("/raid"), copy("/shuttle", size=1)]}, "copy /shuttle: it holds 1 bytes, the source"),
    ({"destinations": [copy("/raid"), copy("/shuttle", verified_by="size")]}, "copy /shuttle: it was verified by file size only"),
    ({"destinations": [copy("/raid"), {"path": "/shuttle", "files": 214, "bytes": 5 * 10**11}]},
     "copy /shuttle: it does not say it was verified by hash"),
    ({"destinations": [copy("/raid"), copy("/shuttle", state="failed")]}, "copy /shuttle: it is failed"),
    ({"destinations": [copy("/raid")]}, "1 of 2 required copies are verified by hash"),
    ({"hash": {"formats": ["xxh64"], "verified": 213, "failed": 1}}, "1 files failed hash verification"),
])
def test_safe_to_wipe_says_which_copy_and_why_not(change, why):
    fields = {"files": 214, "bytes": 5 * 10**11, "destinations": [copy("/raid"), copy("/shuttle")], **change}
    event = normalize(parse_report(json.dumps({"v": 1, "roll": "A001R2EC", "status": "verified",
                                               **{k: v for k, v in fields.items() if v is not None}})), 2)
    assert not event.safe_to_wipe and any(why in reason for reason in event.why_not_safe), event.why_not_safe
    assert all("\n" not in reason for reason in event.why_not_safe)


@pytest.mark.parametrize("fields, expected", [
    ({"roll": "A001/../etc"}, "roll"),
    ({"roll": "A001\\x"}, "roll"),
    ({"roll": "A001\x07"}, "control"),
    ({"roll": "A\nB"}, "control"),
    ({"roll": "A+#"}, "roll"),
    ({"roll": ""}, "roll"),
    ({"roll": ".."}, "roll"),
    ({"bytes": -1}, "bytes"),
    ({"files": -5}, "files"),
    ({"files": 10**12}, "files"),
    ({"bytes": "lots"}, "bytes"),
    ({"status": "done"}, "status"),
    ({"destinations": [{"path": "/a\x00b"}]}, "destinations.0.path"),
    ({"hash": {"failed": -1}}, "hash.failed"),
    ({"colour": "green"}, "colour"),
])
def test_absurd_values_are_rejected_with_the_field(fields, expected):
    with pytest.raises(PayloadError) as err:
        parse_report(report(**fields))
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("raw, expected", [
    (b"not json", "not JSON"),
    (b"[1]", "JSON object"),
    (b'{"roll": "A001", "status": "verified"}', "version"),
    (b'{"v": 2, "roll": "A001", "status": "verified"}', "version"),
    (b'{"v": 1}', "status"),
    (json.dumps({"v": 1, "roll": "A", "status": "verified", "pad": "x" * 70000}).encode(), "limit"),
])
def test_malformed_payloads(raw, expected):
    with pytest.raises(PayloadError, match=expected):
        parse_report(raw)


def test_failed_copy_or_hash_is_never_safe_to_wipe():
    two = [{"path": "/a"}, {"path": "/b", "state": "failed"}]
    assert not normalize(parse_report(report(destinations=two)), 1).safe_to_wipe
    hashes = {"formats": ["xxh64"], "verified": 3, "failed": 1}
    assert not normalize(parse_report(report(destinations=[{"path": "/a"}], hash=hashes)), 1).safe_to_wipe
    assert not normalize(parse_report(report(status="warnings", destinations=[{"path": "/a"}])), 1).safe_to_wipe


def test_copies_of_one_card_are_combined_unless_the_root_hash_differs(tmp_path):
    journal = Journal(tmp_path)
    counts = {"files": 214, "bytes": 5 * 10**11}
    first, _ = journal.append(parse_report(report(destinations=[copy("/raid")], hash={"root": "xxh64:aa"}, **counts)), 2)
    assert first.copies.verified == 1 and not first.safe_to_wipe
    second, _ = journal.append(parse_report(report(destinations=[copy("/shuttle")], hash={"root": "xxh64:aa"}, **counts)), 2)
    assert second.copies.verified == 2 and second.safe_to_wipe and second.seq == first.seq + 1
    other, _ = journal.append(parse_report(report(destinations=[copy("/x")], hash={"root": "xxh64:bb"}, **counts)), 2)
    assert other.copies.verified == 1, "a different card with the same name starts afresh"


def test_reports_without_a_transfer_identity_never_lend_copies(tmp_path):
    """Issue case 2: two cards both called NO NAME, no source info: no merge, never safe."""
    journal = Journal(tmp_path)
    counts = {"files": 214, "bytes": 5 * 10**11}
    journal.append(parse_report(report(roll="NO NAME", destinations=[copy("/raid/1"), copy("/shuttle/1")], **counts)), 2)
    second, _ = journal.append(parse_report(report(roll="NO NAME", destinations=[copy("/raid/2")], **counts)), 2)
    assert second.copies.verified == 1 and [d.path for d in second.destinations] == ["/raid/2"]
    assert not second.safe_to_wipe and "generic volume name 'NO NAME'" in second.why_not_safe[0]
    a, _ = journal.append(parse_report(report(roll="A007", destinations=[copy("/raid")], **counts)), 2)
    b, _ = journal.append(parse_report(report(roll="A007", destinations=[copy("/shuttle")], **counts)), 2)
    assert b.copies.verified == 1, "the same name is no identity"
    job = {"id": "job-17"}
    journal.append(parse_report(report(roll="A008", destinations=[copy("/raid")], transfer=job, **counts)), 2)
    both, _ = journal.append(parse_report(report(roll="A008", destinations=[copy("/shuttle")], transfer=job, **counts)), 2)
    assert both.copies.verified == 2 and both.safe_to_wipe and both.transfer_key == "job::job-17"
    card = {"source_id": "9F3C-11AA", "mount": "20260501120000"}
    journal.append(parse_report(report(roll="A009", destinations=[copy("/raid")], transfer=card, **counts)), 2)
    later = {**card, "mount": "20260501150000"}  # the same card mounted again: a new transfer
    again, _ = journal.append(parse_report(report(roll="A009", destinations=[copy("/shuttle")], transfer=later, **counts)), 2)
    assert again.copies.verified == 1


def test_duplicate_event_id_is_stored_once(tmp_path):
    journal = Journal(tmp_path)
    parsed = parse_report(report(event_id="card-1"))
    assert journal.append(parsed, 2)[1] is True
    assert journal.append(parsed, 2)[1] is False
    assert [e.event_id for _, e in journal.pending()] == ["card-1"]


def test_hedge_copy_mapping():
    done = hedge.parse_copy({"event": "FileCopyCompleted", "sourcePath": "/Volumes/A001/", "destinationPath": "/RAID/A001",
                             "bytesCopied": "1024", "duration": 12.5, "startedAt": "20240501174500",
                             "verified": "YES", "state": "Success"})
    assert done.source == "/Volumes/A001" and done.state == "verified" and done.bytes == 1024 and done.started_at
    assert done.verified_by is None, "no verification mode given: not known to be verified by hash"
    unverified = hedge.parse_copy({"event": "FileCopyCompleted", "sourcePath": "/V/A", "destinationPath": "/d",
                                   "verified": "NO", "state": "Success"})
    assert unverified.state == "copied"
    with pytest.raises(PayloadError, match="state"):
        hedge.parse_copy({"sourcePath": "/V/A", "destinationPath": "/d", "state": "Exploded"})
    with pytest.raises(PayloadError, match="bytesCopied"):
        hedge.parse_copy({"sourcePath": "/V/A", "destinationPath": "/d", "state": "Failed", "bytesCopied": -3})


# -- property: random payloads ------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
field_values = {
    "v": st.sampled_from([1, 1, 1, 2, "1", None]),
    "roll": st.text(max_size=70) | st.sampled_from(["A001R2EC", "SR001", "a/b", "x#", ".."]),
    "status": st.sampled_from(["verified", "warnings", "failed", "cancelled", "done", ""]) | json_values,
    "files": st.integers(min_value=-10, max_value=10**13) | json_values,
    "bytes": st.integers(min_value=-(10**3), max_value=10**18) | json_values,
    "camera": st.text(max_size=20) | json_values,
    "destinations": st.lists(st.fixed_dictionaries({"path": st.text(max_size=30)},
                                                   optional={"state": st.text(max_size=10) | st.just("verified")}),
                             max_size=3) | json_values,
    "hash": st.fixed_dictionaries({}, optional={"verified": st.integers(-2, 5), "failed": st.integers(-2, 5),
                                                "formats": st.lists(st.text(max_size=8), max_size=3)}) | json_values,
    "event_id": st.text(max_size=40) | json_values,
    "hedge": st.fixed_dictionaries({"event": st.sampled_from(["FileCopyCompleted", "DiskIdle", "Nope"])},
                                   optional={"sourcePath": json_values, "destinationPath": json_values,
                                             "state": st.sampled_from(["Success", "Failed", "x"]) | json_values,
                                             "bytesCopied": json_values, "verified": json_values}),
}
payload_dicts = st.fixed_dictionaries({}, optional=field_values)
raw_payloads = (payload_dicts.map(lambda d: json.dumps(d).encode())
                | json_values.map(lambda d: json.dumps(d).encode())
                | st.binary(max_size=200))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=raw_payloads)
def test_random_payloads_give_events_or_payload_errors(raw):
    try:
        item = parse_report(raw)
    except PayloadError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(item, (OffloadReport, HedgeReport))
    if isinstance(item, OffloadReport):
        event = normalize(item, copies_required=2)
        assert OffloadEvent.model_validate_json(event.to_bytes()) == event
        assert "/" not in event.roll and "#" not in event.roll
        assert event.files is None or event.files >= 0
        assert event.bytes is None or event.bytes >= 0
        return
    try:
        name = hedge.event_name(item.hedge)
        parsed = hedge.parse_copy(item.hedge) if name == hedge.COPY_EVENT else hedge.parse_idle(item.hedge)
    except PayloadError as exc:
        assert "\n" not in str(exc)
        return
    if isinstance(parsed, hedge.HedgeCopy):
        try:
            combined = hedge.combine([parsed.as_dict()], hedge.HedgeIdle(parsed.source, True, False), None)
        except PayloadError:
            return
        normalize(combined, copies_required=2)


def test_prune_keeps_pending_events_and_each_cards_latest(tmp_path):
    journal = Journal(tmp_path)
    for n, roll in enumerate(["A001", "A001", "A002"]):
        journal.append(parse_report(report(roll=roll, event_id=f"p{n}")), 2)
    for seq, _ in journal.pending()[:2]:
        journal.mark_delivered(seq)
    assert journal.prune(keep_days=-1) == 1
    assert [e.event_id for e, _ in journal.cards()] == ["p1", "p2"]
    assert [e.event_id for _, e in journal.pending()] == ["p2"]


def test_the_canonical_form_tells_a_retry_from_other_content():
    base = {"v": 1, "event_id": "x", "roll": "A001", "status": "verified", "files": 3, "bytes": 30,
            "destinations": [{"path": "/raid", "verified_by": "hash", "duration_s": 5}]}
    same = [
        {**base, "ts": 1795399600.0, "source": "cli"},  # informative, or filled in by the hub
        {**base, "camera": None, "hash": None},  # null is absent
        {**base, "destinations": [{"state": "verified", "duration_s": 5.0, "verified_by": "hash", "path": "/raid"}]},
        dict(reversed(list(base.items()))),  # key order
    ]
    other = [
        {**base, "status": "failed"},
        {**base, "roll": "A002"},
        {**base, "files": 4},
        {**base, "destinations": [{"path": "/raid", "verified_by": "size", "duration_s": 5}]},
        {**base, "destinations": [{"path": "/raid", "state": "copied", "verified_by": "hash", "duration_s": 5}]},
    ]
    first = content_digest(parse_report(json.dumps(base)))
    assert all(content_digest(parse_report(json.dumps(d))) == first for d in same)
    assert all(content_digest(parse_report(json.dumps(d))) != first for d in other)
    hedge_a = parse_report(json.dumps({"v": 1, "event_id": "h", "hedge": {"event": "DiskIdle", "sourcePath": "/V"}}))
    hedge_b = parse_report(json.dumps({"v": 1, "hedge": {"sourcePath": "/V", "event": "DiskIdle"}}))
    assert canonical(hedge_a) == canonical(hedge_b)


def test_a_journal_from_before_digests_compares_roll_and_status(tmp_path):
    import sqlite3

    from setbridge.offload.journal import EventIdConflict
    journal = Journal(tmp_path)
    journal.append(parse_report(json.dumps({"v": 1, "event_id": "old", "roll": "A001", "status": "verified"})), 2)
    db = sqlite3.connect(tmp_path / "offload.sqlite3")
    db.execute("UPDATE events SET digest = NULL")
    db.commit()
    db.close()
    event, new = journal.append(parse_report(json.dumps({"v": 1, "event_id": "old", "roll": "A001",
                                                         "status": "verified", "files": 9})), 2)
    assert not new and event.event_id == "old"  # the same roll and status: taken as a retry
    with pytest.raises(EventIdConflict):
        journal.append(parse_report(json.dumps({"v": 1, "event_id": "old", "roll": "A001", "status": "failed"})), 2)
    journal.close()


def test_the_safe_to_wipe_rule_has_one_home_and_names_every_reason():
    """``offload/policy.py`` alone decides: hash-verified copies holding the source's files and bytes,
    enough of them, a known card, and no conflict."""
    from setbridge.offload.models import Destination
    from setbridge.offload.policy import assess, generic_name

    def dest(path: str, **kw: object) -> Destination:
        return Destination(**{"path": path, "state": "verified", "verified_by": "hash", "files": 3, "bytes": 10, **kw})

    two = [dest("/raid"), dest("/shuttle")]
    assert assess("verified", "A001", 3, 10, None, two, 2, []) == (2, [])
    assert assess("verified", "A001", 3, 10, None, two, 2, ["the reports disagree"]) == (2, ["the reports disagree"])
    good, why = assess("verified", "A001", 3, 10, None, [dest("/raid"), dest("/shuttle", verified_by="size")], 2, [])
    assert good == 1 and why == ["copy /shuttle: it was verified by file size only",
                                 "1 of 2 required copies are verified by hash"]
    assert assess("verified", "A001", None, 10, None, two, 2, [])[1][0] == "the source's file count is not reported"
    assert "generic volume name" in assess("verified", "ＮＯ ＮＡＭＥ", 3, 10, None, two, 2, [])[1][0]
    assert generic_name("NIKON D850") and generic_name("Untitled 2") and not generic_name("A002R2EC")


def test_the_hedge_tracker_turns_events_into_reports_without_a_journal():
    """Events in, reports out: held copies live in a plain dict here, as the journal stores them."""
    from setbridge.offload.hedge_tracker import track

    store: dict[str, list[dict]] = {}

    def feed(event: dict, event_id: str | None = None):
        step = track(event, event_id, lambda path: list(store.get(path, [])))
        if step.path is not None:
            store[step.path] = [*(store.get(step.path, []) if step.keep is None else step.keep), *step.add]
        return step

    def copy(card: str, dest: str) -> dict:
        return {"event": "FileCopyCompleted", "sourcePath": "/Volumes/CARD", "destinationPath": dest, "state": "Success",
                "verificationMode": "Source & Destination", "sourceInfo": {"Source Name": card},
                "filesCopied": 3, "bytesCopied": 10, "sourceFileCount": 3, "totalSize": 10}

    assert feed(copy("A001", "/raid")).kind == "held"
    pulled = feed(copy("A002", "/raid"))  # another card at the same mount path: A001 never finished
    assert [(r.roll, r.status, r.errors[0].kind) for r in pulled.incomplete] == [("A001", "cancelled", "incomplete")]
    feed(copy("A002", "/shuttle"))
    done = feed({"event": "DiskIdle", "sourcePath": "/Volumes/CARD", "diskType": "Source"}, "card-a002")
    assert done.kind == "idle" and not done.incomplete and store["/Volumes/CARD"] == []
    assert done.report is not None and (done.report.roll, done.report.status, done.report.event_id) == (
        "A002", "verified", "card-a002")
    assert [d.path for d in done.report.destinations] == ["/raid", "/shuttle"]
    assert feed({"event": "DiskIdle", "sourcePath": "/Volumes/RAID", "diskType": "Destination"}).kind == "ignored"
    with pytest.raises(PayloadError, match="no FileCopyCompleted"):
        feed({"event": "DiskIdle", "sourcePath": "/Volumes/CARD", "diskType": "Source"})
