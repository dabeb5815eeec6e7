"""Keras callbacks with Keras 3's names, arguments and rules (keras/src/callbacks/*.py).

    model.fit(x, y, epochs=20, validation_split=0.1,
              callbacks=[EarlyStopping(patience=3, restore_best_weights=True),
                         ReduceLROnPlateau(factor=0.5, patience=2)])

The engine's training generator (training.train) calls them, so Model.fit, `visualcnn
train` and the window's run all go through the same calls: on_train_begin, then per
epoch on_epoch_begin, on_train_batch_begin / on_train_batch_end for each batch,
on_epoch_end(epoch, logs) with loss, accuracy, val_loss, val_accuracy; on_train_end when
the run ends by itself (all epochs, or `model.stop_training` set by a callback), not when
the caller stops it (the window's Stop keeps the weights as they are). Epochs are 0-based
in the calls, as in Keras.

What a callback did that a person should know ("Epoch 5: early stopping") goes to the
run's message list (TrainingRun.messages) through `say`, and to stdout with verbose=1.

Exact resume (engine/resume.py): `get_state()` / `set_state()` carry a callback's
counters (wait, best, cooldown...) across a saved project, so a continued run decides
exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import math
import warnings

import numpy as np


class Callback:
    """keras.callbacks.Callback: override the on_* methods you need."""

    def __init__(self):
        self.model = None
        self.params: dict = {}
        self._messages: list | None = None

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = dict(params)

    def say(self, text: str) -> None:
        """One line for the person running the training (the CLI prints it, the window shows it)."""
        if self._messages is not None:
            self._messages.append(text)
        if getattr(self, "verbose", 0):
            print(text)

    def get_state(self) -> dict:
        """The counters a continued run needs (JSON numbers); {} for a callback without any."""
        return {}

    def set_state(self, state: dict) -> None:
        """Put back what get_state() returned (after on_train_begin reset the counters)."""

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass


class MonitorCallback(Callback):
    """Base of the callbacks that watch a logged quantity (Keras's MonitorCallback):
    mode "min" / "max" / "auto" (auto: a loss is minimised, accuracy maximised)."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(_finite(type(self).__name__, "min_delta", min_delta))
        self.monitor_op = None

    def _set_monitor_op(self) -> None:
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            name = self.monitor.removeprefix("val_")
            if name == "loss":
                self.monitor_op = np.less
            elif name in ("accuracy", "acc"):
                self.monitor_op = np.greater
            else:
                raise ValueError(f"{type(self).__name__} callback received monitor={self.monitor}, but it cannot "
                                 "tell whether that quantity should go up or down: pass mode='max' or mode='min'")
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value, reference_value) -> bool:
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))

    def _monitor_value(self, logs, what: str):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{what} conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(list((logs or {}).keys()))}", stacklevel=3)
        return value


