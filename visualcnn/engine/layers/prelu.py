"""PReLU: a leaky relu whose negative slope is learned (one per position, or shared)."""

from __future__ import annotations

import math

import numpy as np

from ..shapes import format_shape
from .arguments import Arg, ConfigError
from .base import Inference, WeightSpec, weight_line
from .elementwise_base import ElementwiseLayer, activation_kernels

_AXIS_NAMES = {4: ("height", "width", "channels")}
_NO_DX = np.empty((0, 0), np.float32)


class PReLU(ElementwiseLayer):
    """keras.layers.PReLU: y = x for x > 0, alpha * x otherwise, alpha learned.

    alpha has the input's shape without the batch axis, with a 1 on every shared axis
    (Keras counts axes from 1 = the first after the batch; shared_axes=[1, 2] on images
    learns one slope per channel). Never writes into its input x or the dy it is given.
    """

    class_name = "PReLU"
    ARGS = (Arg("alpha_initializer", "initializer", "zeros", doc="starting slopes (zeros: starts as relu)"),
            Arg("shared_axes", "optional_int_tuple", None, minimum=1,
                doc="axes sharing one slope, counted from 1 after the batch; [1, 2]: one slope per channel"))
    POSITIONAL = 1
    explanation = ("Like leaky relu, but the slope for negative values is learned during "
                   "training (one per channel when the image axes are shared).")
    starter_config = {"shared_axes": [1, 2]}

    def __init__(self, *args, **kwargs):
        # Keras accepts an empty list (nothing shared) and writes it back as []
        if isinstance(kwargs.get("shared_axes"), (list, tuple)) and not kwargs["shared_axes"]:
            kwargs["shared_axes"] = None
        super().__init__(*args, **kwargs)

    def rule(self) -> str:
        return "y = x if x > 0 else alpha*x (alpha learned)"

    def _alpha_shape(self, input_shape: tuple) -> tuple:
        rank = len(input_shape) - 1
        shared = self.config["shared_axes"] or ()
        bad = [a for a in shared if a > rank]
        if bad:
            raise ConfigError(f"{self.where}: shared_axes {list(shared)} names axis {bad[0]}, but the input "
                              f"{format_shape(input_shape)} has axes 1 to {rank} after the batch; share only those")
        return tuple(1 if i + 1 in shared else d for i, d in enumerate(input_shape[1:]))

    def _infer(self, input_shape, field):
        shape = self._alpha_shape(input_shape)
        size = math.prod(shape)
        shared = self.config["shared_axes"]
        names = _AXIS_NAMES.get(len(input_shape))
        if shared:
            which = ", ".join(names[a - 1] if names else str(a) for a in sorted(set(shared)))
            how = f"alpha shape {shape}: one slope shared along {which}"
        else:
            how = f"alpha shape {shape}: one slope per input value"
        lines = (f"every value: {self.rule()}", how, "shape unchanged",
                 weight_line([("*".join(str(d) for d in shape), size)], size),
                 f"output shape = {format_shape(input_shape)}")
        return Inference(input_shape, (WeightSpec("alpha", shape),), lines, field)

    def workspace_values(self, input_shape, output_shape, batch_size, threads):
        # alpha expanded to one example's shape, and its gradient before the shared axes are summed
        return 2 * math.prod(input_shape[1:])

    def _setup(self, rng) -> None:
        per_example = self.built_input_shape[1:]
        # the axes alpha is shared along, as numpy axes of one example's gradient (summed over)
        self._shared = tuple(i for i, (a, d) in enumerate(zip(self.weight_specs[0].shape, per_example)) if a != d)

    def _slopes(self, ctx):
        """alpha broadcast to one example's shape (a few thousand values, once per call):
        the kernels then run a plain vectorised loop whatever axes are shared."""
        slopes = ctx.buf("slopes", self.built_input_shape[1:])
        slopes[...] = self.weights[0]
        return slopes.reshape(-1)

    def forward(self, x, ctx, training=False):
        y = ctx.buf("y", x.shape)
        n = x.shape[0]
        activation_kernels().prelu_forward(x.reshape(n, -1), self._slopes(ctx), y.reshape(n, -1))
        ctx.saved["x"] = x
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        x = ctx.saved["x"]
        n = x.shape[0]
        alpha = self.weights[0]
        dslopes = ctx.buf("dslopes", self.built_input_shape[1:])
        dx = ctx.buf("dx", x.shape) if need_dx else None
        dx2 = dx.reshape(n, -1) if need_dx else _NO_DX  # the kernel does not touch it then
        activation_kernels().prelu_backward(x.reshape(n, -1), dy.reshape(n, -1), self._slopes(ctx),
                                            dslopes.reshape(-1), dx2, need_dx)
        grad = ctx.grad("alpha", alpha.shape)
        if self._shared:
            np.sum(dslopes, axis=self._shared, keepdims=True, out=grad)
        else:
            grad[...] = dslopes
        return dx

    def describe(self):
        shared = self.config["shared_axes"]
        return "one slope per channel" if shared and sorted(set(shared)) == [1, 2] else (
            f"shared axes {list(shared)}" if shared else "one slope per value")
