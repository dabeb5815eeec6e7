"""Pooling layers: MaxPooling2D, AveragePooling2D and their global forms."""

from __future__ import annotations

from ..shapes import format_hw, format_shape, pool_output_length
from .arguments import Arg
import numpy as np

from . import relu_handoff
from .base import Inference, Layer, dims_text, fmt_count, kernels, spatial_window

PADDING = Arg("padding", "padding", "valid", doc="'valid': windows inside the image; 'same': keeps ceil(size/stride)")
STRIDES = Arg("strides", "optional_pair", None, minimum=1, doc="step between windows (default: the pool size)")


class _Pooling2D(Layer):
    family = "pooling"
    image_input = True
    POSITIONAL = 3
    verb = ""

    def _strides(self) -> tuple[int, int]:
        return self.config["strides"] or self.config["pool_size"]

    def _infer(self, input_shape, field):
        c = self.config
        pool, strides = c["pool_size"], self._strides()
        h, w, ch = input_shape[1], input_shape[2], input_shape[3]
        rows = pool_output_length(h, pool[0], strides[0], c["padding"])
        cols = pool_output_length(w, pool[1], strides[1], c["padding"])
        out = (rows.value, cols.value)
        spatial_window(self, "pool", (h, w), pool, out, (rows.formula, cols.formula), c["padding"])
        shape = (None, out[0], out[1], ch)
        lines = (f"out_h = {rows.formula}", f"out_w = {cols.formula}",
                 f"channels unchanged = {ch}",
                 f"params = 0 ({self.verb} of each {format_hw(pool)} window; nothing to learn)",
                 f"output shape = {format_shape(shape)}")
        return Inference(shape, (), lines, field.through_window(pool, strides, padding=c["padding"], in_size=(h, w)))

    op = ""  # what one window value costs: "comparison" (max) or "addition" (average)

    def _macs(self, input_shape, output_shape):
        ph, pw = self.config["pool_size"]
        macs = output_shape[1] * output_shape[2] * output_shape[3] * ph * pw
        return macs, f"MACs = {dims_text(output_shape)} * {ph}*{pw} = {fmt_count(macs)} (one {self.op} per window value)"

    def _setup(self, rng) -> None:
        c = self.config
        pool, strides = c["pool_size"], self._strides()
        pad = [0, 0]
        if c["padding"] == "same":
            for axis in (0, 1):
                pad[axis] = kernels().same_padding(self.built_input_shape[1 + axis], pool[axis], strides[axis])[1]
        self._geom = (*pool, *strides, *pad)

    def _out(self, ctx, name, n, dtype=None):
        return ctx.buf(name, (n, *self.built_output_shape[1:]), dtype)

    def describe(self):
        parts = [format_hw(self.config["pool_size"])]
        if self._strides() != self.config["pool_size"]:
            parts.append(f"stride {format_hw(self._strides())}")
        parts.append(self.config["padding"])
        return ", ".join(parts)


class MaxPooling2D(_Pooling2D):
    class_name = "MaxPooling2D"
    starter_config = {"pool_size": [2, 2]}
    ARGS = (Arg("pool_size", "pair", (2, 2), minimum=1, doc="window height and width"), STRIDES, PADDING)
    verb = "the maximum"
    op = "comparison"
    explanation = ("Keeps the strongest response in each small window: the map shrinks and a "
                   "feature found a pixel or two away still counts.")

    def buffer_values(self, input_shape, output_shape, training):
        # y and the int32 argmax of every output, dx when training
        argmax = output_shape[1] * output_shape[2] * output_shape[3]
        return super().buffer_values(input_shape, output_shape, training) + argmax


    def forward(self, x, ctx, training=False):
        k = kernels()
        y = self._out(ctx, "y", x.shape[0])
        argmax = self._out(ctx, "argmax", x.shape[0], np.int32)
        fwd = k.maxpool2d_forward_serial if (not training and k.parallel.use_serial()) else k.maxpool2d_forward
        fwd(x, y, argmax, *self._geom)
        ctx.saved["x_shape"], ctx.saved["argmax"] = x.shape, argmax
        # input from a conv's fused relu: backward applies relu' (layers/relu_handoff.py)
        ctx.saved["relu_y"] = y if relu_handoff.is_relu_output(x) else None
        return y

    def halves_without_padding(self, input_shape) -> bool:
        """2x2 windows at stride 2 that all lie inside the input (``Conv2D.forward_into_pool``
        computes only these): "valid", or "same" on an even size (no padding then). From the
        config and the input shape only: the memory estimate asks before anything is built."""
        c = self.config
        even = input_shape[1] % 2 == 0 and input_shape[2] % 2 == 0
        return (tuple(c["pool_size"]) == (2, 2) and tuple(self._strides()) == (2, 2)
                and (c["padding"] == "valid" or even))

    def fused_outputs(self, ctx, n):
        """The output and argmax buffers ``forward`` would fill, for a conv that fills them."""
        return self._out(ctx, "y", n), self._out(ctx, "argmax", n, np.int32)

    def record_fused_forward(self, ctx, x_shape, y, argmax):
        """What ``forward`` saves for the backward, after a relu conv filled y and argmax."""
        ctx.saved["x_shape"], ctx.saved["argmax"], ctx.saved["relu_y"] = tuple(x_shape), argmax, y

    def pooled_gradient(self, dy, ctx):
        """(dy, argmax, y, x_shape): what a relu conv just before needs to take its
        weight gradient straight from this pool's output gradient (Conv2D
        ``backward_from_pool``), or None when the input did not come from a fused relu."""
        relu_y = ctx.saved["relu_y"]
        if relu_y is None:
            return None
        return dy, ctx.saved["argmax"], relu_y, ctx.saved["x_shape"]

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        dx = ctx.buf("dx", ctx.saved["x_shape"])
        relu_y = ctx.saved["relu_y"]
        kernels().maxpool2d_backward(dy, ctx.saved["argmax"], dx, relu_out=relu_y)
        if relu_y is not None:
            relu_handoff.mark_relu_applied(dx)
        return dx


