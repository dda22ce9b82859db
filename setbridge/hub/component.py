"""The component contract: what the hub starts and stops with itself, and what a component may use
of the hub.

Every component is built from one :class:`HubContext` (the bus, the topics, the settings; submit an
action, follow the set state and the hub's health, report its own health) and has ``start()`` and
``stop()``. :class:`Worker` is the base of a component with a thread of its own: events are posted
to it and handled in order; ``stop()`` may be called any number of times.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..messages import SetEvent, SetState
from .controller import Outcome

if TYPE_CHECKING:
    from ..bus import Bus
    from ..config import Settings
    from ..topics import Topics
    from .service import Hub

log = logging.getLogger(__name__)


class Component(Protocol):
    """Something the hub starts and stops with itself (offload relay, recorder, voice listener, GPIO panel,
    Home Assistant discovery, metrics). Each is built as ``Component(context)`` from one :class:`HubContext`;
    ``start()`` may raise (the hub then stops the ones already started and goes offline)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Health:
    """The hub's health as a component sees it."""

    broker: bool
    """Connected to the MQTT broker."""
    audio: str
    """The audio source: ``ok``, ``fault`` or ``off``."""
    timecode: str = "off"
    """The recorder source (timecode, record tally): ``ok``, ``fault`` or ``off``."""


@dataclass(frozen=True)
class HubContext:
    """What every component gets from the hub, the same for all (as Zigbee2MQTT's extensions get
    theirs from its controller). Listeners run on the hub's threads: they must not block."""

    bus: Bus
    """The hub's MQTT connection."""
    topics: Topics
    """The topic names under ``[mqtt] base_topic``."""
    settings: Settings
    """The whole configuration; a component reads its own section."""
    submit: Callable[..., Outcome]
    """``submit(action, cause, **detail)``: apply an action (thread-safe)."""
    state: Callable[[], str]
    """The set's state now (lock-free)."""
    snapshot: Callable[[], SetState]
    """The current set state."""
    on_state: Callable[[Callable[[SetState], None]], None]
    """Register a listener for every new set state."""
    publish_event: Callable[[SetEvent], None]
    """Publish a set event (one the controller did not make, such as an overruled trigger)."""
    health: Callable[[], Health]
    """The hub's health now."""
    on_health: Callable[[Callable[[Health], None]], None]
    """Register a listener for every change of health (broker lost or back, audio fault)."""
    set_audio_status: Callable[[str], None]
    """Report the audio source as ok / fault / off (republished in the hub status)."""
    set_offload_health: Callable[[str, str | None], None]
    """Report offload as ok / fault, with a one-line reason (republished in the hub status)."""
    set_timecode_health: Callable[[str, str | None, str | None], None]
    """Report the recorder source as ok / fault / off, why, and recording / stopped."""
    voice_enabled: Callable[[], bool]
    """Whether voice triggers are on."""
    set_voice_enabled: Callable[[bool], None]
    """Turn voice triggers on or off (republished in the hub status)."""
    hub: Hub
    """The hub itself, for a component that reports on all of it (metrics); the others use the fields above."""


_STOP = object()


class Worker:
    """A component with one thread of its own that handles posted events in order.

    Subclasses implement :meth:`_open` (runs in ``start()``), :meth:`_handle` (on the worker thread)
    and :meth:`_close` (in ``stop()``, after the thread has finished).
    """

    name = "worker"

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopped:
                return
            try:
                self._open()
            except BaseException:
                self._close()  # release what was acquired before the failure
                raise
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the events posted so far, stop the thread and close; later calls do nothing."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            thread, self._thread = self._thread, None
        if thread is None:
            return  # never started: nothing to close
        self._inbox.put(_STOP)
        thread.join(timeout=5)
        if thread.is_alive():
            log.warning("%s did not stop within 5 s", self.name)
        self._close()

    def post(self, event: object) -> None:
        """Hand ``event`` to the worker thread; ignored once stopped. Never blocks."""
        if not self._stopped:
            self._inbox.put(event)

    def _loop(self) -> None:
        while (event := self._inbox.get()) is not _STOP:
            try:
                self._handle(event)
            except Exception:
                log.exception("%s failed on %r", self.name, event)

    def _open(self) -> None:
        """Acquire what the component needs (before its thread starts)."""

    def _handle(self, event: object) -> None:
        """Handle one posted event (on the worker thread)."""

    def _close(self) -> None:
        """Release what :meth:`_open` acquired."""
