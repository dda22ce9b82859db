"""The hub's persistent counters: epoch, seq and the last set state, written atomically."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class StoredState:
    epoch: int = 0
    seq: int = 0
    state: str = "idle"
    take: int = 0


class StateStore:
    """Reads and writes ``<state_dir>/set-<set>.json`` with write-to-temp, fsync and rename."""

    def __init__(self, state_dir: Path, set_id: str):
        self.path = Path(state_dir) / f"set-{set_id}.json"

    def load(self) -> StoredState:
        try:
            data = json.loads(self.path.read_text())
            return StoredState(**{k: data[k] for k in ("epoch", "seq", "state", "take") if k in data})
        except FileNotFoundError:
            return StoredState()
        except (ValueError, TypeError) as exc:
            # A torn or edited file must not stop the hub; seq restarts above anything published is
            # impossible to know, so keep going from a fresh state and say so loudly.
            log.error("%s is unreadable (%s); starting from a fresh state", self.path, exc)
            return StoredState()

    def save(self, stored: StoredState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".set-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(asdict(stored), fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
