"""GaussianNoise: additive zero-mean noise while training."""

from __future__ import annotations

import math

import numpy as np

from .arguments import Arg
from .training_only import TrainingOnlyLayer, kernel_module, pick


class GaussianNoise(TrainingOnlyLayer):
    """While training, y = x + noise, noise ~ Normal(0, stddev) drawn per value
    (keras/src/layers/regularization/gaussian_noise.py; Keras requires 0 <= stddev <= 1);
    the normal values come from kernels/noise.py's counter-based ziggurat.
    The gradient passes through unchanged (dy is returned as dx, never written into)."""

    class_name = "GaussianNoise"
    family = "regularisation"
    ARGS = (Arg("stddev", "float", minimum=0.0, maximum=1.0, doc="standard deviation of the added noise"),
            Arg("seed", "seed", None, doc="random seed for the noise"))
    POSITIONAL = 1
    explanation = ("While training, adds a little random noise to every value, so the network "
                   "learns features that survive small changes; does nothing when predicting.")
    starter_config = {"stddev": 0.1}

    @property
    def training_line(self) -> str:
        return (f"adds noise drawn from a normal distribution with standard deviation "
                f"{self.config['stddev']:g} to every value")

    def forward(self, x, ctx, training=False):
        stddev = self.config["stddev"]
        if not training or stddev == 0.0:
            return x
        y = ctx.buf("y", x.shape)
        # one key per call; the kernel computes the normal value of each position from
        # (key, position), so no noise array is drawn or kept (backward needs none)
        key = np.uint64(self.random(ctx).integers(2**63))
        pick(kernel_module("noise"), "add_normal_noise")(x.reshape(-1), key, np.float32(stddev), y.reshape(-1))
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        return dy if need_dx else None  # d(x + noise)/dx = 1

    def buffer_values(self, input_shape, output_shape, training):
        # training: y only (the gradient passes through); predict: the input itself
        return math.prod(output_shape[1:]) if training else 0

    def describe(self):
        return f"stddev {self.config['stddev']:g}"
