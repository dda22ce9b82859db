"""The controller's own thread: actions are handed over, never run on the MQTT network thread.

Local actions (voice, GPIO buttons, the CLI in-process) wait for their outcome and always go
first; MQTT requests are offered to a bounded queue without waiting, and the caller answers
"busy" when it is full. Each pass takes everything local and up to ``batch_max`` requests and
hands them to ``run_batch`` at once, so one write to disk serves a whole burst.

>>> worker = ActionWorker(run_batch, capacity=2000); worker.start()
>>> worker.offer(request)          # False: full, answer busy
>>> worker.call(job)               # runs on the worker, returns run_batch's result for it
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger(__name__)

IDLE_WAKE_S = 0.25
"""How often an idle worker wakes up to show it is alive (for the watchdog)."""


class ActionWorker:
    """One thread running ``run_batch(items) -> results`` (one result per item, in order)."""

    def __init__(self, run_batch: Callable[[list[Any]], list[Any]], capacity: int, batch_max: int = 512,
                 name: str = "controller"):
        self._run_batch = run_batch
        self.capacity = capacity
        self.batch_max = batch_max
        self._local: deque[tuple[Any, Future[Any]]] = deque()
        self._requests: deque[Any] = deque()
        self._ready = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._name = name
        self.progress = time.monotonic()
        """When the worker last finished a pass or woke up idle (monotonic)."""
        self.taken = 0
        """Queued items run so far (counted once their batch is done, so a reader never sees one twice)."""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def queued(self) -> int:
        return len(self._requests)

    def start(self) -> None:
        self._stop = False
        self.progress = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued, then end the thread."""
        with self._ready:
            self._stop = True
            self._ready.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def offer(self, item: Any) -> bool:
        """Queue ``item`` without waiting; False when the queue is full (or the worker stopped)."""
        with self._ready:
            if self._stop or len(self._requests) >= self.capacity:
                return False
            self._requests.append(item)
            self._ready.notify()
        return True

    def call(self, item: Any) -> Any:
        """Run ``item`` ahead of queued requests and return its result (inline when not running)."""
        if not self.running or threading.current_thread() is self._thread:
            return self._run_batch([item])[0]
        future: Future[Any] = Future()
        with self._ready:
            self._local.append((item, future))
            self._ready.notify()
        return future.result()

    def stalled_for(self) -> float:
        """Seconds since the worker last showed progress (0 when it is not running)."""
        return time.monotonic() - self.progress if self.running else 0.0

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not (self._local or self._requests or self._stop):
                    self._ready.wait(IDLE_WAKE_S)
                    self.progress = time.monotonic()
                if self._stop and not (self._local or self._requests):
                    return
                local = list(self._local)
                self._local.clear()
                n = min(len(self._requests), self.batch_max)
                requests = [self._requests.popleft() for _ in range(n)]
            items = [item for item, _ in local] + requests
            try:
                results = self._run_batch(items)
            except BaseException as exc:  # never lose a waiting caller, never die silently
                log.exception("the controller failed on a batch of %d action(s)", len(items))
                for _, future in local:
                    future.set_exception(exc)
            else:
                for (_, future), result in zip(local, results):
                    future.set_result(result)
            self.taken += n
            self.progress = time.monotonic()
