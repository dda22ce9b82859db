"""The light firmware as a MicroPython package: ``firmware/package.json`` lists what a board needs,
carries the project's one version, and the tree that mip installs from it runs."""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path

from setbridge import __version__
from setbridge.sim.lights import FIRMWARE_DIR, SimLight
from setbridge.commands.provision import light_config

ROOT = FIRMWARE_DIR.parent.parent
PACKAGER = ROOT / "script" / "firmware_package.py"


def packager() -> dict:
    return runpy.run_path(str(PACKAGER))


def test_package_and_version_module_are_current() -> None:
    assert packager()["main"](["--check"]) == 0
    pkg = json.loads((ROOT / "firmware" / "package.json").read_text())
    assert pkg["version"] == __version__
    assert (FIRMWARE_DIR / "version.py").read_text().strip().endswith(f'VERSION = "{__version__}"')


def test_check_names_a_stale_file(tmp_path: Path, capsys) -> None:
    tree = tmp_path / "firmware"
    shutil.copytree(ROOT / "firmware", tree, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "lib" / "extra.py").write_text("X = 1\n")  # a new file the package does not list yet
    mod = packager()
    mod["main"].__globals__["FIRMWARE"] = tree
    assert mod["main"](["--check"]) == 1
    assert "firmware/package.json is not current" in capsys.readouterr().err
    assert mod["main"]([]) == 0 and mod["main"](["--check"]) == 0
    assert ["lib/extra.py", "lib/extra.py"] in json.loads((tree / "package.json").read_text())["urls"]


def mip_install(package_json: Path, board: Path) -> None:
    """Place each file as ``mpremote mip install --target= firmware/package.json`` does: at
    ``<target>/<destination>``, its source relative to package.json."""
    for dest, source in json.loads(package_json.read_text())["urls"]:
        assert not source.startswith(("http:", "https:", "github:")), "sources stay relative, for clones and forks"
        (board / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package_json.parent / source, board / dest)


def test_the_installed_tree_runs_a_light(hub, settings, tmp_path: Path) -> None:
    board = tmp_path / "board"
    mip_install(ROOT / "firmware" / "package.json", board)
    imported = {p.stem for p in board.rglob("*.py")}
    assert {"main", "boot", "app", "mqtt", "clock", "version"} <= imported
    shutil.copyfile(FIRMWARE_DIR / "board_unix.py", board / "board_unix.py")  # the Unix port stands in for the board
    light = SimLight("door-p", light_config(settings, "door-p"), tmp_path, main=board / "main.py").start()
    try:
        light.wait_showing("idle", timeout=15)
        hub.submit("roll", cause="test")
        light.wait_showing("rolling", timeout=5)
    finally:
        light.stop()
