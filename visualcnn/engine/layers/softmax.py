"""Softmax as a layer: turns scores into probabilities along one axis (or several)."""

from __future__ import annotations

import numpy as np

from ..shapes import Field, format_shape
from .arguments import Arg, ConfigError
from .base import Inference
from .elementwise_base import ElementwiseLayer


class Softmax(ElementwiseLayer):
    """keras.layers.Softmax: y = exp(x) / sum(exp(x)) over `axis`.

    The last axis (the usual case) runs the row kernels of engine/activations.py; any
    other axis, or several, takes a numpy path. The batch axis is refused: Keras allows
    it, but then one example's output would depend on which others share its batch.
    Never writes into its input x or the dy it is given.
    """

    class_name = "Softmax"
    ARGS = (Arg("axis", "axis_list", -1, doc="the axis (or axes) whose values sum to 1"),)
    POSITIONAL = 1
    explanation = ("Turns a row of scores into probabilities: all positive, summing to 1. "
                   "Usually the last layer of a classifier.")

    def _axes(self, rank: int) -> tuple[int, ...]:
        """The configured axes as positive indices into a batch shape of `rank` axes."""
        given = self.config["axis"]
        given = (given,) if isinstance(given, int) else given
        axes = []
        for a in given:
            if not -rank <= a < rank:
                raise ConfigError(f"{self.where}: axis {a} is out of range for an input with {rank} axes "
                                  f"(including the batch axis); use -1 for the last axis")
            a %= rank
            if a == 0:
                raise ConfigError(f"{self.where}: axis {given[0] if len(given) == 1 else list(given)} is the batch "
                                  "axis; a softmax mixes values of one example only (use -1 for the last axis)")
            if a in axes:
                raise ConfigError(f"{self.where}: axis {a} is listed twice in {list(given)}")
            axes.append(a)
        return tuple(sorted(axes))

    def rule(self) -> str:
        return "y = exp(x) / sum of exp over the axis"

    def _infer(self, input_shape, field):
        axes = self._axes(len(input_shape))
        names = ("batch", "height", "width", "channels") if len(input_shape) == 4 else None
        which = ", ".join(names[a] if names else f"axis {a}" for a in axes)
        lines = (f"y = exp(x) / sum of exp(x) over {which}: each such group sums to 1",
                 "shape unchanged", "params = 0 (nothing to learn)", f"output shape = {format_shape(input_shape)}")
        return Inference(input_shape, (), lines, _field_through(field, axes, input_shape))

    def _setup(self, rng) -> None:
        from .. import activations

        rank = len(self.built_input_shape)
        self._axis = self._axes(rank)
        # the last axis alone: the (rows, classes) kernels, one pass each way
        self._rows = activations.get("softmax") if self._axis == (rank - 1,) else None

    def forward(self, x, ctx, training=False):
        y = ctx.buf("y", x.shape)
        if self._rows is not None:
            self._rows.forward(x, y)
        else:
            # in y's buffer throughout: no full-size temporaries
            np.subtract(x, x.max(axis=self._axis, keepdims=True), out=y)  # no overflow in exp
            np.exp(y, out=y)
            y /= y.sum(axis=self._axis, keepdims=True)
        ctx.saved["y"] = y
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        y = ctx.saved["y"]
        dx = ctx.buf("dx", dy.shape)
        if self._rows is not None:
            self._rows.backward(None, y, dy, dx)
        else:
            # dx = y * (dy - sum(dy * y)), built in dx's buffer
            np.multiply(dy, y, out=dx)
            total = dx.sum(axis=self._axis, keepdims=True)
            np.subtract(dy, total, out=dx)
            dx *= y
        return dx

    def gives_probabilities(self, output_shape: tuple) -> bool:
        """True when it normalises the last axis alone: each row of class scores becomes
        probabilities, which the crossentropy losses expect (engine/recipe.py asks)."""
        try:
            return self._axes(len(output_shape)) == (len(output_shape) - 1,)
        except ConfigError:
            return False

    def describe(self):
        axis = self.config["axis"]
        return f"axis {axis}" if isinstance(axis, int) else f"axes {list(axis)}"


def _field_through(field: Field, axes: tuple[int, ...], input_shape: tuple) -> Field:
    """A softmax over a spatial axis of an image mixes every position along it: the field
    grows to the whole height (axis 1) and/or width (axis 2); over channels it is unchanged."""
    if len(input_shape) != 4 or not {1, 2} & set(axes):
        return field
    whole = field.whole((input_shape[1], input_shape[2]))
    pick = [whole if a + 1 in axes else field for a in (0, 1)]
    return Field(tuple(p.size[i] for i, p in enumerate(pick)), field.jump,
                 tuple(p.start[i] for i, p in enumerate(pick)))
