"""Write the light firmware's mip package (``firmware/package.json``) and its version module
(``firmware/light/version.py``) from the project's one version (``setbridge.__version__``) and the
files in ``firmware/light`` and ``firmware/lib``. ``--check`` only says whether they are current.

    .venv/bin/python script/firmware_package.py          # after a version bump or a new firmware file
    .venv/bin/python script/firmware_package.py --check  # exit 1, naming the stale file, if not current
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from setbridge import __version__

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
LEFT_OUT = {"config.example.json", "board_unix.py"}
"""Files in firmware/light that a board does not need: the example configuration (config.json is the
light's own) and the adapter for the MicroPython Unix port (simulated lights)."""


def package() -> dict[str, object]:
    """mip's package.json: each file's place on the board (``light/`` at the root, ``lib/`` in
    ``/lib``) and its source relative to this file, so a clone or a fork installs as it is."""
    urls = [[p.name, f"light/{p.name}"] for p in sorted((FIRMWARE / "light").iterdir())
            if p.suffix in (".py", ".json") and p.name not in LEFT_OUT]
    urls += [[f"lib/{p.name}", f"lib/{p.name}"] for p in sorted((FIRMWARE / "lib").glob("*.py"))]
    return {"urls": urls, "deps": [], "version": __version__}


def version_module() -> str:
    return (f'"""The firmware\'s version, written by script/firmware_package.py from setbridge\'s."""\n\n'
            f'VERSION = "{__version__}"\n')


def wanted() -> dict[Path, str]:
    pkg = package()
    urls = ",\n".join(f"    {json.dumps(u)}" for u in pkg["urls"])  # type: ignore[union-attr]
    text = f'{{\n  "urls": [\n{urls}\n  ],\n  "deps": [],\n  "version": {json.dumps(pkg["version"])}\n}}\n'
    return {FIRMWARE / "package.json": text,
            FIRMWARE / "light" / "version.py": version_module()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not current")
    args = parser.parse_args(argv)
    stale = [path for path, text in wanted().items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(FIRMWARE.parent)} is not current; run: python script/firmware_package.py",
                  file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted()[path])
        print(f"wrote {path.relative_to(FIRMWARE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
