"""Standard Vosk models that ``setbridge model install`` knows by name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    size_mb: int
    """Approximate download size, as listed on the Vosk models page."""
    sha256: str | None
    """SHA-256 of the zip; ``None`` when not pinned (the installer then prints the hash it got)."""
    note: str


CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in (
        CatalogEntry("vosk-model-small-en-us-0.15", 40,
                     "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
                     "small US English, grammar-capable; the default, fine on a Pi"),
        CatalogEntry("vosk-model-en-us-0.22-lgraph", 128, None,
                     "larger US English with a runtime graph (grammar-capable), about 1 GB of RAM"),
    )
}
