"""Download and unpack a Vosk model: resumable (HTTP Range), checked, unpacked then renamed."""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from ..errors import ModelError
from .catalog import CATALOG

log = logging.getLogger(__name__)

CHUNK = 1 << 16
Progress = Callable[[int, int | None], None]
"""Called with (bytes so far, total bytes or None)."""


def stderr_progress(done: int, total: int | None) -> None:
    """A one-line progress bar on stderr."""
    if total:
        filled = int(30 * done / total)
        line = f"\r[{'#' * filled}{'.' * (30 - filled)}] {done / 1e6:7.1f} / {total / 1e6:.1f} MB"
    else:
        line = f"\r{done / 1e6:7.1f} MB"
    sys.stderr.write(line)
    sys.stderr.flush()


def download(url: str, part: Path, progress: Progress | None = None, timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``part``, resuming from its current size when the server allows it."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - URL from settings
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            return part
        raise ModelError(f"download of {url} failed: HTTP {exc.code}; check the model name and [speech] models_url") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ModelError(f"download of {url} failed ({getattr(exc, 'reason', exc)}); check the network "
                         "and run the same command again to resume") from None
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        with part.open("ab" if resumed else "wb") as out:
            done = have
            while True:
                try:
                    chunk = response.read(CHUNK)
                except OSError as exc:
                    raise ModelError(f"download of {url} broke off at {done} bytes ({exc}); "
                                     "run the same command again to resume") from None
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise ModelError(f"download of {url} ended early ({done} of {total} bytes); run the same command again to resume")
    return part


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpack(archive: Path, models: Path, name: str) -> Path:
    """Unpack into a temporary folder beside the target, then rename it into place."""
    target = models / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                resolved = (staging / member).resolve()
                if not resolved.is_relative_to(staging.resolve()):
                    raise ModelError(f"{archive.name}: unsafe path {member!r} in the archive; not installing it")
            zf.extractall(staging)
        entries = [p for p in staging.iterdir()]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        if not (root / "am").is_dir() and not (root / "final.mdl").is_file():
            raise ModelError(f"{archive.name} does not contain a Vosk model (no am/ folder)")
        root.rename(target)
    except zipfile.BadZipFile:
        raise ModelError(f"{archive.name} is not a valid zip; delete it and install again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def install(name: str, models: Path, base_url: str, sha256: str | None = None,
            progress: Progress | None = None) -> Path:
    """Install model ``name`` into ``models/name`` and return that directory."""
    models.mkdir(parents=True, exist_ok=True)
    target = models / name
    if target.is_dir():
        return target
    entry = CATALOG.get(name)
    expected = sha256 or (entry.sha256 if entry else None)
    part = models / f".{name}.zip.part"
    download(f"{base_url.rstrip('/')}/{name}.zip", part, progress)
    got = sha256_of(part)
    if expected and got != expected.lower():
        part.unlink()
        raise ModelError(f"{name}.zip has SHA-256 {got}, expected {expected}; the download was removed, try again")
    if not expected:
        log.warning("%s.zip has no pinned SHA-256; got %s", name, got)
    path = _unpack(part, models, name)
    part.unlink()
    return path
