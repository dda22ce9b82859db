"""Poll ``[offload] watch`` directories for new ASC MHL generations.

Every ``ascmhl/ascmhl_chain.xml`` below a watched directory is a history. Tools write the
manifest first and rewrite the chain file last (not atomically), so a history is read only once
its chain file has been unchanged for ``settle_s``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import PayloadError
from .mhl import CHAIN, FOLDER, MhlError, NotAFile, broken_history_report, check_regular, generation_reports
from .models import OffloadReport

log = logging.getLogger(__name__)

Signature = tuple[int, int]


def find_histories(top: Path) -> list[Path]:
    """Roots of all ASC MHL histories below ``top`` (folders holding ``ascmhl/ascmhl_chain.xml``)."""
    roots = []
    for dirpath, dirnames, filenames in os.walk(top, onerror=lambda e: log.debug("cannot list %s", e.filename)):
        if os.path.basename(dirpath) == FOLDER:
            if CHAIN in filenames:
                roots.append(Path(dirpath).parent)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    return roots


class MhlWatcher:
    """Calls ``on_report`` for every new generation (and for every broken history) it finds.

    ``is_known(event_id)`` lets it skip generations already journaled, so restarts relay nothing twice.
    """

    def __init__(self, roots: list[Path], on_report: Callable[[OffloadReport], object],
                 on_error: Callable[[str], None], is_known: Callable[[str], bool],
                 poll_s: float = 2.0, settle_s: float = 3.0, catch_up_h: float = 24.0):
        self.roots = [Path(r) for r in roots]
        self.on_report = on_report
        self.on_error = on_error
        self.is_known = is_known
        self.poll_s = poll_s
        self.settle_s = settle_s
        self.since = time.time() - catch_up_h * 3600
        self._done: dict[Path, Signature] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[Path] = set()
        self._skipped: dict[Path, str] = {}
        """Histories skipped for a file that is not a regular file, with the reason already given."""

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="offload-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception:
                log.exception("offload watcher scan failed; trying again in %g s", self.poll_s)
            self._stop.wait(self.poll_s)

    def scan(self) -> None:
        """One pass over every watched directory."""
        for top in self.roots:
            if not top.is_dir():
                if top not in self._warned:
                    log.warning("[offload] watch: %s is not a directory (yet); checking again every %g s", top, self.poll_s)
                    self._warned.add(top)
                continue
            self._warned.discard(top)
            for root in find_histories(top):
                self._check(root)

    def _check(self, root: Path) -> None:
        try:
            st = (root / FOLDER / CHAIN).stat()
        except OSError:
            return
        signature = (st.st_mtime_ns, st.st_size)
        if self._done.get(root) == signature or time.time() - st.st_mtime < self.settle_s:
            return
        try:
            check_regular(root)
        except NotAFile as exc:  # never opened: skipped, said once, and looked at again at every scan
            if self._skipped.get(root) != str(exc):
                self._skipped[root] = str(exc)
                self.on_error(str(exc))
            return
        self._skipped.pop(root, None)
        try:
            reports = generation_reports(root, since=self.since)
        except NotAFile:
            return  # became one since the check above: looked at again at the next scan
        except MhlError as exc:
            reason = f"ASC MHL history {root} is broken: {exc}"
            self._done[root] = signature
            self.on_error(reason)
            try:
                report = broken_history_report(root, reason, signature)
            except PayloadError as bad:
                self.on_error(str(bad))
                return
            if not self.is_known(report.event_id or ""):
                self.on_report(report)
            return
        except PayloadError as exc:
            self._done[root] = signature
            self.on_error(f"ASC MHL history {root} rejected: {exc}")
            return
        self._done[root] = signature
        for report in reports:
            if not self.is_known(report.event_id or ""):
                self.on_report(report)
