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

    def with_initial_rate(self, rate: float) -> "LearningRateSchedule":
        """The same curve started at `rate` (the window's learning-rate box during a run)."""
        config = self.get_config()
        config["initial_learning_rate"] = rate
        return type(self).from_config(config)

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


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] while step <= boundaries[0], values[1] while boundaries[0] < step <=
    boundaries[1], ..., values[-1] after the last boundary (Keras's rule: a boundary step
    still gets the value before it)."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise ValueError("PiecewiseConstantDecay: `boundaries` and `values` must be lists")
        if len(values) != len(boundaries) + 1:
            raise ValueError("PiecewiseConstantDecay: the length of `values` must be the length of `boundaries` "
                             f"plus 1. Received: boundaries={list(boundaries)!r}, values={list(values)!r}")
        for b in boundaries:
            _number("PiecewiseConstantDecay", "boundaries", b)
        for v in values:
            _number("PiecewiseConstantDecay", "values", v)
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: `boundaries` must increase. Received: {list(boundaries)!r}")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step) -> float:
        step = _step("PiecewiseConstantDecay", step)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= _F(boundary):
                return float(_F(value))
        return float(_F(self.values[-1]))

    @property
    def initial_learning_rate(self) -> float:
        """The first value (what a recipe's settings call the learning rate)."""
        return self.values[0]

    def with_initial_rate(self, rate: float) -> "PiecewiseConstantDecay":
        scale = rate / self.values[0] if self.values[0] else 0.0
        return PiecewiseConstantDecay(self.boundaries, [float(_F(v * scale)) for v in self.values], self.name)

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


# --- the recipe's schedules (TrainingConfig.schedule) ---------------------------------------

def recipe_schedule(config, steps_per_epoch: int, total_steps: int) -> LearningRateSchedule | None:
    """The schedule a TrainingConfig asks for over a run of total_steps updates of
    steps_per_epoch each, or None for a constant rate. The ONE rule for the run
    (recipe.apply_schedule) and for the curve the Train tab plots before it.

    - "step": PiecewiseConstantDecay: the rate is multiplied by decay_rate at the start of
      every decay_epochs-th epoch (boundaries at the last step of each period, Keras's rule);
    - "exponential": ExponentialDecay(decay_steps = decay_epochs epochs, decay_rate): the
      same factor per decay_epochs, smoothly, step by step;
    - "cosine": CosineDecay(decay_steps=total_steps): down to 0 at the run's last step.
    The step and exponential curves do not depend on the run's length, so a run continued
    later (engine/resume.py) follows exactly the curve an uninterrupted run would have.
    """
    kind = config.schedule
    rate = config.learning_rate
    period = max(1, int(config.decay_epochs) * int(steps_per_epoch))
    if kind == "constant":
        return None
    if kind == "cosine":
        return CosineDecay(rate, decay_steps=max(1, int(total_steps)))
    if kind == "exponential":
        return ExponentialDecay(rate, decay_steps=period, decay_rate=config.decay_rate)
    if kind == "step":
        drops = max(0, (max(1, int(total_steps)) - 1) // period)
        boundaries = [k * period - 1 for k in range(1, drops + 1)]
        values = [float(_F(rate) * np.power(_F(config.decay_rate), _F(k))) for k in range(drops + 1)]
        return PiecewiseConstantDecay(boundaries, values)
    raise ValueError(f"unknown learning-rate schedule {kind!r}; use constant, step, exponential or cosine")


def learning_rate_curve(config, steps_per_epoch: int, epochs: int | None = None,
                        first_epoch: int = 0, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(x in epochs, rate) for every update of a run: what the Train tab draws before the
    run starts. x of step s (0-based over the whole run) is its end, (s + 1) / steps_per_epoch.
    first_epoch: epochs already done (a continued run plots from there)."""
    epochs = config.epochs if epochs is None else epochs
    steps_per_epoch = max(1, int(steps_per_epoch))
    total = (first_epoch + epochs) * steps_per_epoch
    schedule = recipe_schedule(config, steps_per_epoch, total)
    steps = np.arange(first_epoch * steps_per_epoch, total)
    if steps.size > max_points:  # a long run: evenly spread steps (the first and last kept) are enough to draw
        steps = np.unique(np.linspace(steps[0], steps[-1], max_points).round().astype(np.int64))
    if schedule is None:
        rates = np.full(steps.size, float(config.learning_rate))
    else:
        rates = np.array([schedule(int(s)) for s in steps], float)
    return (steps + 1) / steps_per_epoch, rates


__all__ = ["LearningRateSchedule", "CosineDecay", "ExponentialDecay", "PiecewiseConstantDecay", "recipe_schedule",
           "learning_rate_curve"]
