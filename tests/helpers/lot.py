"""A studio lot on real brokers, from the generated configs: a central Mosquitto
(`broker config --central`), and stage Mosquittos (`broker config --bridge`) each bridged to it
through a :class:`~setbridge.sim.link.Link` that the tests cut, each with a hub."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from helpers import Probe
from helpers.broker import as_user, password, setbridge
from setbridge.config import Settings, load_settings
from setbridge.sim.broker import PrivateBroker, free_port
from setbridge.sim.link import Link
from setbridge.hub import Hub

BASE = "setbridge"


def _logged_in(users: list[Probe], port: int, name: str, v5: bool, where: str) -> Probe:
    """A probe logged in as ``name`` on the broker at ``port`` (``where``, for the message), kept in
    ``users`` to be closed with the lot."""
    u = as_user(port, name, v5=v5)
    assert u.accepted, f"{name} could not log in to {where}"
    users.append(u)
    return u


@dataclass
class Stage:
    name: str
    dir: Path
    broker: PrivateBroker
    link: Link
    settings: Settings
    hub: Hub | None = None
    users: list[Probe] = field(default_factory=list)

    def user(self, name: str = "crew", v5: bool = False) -> Probe:
        return _logged_in(self.users, self.broker.port, name, v5, f"stage {self.name}")

    def start_hub(self) -> Hub:
        self.hub = Hub(self.settings)
        self.hub.start()
        # subscribed too: a report or request sent at once must not reach the broker before them
        assert self.hub.bus.wait_connected(5) and self.hub.bus.wait_subscribed(5)
        return self.hub

    def stop_hub(self) -> None:
        if self.hub is not None:
            self.hub.stop()
            self.hub = None


@dataclass
class Lot:
    centre: PrivateBroker
    centre_dir: Path
    stages: dict[str, Stage]
    users: list[Probe] = field(default_factory=list)

    def user(self, name: str = "office", v5: bool = False) -> Probe:
        return _logged_in(self.users, self.centre.port, name, v5, "the centre")


def _dir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="setbridge-lot-"))
    d.chmod(0o755)  # the broker's own user must reach it
    return d


def _start(d: Path, port: int, edit: Callable[[str], str] | None = None) -> PrivateBroker:
    if edit:
        conf = d / "setbridge.conf"
        conf.write_text(edit(conf.read_text()))
    return PrivateBroker(port=port, workdir=d, config_file=d / "setbridge.conf").start()


@contextmanager
def lot(*names: str, hubs: bool = True, light_users: tuple[str, ...] = ("sim-1",),
        edit: Callable[[str], str] | None = None) -> Iterator[Lot]:
    """A centre and one stage per name (the stage's bridge user at the centre is its name)."""
    dirs: list[Path] = []
    with ExitStack() as stack:
        cd = _dir()
        dirs.append(cd)
        cport = free_port()
        setbridge("broker", "config", "--central", "--out", str(cd), "--port", str(cport))
        for user, role in (("office", "integrator"), ("wall", "monitor")):
            setbridge("broker", "add-user", user, "--role", role, "--password", password(user), "--dir", str(cd))
        for name in names:
            setbridge("broker", "add-user", name, "--role", "bridge", "--stage", name, "--password", password(name),
                      "--dir", str(cd))
        centre = _start(cd, cport)
        stack.callback(centre.stop)
        stages: dict[str, Stage] = {}
        for name in names:
            link = stack.enter_context(Link(cport))
            d = _dir()
            dirs.append(d)
            port = free_port()
            setbridge("broker", "config", "--out", str(d), "--port", str(port), "--bridge", f"127.0.0.1:{link.port}",
                      "--bridge-user", name, "--bridge-password", password(name))
            hub_user = f"hub-{name}"
            for user, role in ((hub_user, "hub"), ("crew", "integrator"), *((light, "light") for light in light_users)):
                setbridge("broker", "add-user", user, "--role", role, "--password", password(user), "--dir", str(d))
            broker = _start(d, port, edit)
            stack.callback(broker.stop)
            state = d / "state"
            state.mkdir()
            settings = load_settings(None, hub={"id": hub_user, "set": "main", "state_dir": str(state),
                                                "heartbeat_s": 0.2},
                                     mqtt={"host": "127.0.0.1", "port": port, "username": hub_user,
                                           "password": password(hub_user), "base_topic": BASE,
                                           "reconnect_max_s": 1})
            stage = Stage(name, d, broker, link, settings)
            stages[name] = stage
            if hubs:
                stage.start_hub()
            stack.callback(stage.stop_hub)
            stack.callback(lambda s=stage: [u.close() for u in s.users])
        the_lot = Lot(centre, cd, stages)
        stack.callback(lambda: [u.close() for u in the_lot.users])
        try:
            yield the_lot
        finally:
            pass
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def central(stage: str, below: str) -> str:
    """A stage's topic at the centre: ``central("stage-a", "set/main/state")``."""
    return f"{BASE}/stage/{stage}/{below}"


def state_of(user: Probe, topic: str) -> dict | None:
    """The latest JSON payload ``user`` has seen on ``topic``."""
    for m in reversed(user.seen):
        if m.topic == topic and m.payload:
            return m.data
    return None
