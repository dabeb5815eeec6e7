"""The optional "training" section of a model file: validated recipe settings."""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass

from .layers import ConfigError

OPTIMIZERS = ("adam", "sgd", "rmsprop")
LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy",
          "mean_squared_error")
# "cosine": keras.optimizers.schedules.CosineDecay from learning_rate down to 0 over the
# run's steps (recipe.prepare_run); "constant": learning_rate throughout; "step" and
# "exponential": times decay_rate every decay_epochs epochs, at once (PiecewiseConstantDecay)
# or smoothly (ExponentialDecay). engine/schedules.py recipe_schedule is the one rule.
SCHEDULES = ("constant", "step", "exponential", "cosine")
# What EarlyStopping and ReduceLROnPlateau may watch (the recipe's run logs these).
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
# Keras's default learning rate for each optimizer.
DEFAULT_LEARNING_RATES = {"adam": 0.001, "sgd": 0.01, "rmsprop": 0.001}


@dataclass(frozen=True)
class TrainingConfig:
    optimizer: str = "adam"
    learning_rate: float = 0.001
    loss: str = "sparse_categorical_crossentropy"
    batch_size: int = 64
    epochs: int = 1
    validation_split: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False
    seed: int = 0
    schedule: str = "constant"
    # step / exponential schedules: the rate is multiplied by decay_rate every decay_epochs epochs
    decay_rate: float = 0.5
    decay_epochs: int = 1
    # Callbacks (engine/callbacks.py, Keras's names): built by callbacks.recipe_callbacks
    monitor: str = "val_loss"  # what EarlyStopping and ReduceLROnPlateau watch
    early_stopping: bool = False
    patience: int = 3  # EarlyStopping(patience=...)
    restore_best_weights: bool = False
    reduce_lr_on_plateau: bool = False
    reduce_lr_factor: float = 0.1  # ReduceLROnPlateau(factor=...)
    reduce_lr_patience: int = 2  # ReduceLROnPlateau(patience=...)
    min_lr: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in OPTIONAL_DEFAULTS:
            if data[key] == OPTIONAL_DEFAULTS[key]:
                # Written only when it says something: files from before schedules and
                # callbacks existed, and files that do not use them, stay byte-for-byte what they were.
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: object) -> "TrainingConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"'training' must be a JSON object, received {type(data).__name__}")
        known = list(cls.__dataclass_fields__)
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                raise ConfigError(f"training: unknown setting {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else
                                                                        f"; known settings: {', '.join(known)}"))
        values = dict(data)
        optimizer = values.get("optimizer", "adam")
        if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
            raise ConfigError(f"training: optimizer expected one of {', '.join(OPTIMIZERS)}, received {optimizer!r}")
        values["optimizer"] = optimizer.lower()
        values.setdefault("learning_rate", DEFAULT_LEARNING_RATES[values["optimizer"]])
        loss = values.get("loss", cls.loss)
        if loss not in LOSSES:
            raise ConfigError(f"training: loss expected one of {', '.join(LOSSES)}, received {loss!r}")
        _number(values, "learning_rate", low=0.0, low_open=True, high=10.0)
        _number(values, "validation_split", low=0.0, high=1.0, high_open=True)
        _number(values, "momentum", low=0.0, high=1.0, high_open=True)
        _integer(values, "batch_size", 1, 65536)
        _integer(values, "epochs", 1, 10_000)
        _integer(values, "seed", 0, 2**32 - 1)
        if not isinstance(values.get("nesterov", False), bool):
            raise ConfigError(f"training: nesterov expected true or false, received {values['nesterov']!r}")
        schedule = values.get("schedule", "constant")
        if schedule not in SCHEDULES:
            raise ConfigError(f"training: schedule expected one of {', '.join(SCHEDULES)}, received {schedule!r}")
        _number(values, "decay_rate", low=0.0, low_open=True, high=1.0)
        _integer(values, "decay_epochs", 1, 10_000)
        monitor = values.get("monitor", "val_loss")
        if monitor not in MONITORS:
            raise ConfigError(f"training: monitor expected one of {', '.join(MONITORS)}, received {monitor!r}")
        for key in ("early_stopping", "restore_best_weights", "reduce_lr_on_plateau"):
            if not isinstance(values.get(key, False), bool):
                raise ConfigError(f"training: {key} expected true or false, received {values[key]!r}")
        _integer(values, "patience", 0, 10_000)
        _integer(values, "reduce_lr_patience", 0, 10_000)
        _number(values, "reduce_lr_factor", low=0.0, low_open=True, high=1.0, high_open=True)
        _number(values, "min_lr", low=0.0, high=10.0)
        return cls(**values)


# Settings added after the first file format: left out of a file while they hold these values.
OPTIONAL_DEFAULTS = {"schedule": "constant", "decay_rate": 0.5, "decay_epochs": 1, "monitor": "val_loss",
                     "early_stopping": False, "patience": 3, "restore_best_weights": False,
                     "reduce_lr_on_plateau": False, "reduce_lr_factor": 0.1, "reduce_lr_patience": 2, "min_lr": 0.0}


def _number(values: dict, key: str, low: float, high: float, low_open: bool = False, high_open: bool = False) -> None:
    if key not in values:
        return
    v = values[key]
    ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
          and (v > low if low_open else v >= low) and (v < high if high_open else v <= high))
    if not ok:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        hi = f"< {high:g}" if high_open else f"<= {high:g}"
        raise ConfigError(f"training: {key} expected a number {lo} and {hi}, received {v!r}")
    values[key] = float(v)


def _integer(values: dict, key: str, low: int, high: int) -> None:
    if key not in values:
        return
    v = values[key]
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
        raise ConfigError(f"training: {key} expected an integer from {low} to {high}, received {v!r}")
