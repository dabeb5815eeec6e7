"""The training loop as a generator of immutable reports.

    run = train(model, x, y, batch_size=64, epochs=3)
    for report in run:          # StepReport after every batch, EpochReport after every epoch
        ...                     # stop: break / run.close(); pause: stop pulling for a while

Nothing runs between two reports, so a caller (fit(), the CLI, the GUI's worker thread)
stops or pauses exactly between batches. Reports are frozen dataclasses holding plain
numbers (copies), never references into the engine's live arrays.

A loss or gradient that becomes NaN/inf raises TrainingDiverged (a ValueError) with the
weights of the last good step kept.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np


class TrainingDiverged(ValueError):
    """The loss or a gradient stopped being a finite number."""


@dataclass(frozen=True)
class StepReport:
    """After one batch. loss/accuracy are running means over the epoch so far (what Keras's
    progress bar shows); batch_loss/batch_accuracy are this batch's own values."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # 1-based within the epoch
    batches: int
    loss: float
    accuracy: float | None
    batch_loss: float
    batch_accuracy: float | None
    images_per_second: float
    seen: int  # examples seen in this epoch
    elapsed: float  # seconds since the epoch started
    eta: float  # estimated seconds left in this epoch
    learning_rate: float | None = None  # the optimizer's rate for the next step (a schedule moves it)

    def logs(self) -> dict:
        logs = {"loss": self.loss}
        if self.accuracy is not None:
            logs["accuracy"] = self.accuracy
        return logs


