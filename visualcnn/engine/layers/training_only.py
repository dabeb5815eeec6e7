"""The shared part of the layers that act only while training (SpatialDropout2D,
GaussianNoise, and the augmentation layers RandomFlip ... RandomContrast).

They take their random numbers as Dropout does (core.py): a numpy generator seeded by
the layer's `seed`, or by the model's generator when `seed` is null; the training
generator (training.py ``_reseed_dropout``) reseeds every layer with a ``reseed`` method
at the start of fit, so a run is reproducible given the model seed. When predicting they
return their input unchanged (Keras: ``training=False`` is the identity).
"""

from __future__ import annotations

import importlib
import math

import numpy as np

from ..shapes import format_shape
from .base import Inference, Layer

_PARALLEL_MIN = 1 << 16  # values; below this one core finishes before the workers wake


class TrainingOnlyLayer(Layer):
    """Base of a random, training-only layer: same shape out, no weights, identity when
    predicting. Subclasses set `training_line` (what training does, for the derivation)."""

    training_line = ""

    def _infer(self, input_shape, field):
        lines = (f"while training: {self.training_line}", "when predicting: passes the input through unchanged",
                 "shape unchanged", "params = 0 (nothing to learn)", f"output shape = {format_shape(input_shape)}")
        return Inference(input_shape, (), lines, field)

    def _macs(self, input_shape, output_shape):
        return 0, "MACs = 0 when predicting (passes the input through)"

    def _setup(self, rng) -> None:
        seed = self.config["seed"]
        self._rng = np.random.default_rng(int(rng.integers(2**63)) if seed is None else seed)

    def reseed(self, seed: int) -> None:
        """Restart the random numbers (the training generator calls this at fit)."""
        self._rng = np.random.default_rng(seed)

    def random(self, ctx) -> np.random.Generator:
        """The generator a training forward draws from: the layer's own, or a preview's."""
        rng = getattr(ctx, "rng", None)
        return self._rng if rng is None else rng

    def preview(self, x, seed: int = 0) -> np.ndarray:
        """What training passes on for the batch x, with the random numbers of `seed`: lets
        the window show a student an augmented example. The layer's own generator is not
        touched and the kernels run serially, so this is safe while training runs."""
        from ..parallel import serial_inference
        from .base import Context

        ctx = Context()
        ctx.rng = np.random.default_rng(seed)
        with serial_inference():
            return np.array(self.forward(np.ascontiguousarray(x, np.float32), ctx, training=True))

    def buffer_values(self, input_shape, output_shape, training):
        # training: y and dx; predict: passes its input through
        return math.prod(output_shape[1:]) + math.prod(input_shape[1:]) if training else 0


def serial(k, size: int | None = None) -> bool:
    """Serial kernels for a second thread (parallel.use_serial()) and, when size is given,
    for arrays too small to be worth waking the workers."""
    return k.parallel.use_serial() or (size is not None and size < _PARALLEL_MIN)


def pick(k, name: str, size: int | None = None):
    """The kernel `name` of module k, or its ``_serial`` twin when `serial` says so."""
    return getattr(k, name + "_serial") if serial(k, size) else getattr(k, name)


_loaded: dict = {}


def kernel_module(name: str):
    """visualcnn.engine.kernels.<name>, imported on first use (numba loads lazily) and
    cached (a single image spends microseconds per layer)."""
    module = _loaded.get(name)
    if module is None:
        module = importlib.import_module(f"visualcnn.engine.kernels.{name}")
        _loaded[name] = module
    return module
