"""Run the engine's training generator in a QThread (superqt / Orange pattern).

The worker is a QObject moved to a QThread. It pulls one report at a time from
`engine.training.train`, so pause, stop and a new learning rate take effect exactly
between batches. Control flags are plain thread-safe objects, not queued slots: the
worker thread is busy in the loop and would not process queued calls until it ends.

Everything the worker emits is a copy (reports are frozen dataclasses of numbers;
weights and feature maps are copied in the worker thread between two steps), so no
panel ever reads the engine's live arrays while a step is writing them.

Lifetime: when its loop ends the worker drops the request (the model and its
buffers, hundreds of MB at a big batch), moves itself back to the GUI thread and only
then emits `finished`; the controller quits and waits for the thread and drops both.
A QObject left in a thread that has stopped can never be deleted (deleteLater needs
its thread's event loop): that was a whole model leaked per run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from ..engine.benchmark import layer_costs
from ..engine.recipe import set_learning_rate
from ..engine.training import EpochReport, StepReport, TrainingDiverged, train

def return_freed_memory() -> None:
    """Give the memory freed by a finished run back to the system (glibc only).

    A run's buffers are freed when its model goes, but glibc keeps large freed blocks in
    its heap for reuse: without this the process's size creeps up by tens of MB over the
    first runs, which a teacher watching the system monitor takes for a leak."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


PROGRESS_INTERVAL = 0.05  # seconds: at most ~20 progress signals a second
SNAPSHOT_INTERVAL = 0.4  # seconds between weight / feature-map snapshots


@dataclass(frozen=True)
class TrainingRequest:
    """Everything one run needs. `model` is a fresh compiled engine model the worker owns.

    `run` is the engine's prepared run (engine.recipe.prepare_run(...).run), which the
    window uses; without it the worker starts engine.training.train on x_train / y_train."""

    model: object
    x_train: np.ndarray | None  # (N, 28, 28, 1) float32 in [0, 1]
    y_train: np.ndarray | None  # (N,) int labels
    x_test: np.ndarray
    y_test: np.ndarray  # (N,) int labels, for the test results
    batch_size: int = 64
    epochs: int = 1
    validation_split: float = 0.0
    seed: int = 0
    probe: np.ndarray | None = None  # (28, 28) image whose feature maps are shown live
    run: object | None = None  # an engine TrainingRun generator, already set up
    moments: object | None = None  # engine.time_machine.SnapshotPlan: steps snapshotted for the time machine


@dataclass(frozen=True)
class TrainingSnapshot:
    """The state of the weights after `step` batches, copied for the panels."""

    step: int
    epoch: int
    batch: int
    weights: dict  # layer name -> list of arrays (Keras order), copies
    probe: np.ndarray | None
    activations: dict | None  # layer name -> (H, W, C) copy of the probe's feature maps


@dataclass(frozen=True)
class LayerTimings:
    """Each layer's measured forward and backward milliseconds for one batch, taken when a
    run ended (engine.benchmark.layer_costs, the figures `visualcnn bench` prints)."""

    batch_size: int
    layers: dict  # layer name -> (forward ms, backward ms)
    backward_in: dict = field(default_factory=dict)  # layer name -> the layer whose backward did its own
    forward_in: dict = field(default_factory=dict)  # the same for the forward


TIMING_STEPS = 3  # timed batches after the run (median); one warm-up batch before them


@dataclass(frozen=True)
class TestResults:
    loss: float
    accuracy: float
    probabilities: np.ndarray  # (N, 10)
    labels: np.ndarray  # (N,)


