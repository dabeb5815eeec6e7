"""ReLU as a layer, with Keras's options: max_value, negative_slope, threshold."""

from __future__ import annotations

import math

import numpy as np

from .arguments import Arg
from .elementwise_base import FLOAT32_MAX, ElementwiseLayer, activation_kernels, flat, number


class ReluKernelLayer(ElementwiseLayer):
    """A layer whose values go through the general relu kernel (cap, slope below a
    threshold): ReLU and LeakyReLU share its forward and backward. Never writes into its
    input x or the dy it is given. It sets no class_name (the registry skips it)."""

    is_relu = False  # ReLU says when it is a plain relu another layer may apply for it

    def relu_params(self) -> tuple:
        """(cap or None, slope below the threshold, threshold) from the layer's config."""
        raise NotImplementedError

    def _setup(self, rng) -> None:
        cap, slope, threshold = self.relu_params()
        self._params = (np.float32(math.inf if cap is None else cap), np.float32(slope), np.float32(threshold))

    def forward(self, x, ctx, training=False):
        if self.is_relu and getattr(ctx, "fuse_relu", False):
            # the layer before applied this relu and applies its derivative (see Activation)
            ctx.saved["passthrough"] = True
            return x
        ctx.saved["passthrough"] = False
        y = ctx.buf("y", x.shape)
        activation_kernels().relu_forward(flat(x), flat(y), *self._params)
        ctx.saved["x"] = x
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        if ctx.saved["passthrough"]:
            return dy
        dx = ctx.buf("dx", dy.shape)
        activation_kernels().relu_backward(flat(ctx.saved["x"]), flat(dy), flat(dx), *self._params)
        return dx


class ReLU(ReluKernelLayer):
    """keras.layers.ReLU. Never writes into its input x or the dy it is given."""

    class_name = "ReLU"
    ARGS = (Arg("max_value", "optional_float", None, minimum=0.0, maximum=FLOAT32_MAX,
                doc="cap on the output (null: no cap; 6 gives relu6)"),
            Arg("negative_slope", "float", 0.0, minimum=0.0, maximum=FLOAT32_MAX,
                doc="slope below the threshold (0: plain relu)"),
            Arg("threshold", "float", 0.0, minimum=0.0, maximum=FLOAT32_MAX,
                doc="values at or below it count as negative"))
    POSITIONAL = 3
    explanation = "Keeps positive values and sets negative ones to zero: the most common activation."

    def rule(self) -> str:
        c = self.config
        t = number(c["threshold"]) if c["threshold"] else "0"
        above = "x" if c["max_value"] is None else f"min(x, {number(c['max_value'])})"
        below = "0"
        if c["negative_slope"]:
            slope = number(c["negative_slope"])
            below = f"{slope}*x" if not c["threshold"] else f"{slope}*(x - {t})"
        return f"y = {above} if x > {t} else {below}"

    @property
    def is_relu(self) -> bool:
        """Plain relu: a Conv2D/Dense/BatchNormalization before it may apply it in its own
        pass (model._relu_fusions), as for Activation('relu')."""
        c = self.config
        return c["max_value"] is None and c["negative_slope"] == 0.0 and c["threshold"] == 0.0

    def relu_params(self) -> tuple:
        c = self.config
        return c["max_value"], c["negative_slope"], c["threshold"]

    def describe(self):
        c = self.config
        parts = [] if c["max_value"] is None else [f"max {number(c['max_value'])}"]
        if c["negative_slope"]:
            parts.append(f"slope {number(c['negative_slope'])}")
        if c["threshold"]:
            parts.append(f"threshold {number(c['threshold'])}")
        return ", ".join(parts) or "relu"
