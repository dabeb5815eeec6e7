"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate.

They join branches of a graph (keras/src/layers/merging). The merge contract (see
Layer.merge): ``infer(input_shapes, fields)``, ``forward(xs, ctx, training)`` and
``backward(dy, ctx, ...)`` returning one gradient per input.

Shapes as Keras 3 computes them (base_merge.Merge.compute_output_shape): the per-example
shapes are aligned on their LAST axes; along each axis the sizes must be equal or one of
them 1 (which broadcasts). An input of lower rank is expanded after the batch axis
(Keras's call: expand_dims(x, axis=1)), so (None, 32) joins (None, 13, 13, 32) as
(None, 1, 1, 32). Concatenate needs every axis but the joined one equal.

A merge never writes into its inputs nor into the dy it is given (both may be shared
with other layers of the graph); the gradients it returns may be dy itself (Add) or one
buffer shared by all inputs (Average) and must be treated as read-only by the caller.

Inputs of the output's own shape (the usual case) go through the numba kernels of
kernels/merging.py, one pass each; broadcasting inputs through numpy. Add applies the
relu of an Activation('relu') that is its only consumer in the same pass (the residual
block's "add, then relu"), as Conv2D and Dense do.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ..shapes import Field, format_shape
from .arguments import Arg, ConfigError
from . import relu_handoff
from .base import Inference, Layer, dims_text, fmt_count, with_macs


def _kernels():
    from ..kernels import merging

    return merging


def _serial(training: bool) -> bool:
    """Parallel kernels when training; inference and saliency ask parallel.py."""
    from ..parallel import use_serial

    return use_serial() if not training else False


def _backward_serial() -> bool:
    from ..parallel import use_serial

    return use_serial()


def _per_example(shape: tuple) -> str:
    """(13, 13, 32) for the batch shape (None, 13, 13, 32); (10,) for (None, 10)."""
    dims = tuple(shape[1:])
    return str(dims) if len(dims) == 1 else "(" + ", ".join(str(d) for d in dims) + ")"


def _largest_field(fields) -> Field:
    """The receptive field of a merge: the largest over its inputs (by area), with that
    input's jump and centre."""
    best = fields[0]
    for f in fields[1:]:
        if f.size[0] * f.size[1] > best.size[0] * best.size[1]:
            best = f
    return best


class _Merge(Layer):
    """Base of the merge layers (keras.layers.Merge)."""

    family = "merge"
    merge: ClassVar[bool] = True
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = None
    symbol: ClassVar[str] = "+"

    # --- shapes ------------------------------------------------------------------

    def infer(self, input_shapes, fields=None, input_names=None) -> Inference:
        """Output shape and derivation for a tuple of batch shapes (None, ...). Pure.

        input_names: how the error message names each input (the analysis passes the
        layer names); default 'input 1', 'input 2', ..."""
        shapes = tuple(tuple(s) for s in input_shapes)
        fields = tuple(fields) if fields is not None else tuple(Field() for _ in shapes)
        names = tuple(input_names) if input_names is not None else tuple(f"input {i + 1}" for i in range(len(shapes)))
        n = len(shapes)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            exactly = self.max_inputs == self.min_inputs
            need = (f"exactly {self.min_inputs}" if exactly else f"at least {self.min_inputs}" if n < self.min_inputs
                    else f"at most {self.max_inputs}")
            raise ConfigError(f"{self.where}: takes {need} input{'' if need.endswith(' 1') else 's'}, "
                              f"received {n}; connect {need} block{'' if need.endswith(' 1') else 's'} to it")
        inference = self._infer_merge(shapes, fields, names)
        return with_macs(inference, *self._merge_macs(len(shapes), inference.output_shape))

    def _merge_macs(self, count: int, output_shape: tuple) -> tuple[int, str]:
        """(MACs, line): one operation per output value for each input after the first."""
        values = math.prod(output_shape[1:])
        macs = (count - 1) * values
        word = {"+": "addition", "-": "subtraction", "*": "multiplication"}.get(self.symbol, "operation")
        return macs, f"MACs = ({count} - 1) * {dims_text(output_shape)} = {fmt_count(macs)} (one {word} per value)"

    def _infer_merge(self, shapes, fields, names) -> Inference:
        out = shapes[0][1:]
        for k in range(1, len(shapes)):
            combined = _broadcast(out, shapes[k][1:])
            if combined is None:
                j = next(j for j in range(k) if _broadcast(shapes[j][1:], shapes[k][1:]) is None)
                raise ConfigError(
                    f"{self.where}: inputs must have the same shape: '{names[j]}' gives {format_shape(shapes[j])} "
                    f"but '{names[k]}' gives {format_shape(shapes[k])}; make the branches agree "
                    "(padding='same' keeps the size, a 1x1 Conv2D sets the channels)")
            out = combined
        shape = (None, *out)
        lines = (self._formula(shapes, shape), "params = 0 (nothing to learn)", f"output shape = {format_shape(shape)}")
        return Inference(shape, (), lines, _largest_field(fields))

    def _formula(self, shapes, shape) -> str:
        terms = f" {self.symbol} ".join(_per_example(s) for s in shapes)
        return f"{self.class_name}: {terms} -> {_per_example(shape)}"

    def compute_output_shape(self, input_shapes) -> tuple:
        return self.infer(input_shapes).output_shape

    def build(self, input_shapes, rng) -> Inference:
        """Nothing to allocate; records the shapes the forward expands its inputs to."""
        shapes = tuple(tuple(s) for s in input_shapes)
        inference = self.infer(shapes)
        self.built_input_shapes = shapes
        self.built_input_shape = shapes[0]
        self.built_output_shape = tuple(inference.output_shape)
        self.weight_specs = ()
        self.weights = []
        rank = len(self.built_output_shape)
        # per-example dims per input, a lower rank expanded after the batch axis with 1s
        self._expanded = tuple((1,) * (rank - len(s)) + tuple(s[1:]) for s in shapes)
        self.built = True
        return inference

    # --- memory ------------------------------------------------------------------

    def buffer_values(self, input_shape, output_shape, training, input_count: int = 2):
        """y, and when training one gradient per input (Add and Average return dy or one
        shared buffer for same-shaped inputs; the estimate keeps the larger figure)."""
        out = math.prod(output_shape[1:])
        return out + (input_count * out if training else 0)

    # --- engine ------------------------------------------------------------------

    def _views(self, xs):
        """The inputs viewed with the expanded ranks (no copies)."""
        return [x if x.shape[1:] == e else x.reshape((x.shape[0], *e)) for x, e in zip(xs, self._expanded)]

    def _same_shapes(self, xs) -> bool:
        out = self.built_output_shape[1:]
        return all(x.shape[1:] == out for x in xs)

    def _reduce_to(self, g, k: int, n: int, ctx, name: str):
        """g (the output's shape) summed over the axes input k was broadcast along, in
        input k's own shape; g itself when nothing was broadcast."""
        target = self.built_input_shapes[k][1:]
        if g.shape[1:] == target:
            return g
        expanded = self._expanded[k]
        axes = tuple(1 + a for a, (e, o) in enumerate(zip(expanded, g.shape[1:])) if e == 1 and o != 1)
        out = ctx.buf(f"{name}{k}", (n, *target))
        summed = g.sum(axis=axes, keepdims=True) if axes else g
        np.copyto(out, summed.reshape(out.shape))
        return out

    def forward(self, xs, ctx, training=False):
        xs = list(xs)
        n = xs[0].shape[0]
        y = ctx.buf("y", (n, *self.built_output_shape[1:]))
        ctx.saved["xs"] = xs
        ctx.saved["y"] = y
        self._merge(self._views(xs), y, ctx, training)
        return y

    def _merge(self, xs, y, ctx, training) -> None:
        raise NotImplementedError

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        xs = ctx.saved["xs"]
        if not need_dx:
            return [None] * len(xs)
        grads = self._grads(dy, self._views(xs), ctx)
        n = dy.shape[0]
        return [self._reduce_to(g, k, n, ctx, "dx") for k, g in enumerate(grads)]

    def _grads(self, dy, xs, ctx) -> list:
        """d(loss)/d(input k) in the output's shape, for each input."""
        raise NotImplementedError

    def _full(self, g, ctx, name):
        """g broadcast to the output's shape (an input of a broadcast merge can be smaller)."""
        if g.shape == ctx.saved["y"].shape:
            return g
        out = ctx.buf(name, ctx.saved["y"].shape)
        np.copyto(out, g)
        return out


def _broadcast(a: tuple, b: tuple) -> tuple | None:
    """Keras's _compute_elemwise_op_output_shape on per-example shapes; None when they
    cannot be combined."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return tuple(a)
    out = list(a[: len(a) - len(b)])
    for i, j in zip(a[len(a) - len(b):], b):
        if i == 1:
            out.append(j)
        elif j == 1 or i == j:
            out.append(i)
        else:
            return None
    return tuple(out)


class _Sum(_Merge):
    """Add and Average: y = (x0 + x1 + ...) * scale."""

    def _scale(self, count: int) -> float:
        return 1.0

    def _merge(self, xs, y, ctx, training):
        relu = bool(getattr(ctx, "fuse_relu", False)) and self.absorbs_relu
        ctx.saved["relu"] = relu
        scale = self._scale(len(xs))
        if self._same_shapes(xs):
            k = _kernels()
            fwd = k.sum_forward_serial if _serial(training) else k.sum_forward
            fwd(k.flat_tuple(xs), y.reshape(-1), np.float32(scale), relu)
        else:
            np.add(xs[0], xs[1], out=y) if len(xs) > 1 else np.copyto(y, xs[0])
            for x in xs[2:]:
                np.add(y, x, out=y)
            if scale != 1.0:
                y *= np.float32(scale)
            if relu:
                np.maximum(y, 0, out=y)
        if relu:
            relu_handoff.mark_relu_output(y)  # a MaxPooling2D after it may apply relu' for us

    def _relu_grad(self, dy, ctx):
        """dy through the fused relu (unless a MaxPooling2D after it already applied it)."""
        if not ctx.saved.get("relu") or relu_handoff.relu_already_applied(dy):
            return dy
        from .. import activations

        return activations.get("relu").backward(None, ctx.saved["y"], dy, ctx.buf("dz", dy.shape))


class Add(_Sum):
    class_name = "Add"
    explanation = "Adds its inputs value by value: the skip connection of a residual block (x + f(x))."
    absorbs_relu = True  # the model may fold a following Activation('relu') into this layer

    def _grads(self, dy, xs, ctx):
        return [self._relu_grad(dy, ctx)] * len(xs)


class Subtract(_Merge):
    class_name = "Subtract"
    explanation = "Subtracts its second input from its first, value by value."
    min_inputs = max_inputs = 2
    symbol = "-"

    def _merge(self, xs, y, ctx, training):
        np.subtract(xs[0], xs[1], out=y)

    def _grads(self, dy, xs, ctx):
        neg = ctx.buf("neg", dy.shape)
        np.negative(dy, out=neg)
        return [dy, neg]


class Multiply(_Merge):
    class_name = "Multiply"
    explanation = "Multiplies its inputs value by value (one branch can gate the other)."
    symbol = "*"

    def _merge(self, xs, y, ctx, training):
        np.multiply(xs[0], xs[1], out=y) if len(xs) > 1 else np.copyto(y, xs[0])
        for x in xs[2:]:
            np.multiply(y, x, out=y)

    def _grads(self, dy, xs, ctx):
        grads = [ctx.buf(f"g{k}", dy.shape) for k in range(len(xs))]
        if self._same_shapes(xs):
            k = _kernels()
            back = k.product_backward_serial if _backward_serial() else k.product_backward
            back(k.flat_tuple(xs), dy.reshape(-1), k.flat_tuple(grads))
            return grads
        for k, g in enumerate(grads):
            np.copyto(g, dy)
            for j, x in enumerate(xs):
                if j != k:
                    np.multiply(g, x, out=g)
        return grads


class Average(_Sum):
    class_name = "Average"
    explanation = "Averages its inputs value by value."
    absorbs_relu = False

    def _formula(self, shapes, shape):
        terms = " + ".join(_per_example(s) for s in shapes)
        return f"Average: ({terms}) / {len(shapes)} -> {_per_example(shape)}"

    def _scale(self, count: int) -> float:
        return 1.0 / count

    def _merge_macs(self, count, output_shape):
        values = math.prod(output_shape[1:])
        return count * values, (f"MACs = {count} * {dims_text(output_shape)} = {fmt_count(count * values)} "
                                f"({count - 1} additions and one division per value)")

    def _grads(self, dy, xs, ctx):
        g = ctx.buf("g", dy.shape)
        np.multiply(dy, np.float32(1.0 / len(xs)), out=g)
        return [g] * len(xs)


class _Extremum(_Merge):
    """Maximum / Minimum: the gradient goes to the input that won, the first one on ties
    (as TensorFlow's gradient of maximum: x >= y)."""

    op = staticmethod(np.maximum)
    word = "max"
    max_inputs = 255  # the backward routes gradients by a uint8 winner index

    def _formula(self, shapes, shape):
        terms = ", ".join(_per_example(s) for s in shapes)
        return f"{self.class_name}: {self.word}({terms}) -> {_per_example(shape)}"

    def _merge_macs(self, count, output_shape):
        values = math.prod(output_shape[1:])
        macs = (count - 1) * values
        return macs, f"MACs = ({count} - 1) * {dims_text(output_shape)} = {fmt_count(macs)} (one comparison per value)"

    def _merge(self, xs, y, ctx, training):
        self.op(xs[0], xs[1], out=y) if len(xs) > 1 else np.copyto(y, xs[0])
        for x in xs[2:]:
            self.op(y, x, out=y)

    def _grads(self, dy, xs, ctx):
        y = ctx.saved["y"]
        if self._same_shapes(xs):
            grads = [ctx.buf(f"g{k}", dy.shape) for k in range(len(xs))]
            k = _kernels()
            back = k.extremum_backward_serial if _backward_serial() else k.extremum_backward
            winner = ctx.buf("winner", (y.size,), np.uint8)
            back(k.flat_tuple(xs), y.reshape(-1), dy.reshape(-1), k.flat_tuple(grads), winner)
            return grads
        taken = np.zeros(y.shape, bool)
        grads = []
        for k, x in enumerate(xs):
            won = (x == y) & ~taken
            taken |= won
            g = ctx.buf(f"g{k}", dy.shape)
            np.multiply(dy, won, out=g)
            grads.append(g)
        return grads


class Maximum(_Extremum):
    class_name = "Maximum"
    explanation = "Keeps, value by value, the largest of its inputs."


class Minimum(_Extremum):
    class_name = "Minimum"
    explanation = "Keeps, value by value, the smallest of its inputs."
    op = staticmethod(np.minimum)
    word = "min"


_AXIS_WORDS = {4: ("batch", "height", "width", "channels"), 3: ("batch", "steps", "features"),
               2: ("batch", "features")}


def _axis_word(rank: int, axis: int) -> str:
    """How the derivation names an axis: 'channels', 'height', ... or 'axis 2'."""
    words = _AXIS_WORDS.get(rank, ())
    return words[axis] if axis < len(words) else f"axis {axis}"


class Concatenate(_Merge):
    class_name = "Concatenate"
    explanation = ("Stacks its inputs along the channels (Inception): 32 maps and 64 maps "
                   "give 96 maps of the same size.")
    ARGS = (Arg("axis", "axis", -1, doc="the axis to join along (-1: channels)"),)
    POSITIONAL = 1

    def _check_config(self) -> None:
        if self.config["axis"] == 0:
            raise ConfigError(f"{self.where}: axis 0 is the batch axis; join along -1 (channels) or another axis")

    def _axis(self, rank: int) -> int | None:
        a = self.config["axis"]
        a = a + rank if a < 0 else a
        return a if 1 <= a < rank else None

    def _infer_merge(self, shapes, fields, names):
        rank = len(shapes[0])
        for k, s in enumerate(shapes[1:], 1):
            if len(s) != rank:
                raise ConfigError(
                    f"{self.where}: inputs must have the same number of axes: '{names[0]}' gives "
                    f"{format_shape(shapes[0])} but '{names[k]}' gives {format_shape(s)}; "
                    "join image maps with image maps (or Flatten both)")
        axis = self._axis(rank)
        if axis is None:
            raise ConfigError(f"{self.where}: axis {self.config['axis']} does not exist for inputs shaped "
                              f"{format_shape(shapes[0])}; use -1 (the last axis)")
        for k, s in enumerate(shapes[1:], 1):
            if any(a != b for i, (a, b) in enumerate(zip(shapes[0], s)) if i != axis):
                word = _axis_word(rank, axis)
                raise ConfigError(
                    f"{self.where}: inputs must have the same shape except along the joined axis ({word}): "
                    f"'{names[0]}' gives {format_shape(shapes[0])} but '{names[k]}' gives {format_shape(s)}; "
                    "make the branches agree (padding='same' keeps the size)")
        total = sum(s[axis] for s in shapes)
        shape = tuple(total if i == axis else d for i, d in enumerate(shapes[0]))
        lines = (f"Concatenate: {_axis_word(rank, axis)} " + " + ".join(str(s[axis]) for s in shapes) + f" = {total}",
                 "params = 0 (nothing to learn)", f"output shape = {format_shape(shape)}")
        return Inference(shape, (), lines, _largest_field(fields))

    def _merge_macs(self, count, output_shape):
        return 0, "MACs = 0 (only places values side by side)"

    def build(self, input_shapes, rng):
        inference = super().build(input_shapes, rng)
        self._axis_built = self._axis(len(self.built_output_shape))
        return inference

    def _merge(self, xs, y, ctx, training):
        if self._axis_built != y.ndim - 1:
            np.concatenate(xs, axis=self._axis_built, out=y)
            return
        k = _kernels()
        copy = k.concat_last_serial if _serial(training) else k.concat_last
        y2, offset = y.reshape(-1, y.shape[-1]), 0
        for x in xs:
            copy(x.reshape(-1, x.shape[-1]), y2, offset)
            offset += x.shape[-1]

    def _grads(self, dy, xs, ctx):
        if self._axis_built == dy.ndim - 1:
            k = _kernels()
            split = k.split_last_serial if _backward_serial() else k.split_last
            dy2, offset, grads = dy.reshape(-1, dy.shape[-1]), 0, []
            for j, x in enumerate(xs):
                g = ctx.buf(f"g{j}", x.shape)
                split(dy2, g.reshape(-1, x.shape[-1]), offset)
                offset += x.shape[-1]
                grads.append(g)
            return grads
        axis, grads, start = self._axis_built, [], 0
        for k, x in enumerate(xs):
            size = x.shape[axis]
            g = ctx.buf(f"g{k}", x.shape)
            index = [slice(None)] * dy.ndim
            index[axis] = slice(start, start + size)
            np.copyto(g, dy[tuple(index)])
            grads.append(g)
            start += size
        return grads

    def describe(self):
        return "channels" if self.config["axis"] == -1 else f"axis {self.config['axis']}"


MERGE_CLASSES = (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate)

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "MERGE_CLASSES"]
