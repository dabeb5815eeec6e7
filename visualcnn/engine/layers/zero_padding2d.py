"""ZeroPadding2D: a border of zeros around every feature map."""

from __future__ import annotations

from ..shapes import Field, _tidy_pair, format_shape
from .arguments import Arg
from .base import Inference, Layer

# A bound for a border or a zoom factor: far beyond any image (the memory check refuses
# much less), and an argument error is clearer than a shape with 40 digits.
MAX_SIDE = 100_000


class ZeroPadding2D(Layer):
    """keras.layers.ZeroPadding2D (channels last). Never writes into its input x or the
    dy it is given."""

    class_name = "ZeroPadding2D"
    family = "reshaping"
    image_input = True
    ARGS = (Arg("padding", "padding_2d", 1, minimum=0, maximum=MAX_SIDE,
                doc="rows/columns of zeros: n, [rows, cols] or [[top, bottom], [left, right]]"),)
    POSITIONAL = 1
    explanation = ("Adds a border of zeros around each feature map, so a following "
                   "convolution can look past the edge and the map keeps its size.")
    starter_config = {"padding": 1}

    def _infer(self, input_shape, field):
        (top, bottom), (left, right) = self.config["padding"]
        h, w, ch = input_shape[1:]
        shape = (None, top + h + bottom, left + w + right, ch)
        lines = (f"out_h = {top} + {h} + {bottom} = {shape[1]}", f"out_w = {left} + {w} + {right} = {shape[2]}",
                 f"channels unchanged = {ch}", "params = 0 (adds zeros; nothing to learn)",
                 f"output shape = {format_shape(shape)}")
        # output (0, 0) sits `top` rows above and `left` columns left of input (0, 0)
        start = (field.start[0] - top * field.jump[0], field.start[1] - left * field.jump[1])
        return Inference(shape, (), lines, Field(field.size, field.jump, _tidy_pair(start)))

    def forward(self, x, ctx, training=False):
        (top, bottom), (left, right) = self.config["padding"]
        n, h, w, ch = x.shape
        y = embed(ctx.buf("y", (n, top + h + bottom, left + w + right, ch)), x, top, left)
        ctx.saved["x_shape"] = x.shape
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        (top, _), (left, _) = self.config["padding"]
        n, h, w, ch = ctx.saved["x_shape"]
        dx = ctx.buf("dx", (n, h, w, ch))
        dx[...] = dy[:, top:top + h, left:left + w]  # the padding's zeros had no input behind them
        return dx

    def describe(self):
        return describe_sides(self.config["padding"])


def embed(big, small, top: int, left: int):
    """big = small with a border of zeros (top rows above, left columns before): padding's
    forward and cropping's backward, which are each other's transpose. Only the border is
    zeroed: the buffer may hold another layer's output (streaming inference shares arenas),
    and the inside is overwritten anyway. Returns big."""
    h, w = small.shape[1:3]
    big[:, :top] = 0.0
    big[:, top + h:] = 0.0
    big[:, top:top + h, :left] = 0.0
    big[:, top:top + h, left + w:] = 0.0
    big[:, top:top + h, left:left + w] = small
    return big


def describe_sides(sides) -> str:
    """'1' when all four sides agree, '1x2' for symmetric rows/cols, else 'top 1, bottom 2, ...'."""
    (top, bottom), (left, right) = sides
    if top == bottom and left == right:
        return str(top) if top == left else f"{top}x{left}"
    return f"top {top}, bottom {bottom}, left {left}, right {right}"
