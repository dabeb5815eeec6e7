"""ELU: exponential linear unit, smooth below zero."""

from __future__ import annotations

import numpy as np

from .arguments import Arg
from .elementwise_base import FLOAT32_MAX, ElementwiseLayer, activation_kernels, flat, number


class ELU(ElementwiseLayer):
    """keras.layers.ELU. Never writes into its input x or the dy it is given."""

    class_name = "ELU"
    ARGS = (Arg("alpha", "float", 1.0, minimum=-FLOAT32_MAX, maximum=FLOAT32_MAX,
                doc="the value negative inputs approach: y -> -alpha"),)
    POSITIONAL = 1
    explanation = ("Keeps positive values; negative ones curve smoothly towards -alpha, so "
                   "the average output stays closer to zero than with relu.")

    def rule(self) -> str:
        alpha = self.config["alpha"]
        return f"y = x if x > 0 else {'' if alpha == 1 else number(alpha) + '*'}(exp(x) - 1)"

    def _setup(self, rng) -> None:
        self._alpha = np.float32(self.config["alpha"])

    def forward(self, x, ctx, training=False):
        y = ctx.buf("y", x.shape)
        activation_kernels().elu_forward(flat(x), flat(y), self._alpha)
        ctx.saved["x"], ctx.saved["y"] = x, y
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        dx = ctx.buf("dx", dy.shape)
        activation_kernels().elu_backward(flat(ctx.saved["x"]), flat(ctx.saved["y"]), flat(dy), flat(dx), self._alpha)
        return dx

    def describe(self):
        return f"alpha {number(self.config['alpha'])}"
