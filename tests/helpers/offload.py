"""Real ASC MHL folders for the offload tests, made with the ``ascmhl`` library (no CLI, no network)."""

from __future__ import annotations

import os
from pathlib import Path

import click


def make_card(root: Path, files: dict[str, bytes]) -> Path:
    """A card folder with ``files`` (relative path → content)."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


CARD = {"Clips/A001C001.mov": b"frame" * 200, "Clips/A001C002.mov": b"more frames" * 50, "A001.xml": b"<clip/>"}


def seal(root: Path, author: str | None = "Data Wrangler") -> int:
    """Write a new generation for ``root`` as ``ascmhl create`` does; returns the ascmhl exit code
    (0 ok, 10 missing files, 11 a hash did not verify) — the generation is written either way."""
    from ascmhl.commands import create_for_folder_subcommand

    try:
        create_for_folder_subcommand(str(root), False, False, ["xxh64"], False, author, None, None, "DIT",
                                     None, None, [], None)
    except click.ClickException as exc:
        return exc.exit_code
    return 0


def age(path: Path, seconds: float = 60) -> None:
    """Backdate the history's chain file, so a watcher treats it as settled at once."""
    chain = path / "ascmhl" / "ascmhl_chain.xml"
    st = chain.stat()
    os.utime(chain, (st.st_atime - seconds, st.st_mtime - seconds))
