"""Compile the engine's kernels in the background while the student builds.

A thin Qt adapter over ``engine.warmup``: ``EngineWarmup.start(model)`` runs
``warm_up(model)`` in a daemon thread (a daemon, so closing the window or Ctrl-C never
waits for the compiler) and re-emits its progress as ``progressed(done, total)`` and
``finished()`` in the GUI thread. Starting again (another model loaded, the pipeline
edited) cancels the run in flight at its next kernel.

``SpeedMeter`` keeps the first steps of a run, which wait for compiling, out of the
speed and the ETA shown: until a few steps have run with every kernel ready the Train
tab shows what is happening instead of an ETA of two hours.
"""

from __future__ import annotations

import dataclasses
import threading

from PySide6.QtCore import QObject, Signal

__all__ = ["EngineWarmup", "SpeedMeter", "TrainStatus", "follow", "preparing_text", "measuring_text"]


def preparing_text(done: int, total: int) -> str:
    from ..engine.warmup import preparing_line

    return preparing_line(done, total)


class EngineWarmup(QObject):
    """Background kernel compilation for the model being edited.

    ``progressed(done, total)``: after each kernel (first (0, total)); ``finished()``:
    when every kernel of the latest model is ready (not emitted for a cancelled run).
    """

    progressed = Signal(int, int)
    finished = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._generation = _Generation()
        self._thread: threading.Thread | None = None
        self.done = 0
        self.total = 0
        self.running = False
        # The window closed (or a test ended): the thread stops at its next kernel instead
        # of compiling on, unseen, into whatever the process does next. A plain object's
        # method, so it can run while the QObject is being destroyed.
        self.destroyed.connect(self._generation.advance)

    def start(self, model) -> None:
        """Warm up ``model`` (an engine model; it is not modified). Cancels a run in flight."""
        generation = self._generation.advance()
        self.running = True
        self.done = self.total = 0
        thread = threading.Thread(target=self._run, args=(model, generation), name="engine-warmup", daemon=True)
        self._thread = thread
        thread.start()

    def cancel(self) -> None:
        """Stop the run in flight at its next kernel (a kernel being compiled finishes)."""
        self._generation.advance()
        self.running = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run's thread ends (tests, shutdown); True when it did."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def status_text(self) -> str | None:
        """What the Train tab shows while kernels are still being prepared, else None."""
        if not self.running:
            return None
        return preparing_text(self.done, self.total) if self.total else "Preparing the engine, first run only..."

    # --- worker thread --------------------------------------------------------------

    def _current(self, generation: int) -> bool:
        return generation == self._generation.value

    def _emit(self, signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the QObject was deleted meanwhile: nobody is listening
            self._generation.advance()

    def _run(self, model, generation: int) -> None:
        from ..engine.warmup import warm_up

        def progress(done, total):
            if self._current(generation):
                self.done, self.total = done, total
                self._emit(self.progressed, done, total)

        try:
            warm_up(model, progress=progress, cancelled=lambda: not self._current(generation))
        except Exception:
            # A model the engine cannot run: training will report it in words; the
            # warm-up has nothing to add.
            pass
        finally:
            if self._current(generation):
                self.running = False
                self._emit(self.finished)


class _Generation:
    """A counter the worker thread compares against: advancing it cancels the run."""

    def __init__(self):
        self._lock = threading.Lock()
        self.value = 0

    def advance(self, *_args) -> int:
        with self._lock:
            self.value += 1
            return self.value


class SpeedMeter:
    """Speed and ETA of a training run measured only over steps that did not wait for
    the compiler: counting starts at the first step reported once warm-up is over.

    ``adjust(report, warming)`` gives the report with images_per_second, elapsed and eta
    from those steps, or None while the speed is not known yet.
    """

    def __init__(self, min_steps: int = 3):
        self.min_steps = min_steps
        self._start = None  # (epoch, seen, elapsed, batch) of the first step counted
        self._rate = None  # images/s measured so far (kept across epochs)

    def reset(self) -> None:
        self._start = None
        self._rate = None

    def adjust(self, report, warming: bool):
        if warming:
            self._start = self._rate = None
            return None
        if self._start is None or self._start[0] != report.epoch:
            self._start = (report.epoch, report.seen, report.elapsed, report.batch)
            return None if self._rate is None else self._with_rate(report, self._rate)
        _, seen0, elapsed0, batch0 = self._start
        if report.batch - batch0 < self.min_steps or report.elapsed <= elapsed0:
            return None if self._rate is None else self._with_rate(report, self._rate)
        self._rate = (report.seen - seen0) / (report.elapsed - elapsed0)
        return self._with_rate(report, self._rate)

    @staticmethod
    def _with_rate(report, rate):
        images_per_batch = report.seen / max(report.batch, 1)
        images_left = max(0.0, images_per_batch * report.batches - report.seen)
        return dataclasses.replace(report, images_per_second=rate,
                                   elapsed=report.batch * images_per_batch / rate if rate > 0 else report.elapsed,
                                   eta=images_left / rate if rate > 0 else 0.0)


def measuring_text(report) -> str:
    return f"Epoch {report.epoch}/{report.epochs} · batch {report.batch}/{report.batches} · measuring speed..."


class TrainStatus:
    """The Train tab's progress line while kernels are still being prepared.

    The tab calls ``begin()`` when a run starts, ``step(report)`` instead of
    ``controls.show_step(report)``, and ``end()``; ``attach(warmup)`` connects the
    window's ``EngineWarmup``. While it runs the line reads "Preparing the engine, first
    run only: 12 of 24 kernels"; afterwards the speed and ETA come from ``SpeedMeter``,
    and until it knows them the line says "measuring speed..." instead of an ETA.
    """

    def __init__(self, controls):
        self.controls = controls
        self.warmup: EngineWarmup | None = None
        self.meter = SpeedMeter()
        self.active = False

    def attach(self, warmup: EngineWarmup) -> None:
        self.warmup = warmup
        warmup.progressed.connect(self._on_warmup_progressed)

    def _warming(self) -> bool:
        return self.warmup is not None and self.warmup.running

    def _set(self, text: str) -> None:
        paused = getattr(self.controls, "_paused", False)
        self.controls.progress_label.setText(("Paused. " if paused else "") + text)

    def begin(self) -> None:
        self.active = True
        self.meter.reset()
        if self._warming():
            self._set(self.warmup.status_text())

    def step(self, report) -> None:
        adjusted = self.meter.adjust(report, self._warming())
        self.controls.show_step(adjusted or report)
        if adjusted is None:
            self._set(self.warmup.status_text() if self._warming() else measuring_text(report))

    def end(self) -> None:
        self.active = False

    def _on_warmup_progressed(self, done: int, total: int) -> None:
        if self.active and self._warming():
            self._set(preparing_text(done, total))


def follow(warmup: EngineWarmup, signal, model_source, delay_ms: int = 400):
    """Warm up ``model_source()`` now and again ``delay_ms`` after each ``signal`` (the
    document's report_updated: a model was opened or edited). ``model_source`` may raise
    (an unfinished pipeline): then nothing is warmed until the next change. Returns the
    debounce timer, or None when VISUALCNN_WARMUP=0 turns the background work off (the
    kernels are then compiled when first used)."""
    import os

    from PySide6.QtCore import QTimer

    if os.environ.get("VISUALCNN_WARMUP", "1").strip() in ("0", "false", "no"):
        return None

    timer = QTimer(warmup)
    timer.setSingleShot(True)
    timer.setInterval(delay_ms)

    last = [None]

    def restart():
        try:
            model = model_source()
        except Exception:
            return
        if model is None:
            return
        # An edit that changes neither the layers nor the training settings (a rename
        # undone, the same file reopened) needs no new dry run.
        config = model.training_config() if model.optimizer is not None and model.loss is not None else None
        key = (model.to_json(), None if config is None else repr(config))
        if key == last[0] and (warmup.running or warmup.total == warmup.done):
            return
        last[0] = key
        warmup.start(model)

    timer.timeout.connect(restart)
    signal.connect(lambda *args: timer.start())
    timer.start()  # the window just opened
    return timer