class EarlyStopping(MonitorCallback):
    """Stop when `monitor` has not improved by min_delta for `patience` epochs.
    restore_best_weights: at the end, put back the weights of the best epoch (when the
    run stopped early or not, as Keras 3). start_from_epoch: epochs ignored at the start."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = _count("EarlyStopping", "patience", patience)
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = bool(restore_best_weights)
        self.best_weights = None
        self.best_epoch = 0
        self.start_from_epoch = _count("EarlyStopping", "start_from_epoch", start_from_epoch)

    def on_train_begin(self, logs=None):
        # Allow instances to be re-used across fit() calls.
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self._monitor_value(logs, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # If best weights were never set, the current weights are the best.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Only restart wait if we beat both the baseline and our previous best.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0:
            self.say(f"Epoch {self.stopped_epoch + 1}: early stopping ({self.monitor} did not improve for "
                     f"{self.wait} epoch{'s' if self.wait != 1 else ''})")
        if self.restore_best_weights and self.best_weights is not None:
            self.say(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1} "
                     f"({self.monitor} {self.best:.4f})" if self.best is not None else
                     f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}")
            self.model.set_weights(self.best_weights)

    def get_state(self) -> dict:
        state = {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": _json_number(self.best),
                 "best_epoch": self.best_epoch}
        if self.best_weights is not None:
            from .resume import encode_arrays

            state["best_weights"] = encode_arrays(self.best_weights)
        return state

    def set_state(self, state: dict) -> None:
        self.wait, self.stopped_epoch = int(state["wait"]), int(state["stopped_epoch"])
        self.best, self.best_epoch = state["best"], int(state["best_epoch"])
        if state.get("best_weights") is not None:
            from .resume import decode_arrays

            self.best_weights = decode_arrays(state["best_weights"])


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by `factor` when `monitor` has not improved by min_delta
    for `patience` epochs; then wait `cooldown` epochs; never below min_lr."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__(monitor, mode, min_delta=min_delta)
        if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor < 1.0):
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = float(factor)
        self.min_lr = float(_finite("ReduceLROnPlateau", "min_lr", min_lr))
        self.patience = _count("ReduceLROnPlateau", "patience", patience)
        self.verbose = verbose
        self.cooldown = _count("ReduceLROnPlateau", "cooldown", cooldown)
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(list(logs.keys()))}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    if getattr(optimizer, "schedule", None) is not None:
                        raise ValueError("ReduceLROnPlateau cannot change a learning rate that follows a schedule; "
                                         "use a constant learning rate with it")
                    optimizer.learning_rate = new_lr
                    self.say(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr:.6g}")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def get_state(self) -> dict:
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter, "best": _json_number(self.best)}

    def set_state(self, state: dict) -> None:
        self.wait, self.cooldown_counter, self.best = int(state["wait"]), int(state["cooldown_counter"]), state["best"]


class LearningRateScheduler(Callback):
    """At the start of every epoch set the learning rate to schedule(epoch, lr) (or
    schedule(epoch) for a one-argument function); epoch is 0-based."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise ValueError("LearningRateScheduler: `schedule` must be a function of the epoch, "
                             f"received {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # the old one-argument form
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = float(learning_rate)
        if self.verbose > 0:
            self.say(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(learning_rate)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ModelCheckpoint(MonitorCallback):
    """Save the model after every epoch (save_best_only: only when `monitor` improved).

    filepath may hold {epoch} and logged names ("ckpt-{epoch:02d}-{val_loss:.3f}.json").
    save_weights_only=True writes Keras's ".weights.h5"; otherwise a ".keras" archive or
    VisualCNN's own model file (".json": the model, its recipe and its weights). Files are
    written whole or not at all (atomic replace)."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.filepath = str(filepath)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        if save_freq != "epoch":
            raise ValueError(f"ModelCheckpoint: VisualCNN saves once per epoch (save_freq='epoch'). "
                             f"Received: save_freq={save_freq!r}")
        self.save_freq = save_freq
        if self.save_weights_only and not self.filepath.endswith(".weights.h5"):
            raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath provided must "
                             f"end in `.weights.h5` (Keras weights format). Received: filepath={self.filepath}")
        if not self.save_weights_only and not self.filepath.endswith((".keras", ".json")):
            raise ValueError("The filepath provided must end in `.keras` (Keras model format) or `.json` "
                             f"(VisualCNN model file). Received: filepath={self.filepath}")
        self.last_saved: str | None = None

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs or {}
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
                return
            if not self._is_improvement(current, self.best):
                return
            self.best = current
        path = self._file_path(epoch, logs)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.last_saved = path
        if self.verbose > 0 or self.save_best_only:
            why = f" ({self.monitor} improved to {self.best:.5f})" if self.save_best_only else ""
            self.say(f"Epoch {epoch + 1}: saved the model to {path}{why}")

    def _file_path(self, epoch: int, logs: dict) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f'ModelCheckpoint: cannot fill in the file name "{self.filepath}" ({exc!r}); '
                             f"available names: epoch, {', '.join(logs)}") from None

    def get_state(self) -> dict:
        return {"best": _json_number(self.best)}

    def set_state(self, state: dict) -> None:
        self.best = state["best"]


def recipe_callbacks(config) -> list[Callback]:
    """The callbacks a TrainingConfig asks for (the Train tab's and the CLI's switches):
    EarlyStopping and ReduceLROnPlateau watching config.monitor. The schedules are not
    callbacks: they live in the optimizer (engine/schedules.py recipe_schedule)."""
    callbacks: list[Callback] = []
    if config.early_stopping:
        callbacks.append(EarlyStopping(monitor=config.monitor, patience=config.patience,
                                       restore_best_weights=config.restore_best_weights))
    if config.reduce_lr_on_plateau:
        callbacks.append(ReduceLROnPlateau(monitor=config.monitor, factor=config.reduce_lr_factor,
                                           patience=config.reduce_lr_patience, min_lr=config.min_lr))
    return callbacks


def callbacks_problem(config) -> str | None:
    """Why these callback settings cannot work, in one line, or None."""
    watched = config.early_stopping or config.reduce_lr_on_plateau
    if watched and config.monitor.startswith("val_") and not config.validation_split:
        return (f"early stopping and reduce-on-plateau watch {config.monitor}, which needs validation data: "
                "set a validation split (e.g. 0.1) or watch loss")
    if config.reduce_lr_on_plateau and config.schedule != "constant":
        return ("reduce-on-plateau changes a constant learning rate, but a schedule is chosen: "
                "use one or the other")
    return None


def _finite(owner: str, what: str, value) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value)):
        raise ValueError(f"{owner}: `{what}` must be a finite number. Received: {what}={value!r}")
    return float(value)


def _count(owner: str, what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{owner}: `{what}` must be an integer >= 0. Received: {what}={value!r}")
    return int(value)


def _json_number(value):
    return None if value is None else float(value)


__all__ = ["Callback", "MonitorCallback", "EarlyStopping", "ReduceLROnPlateau", "LearningRateScheduler",
           "ModelCheckpoint", "recipe_callbacks", "callbacks_problem"]