@dataclass(frozen=True)
class EpochReport:
    """After one epoch: its mean loss/accuracy and, with validation data, val_loss/val_accuracy."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    images_per_second: float
    learning_rate: float | None = None  # the optimizer's rate after this epoch (callbacks may have moved it)

    def logs(self) -> dict:
        logs = {"loss": self.loss}
        if self.accuracy is not None:
            logs["accuracy"] = self.accuracy
        if self.val_loss is not None:
            logs["val_loss"] = self.val_loss
            if self.val_accuracy is not None:
                logs["val_accuracy"] = self.val_accuracy
        return logs


class History:
    """keras.callbacks.History: .history {"loss": [...], "accuracy": [...], ...}, .epoch, .params."""

    def __init__(self, model=None, params: dict | None = None):
        self.model = model
        self.params = dict(params or {})
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}

    def record(self, report: EpochReport) -> None:
        self.epoch.append(report.epoch - 1)
        for key, value in report.logs().items():
            self.history.setdefault(key, []).append(value)


@dataclass
class TrainingRun:
    """The generator returned by train(), with the batch count known up front."""

    generator: Iterator
    batches: int
    train_examples: int
    val_examples: int
    _closed: bool = field(default=False, repr=False)
    # Where the run stands, updated at every report (engine/resume.py capture reads it),
    # and what its callbacks said ("Epoch 5: early stopping"), in order.
    position: object = None
    messages: list = field(default_factory=list)
    callbacks: list = field(default_factory=list)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.generator)

    def close(self) -> None:
        """Stop the run (between batches); the weights keep the last completed step."""
        self.generator.close()


def train(model, x, y, batch_size: int = 32, epochs: int = 1, validation_split: float = 0.0,
          validation_data=None, shuffle: bool = True, seed: int | None = None, callbacks=None,
          initial_epoch: int = 0, resume: dict | None = None) -> TrainingRun:
    """Check everything now (a ValueError names the problem) and return the lazy run.

    validation_split takes the LAST fraction of x and y before any shuffling (Keras).
    Shuffling and dropout draw from `seed` (default: the model's seed), and the kernels'
    reductions split the same way whatever the live thread count, so the same seed gives
    bit-identical weights (tests/engine/test_threads.py).

    callbacks: Keras callbacks (engine/callbacks.py), called here for every caller (fit,
    the CLI, the window). epochs is the LAST epoch and initial_epoch the number already
    done (Keras's fit: epochs=5, initial_epoch=3 trains epochs 4 and 5). resume: a "resume"
    section (engine/resume.py) to continue exactly where a saved run stood; its epochs
    done are the initial_epoch, and the model must hold the weights it was captured with.
    """
    model._require_compiled("fit")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, received {batch_size!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, received {epochs!r}")
    if (isinstance(validation_split, bool) or not isinstance(validation_split, (int, float))
            or not 0.0 <= validation_split < 1.0):
        raise ValueError(f"validation_split must be a number in [0, 1), received {validation_split!r}")
    x = model._prepare_x(x)
    y = model._prepare_y(y, x.shape[0])
    x_val = y_val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (x_val, y_val)")
        x_val = model._prepare_x(validation_data[0], "validation x")
        y_val = model._prepare_y(validation_data[1], x_val.shape[0], "validation y")
    elif validation_split > 0.0:
        # Keras: split_at = int(n * (1 - validation_split)); validation is x[split_at:].
        split_at = split_index(x.shape[0], validation_split)
        if split_at == 0 or split_at == x.shape[0]:
            raise ValueError(f"validation_split {validation_split} leaves no training or no validation examples "
                             f"out of {x.shape[0]}")
        x, x_val = x[:split_at], x[split_at:]
        y, y_val = y[:split_at], y[split_at:]
    # Refused before any weight or buffer is allocated (MemoryLimitError names the numbers),
    # at the batch the run will really use; validation runs forward passes at
    # max(batch_size, 256) in the same buffers.
    model.check_memory(min(int(batch_size), x.shape[0]), training=True)
    if x_val is not None:
        model.check_memory(min(max(int(batch_size), VALIDATION_BATCH), x_val.shape[0]), training=False)
    model._ensure_built()
    n = x.shape[0]
    batches = math.ceil(n / batch_size)
    if resume is not None:
        from . import resume as resume_state

        problem = resume_state.problem(resume, model, n, int(batch_size))
        if problem:
            raise ValueError(f"cannot continue training: {problem}")
        initial_epoch = resume["epochs_done"]
    if (isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer))
            or not 0 <= initial_epoch < epochs):
        raise ValueError(f"initial_epoch must be an integer from 0 to epochs - 1 (epochs is the last epoch, as in "
                         f"Keras), received initial_epoch={initial_epoch!r} with epochs={epochs}")
    from .resume import RunPosition

    callbacks = list(callbacks or [])
    position = RunPosition(examples=n, batch_size=int(batch_size), shuffle=bool(shuffle),
                           seed=model.seed if seed is None else seed, callbacks=tuple(callbacks))
    run = TrainingRun(None, batches, n, 0 if x_val is None else x_val.shape[0], position=position,
                      callbacks=callbacks)
    for cb in callbacks:
        if hasattr(cb, "set_model"):
            cb.set_model(model)
        else:
            cb.model = model
        if hasattr(cb, "set_params"):
            cb.set_params({"batch_size": int(batch_size), "epochs": int(epochs), "steps": batches})
        cb._messages = run.messages
    run.generator = _run(model, x, y, x_val, y_val, int(batch_size), int(epochs), bool(shuffle),
                         position.seed, batches, callbacks, int(initial_epoch), resume, position)
    return run


VALIDATION_BATCH = 256


def split_index(n: int, validation_split: float) -> int:
    """How many of n examples train (the first ones) with this validation split: the one
    rule for the engine, the CLI and the window (Keras: int(n * (1 - split)))."""
    return int(n * (1.0 - validation_split))


def steps_per_epoch(n: int, batch_size: int, validation_split: float = 0.0) -> int:
    """Optimizer steps in one epoch of n examples, exactly as train() batches them."""
    train_examples = split_index(n, validation_split) if validation_split > 0.0 else n
    return math.ceil(train_examples / batch_size)


def _run(model, x, y, x_val, y_val, batch_size, epochs, shuffle, seed, batches, callbacks, initial_epoch, resume,
         position):
    owner = model._claim_training()
    from .parallel import ThreadGovernor

    governor = ThreadGovernor()  # fewer threads when another process makes that faster
    thaw_at_end = _freeze_live_objects()
    try:
        rng = np.random.default_rng(None if seed is None else [int(seed), 1])
        _reseed_dropout(model, rng)
        n = x.shape[0]
        order = np.arange(n)
        xb_full = np.empty((min(batch_size, n), *x.shape[1:]), np.float32)
        yb_full = np.empty((min(batch_size, n), *y.shape[1:]), y.dtype)
        first_batch, sums = 0, (0.0, 0.0, 0)
        model.stop_training = False
        _call(callbacks, "on_train_begin", {})
        if resume is not None:
            # Exactly where the saved run stood (engine/resume.py): the optimizer, the random
            # layers' generators, the callbacks' counters, and the data order, replayed from
            # the seed (one shuffle per epoch begun) and checked against the saved state.
            from . import resume as resume_state

            resume_state.restore_optimizer(model.optimizer, resume)
            resume_state.restore_layer_generators(model, resume)
            resume_state.restore_callbacks(callbacks, resume)
            first_batch = int(resume["batches_done"])
            begun = initial_epoch + (1 if first_batch else 0)
            if shuffle:
                for _ in range(begun):
                    rng.shuffle(order)
            resume_state.check_data_order(rng, resume)
            loss_sum, acc_sum, seen = resume.get("epoch_sums", (0.0, 0.0, 0))
            sums = (float(loss_sum), float(acc_sum), int(seen)) if first_batch else sums
        position.rng = rng
        position.epoch, position.batch = initial_epoch, first_batch
        for epoch in range(initial_epoch + 1, epochs + 1):
            continuing = epoch == initial_epoch + 1 and first_batch > 0
            if shuffle and not continuing:
                rng.shuffle(order)
            start = time.perf_counter()
            loss_sum, acc_sum, seen = sums if continuing else (0.0, 0.0, 0)
            if not continuing:
                _call(callbacks, "on_epoch_begin", epoch - 1, {})
            for b in range(first_batch if continuing else 0, batches):
                idx = order[b * batch_size:(b + 1) * batch_size]
                xb, yb = xb_full[:idx.size], yb_full[:idx.size]
                np.take(x, idx, axis=0, out=xb)
                np.take(y, idx, axis=0, out=yb)
                _call(callbacks, "on_train_batch_begin", b, {})
                try:
                    step_start = time.perf_counter()
                    loss, accuracy = model._train_step(xb, yb)
                    governor.step_done(time.perf_counter() - step_start, idx.size)
                except TrainingDiverged as exc:
                    raise TrainingDiverged(
                        f"training stopped at epoch {epoch}, batch {b + 1}: {exc}; the weights of the last good "
                        "step are kept. Try a smaller learning rate.") from None
                seen += idx.size
                loss_sum += loss * idx.size
                if accuracy is not None:
                    acc_sum += accuracy * idx.size
                elapsed = time.perf_counter() - start
                rate = seen / elapsed if elapsed > 0 else 0.0
                report = StepReport(epoch, epochs, b + 1, batches, loss_sum / seen,
                                    acc_sum / seen if accuracy is not None else None, loss, accuracy, rate, seen,
                                    elapsed, (n - seen) / rate if rate > 0 else 0.0,
                                    getattr(model.optimizer, "learning_rate", None))
                _call(callbacks, "on_train_batch_end", b, report.logs())
                position.epoch, position.batch = epoch - 1, b + 1
                position.loss_sum, position.acc_sum, position.seen = loss_sum, acc_sum, seen
                yield report
                if getattr(model, "stop_training", False):
                    break
            seconds = time.perf_counter() - start
            val_loss = val_acc = None
            if x_val is not None:
                val_loss, val_acc = model._evaluate_arrays(x_val, y_val, max(batch_size, VALIDATION_BATCH))
            seen = max(seen, 1)
            report = EpochReport(epoch, epochs, loss_sum / seen, acc_sum / seen if model.metrics else None,
                                 val_loss, val_acc, seconds, seen / seconds if seconds > 0 else 0.0)
            logs = report.logs()
            _call(callbacks, "on_epoch_end", epoch - 1, logs)
            position.epoch, position.batch = epoch, 0
            position.loss_sum = position.acc_sum = 0.0
            position.seen = 0
            yield dataclasses.replace(report, learning_rate=getattr(model.optimizer, "learning_rate", None))
            if getattr(model, "stop_training", False):
                break
        # Ended by itself (every epoch, or a callback stopped it): the callbacks' last word
        # (EarlyStopping restores the best weights here). A caller that closes the run
        # (the window's Stop) keeps the weights as they are, as Keras on an interrupt.
        _call(callbacks, "on_train_end", {})
        position.ended = True
    finally:
        if thaw_at_end:
            gc.unfreeze()
        governor.close()
        model._release_training(owner)


def _freeze_live_objects() -> bool:
    """Move every Python object alive when a run starts out of the garbage collector's way
    (``gc.freeze``); True when this run did it first and gives them back at its end.

    Why: a full collection walks every object while holding the GIL, and with numba's
    compiler loaded that took ~33 ms: one such step among 30 steps of 3.3 ms cut the seed
    CNN's benchmark from 18,000 to 13,700 images/s, a visible stall in a live chart. What
    is alive at the start outlives the run; what a step creates is still collected. A
    freeze made by someone else (the window's, at start-up) is left as it is."""
    first = gc.get_freeze_count() == 0
    gc.freeze()
    return first


def _call(callbacks: list, method: str, *args) -> None:
    for cb in callbacks:
        fn = getattr(cb, method, None)
        if fn is not None:
            fn(*args)


def limit_blas_threads(n: int = 1) -> bool:
    """Set numpy's (and any other loaded) OpenBLAS thread count at run time (returns False
    if none is found).

    The engine's GEMMs are small (64-image batches); on a 2-core machine OpenBLAS's own
    pool fights numba's workers for the cores (measured on the seed CNN: 124 ms per
    batch of 64 with OpenBLAS threads, 20 ms with one), so training runs BLAS serially
    and leaves the cores to the numba kernels. (The kernels' own OpenBLAS copy is
    single-threaded from the start: ``kernels/blas.py``.)
    """
    from .kernels import blas

    return blas.set_shared_blas_threads(n)


def _reseed_dropout(model, rng: np.random.Generator) -> None:
    for layer in model.layers:
        if hasattr(layer, "reseed") and layer.config.get("seed") is None:
            layer.reseed(int(rng.integers(2**63)))


def check_classifier(model, num_classes: int = 10, loss: str = "sparse_categorical_crossentropy") -> str | None:
    """Why this model cannot be trained to classify num_classes classes with loss, or None.

    The message says what to change (the rule lives in engine/recipe.py)."""
    from .recipe import classifier_problem

    return classifier_problem(model.analyse(), num_classes, loss)


class ProgressPrinter:
    """Keras-like console progress for fit(verbose=1 or 2)."""

    def __init__(self, verbose: int = 1, stream=None, width: int = 30):
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.width = width
        self._last = 0.0

    def step(self, r: StepReport) -> None:
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if r.batch != r.batches and now - self._last < 0.1:
            return
        self._last = now
        if r.batch == 1:
            self.stream.write(f"Epoch {r.epoch}/{r.epochs}\n")
        self.stream.write("\r" + format_step(r, self.width))
        self.stream.flush()

    def epoch(self, r: EpochReport) -> None:
        parts = [f"{r.seconds:.0f}s", f"loss: {r.loss:.4f}"]
        if r.accuracy is not None:
            parts.append(f"accuracy: {r.accuracy:.4f}")
        if r.val_loss is not None:
            parts.append(f"val_loss: {r.val_loss:.4f}")
            if r.val_accuracy is not None:
                parts.append(f"val_accuracy: {r.val_accuracy:.4f}")
        if self.verbose == 1:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.write(" - ".join(parts) + "\n")
        else:
            self.stream.write(f"Epoch {r.epoch}/{r.epochs} - " + " - ".join(parts) + "\n")
        self.stream.flush()


def format_step(r: StepReport, width: int = 30) -> str:
    """'  312/938 [=========>....................] - ETA: 21s - loss: 0.3120 - accuracy: 0.9042 - 2981 img/s'."""
    done = int(width * r.batch / r.batches)
    bar = "=" * max(done - 1, 0) + (">" if done < width else "=") + "." * (width - done)
    digits = len(str(r.batches))
    text = f"{r.batch:>{digits}}/{r.batches} [{bar}] - ETA: {r.eta:.0f}s - loss: {r.loss:.4f}"
    if r.accuracy is not None:
        text += f" - accuracy: {r.accuracy:.4f}"
    return text + f" - {r.images_per_second:.0f} img/s"


def run_in_thread(run: TrainingRun, on_report=None) -> threading.Thread:
    """Drive a run in a daemon thread (a helper for scripts and tests; the GUI uses a QThread)."""

    def body():
        for report in run:
            if on_report is not None:
                on_report(report)

    thread = threading.Thread(target=body, name="visualcnn-training", daemon=True)
    thread.start()
    return thread


__all__ = ["StepReport", "EpochReport", "History", "TrainingRun", "TrainingDiverged", "train", "steps_per_epoch",
           "split_index",
           "check_classifier", "ProgressPrinter", "format_step", "run_in_thread"]