class AveragePooling2D(_Pooling2D):
    class_name = "AveragePooling2D"
    starter_config = {"pool_size": [2, 2]}
    ARGS = (Arg("pool_size", "pair", minimum=1, doc="window height and width (required in Keras)"), STRIDES, PADDING)
    verb = "the average"
    op = "addition"
    explanation = "Replaces each small window by its average: a smoothed, smaller map."


    def forward(self, x, ctx, training=False):
        k = kernels()
        y = self._out(ctx, "y", x.shape[0])
        fwd = k.avgpool2d_forward_serial if (not training and k.parallel.use_serial()) else k.avgpool2d_forward
        fwd(x, y, *self._geom)
        ctx.saved["x_shape"] = x.shape
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        dx = ctx.buf("dx", ctx.saved["x_shape"])
        kernels().avgpool2d_backward(dy, dx, *self._geom)
        return dx


class _GlobalPooling2D(Layer):
    family = "pooling"
    image_input = True
    ARGS = (Arg("keepdims", "bool", False, doc="keep the 1x1 spatial axes"),)
    verb = ""

    def _infer(self, input_shape, field):
        h, w, ch = input_shape[1:]
        shape = (None, 1, 1, ch) if self.config["keepdims"] else (None, ch)
        lines = (f"each of the {ch} channels is reduced to one number ({self.verb} over {h}x{w} positions)",
                 "params = 0 (nothing to learn)",
                 f"output shape = {format_shape(shape)}")
        return Inference(shape, (), lines, field.whole((h, w)))

    op = ""

    def _macs(self, input_shape, output_shape):
        macs = input_shape[1] * input_shape[2] * input_shape[3]
        return macs, f"MACs = {dims_text(input_shape)} = {fmt_count(macs)} (one {self.op} per value)"

    def describe(self):
        return "keepdims" if self.config["keepdims"] else ""


    def _out(self, ctx, n):
        return ctx.buf("y", (n, *self.built_output_shape[1:]))


class GlobalAveragePooling2D(_GlobalPooling2D):
    class_name = "GlobalAveragePooling2D"
    verb = "the average"
    op = "addition"
    explanation = "Averages each feature map down to a single number: one value per channel."


    def forward(self, x, ctx, training=False):
        from ..kernels import elementwise as k  # parallel over images (helper B's kernels)

        n, h, w, ch = x.shape
        y = self._out(ctx, n)
        fwd = k.global_avg_forward_serial if (not training and k.parallel.use_serial()) else k.global_avg_forward
        fwd(x.reshape(n, h * w, ch), y.reshape(n, ch))
        ctx.saved["x_shape"] = x.shape
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        from ..kernels import elementwise as k

        if not need_dx:
            return None
        n, h, w, ch = ctx.saved["x_shape"]
        dx = ctx.buf("dx", (n, h, w, ch))
        back = k.global_avg_backward_serial if k.parallel.use_serial() else k.global_avg_backward
        back(dy.reshape(n, ch), dx.reshape(n, h * w, ch))
        return dx


class GlobalMaxPooling2D(_GlobalPooling2D):
    class_name = "GlobalMaxPooling2D"
    verb = "the maximum"
    op = "comparison"
    explanation = "Keeps the strongest response of each feature map: one value per channel."

    def forward(self, x, ctx, training=False):
        from ..kernels import elementwise as k  # parallel over images (helper B's kernels)

        n, h, w, ch = x.shape
        where = ctx.buf("argmax", (n, ch), np.int32)  # first maximum, as TensorFlow's gradient
        y = self._out(ctx, n)
        fwd = k.global_max_forward_serial if (not training and k.parallel.use_serial()) else k.global_max_forward
        fwd(x.reshape(n, h * w, ch), y.reshape(n, ch), where)
        ctx.saved["x_shape"], ctx.saved["argmax"] = x.shape, where
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        from ..kernels import elementwise as k

        if not need_dx:
            return None
        n, h, w, ch = ctx.saved["x_shape"]
        dx = ctx.buf("dx", (n, h, w, ch))
        back = k.global_max_backward_serial if k.parallel.use_serial() else k.global_max_backward
        back(dy.reshape(n, ch), ctx.saved["argmax"], dx.reshape(n, h * w, ch))
        return dx


__all__ = ["MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D"]
