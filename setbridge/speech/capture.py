"""Keep short clips of the audio around every voice trigger and near miss, for a field check.

Opt-in with ``[speech] capture_dir``. Triggers the hub refused or overruled are kept too, as
such, so that a field check finds the calls the hub did not act on. Set audio is sensitive, so the folder is private to the
hub's user, bounded by ``capture_max_clips`` and ``capture_max_mb`` (oldest clips deleted
first), and nothing of it ever goes on the bus. The listener's thread only copies audio into
memory; a worker thread writes the files, so a slow or full disk never holds up listening::

    capture = ClipCapture(Path("/var/lib/setbridge/clips"), rate=48000)
    capture.start()
    capture.feed(block)                          # every block the detector hears
    capture.mark("trigger", "cut", "cut", at=12.4, phrase_end=12.1)
    capture.stop()                               # writes what is pending, ends the worker

Each clip is a mono WAV at the input's rate with a JSON sidecar of the same name: what was heard,
why a near miss was rejected, and ``phrase_end_s``, where the detector placed the end of the
phrase in the clip (the time a ``detect --labels`` line wants).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import wave
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BEFORE_S = 4.0
"""Audio kept before the moment the detector decided (the phrase and what led up to it)."""
AFTER_S = 1.0
"""Audio kept after it."""
QUEUE_CLIPS = 8
"""Clips waiting for the writer; beyond that a clip is dropped with a log line."""
NAME = re.compile(r"^\d{8}T\d{6}_\d{3}_(trigger|near-miss|refused|overruled)_[a-z-]+\.wav$")


@dataclass(frozen=True)
class _Clip:
    name: str
    rate: int
    pcm: bytes
    meta: dict[str, Any]


class ClipCapture:
    """See the module docstring. ``max_mb`` and ``max_clips`` bound the folder (WAVs and sidecars)."""

    def __init__(self, folder: Path, rate: int, max_clips: int = 200, max_mb: float = 200.0,
                 before_s: float = BEFORE_S, after_s: float = AFTER_S):
        self.folder = Path(folder)
        self.rate = rate
        self.max_clips = max_clips
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.before = int(before_s * rate)
        self.after = int(after_s * rate)
        self.dropped = 0
        self._blocks: deque[tuple[int, bytes]] = deque()  # (first sample, pcm)
        self._samples = 0
        self._pending: list[tuple[int, int, str, dict[str, Any]]] = []  # (first, end sample, name, meta)
        self._queue: queue.Queue[_Clip | None] = queue.Queue(maxsize=QUEUE_CLIPS)
        self._thread: threading.Thread | None = None
        self._warned = False
        self._last_stamp: datetime | None = None

    # -- the listener's side (memory only) --------------------------------------------------------
    def start(self) -> None:
        self._last_stamp = self._newest_stamp()  # a new capture (the source reopened) names after the last
        self._thread = threading.Thread(target=self._write_loop, name="voice-capture", daemon=True)
        self._thread.start()

    def feed(self, pcm: bytes) -> None:
        """Remember a block of 16-bit mono PCM at ``rate``; hand finished clips to the writer."""
        self._blocks.append((self._samples, pcm))
        self._samples += len(pcm) // 2
        keep_from = self._samples - self.before - self.after - 1
        for first, end, name, meta in [p for p in self._pending]:
            keep_from = min(keep_from, first)
            if end <= self._samples:
                self._pending.remove((first, end, name, meta))
                self._hand_over(_Clip(name, self.rate, self._slice(first, end), meta))
        while len(self._blocks) > 1 and self._blocks[1][0] <= keep_from:
            self._blocks.popleft()

    def mark(self, kind: str, action: str, phrase: str, at: float, phrase_end: float,
             reason: str = "", confidence: float | None = None) -> None:
        """A trigger decided at ``at`` s of audio: ``kind`` "trigger" (the hub acted on it), "refused"
        (the set state, voice off or the controller refused it), "overruled" (another source
        overruled it) or "near-miss" (a trigger word that did not fire); ``reason`` says why."""
        centre = int(at * self.rate)
        first = max(0, centre - self.before)
        now = datetime.now(timezone.utc)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_stamp is not None and now <= self._last_stamp:  # names unique and in order
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        name = f"{now:%Y%m%dT%H%M%S}_{now.microsecond // 1000:03d}_{kind}_{action}.wav"
        meta = {"v": 1, "kind": kind, "action": action, "phrase": phrase, "reason": reason,
                "confidence": confidence, "utc": now.isoformat(timespec="milliseconds"),
                "decided_s": round((centre - first) / self.rate, 3),
                "phrase_end_s": round(max(0.0, phrase_end - first / self.rate), 3)}
        self._pending.append((first, centre + self.after, name, meta))

    def stop(self) -> None:
        """Write what is still pending (with the audio there is) and end the writer."""
        for first, _end, name, meta in self._pending:
            self._hand_over(_Clip(name, self.rate, self._slice(first, self._samples), meta))
        self._pending.clear()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _slice(self, first: int, end: int) -> bytes:
        out = bytearray()
        for start, pcm in self._blocks:
            stop = start + len(pcm) // 2
            if stop <= first or start >= end:
                continue
            out += pcm[2 * max(0, first - start):2 * (min(end, stop) - start)]
        return bytes(out)

    def _hand_over(self, clip: _Clip) -> None:
        try:
            self._queue.put_nowait(clip)
        except queue.Full:
            self.dropped += 1
            log.warning("voice capture: the disk is behind, clip %s dropped (%d so far)", clip.name, self.dropped)

    # -- the writer thread ------------------------------------------------------------------------
    def _write_loop(self) -> None:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._prune()
        except OSError as exc:
            self._warn(f"cannot use {self.folder} ({exc})")
        while (clip := self._queue.get()) is not None:
            try:
                self._write(clip)
                self._prune()
            except OSError as exc:
                self._warn(f"cannot write {clip.name} to {self.folder} ({exc})")

    def _write(self, clip: _Clip) -> None:
        path = self.folder / clip.name
        tmp = path.with_suffix(".part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, wave.open(raw, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(clip.rate)
            w.writeframes(clip.pcm)
        sidecar = path.with_suffix(".json")
        fd = os.open(sidecar, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({**clip.meta, "file": clip.name}, f, ensure_ascii=False)
        os.replace(tmp, path)

    def _newest_stamp(self) -> datetime | None:
        try:
            names = sorted(p.name for p in self.folder.iterdir() if NAME.match(p.name))
        except OSError:
            return None
        if not names:
            return None
        return datetime.strptime(names[-1][:19], "%Y%m%dT%H%M%S_%f").replace(tzinfo=timezone.utc)

    def clips(self) -> list[Path]:
        """The capture's own clips in the folder, oldest first (other files are never touched)."""
        return sorted(p for p in self.folder.iterdir() if NAME.match(p.name))

    def _prune(self) -> None:
        clips = self.clips()
        sizes = {p: p.stat().st_size + _size(p.with_suffix(".json")) for p in clips}
        total = sum(sizes.values())
        while clips and (len(clips) > self.max_clips or total > self.max_bytes):
            oldest = clips.pop(0)
            total -= sizes[oldest]
            oldest.unlink(missing_ok=True)
            oldest.with_suffix(".json").unlink(missing_ok=True)

    def _warn(self, message: str) -> None:
        if not self._warned:  # once: a full disk would otherwise log at every clip
            log.warning("voice capture: %s; clips are not kept, voice triggers carry on", message)
            self._warned = True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