class TrainingWorker(QObject):
    progressed = Signal(object)  # StepReport, throttled
    epoch_finished = Signal(object)  # EpochReport
    snapshot_taken = Signal(object)  # TrainingSnapshot
    evaluated = Signal(object)  # TestResults, after a run that was not stopped
    layers_timed = Signal(object)  # LayerTimings, after a run that ended without an error
    errored = Signal(str)  # a message for the user (divergence, bad input, anything else)
    learning_rate_refused = Signal(str)  # the optimizer rejected a new learning rate (the run goes on)
    paused = Signal()  # the loop is now blocked between two batches
    resumed = Signal()  # the loop runs again after a pause
    finished = Signal(bool)  # always emitted last; True when every epoch ran

    def __init__(self, request: TrainingRequest):
        super().__init__()
        self._request = request
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._pending_learning_rate: float | None = None
        self._probe = request.probe
        self._probe_changed = True
        self._step = 0

    # --- control, called from the GUI thread ---------------------------------------

    def request_stop(self) -> None:
        self._stop.set()
        self._resume.set()  # wake a paused loop so it can see the stop

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    @property
    def is_paused(self) -> bool:
        """A pause was requested (the loop blocks at the next batch boundary: see `paused`)."""
        return not self._resume.is_set()

    def set_learning_rate(self, learning_rate: float) -> None:
        """Takes effect at the next batch."""
        self._pending_learning_rate = learning_rate  # validated by the optimizer, in the loop

    def set_probe(self, image: np.ndarray | None) -> None:
        self._probe = None if image is None else np.array(image, np.float32, copy=True)
        self._probe_changed = True

    # --- the loop, in the worker thread --------------------------------------------

    @Slot()
    def run(self) -> None:
        completed = False
        req = self._request
        try:
            run = req.run
            if run is None:
                run = train(req.model, req.x_train, req.y_train, batch_size=req.batch_size, epochs=req.epochs,
                            validation_split=req.validation_split, seed=req.seed)
            last_progress = last_snapshot = 0.0
            try:
                for report in run:
                    now = time.perf_counter()
                    if isinstance(report, StepReport):
                        self._step += 1
                        last_of_epoch = report.batch == report.batches
                        if last_of_epoch or now - last_progress >= PROGRESS_INTERVAL:
                            self.progressed.emit(report)
                            last_progress = now
                        planned = req.moments is not None and req.moments.wants(report.epoch, report.batch)
                        if planned or self._probe_changed or now - last_snapshot >= SNAPSHOT_INTERVAL:
                            self.snapshot_taken.emit(self._snapshot(report.epoch, report.batch))
                            last_snapshot = time.perf_counter()
                    elif isinstance(report, EpochReport):
                        self.epoch_finished.emit(report)
                    if not self._between_batches():
                        break
                else:
                    completed = True
            finally:
                run.close()
            self.snapshot_taken.emit(self._snapshot(-1, -1))
            if completed:
                self.evaluated.emit(self._evaluate())
            timings = self._time_layers()
            if timings is not None:
                self.layers_timed.emit(timings)
        except TrainingDiverged as exc:
            self.errored.emit(f"The loss stopped being a number (NaN or infinity): {exc}")
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user as a message
            self.errored.emit(f"Training failed: {exc}")
        finally:
            self._request = self._probe = None  # the model and data are the caller's again
            app = QCoreApplication.instance()
            if app is not None:  # a thread can only push its own objects to another thread
                self.moveToThread(app.thread())
            self.finished.emit(completed)

    def _between_batches(self) -> bool:
        """Pause, stop and learning-rate changes happen here. False means stop."""
        if self._stop.is_set():
            return False
        if not self._resume.is_set():
            self.paused.emit()
            self._resume.wait()
            if self._stop.is_set():
                return False
            self.resumed.emit()
        lr = self._pending_learning_rate
        if lr is not None:
            self._pending_learning_rate = None
            try:  # through the optimizer's own validation: NaN, inf or <= 0 never reach it
                set_learning_rate(self._request.model, lr)
            except ValueError as exc:
                self.learning_rate_refused.emit(f"Learning rate {lr!r} refused, the run keeps the old one: {exc}")
        return True

    def _snapshot(self, epoch: int, batch: int) -> TrainingSnapshot:
        model = self._request.model
        weights = {layer.name: [np.array(w, copy=True) for w in getattr(layer, "weights", [])]
                   for layer in model.layers}
        probe, activations = self._probe, None
        self._probe_changed = False
        if probe is not None:
            outputs = model.activations(probe.reshape((1, *model.input_shape)))  # a (28, 28) digit or (h, w, 3)
            activations = {name: np.array(value[0], copy=True) for name, value in outputs.items()}
        return TrainingSnapshot(self._step, epoch, batch, weights, probe, activations)

    def _time_layers(self) -> LayerTimings | None:
        """Per-layer ms at the run's batch size, here in the worker thread. layer_costs times a
        copy with fresh weights (speed does not depend on them), so the trained weights and
        the optimizer state stay as the run left them. None when it cannot (e.g. memory):
        the figures are a bonus, never a reason for the run to fail."""
        req = self._request
        try:
            costs = layer_costs(req.model, batch_size=req.batch_size, steps=TIMING_STEPS, warmup=1)
        except Exception:  # noqa: BLE001 - see above
            return None
        return LayerTimings(req.batch_size, {c.name: (c.forward_ms, c.backward_ms) for c in costs},
                            {c.name: c.backward_in for c in costs if c.backward_in},
                            {c.name: c.forward_in for c in costs if c.forward_in})

    def _evaluate(self) -> TestResults:
        req = self._request
        probabilities = req.model.predict(req.x_test, batch_size=500)
        labels = np.asarray(req.y_test)
        picked = np.clip(probabilities[np.arange(labels.size), labels], 1e-7, 1.0)
        loss = float(-np.mean(np.log(picked)))
        accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
        return TestResults(loss, accuracy, probabilities, labels)


