"""Cropping2D: cut rows and columns off the edges of every feature map."""

from __future__ import annotations

from ..shapes import Field, _tidy_pair, format_shape
from .arguments import Arg, ConfigError
from .base import Inference, Layer
from .zero_padding2d import MAX_SIDE, describe_sides, embed


class Cropping2D(Layer):
    """keras.layers.Cropping2D (channels last). Never writes into its input x or the dy
    it is given."""

    class_name = "Cropping2D"
    family = "reshaping"
    image_input = True
    ARGS = (Arg("cropping", "padding_2d", 0, minimum=0, maximum=MAX_SIDE,
                doc="rows/columns cut off: n, [rows, cols] or [[top, bottom], [left, right]]"),)
    POSITIONAL = 1
    explanation = ("Cuts rows and columns off the edges of each feature map, for example to "
                   "make two branches the same size before they are added.")
    starter_config = {"cropping": 1}

    def _infer(self, input_shape, field):
        (top, bottom), (left, right) = self.config["cropping"]
        h, w, ch = input_shape[1:]
        for axis, size, a, b in (("rows", h, top, bottom), ("columns", w, left, right)):
            if a + b >= size:
                raise ConfigError(f"{self.where}: cropping {a} + {b} {axis} leaves nothing of the input's {size} "
                                  f"{axis} ({format_shape(input_shape)}); crop fewer than {size} {axis} in total")
        shape = (None, h - top - bottom, w - left - right, ch)
        lines = (f"out_h = {h} - {top} - {bottom} = {shape[1]}", f"out_w = {w} - {left} - {right} = {shape[2]}",
                 f"channels unchanged = {ch}", "params = 0 (drops edge values; nothing to learn)",
                 f"output shape = {format_shape(shape)}")
        start = (field.start[0] + top * field.jump[0], field.start[1] + left * field.jump[1])
        return Inference(shape, (), lines, Field(field.size, field.jump, _tidy_pair(start)))

    def forward(self, x, ctx, training=False):
        (top, bottom), (left, right) = self.config["cropping"]
        n, h, w, ch = x.shape
        y = ctx.buf("y", (n, h - top - bottom, w - left - right, ch))
        y[...] = x[:, top:h - bottom, left:w - right]  # a copy: the layers after take C-contiguous arrays
        ctx.saved["x_shape"] = x.shape
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        (top, _), (left, _) = self.config["cropping"]
        # the cut-off edges did not reach the output: zero gradient there
        return embed(ctx.buf("dx", ctx.saved["x_shape"]), dy, top, left)

    def describe(self):
        return describe_sides(self.config["cropping"])
