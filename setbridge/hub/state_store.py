"""The hub's persistent counters: epoch, seq and the last set state, written atomically.

A file that cannot be trusted (corrupt, truncated, wrong types, negative numbers) is moved
aside with one log line, and the hub goes on from a *recovery* state whose epoch and seq are
taken from the wall clock: lights take any new epoch, and a clock-based seq lies above every
seq counted since (seq only falls if the hub changed state more than a thousand times a
second on average, or the clock went back).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..messages import MAX_SAFE_INTEGER

log = logging.getLogger(__name__)


class StoredState(BaseModel):
    """What survives a restart. Immutable: a change is a new object, saved before it is used."""

    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")
    epoch: int = Field(0, ge=0, le=MAX_SAFE_INTEGER)
    seq: int = Field(0, ge=0, le=MAX_SAFE_INTEGER)
    state: Literal["idle", "standby", "rolling"] = "idle"
    take: int = Field(0, ge=0, le=MAX_SAFE_INTEGER)


def recovery_state(clock: float | None = None) -> StoredState:
    """A fresh idle state whose epoch and seq lie above any counted before (from the clock)."""
    t = time.time() if clock is None else clock
    return StoredState(epoch=int(t), seq=int(t * 1000))


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the file"
        return f"{where}: {err['msg'].lower()}, got {json.dumps(err.get('input'), default=str)[:40]}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg} at byte {exc.pos})"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return str(exc)


class StateStore:
    """Reads and writes ``<state_dir>/set-<set>.json`` with write-to-temp, fsync and rename."""

    def __init__(self, state_dir: Path, set_id: str):
        self.path = Path(state_dir) / f"set-{set_id}.json"

    def load(self) -> StoredState:
        """The stored state; a fresh one if there is none; a recovery one if it is bad.

        Only a regular file is read: a symbolic link (even a dangling one), a directory or a FIFO
        (which would block the start for ever) is bad, as is a file this user may not read."""
        try:
            raw = self._read()
        except FileNotFoundError:
            return StoredState()
        except OSError as exc:
            return self._recover(exc)
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"not a JSON object but {type(data).__name__}")
            return StoredState.model_validate(data)
        except (ValueError, ValidationError) as exc:
            return self._recover(exc)

    def _read(self) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OSError(exc.errno, "it is a symbolic link, not the hub's own file") from None
            raise
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
                raise OSError(errno.EINVAL, f"it is {kind}, not a regular file")
            return fh.read()

    def _recover(self, exc: Exception) -> StoredState:
        aside = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            os.replace(self.path, aside)
            moved = f"moved it to {aside.name}"
        except OSError as move_exc:
            moved = f"could not move it aside ({move_exc.strerror})"
        fresh = recovery_state()
        log.error("state file %s is invalid (%s); %s; starting idle at epoch %d seq %d, above anything "
                  "published before", self.path, _reason(exc), moved, fresh.epoch, fresh.seq)
        return fresh

    def save(self, stored: StoredState) -> None:
        """Write ``stored`` durably; raises OSError (disk full, read-only) with nothing replaced."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".set-", suffix=".tmp")
        except FileNotFoundError:  # the directory is made on the first save (or again if removed)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".set-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(stored.model_dump_json().encode())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