class TrainingController(QObject):
    """Owns the QThread and the worker of the current run; forwards the worker's signals.

    A running QThread is never destroyed (that aborts the process): shutdown() requests a
    stop and waits for the current batch however long it takes; the window's close uses
    stop() and the `finished` signal instead so that it never blocks the event loop.
    """

    started = Signal()
    progressed = Signal(object)
    epoch_finished = Signal(object)
    snapshot_taken = Signal(object)
    evaluated = Signal(object)
    layers_timed = Signal(object)
    errored = Signal(str)
    learning_rate_refused = Signal(str)
    paused = Signal()
    resumed = Signal()
    finished = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: TrainingWorker | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def is_paused(self) -> bool:
        return self._worker is not None and self._worker.is_paused

    @property
    def stopping(self) -> bool:
        """A stop was requested and the current batch has not ended yet."""
        return self._worker is not None and self._worker._stop.is_set()

    @property
    def worker(self) -> TrainingWorker | None:
        return self._worker

    def start(self, request: TrainingRequest) -> None:
        if self.running:
            raise RuntimeError("a training run is already in progress")
        thread = QThread()
        thread.setObjectName("visualcnn-training")
        worker = TrainingWorker(request)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progressed.connect(self.progressed)
        worker.epoch_finished.connect(self.epoch_finished)
        worker.snapshot_taken.connect(self.snapshot_taken)
        worker.evaluated.connect(self.evaluated)
        worker.layers_timed.connect(self.layers_timed)
        worker.errored.connect(self.errored)
        worker.learning_rate_refused.connect(self.learning_rate_refused)
        worker.paused.connect(self.paused)
        worker.resumed.connect(self.resumed)
        worker.finished.connect(self._on_worker_finished)
        self._thread, self._worker = thread, worker
        thread.start()
        self.started.emit()

    def pause(self) -> None:
        if self._worker:
            self._worker.pause()

    def resume(self) -> None:
        if self._worker:
            self._worker.resume()

    def stop(self) -> None:
        if self._worker:
            self._worker.request_stop()

    def set_learning_rate(self, learning_rate: float) -> None:
        if self._worker:
            self._worker.set_learning_rate(learning_rate)

    def set_probe(self, image: np.ndarray | None) -> None:
        if self._worker:
            self._worker.set_probe(image)

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        """Stop the run and wait for its thread (by default the end of the current batch,
        however long: a running QThread must never be destroyed).

        For scripts, tests and application exit; the window closes without blocking (see
        MainWindow.closeEvent). True when no thread is left; False only when timeout_ms
        passed first (the thread still runs and is still owned here)."""
        self.stop()
        return self.wait_for_end(timeout_ms)

    def wait_for_end(self, timeout_ms: int | None) -> bool:
        """Wait up to timeout_ms (None: for ever) for the run to end, e.g. after stop().

        True when it ended: the thread is finished and cleaned up, and `finished` was
        emitted. False when the current batch is still running (nothing destroyed)."""
        thread = self._thread
        if thread is None:
            return True
        thread.quit()  # the thread's event loop ends as soon as run() returns to it
        if not (thread.wait() if timeout_ms is None else thread.wait(int(timeout_ms))):
            return False
        QCoreApplication.sendPostedEvents(self)  # the worker's queued signals, finished last
        if self._thread is thread:  # not delivered (no event loop yet): clean up here
            self._on_worker_finished(False)
        return True

    def _on_worker_finished(self, completed: bool) -> None:
        thread, worker = self._thread, self._worker
        if thread is None:
            return
        self._thread = self._worker = None
        thread.quit()
        thread.wait()  # run() has returned: only the thread's event loop is left to end
        for signal in (worker.progressed, worker.epoch_finished, worker.snapshot_taken, worker.evaluated,
                       worker.layers_timed, worker.errored, worker.learning_rate_refused, worker.paused, worker.resumed,
                       worker.finished):
            signal.disconnect()
        # Both now live in this thread and nothing else refers to them: deleted with their
        # Python wrappers, here, not by a deleteLater that a stopped thread never runs.
        del thread, worker
        self.finished.emit(completed)
        return_freed_memory()
