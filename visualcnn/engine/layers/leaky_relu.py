"""LeakyReLU: relu with a small slope for negative values (Keras 3 default 0.3)."""

from __future__ import annotations

import math

import numpy as np

from .arguments import Arg, ConfigError
from .elementwise_base import FLOAT32_MAX, ElementwiseLayer, activation_kernels, flat, number


class LeakyReLU(ElementwiseLayer):
    """keras.layers.LeakyReLU. Never writes into its input x or the dy it is given."""

    class_name = "LeakyReLU"
    ARGS = (Arg("negative_slope", "float", 0.3, minimum=0.0, maximum=FLOAT32_MAX, doc="slope for negative values"),)
    POSITIONAL = 1
    explanation = ("Like relu, but negative values are multiplied by a small slope instead of "
                   "set to zero, so a unit never goes completely silent.")

    def __init__(self, *args, **kwargs):
        # Keras 2 files (and Keras 3, with a deprecation warning) call the slope `alpha`.
        if "alpha" in kwargs:
            if args or "negative_slope" in kwargs:
                name = kwargs.get("name")
                where = f"{self.class_name} '{name}'" if isinstance(name, str) and name else self.class_name
                raise ConfigError(f"{where}: give the slope once, as 'negative_slope' (Keras 2 called it 'alpha')")
            kwargs["negative_slope"] = kwargs.pop("alpha")
        super().__init__(*args, **kwargs)

    def rule(self) -> str:
        return f"y = x if x > 0 else {number(self.config['negative_slope'])}*x"

    def _setup(self, rng) -> None:
        # the general relu kernel: no cap, threshold 0
        self._params = (np.float32(math.inf), np.float32(self.config["negative_slope"]), np.float32(0.0))

    def forward(self, x, ctx, training=False):
        y = ctx.buf("y", x.shape)
        activation_kernels().relu_forward(flat(x), flat(y), *self._params)
        ctx.saved["x"] = x
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        dx = ctx.buf("dx", dy.shape)
        activation_kernels().relu_backward(flat(ctx.saved["x"]), flat(dy), flat(dx), *self._params)
        return dx

    def describe(self):
        return f"slope {number(self.config['negative_slope'])}"
