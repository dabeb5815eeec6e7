"""Weight initializers by Keras name, seeded, float32.

Covers every entry of ``layers.arguments.INITIALIZERS``. Fan rules follow Keras
(keras/src/initializers/random_initializers.py ``compute_fans``): for a kernel of shape
(kh, kw, a, b) the receptive field kh*kw multiplies both fans, fan_in = kh*kw*a,
fan_out = kh*kw*b; for (a, b), fan_in = a, fan_out = b. Keras's random streams are not
reproduced bit for bit (different generators); distributions and bounds are.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .layers.arguments import INITIALIZERS

# Keras's VarianceScaling divides the truncated-normal stddev by this so the *truncated*
# distribution (cut at 2 stddev) has the requested variance.
_TRUNCATION_CORRECTION = 0.87962566103423978


def compute_fans(shape: tuple[int, ...]) -> tuple[float, float]:
    """(fan_in, fan_out) by Keras's rule."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


def _truncated_normal(rng: np.random.Generator, shape, mean: float, stddev: float) -> np.ndarray:
    """Normal(mean, stddev) with values beyond 2 stddev redrawn (as tf.random.truncated_normal)."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * stddev + mean


def _variance_scaling(rng, shape, scale: float, mode: str, distribution: str) -> np.ndarray:
    fan_in, fan_out = compute_fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    variance = scale / max(1.0, n)
    if distribution == "uniform":
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape)
    return _truncated_normal(rng, shape, 0.0, math.sqrt(variance) / _TRUNCATION_CORRECTION)


_VARIANCE_SCALING = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "normal"),
}
_SNAKE_DEFAULTS = {snake: params for snake, params in INITIALIZERS.values()}
_CLASS_BY_SNAKE = {snake: cls for cls, (snake, _) in INITIALIZERS.items()}


def initialize(spec: Any, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A new C-contiguous float32 array of ``shape`` drawn from ``spec``.

    spec: a snake name ("glorot_uniform") or {"class_name": "RandomNormal", "config": {...}}
    as normalised by the layer config. A "seed" in the config makes that weight
    independent of ``rng`` (the model-level seeded generator).
    """
    if isinstance(spec, dict):
        snake, defaults = INITIALIZERS[spec["class_name"]]
        params = {**defaults, **(spec.get("config") or {})}
    else:
        if spec not in _SNAKE_DEFAULTS:
            raise ValueError(f"unknown initializer {spec!r}; known: {', '.join(sorted(_SNAKE_DEFAULTS))}")
        snake, params = spec, dict(_SNAKE_DEFAULTS[spec])
    if params.get("seed") is not None:
        rng = np.random.default_rng(int(params["seed"]))
    shape = tuple(int(s) for s in shape)
    if snake in _VARIANCE_SCALING:
        values = _variance_scaling(rng, shape, *_VARIANCE_SCALING[snake])
    elif snake == "zeros":
        values = np.zeros(shape)
    elif snake == "ones":
        values = np.ones(shape)
    elif snake == "constant":
        values = np.full(shape, params["value"])
    elif snake == "random_normal":
        values = rng.normal(params["mean"], params["stddev"], shape)
    elif snake == "random_uniform":
        values = rng.uniform(params["minval"], params["maxval"], shape)
    elif snake == "truncated_normal":
        values = _truncated_normal(rng, shape, params["mean"], params["stddev"])
    else:  # pragma: no cover - INITIALIZERS and this table are kept in step by a test
        raise ValueError(f"initializer {snake!r} is not implemented")
    return np.ascontiguousarray(values, dtype=np.float32)


NAMES = tuple(_CLASS_BY_SNAKE)

__all__ = ["compute_fans", "initialize", "NAMES"]
