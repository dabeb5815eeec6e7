"""Optimizers with Keras 3's update rules and defaults (keras/src/optimizers/*.py).

tinygrad style (nn/optim.py): the base class owns the parameter list, the step counter
and the slot arrays; ``step()`` walks the (param, grad) pairs and calls the optimizer's
``_update(i, param, grad, lr)``. Updates are in place, in float32, through numba kernels
(kernels/optimizer.py: nogil, parallel over blocks for large parameters), so a step
allocates nothing.
"""

from __future__ import annotations

import math

import numpy as np

from .schedules import LearningRateSchedule

_loaded: dict = {}


def _kernels(size: int):
    """(module, serial?) for an update of ``size`` elements; the kernels are imported on
    first use so that importing the engine never loads numba."""
    k = _loaded.get("k")
    if k is None:
        from .kernels import optimizer as k

        _loaded["k"] = k
    return k, size < k.PARALLEL_MIN


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)


class Optimizer:
    """Base optimizer: ``step(params, grads)`` updates every parameter in place.

    The parameter list is fixed by the first call (or ``build``); the slots (momentum,
    moments) are allocated then, zero-filled, one per parameter.
    """

    name = "optimizer"

    def __init__(self, learning_rate=0.001):
        self._schedule: LearningRateSchedule | None = None
        self.learning_rate = learning_rate
        self.iterations = 0
        self._params: list[np.ndarray] | None = None
        self._bad: list[np.ndarray] | None = None
        self._backups: list[np.ndarray] | None = None

    @property
    def learning_rate(self) -> float:
        """The rate the next step uses: the constant, or the schedule at ``iterations`` (Keras)."""
        if self._schedule is not None:
            return self._schedule(self.iterations)
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        # Every path (constructor, compile, the window's slider, set_learning_rate) goes
        # through here: a NaN/inf/<=0 rate would write NaN into every weight at the next step.
        if isinstance(value, LearningRateSchedule):
            self._schedule = value
            return
        if self._schedule is not None:
            # Keras refuses this too: a number would silently end the schedule.
            raise TypeError(f"{self.name}: this optimizer's learning rate is a {type(self._schedule).__name__} "
                            "schedule, so a number cannot be set; set a new schedule instead")
        self._learning_rate = _positive(value, "learning_rate")

    @property
    def schedule(self) -> LearningRateSchedule | None:
        """The learning-rate schedule, or None for a constant rate."""
        return self._schedule

    def build(self, params: list[np.ndarray]) -> None:
        self._params = list(params)
        self.iterations = 0
        self._build_slots(self._params)
        self._bad = None  # the updates' flags, made by the first step (it loads the kernels)
        self._backups = None  # where the updates copy the old values when the caller gives nowhere

    def _build_slots(self, params: list[np.ndarray]) -> None:
        """Allocate per-parameter state."""

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], backups: list[np.ndarray] | None = None) -> bool:
        """One update of every param from its grad (same order, same shapes); True when
        every new value is finite. backups (optional, shaped as params; the optimizer's own
        otherwise) receive the values from before the update, copied in the same pass, so
        a caller can take a step back whose result (or gradient: the rules carry a NaN or
        infinity into the parameter) was not finite."""
        if self._params is None or len(params) != len(self._params) or any(
                a is not b for a, b in zip(params, self._params)):
            self.build(params)
        if len(grads) != len(params):
            raise ValueError(f"{self.name}: {len(grads)} gradients for {len(params)} parameters")
        rate = self.learning_rate  # a schedule is evaluated here, once per step, not per weight
        self._begin_step(rate)
        lr = np.float32(rate)
        if self._bad is None:
            # one "a new value is NaN or infinite" flag per block of each update (kernels/optimizer.py)
            k = _kernels(0)[0]
            self._bad = [np.zeros(1 if _kernels(p.size)[1] else k.blocks(p.size), np.int32) for p in params]
        if backups is None:
            if self._backups is None:
                self._backups = [np.empty(p.size, np.float32) for p in params]
            backups = self._backups
        finite = True
        for i, (p, g) in enumerate(zip(params, grads)):
            if p.shape != g.shape:
                raise ValueError(f"{self.name}: gradient {i} has shape {g.shape}, its parameter {p.shape}")
            bad = self._bad[i]
            self._update(i, _flat(p), _flat(g), lr, _flat(backups[i]), bad)
            finite = finite and not bad.any()
        self.iterations += 1
        return finite

    def _begin_step(self, rate: float) -> None:
        """Per-step quantities shared by every parameter (Adam's bias-corrected step size)."""

    def _update(self, i: int, param: np.ndarray, grad: np.ndarray, lr: np.float32, backup: np.ndarray,
                bad: np.ndarray) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        if self._schedule is not None:
            return {"name": self.name, "learning_rate": {"class_name": type(self._schedule).__name__,
                                                          "config": self._schedule.get_config()}}
        return {"name": self.name, "learning_rate": self.learning_rate}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """var -= lr*g; with momentum: m = momentum*m - lr*g; var += m
    (nesterov: var += momentum*m - lr*g)."""

    name = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(learning_rate)
        if not (isinstance(momentum, (int, float)) and 0.0 <= momentum <= 1.0):
            raise ValueError(f"SGD: momentum must be a number from 0 to 1, received {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _build_slots(self, params):
        self._m = [np.zeros(p.size, np.float32) for p in params] if self.momentum > 0 else None

    def _update(self, i, param, grad, lr, backup, bad):
        k, serial = _kernels(param.size)
        if self._m is None:
            (k.sgd_update_serial if serial else k.sgd_update)(param, grad, backup, bad, lr)
        else:
            (k.sgd_momentum_update_serial if serial else k.sgd_momentum_update)(
                param, grad, self._m[i], backup, bad, lr, np.float32(self.momentum), self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras Adam: m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
    var -= lr*sqrt(1 - b2^t)/(1 - b1^t) * m / (sqrt(v) + epsilon)."""

    name = "adam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7):
        super().__init__(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        for name, v in (("beta_1", self.beta_1), ("beta_2", self.beta_2)):
            if not 0.0 <= v < 1.0:
                raise ValueError(f"Adam: {name} must be in [0, 1), received {v!r}")
        _check_epsilon("Adam", self.epsilon)

    def _build_slots(self, params):
        self._m = [np.zeros(p.size, np.float32) for p in params]
        self._v = [np.zeros(p.size, np.float32) for p in params]

    def _begin_step(self, rate):
        t = self.iterations + 1
        self._alpha = np.float32(rate * math.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t))

    def _update(self, i, param, grad, lr, backup, bad):
        k, serial = _kernels(param.size)
        (k.adam_update_serial if serial else k.adam_update)(
            param, grad, self._m[i], self._v[i], backup, bad, self._alpha, np.float32(self.beta_1),
            np.float32(self.beta_2), np.float32(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """Keras RMSprop: v = rho*v + (1 - rho)*g^2; inc = lr*g/sqrt(v + epsilon);
    with momentum: mom = momentum*mom + inc; var -= mom, else var -= inc."""

    name = "rmsprop"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7):
        super().__init__(learning_rate)
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        if not 0.0 <= self.rho < 1.0:
            raise ValueError(f"RMSprop: rho must be in [0, 1), received {rho!r}")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"RMSprop: momentum must be a number from 0 to 1, received {momentum!r}")
        _check_epsilon("RMSprop", self.epsilon)

    def _build_slots(self, params):
        self._v = [np.zeros(p.size, np.float32) for p in params]
        self._mom = [np.zeros(p.size if self.momentum > 0 else 0, np.float32) for p in params]

    def _update(self, i, param, grad, lr, backup, bad):
        k, serial = _kernels(param.size)
        (k.rmsprop_update_serial if serial else k.rmsprop_update)(
            param, grad, self._v[i], self._mom[i], backup, bad, lr, np.float32(self.rho),
            np.float32(self.momentum), np.float32(self.epsilon), self.momentum > 0)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon}


def _check_epsilon(name: str, epsilon: float) -> None:
    # NaN compares false with everything: written so that it is refused too.
    if not (math.isfinite(epsilon) and epsilon >= 0.0):
        raise ValueError(f"{name}: epsilon must be a small non-negative number such as 1e-07, received {epsilon!r}")


def _positive(value, what: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{what} must be a positive number (finite, such as 0.001), received {value!r}")
    return float(value)


_OPTIMIZERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def get(identifier, **kwargs) -> Optimizer:
    """An optimizer from a Keras name ("adam", "SGD", "rmsprop") or an Optimizer instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()](**kwargs)
    raise ValueError(f"unknown optimizer {identifier!r}; VisualCNN knows {', '.join(_OPTIMIZERS)}")


NAMES = tuple(_OPTIMIZERS)

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "get", "NAMES"]
