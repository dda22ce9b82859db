"""``setbridge offload report|hedge|list``: tell the hub a card is offloaded, forward Hedge script
events, and list the day's cards from the hub's journal.

``report`` and ``hedge`` go over MQTT and wait for the broker's acknowledgement and the hub's
answer. With ``--journal`` they write straight into the journal under ``[hub] state_dir``
instead: for scripts on the hub's own machine, and it works while the broker is down.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SetbridgeError
from ._common import add_config_arg, settings_from

if TYPE_CHECKING:
    import queue

    from ..config import Settings
    from ..offload.models import HedgeReport, OffloadEvent, OffloadReport
    from ..topics import Topics


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("offload", help="report offloaded cards, forward Hedge events, list today's cards")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    r = verbs.add_parser("report", help="report one card as offloaded (verified, warnings, failed, cancelled)")
    r.add_argument("--roll", help="card or roll name, e.g. A001R2EC")
    r.add_argument("--status", choices=["verified", "warnings", "failed", "cancelled"])
    r.add_argument("--files", type=int, help="number of files copied")
    r.add_argument("--bytes", type=int, help="bytes copied")
    r.add_argument("--camera", help="camera letter or name, e.g. A")
    r.add_argument("--media", choices=["camera", "sound", "other"])
    r.add_argument("--destination", action="append", default=[], metavar="PATH",
                   help="a copy verified by hash holding --files files and --bytes bytes (repeat per copy)")
    r.add_argument("--transfer-id", help="the offload tool's job or transfer id (reports with the same one are combined)")
    r.add_argument("--event-id", help="id that makes retries safe (default: a new one)")
    r.add_argument("--json-file", metavar="FILE", help="a JSON report (see docs/mqtt.md); '-' reads stdin; flags override it")
    _delivery_args(r)
    r.set_defaults(func=run_report)

    h = verbs.add_parser("hedge", help="forward a Hedge (OffShoot/FoolCat) script event")
    h.add_argument("payload", nargs="?", help="the event as JSON (default: read stdin)")
    h.add_argument("--event-id", help="id of the card's event when this event completes it (default: a new one)")
    _delivery_args(h)
    h.set_defaults(func=run_hedge)

    ls = verbs.add_parser("list", help="the day's cards and their status, from the hub's journal")
    ls.add_argument("--date", type=date.fromisoformat, help="YYYY-MM-DD (default: today)")
    ls.add_argument("--json", action="store_true", help="one JSON event per line")
    add_config_arg(ls)
    ls.set_defaults(func=run_list)


def _delivery_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--journal", action="store_true",
                   help="write into the hub's journal under [hub] state_dir instead of MQTT (same machine; works without a broker)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker and the hub (default 10)")
    add_config_arg(p)


def _read_json(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SetbridgeError(f"{where} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SetbridgeError(f"{where} must hold a JSON object")
    return data


def _report_data(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"v": 1}
    if args.json_file == "-":
        data.update(_read_json(sys.stdin.read(), "stdin"))
    elif args.json_file:
        try:
            text = Path(args.json_file).read_text()
        except OSError as exc:
            raise SetbridgeError(f"--json-file {args.json_file}: {exc.strerror}") from None
        data.update(_read_json(text, args.json_file))
    for key in ("roll", "status", "files", "bytes", "camera", "media", "event_id"):
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if args.destination:
        data["destinations"] = [{"path": d, "verified_by": "hash", **({"files": args.files} if args.files is not None else {}),
                                 **({"bytes": args.bytes} if args.bytes is not None else {})} for d in args.destination]
    if args.transfer_id:
        data["transfer"] = {**data.get("transfer", {}), "id": args.transfer_id}
    for key in ("roll", "status"):
        if key not in data:
            raise SetbridgeError(f"--{key} is required (or give it in --json-file)")
    data.setdefault("event_id", uuid.uuid4().hex)
    data.setdefault("source", "cli")
    return data


def run_report(args: argparse.Namespace) -> int:
    return _send(args, _report_data(args))


def run_hedge(args: argparse.Namespace) -> int:
    text = args.payload if args.payload is not None else sys.stdin.read()
    event = _read_json(text, "the Hedge payload")
    return _send(args, {"v": 1, "hedge": event, "event_id": args.event_id or uuid.uuid4().hex})


def _validate(data: dict[str, Any]) -> OffloadReport | HedgeReport:
    from ..errors import PayloadError
    from ..offload.models import parse_report

    try:
        return parse_report(json.dumps(data))
    except PayloadError as exc:
        raise SetbridgeError(f"report rejected: {exc}") from None


def _describe(event: OffloadEvent) -> str:
    copies = f"{event.copies.verified}/{event.copies.required} copies"
    wipe = "safe to wipe" if event.safe_to_wipe else "not safe to wipe: " + "; ".join(event.why_not_safe)
    return f"{event.roll}: {event.status}, {copies}, {wipe} (event {event.event_id})"


def _send(args: argparse.Namespace, data: dict[str, Any]) -> int:
    item = _validate(data)
    settings = settings_from(args)
    if args.journal:
        return _to_journal(settings, item)
    return _over_mqtt(settings, item, args.timeout)


def _to_journal(settings: Settings, item: OffloadReport | HedgeReport) -> int:
    from ..errors import PayloadError
    from ..offload.intake import accept
    from ..offload.journal import Journal

    from ..offload.journal import JournalError

    try:
        journal = Journal(settings.hub.state_dir, new_cards_per_day=settings.offload.cards_per_source_per_day)
    except JournalError as exc:
        raise SetbridgeError(f"{exc}; run this on the hub's machine as the hub's user, or drop --journal") from None
    try:
        outcome = accept(journal, item, settings.offload.copies_required, source="cli")
    except PayloadError as exc:
        raise SetbridgeError(f"report rejected: {exc}") from None
    except sqlite3.Error as exc:
        raise SetbridgeError(f"could not write the offload journal {journal.path} ({exc}); nothing was kept, "
                             "send it again") from None
    finally:
        journal.close()
    if outcome.kind == "event" and outcome.event is not None:
        print(f"journaled {_describe(outcome.event)}; the hub publishes it when the broker is reachable")
    elif outcome.kind == "duplicate":
        print(f"already accepted: event {item.event_id}")
    elif outcome.kind == "conflict":
        raise SetbridgeError(f"report refused: {outcome.note}")
    else:
        print(f"journaled: {outcome.note}")
    return 0


def _over_mqtt(settings: Settings, item: OffloadReport | HedgeReport, timeout: float) -> int:
    from .tool_client import collect, connect
    from ..offload.models import HedgeReport
    from ..topics import Topics

    topics = Topics(settings.mqtt.base_topic)
    try:
        bus = connect(settings, "offload", timeout=min(timeout, 5.0))
    except SetbridgeError as exc:
        raise SetbridgeError(f"{exc}; nothing was sent (on the hub's machine, --journal queues it)") from None
    try:
        answers = collect(bus, f"{settings.mqtt.base_topic}/offload/+")
        time.sleep(0.05)  # let the subscription reach the broker before sending
        info = bus.publish(topics.offload_report(), item.to_bytes())
        deadline = time.monotonic() + timeout
        while not info.is_published():
            if time.monotonic() > deadline or not bus.connected.is_set():
                raise SetbridgeError(f"the broker at {settings.mqtt.host}:{settings.mqtt.port} did not acknowledge the "
                                     f"report; send it again with --event-id {item.event_id} (a repeat is published once)")
            time.sleep(0.01)
        if isinstance(item, HedgeReport) and not _completes_card(item):
            print("sent; the hub publishes the card's event when the source disk is idle")
            return 0
        return _await_answer(answers, topics, item.event_id, deadline, timeout)
    finally:
        bus.stop()


def _completes_card(item: HedgeReport) -> bool:
    """Whether a Hedge event finishes a card (a source's DiskIdle), so the hub answers it."""
    from ..errors import PayloadError
    from ..offload import hedge

    try:
        return hedge.event_name(item.hedge) == hedge.IDLE_EVENT and hedge.parse_idle(item.hedge).is_source
    except PayloadError:
        return True  # the hub rejects it and says why


def _await_answer(answers: "queue.Queue[tuple[str, bytes]]", topics: Topics, event_id: str | None, deadline: float,
                  timeout: float) -> int:
    import queue

    from ..escape import terminal
    from ..codec import parse_payload
    from ..messages import OffloadError
    from ..offload.models import OffloadEvent

    while (left := deadline - time.monotonic()) > 0:
        try:
            topic, payload = answers.get(timeout=left)
        except queue.Empty:
            break
        try:
            if topic == topics.offload_event():
                event = parse_payload(OffloadEvent, payload)
                if event.event_id == event_id:
                    print(terminal(_describe(event)))  # from the bus: escaped
                    return 0
            elif topic == topics.offload_error():
                error = parse_payload(OffloadError, payload)
                if error.event_id == event_id:
                    if error.duplicate:
                        print(f"already accepted: event {event_id}")
                        return 0
                    print(terminal(f"setbridge: the hub rejected the report: {error.reason}"), file=sys.stderr)
                    return 1
        except SetbridgeError:
            continue
    print(f"setbridge: the broker took the report but no hub answered within {timeout:g} s; is `setbridge hub` "
          f"running? Send it again with --event-id {event_id} (a repeat is published once)", file=sys.stderr)
    return 2


def run_list(args: argparse.Namespace) -> int:
    from ..offload.journal import CorruptJournal, Journal, JournalError

    settings = settings_from(args)
    try:
        journal = Journal(settings.hub.state_dir, create=False)
        try:
            cards = journal.cards(args.date)
        finally:
            journal.close()
    except CorruptJournal as exc:
        raise SetbridgeError(f"{exc}; the hub moves it aside and starts a new one when it next starts") from None
    except JournalError as exc:
        if not (settings.hub.state_dir / "offload.sqlite3").exists():
            raise SetbridgeError(f"no offload journal in {settings.hub.state_dir}; run this on the hub's machine "
                                 "with the hub's --config") from None
        raise SetbridgeError(str(exc)) from None
    except sqlite3.OperationalError as exc:
        raise SetbridgeError(f"cannot read the offload journal in {settings.hub.state_dir} ({exc}); "
                             "try again in a moment") from None
    if args.json:
        from ..escape import json_text

        for event, _ in cards:
            print(json_text(event.model_dump_json(exclude_none=True)))  # from the bus: escaped, still JSON
        return 0
    day = args.date or date.today()
    if not cards:
        print(f"no cards on {day.isoformat()}")
        return 0
    print(f"{'seq':>6}  {'time':8}  {'roll':16} {'status':9} {'copies':6} {'files':>6} {'size':>9}  wipe  delivered  why not")
    for event, delivered in cards:
        when = datetime.fromtimestamp(event.ts).strftime("%H:%M:%S")
        files = "-" if event.files is None else str(event.files)
        size = "-" if event.bytes is None else _size(event.bytes)
        copies = f"{event.copies.verified}/{event.copies.required}"
        why = _escape(event.why_not_safe[0]) if event.why_not_safe else ""
        print(f"{event.seq:>6}  {when:8}  {_escape(event.roll):16} {event.status:9} {copies:6} {files:>6} {size:>9}  "
              f"{'yes' if event.safe_to_wipe else 'no':4}  {'yes' if delivered else 'pending':9}  {why}")
    return 0


def _escape(text: str) -> str:
    """Anything a sender wrote, safe for a terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
