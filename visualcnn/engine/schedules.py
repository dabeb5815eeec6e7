"""Learning-rate schedules with Keras 3's formulas and arguments
(keras/src/optimizers/schedules/learning_rate_schedule.py).

A schedule is a callable: ``schedule(step)`` is the learning rate for the optimizer's
``step``-th update (its ``iterations`` before the update, counted from 0), as in Keras.
An optimizer given a schedule as ``learning_rate`` calls it once per step, in Python, and
hands the number to the same update kernels as a constant rate.

Keras computes in the initial rate's dtype, float32; so do these, so a rate here equals
the one Keras's optimizer would use to the last bit or within one float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np

_F = np.float32


class LearningRateSchedule:
    """Base class: ``__call__(step) -> float``, ``get_config`` / ``from_config``."""

    def __call__(self, step) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> "LearningRateSchedule":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _number(owner: str, what: str, value, *, positive: bool = False) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value) or (value <= 0 if positive else value < 0)):
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"{owner}: `{what}` must be a finite number {need}. Received: {what}={value!r}")
    return value


def _step(owner: str, step) -> np.float32:
    if isinstance(step, bool) or not isinstance(step, (int, float, np.integer, np.floating)) or not step >= 0:
        raise ValueError(f"{owner}: the step must be a number >= 0, received {step!r}")
    return _F(step)


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps); with staircase the
    exponent is floored, so the rate drops in steps every decay_steps updates."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        _number("ExponentialDecay", "initial_learning_rate", initial_learning_rate)
        _number("ExponentialDecay", "decay_steps", decay_steps, positive=True)
        _number("ExponentialDecay", "decay_rate", decay_rate)
        if not isinstance(staircase, (bool, np.bool_)):
            raise ValueError(f"ExponentialDecay: `staircase` must be True or False. Received: staircase={staircase!r}")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step) -> float:
        p = _step("ExponentialDecay", step) / _F(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return float(_F(self.initial_learning_rate) * np.power(_F(self.decay_rate), p))

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Half a cosine from initial_learning_rate down to alpha * initial_learning_rate
    over decay_steps updates, then constant (Loshchilov & Hutter, SGDR, 2017):

        decayed = (1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha
        rate = initial_learning_rate * decayed

    With warmup_target, the rate first rises linearly from initial_learning_rate to
    warmup_target over warmup_steps updates and the cosine then starts from warmup_target.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        _number("CosineDecay", "initial_learning_rate", initial_learning_rate)
        _number("CosineDecay", "decay_steps", decay_steps, positive=True)
        _number("CosineDecay", "alpha", alpha)
        if warmup_target is not None:
            _number("CosineDecay", "warmup_target", warmup_target)
        _number("CosineDecay", "warmup_steps", warmup_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _decay(self, step: np.float32, decay_steps: np.float32, decay_from: np.float32) -> np.float32:
        completed_fraction = step / decay_steps
        cosine_decayed = _F(0.5) * (_F(1.0) + np.cos(_F(math.pi) * completed_fraction))
        decayed = (_F(1.0) - _F(self.alpha)) * cosine_decayed + _F(self.alpha)
        return decay_from * decayed

    def __call__(self, step) -> float:
        step = _step("CosineDecay", step)
        initial = _F(self.initial_learning_rate)
        decay_steps = _F(self.decay_steps)
        if self.warmup_target is None:
            return float(self._decay(min(step, decay_steps), decay_steps, initial))
        target, warmup_steps = _F(self.warmup_target), _F(self.warmup_steps)
        step = min(step, decay_steps + warmup_steps)
        if step < warmup_steps:
            return float((target - initial) * (step / warmup_steps) + initial)
        return float(self._decay(step - warmup_steps, decay_steps, target))

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


__all__ = ["LearningRateSchedule", "CosineDecay", "ExponentialDecay"]
