"""Where state lands by default: under systemd's ``User=setbridge`` it is the service's
``StateDirectory`` (/var/lib/setbridge), where docs/deploy.md and deploy/install.sh look, never
the system user's ``~/.local/state``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import setbridge.config
from setbridge.config import default_state_dir


def test_the_service_state_directory_wins():
    environ = {"STATE_DIRECTORY": "/var/lib/setbridge:/var/lib/other"}
    assert default_state_dir(environ, 995, Path("/var/lib/setbridge")) == Path("/var/lib/setbridge")
    assert default_state_dir(environ, 0, Path("/root")) == Path("/var/lib/setbridge")


def test_the_user_that_owns_the_system_directory_uses_it(tmp_path):
    system = tmp_path / "var-lib-setbridge"
    system.mkdir()
    os.chown(system, 4242, 4242)
    assert default_state_dir({}, 4242, Path("/var/lib/setbridge"), system) == system  # runuser -u setbridge ...
    assert default_state_dir({}, 1000, Path("/home/dit"), system) == Path("/home/dit/.local/state/setbridge")
    assert default_state_dir({}, 0, Path("/root"), system) == system


def state_dir_as(uid: int, environ: dict[str, str]) -> str:
    """``[hub] state_dir`` as loaded by a process running as ``uid`` (forked, then no longer root)."""
    # Read while still root: the checkout may sit in a directory the user cannot enter (mktemp -d).
    source = compile(Path(setbridge.config.__file__).read_bytes(), setbridge.config.__file__, "exec")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become the user, load the settings as the hub would, report
        try:
            os.close(read)
            os.setgid(uid)
            os.setuid(uid)
            os.environ.clear()
            os.environ.update(environ)
            config = setbridge.config
            exec(source, config.__dict__)  # run the module again, as an import would: its defaults are made there
            os.write(write, str(config.load_settings(None).hub.state_dir).encode())
        except BaseException as exc:  # say why in the parent's assertion
            os.write(write, f"child failed: {exc!r}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        found = f.read()
    os.waitpid(pid, 0)
    return found


@pytest.mark.integration  # it forks a process that becomes another user
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_system_user_under_systemd_gets_the_state_directory(tmp_path):
    nobody = 65534
    assert state_dir_as(nobody, {"STATE_DIRECTORY": "/var/lib/setbridge", "HOME": "/var/lib/setbridge"}) == \
        "/var/lib/setbridge"
    assert state_dir_as(nobody, {"HOME": "/home/dit"}) == "/home/dit/.local/state/setbridge"
