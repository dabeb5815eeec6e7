"""Permute: reorder the axes of every example (dims count from 1, after the batch)."""

from __future__ import annotations

from ..shapes import Field, format_shape
from .arguments import Arg, ConfigError
from .base import Inference, Layer


class Permute(Layer):
    """keras.layers.Permute: output axis i is input axis dims[i-1].
    Never writes into its input x or the dy it is given."""

    class_name = "Permute"
    family = "reshaping"
    ARGS = (Arg("dims", "int_tuple", minimum=1,
                doc="the new order of the axes, counted from 1: [2, 1, 3] swaps rows and columns"),)
    POSITIONAL = 1
    explanation = ("Reorders the axes of the data, for example [2, 1, 3] swaps rows and "
                   "columns (a transpose of every feature map).")
    starter_config = {"dims": [2, 1, 3]}

    def _check_config(self) -> None:
        dims = self.config["dims"]
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ConfigError(f"{self.where}: dims {list(dims)} must list each of the axes 1 to {len(dims)} once, "
                              "in the new order (such as [2, 1, 3])")

    def _infer(self, input_shape, field):
        dims = self.config["dims"]
        rank = len(input_shape) - 1
        if len(dims) != rank:
            raise ConfigError(f"{self.where}: dims {list(dims)} reorders {len(dims)} axes, but the input "
                              f"{format_shape(input_shape)} has {rank} after the batch; list each of 1 to {rank} once")
        shape = (None, *(input_shape[d] for d in dims))
        moves = ", ".join(f"axis {i + 1} <- input axis {d} ({input_shape[d]})" for i, d in enumerate(dims))
        lines = (moves, "params = 0 (only rearranges values)", f"output shape = {format_shape(shape)}")
        return Inference(shape, (), lines, _field_through(field, input_shape, dims))

    def _setup(self, rng) -> None:
        dims = self.config["dims"]
        self._forward_axes = (0, *dims)
        inverse = [0] * len(dims)
        for i, d in enumerate(dims):
            inverse[d - 1] = i + 1
        self._backward_axes = (0, *inverse)

    def forward(self, x, ctx, training=False):
        y = ctx.buf("y", (x.shape[0], *self.built_output_shape[1:]))
        y[...] = x.transpose(self._forward_axes)  # a C-contiguous copy for the layers after
        ctx.saved["x_shape"] = x.shape
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        dx = ctx.buf("dx", ctx.saved["x_shape"])
        dx[...] = dy.transpose(self._backward_axes)
        return dx

    def describe(self):
        return "dims " + ", ".join(str(d) for d in self.config["dims"])


def _field_through(field: Field, input_shape: tuple, dims: tuple) -> Field:
    """Rows and columns stay image axes (kept or swapped): the field follows them. A
    spatial axis moved to the channels mixes positions: the whole map, as by Flatten."""
    if len(input_shape) != 4:
        return field
    if tuple(dims[:2]) == (1, 2):
        return field
    if tuple(dims[:2]) == (2, 1):
        return Field(field.size[::-1], field.jump[::-1], field.start[::-1])
    return field.whole(input_shape[1:3])
