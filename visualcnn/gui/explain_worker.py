"""One background runner for the explanation windows' long computations (issue 13 items 3
and 4): occlusion sensitivity, Grad-CAM / SmoothGrad, the sanity check and activation
maximisation run here, never on the GUI thread, so the window keeps drawing while they work.

A job is a plain function job(progress, cancel) -> result. It runs in its own QThread and
never touches a widget: it reports through `progress(done, total, value=None)` (throttled
here to PROGRESS_INTERVAL, the last one always delivered) and hands its result back by a
queued signal. `cancel` is a threading.Event the engine functions read between batches or
steps (explain/gradients.py: cancelled).

One job at a time per runner, in the order submitted; a job submitted under a key that is
already waiting replaces it, and one under the key that is running cancels the running one
(moving a slider recomputes the map: only the latest request matters). A cancelled job's
result is never delivered: the window shows no half map.

Every kernel in a job runs serially (engine.parallel.serial_inference): the Draw tab and a
training run may be using the parallel kernels at the same time, and one core is left for
the window.

Lifetime: a QThread destroyed while running aborts the process, so the threads are not
parented to any widget; the module keeps them alive until they end. stop(wait_ms) cancels
and waits (the main window calls it when it closes); a job that does not end in time keeps
running unseen and its result is dropped.
"""

from __future__ import annotations

import gc
import threading
import time
import traceback
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QThread, Signal

PROGRESS_INTERVAL = 0.05  # seconds: at most ~20 progress signals a second reach the window

_ALIVE: set = set()  # threads still running, owned here so no widget's end destroys one mid-run


@dataclass
class _Request:
    key: str
    job: object
    cancel: threading.Event = field(default_factory=threading.Event)


class _JobThread(QThread):
    """Runs one job; emits from its own thread, delivered queued in the GUI thread."""

    progressed = Signal(str, int, int, object)  # key, done, total, value
    succeeded = Signal(str, object)  # key, result
    failed = Signal(str, str)  # key, one-line message

    def __init__(self, request: _Request):
        super().__init__()
        self.request = request
        self._last = 0.0

    def _progress(self, done, total, value=None) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self.progressed.emit(self.request.key, int(done), int(total), value)

    def run(self) -> None:  # the worker thread
        from ..engine import parallel

        request = self.request
        try:
            with parallel.serial_inference():
                result = request.job(self._progress, request.cancel)
        except Exception as exc:  # noqa: BLE001 - any failure becomes one line in the window
            if not request.cancel.is_set():
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                traceback.print_exc()
                self.failed.emit(request.key, message)
            return
        if not request.cancel.is_set():
            self.succeeded.emit(request.key, result)


class ExplainRunner(QObject):
    """Runs explanation jobs in the background, one at a time (see the module text)."""

    progressed = Signal(str, int, int, object)  # key, done, total, value (None or the job's number)
    finished = Signal(str, object)  # key, result: only for jobs that ran to their end
    failed = Signal(str, str)  # key, message
    cancelled = Signal(str)  # key: a job was cancelled (running or waiting)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: _JobThread | None = None
        self._ending: set = set()  # cancelled jobs still running: the next waits for them (one model, one job)
        self._queue: list[_Request] = []
        self._stopped = False

    # --- control, from the GUI thread -------------------------------------------------

    def submit(self, key: str, job) -> None:
        """Queue job(progress, cancel) under key (replacing a waiting one, cancelling a running one)."""
        if self._stopped:
            return
        self._queue = [r for r in self._queue if r.key != key]
        self._queue.append(_Request(key, job))
        if self._thread is not None and self._thread.request.key == key:
            self._cancel_running()
        self._next()

    def cancel(self, key: str | None = None) -> None:
        """Cancel the jobs under key (None: all), running or waiting; none of them delivers a result."""
        dropped = [r for r in self._queue if key is None or r.key == key]
        self._queue = [r for r in self._queue if r not in dropped]
        for request in dropped:
            self.cancelled.emit(request.key)
        if self._thread is not None and (key is None or self._thread.request.key == key):
            self._cancel_running()
            self._next()

    def running_key(self) -> str | None:
        return None if self._thread is None else self._thread.request.key

    def has(self, key: str) -> bool:
        """A job under key is running or waiting."""
        return self.running_key() == key or any(r.key == key for r in self._queue)

    def is_busy(self) -> bool:
        return self._thread is not None or bool(self._queue)

    def stop(self, wait_ms: int = 3000) -> bool:
        """Cancel everything and wait up to wait_ms for the running job to end (the window is
        closing). True when no job is running any more."""
        self._stopped = True
        threads = list(self._ending) + ([self._thread] if self._thread is not None else [])
        self.cancel()
        deadline = time.monotonic() + wait_ms / 1000
        return all(t.wait(max(0, int((deadline - time.monotonic()) * 1000))) for t in threads)

    # --- internals ----------------------------------------------------------------------

    def _cancel_running(self) -> None:
        thread, self._thread = self._thread, None
        thread.request.cancel.set()
        self._ending.add(thread)
        for signal in (thread.progressed, thread.succeeded, thread.failed):
            signal.disconnect()  # a cancelled job's late progress or result never reaches the window
        self.cancelled.emit(thread.request.key)
        if not self._queue:
            self.busy_changed.emit(False)

    def _next(self) -> None:
        if self._thread is not None or self._ending or not self._queue or self._stopped:
            return
        request = self._queue.pop(0)
        thread = _JobThread(request)
        thread.progressed.connect(self.progressed)
        thread.succeeded.connect(self._on_succeeded)
        thread.failed.connect(self._on_failed)
        thread.finished.connect(self._on_thread_ended)  # queued: the runner lives in the GUI thread
        _ALIVE.add(thread)
        self._thread = thread
        # A full garbage collection triggered by the job's allocations would walk every Python
        # object of the window while holding the GIL (measured 110-220 ms here, in the worker
        # thread, the window frozen meanwhile); what is alive now outlives the job, so it is moved
        # out of the collector's way, as the Train tab does when a run starts.
        gc.freeze()
        self.busy_changed.emit(True)
        thread.start()

    def _on_succeeded(self, key: str, result) -> None:
        self._done_with(self.sender())
        self.finished.emit(key, result)

    def _on_failed(self, key: str, message: str) -> None:
        self._done_with(self.sender())
        self.failed.emit(key, message)

    def _done_with(self, thread) -> None:
        """The job has handed over its result: it no longer counts as running (has() is False when
        the window draws the result), though its thread is still ending; the next job waits for that."""
        if thread is not None and thread is self._thread:
            self._thread = None
            self._ending.add(thread)
            if not self._queue:
                self.busy_changed.emit(False)

    def _on_thread_ended(self) -> None:
        thread = self.sender()
        _ALIVE.discard(thread)
        self._ending.discard(thread)
        if thread is self._thread:
            self._thread = None
            if not self._queue:
                self.busy_changed.emit(False)
        thread.deleteLater()
        self._next()  # after a cancelled job has really ended: two jobs never share one model


def running_threads() -> int:
    """Job threads still running in this process (for tests and for a clean exit)."""
    return sum(1 for thread in list(_ALIVE) if thread.isRunning())


__all__ = ["ExplainRunner", "PROGRESS_INTERVAL", "running_threads"]
