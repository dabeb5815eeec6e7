"""trace(model, x, layer_name, index): one value of one layer, taken apart.

The value itself comes from model.activations(x) (what the window shows); the trace
recomputes it from the layer's input and weights with the textbook arithmetic
(explain/arithmetic.py) and keeps every intermediate number a student needs: the input
patch with the padding zeros marked, the kernel, the element-wise products, their sums,
the bias and the activation. `computed` equals `value` within float32 rounding.

The receptive field on the model input comes from the shape analysis (shapes.Field:
size, jump and centre of each layer's window, through graphs too), so the rows and
columns drawn on the input are the ones the builder's derivation states.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field as dataclass_field

import numpy as np


@dataclass(frozen=True)
class Term:
    """One contribution to a sum: `value` (times `weight`, when there is one) = `product`."""

    label: str
    value: float
    weight: float | None
    product: float


@dataclass(frozen=True)
class Trace:
    """One output value of one layer for one image, and how it was computed.

    kind: "conv", "depthwise", "separable", "transpose", "max_pool", "average_pool",
    "dense", "merge", "elementwise", "normalization", "moves" (a value copied from the
    input or a padding zero) or "layer" (recomputed by the layer's own forward: the
    values it depends on are listed in `inputs`).
    index: the position in one example's output, e.g. (row, col, channel).
    value: model.activations(x)[layer][0][index]; computed: the trace's own arithmetic.
    field_rows / field_cols: the input rows and columns (inclusive, clipped to the
    image) the value can see; None for a model whose input is not an image.
    """

    layer_name: str
    class_name: str
    kind: str
    index: tuple[int, ...]
    value: float
    computed: float
    formula: str
    input_names: tuple[str, ...] = ()
    field_rows: tuple[int, int] | None = None
    field_cols: tuple[int, int] | None = None
    field_size: tuple[float, float] | None = None
    # a window on the layer's input (conv, pooling): its rows and columns there (a
    # position outside the input is padding), the values (zero at padding) and the mask
    window_rows: tuple[int, ...] = ()
    window_cols: tuple[int, ...] = ()
    patch: np.ndarray | None = None
    padding: np.ndarray | None = None
    kernel: np.ndarray | None = None
    products: np.ndarray | None = None
    channel_sums: np.ndarray | None = None  # per input channel (separable: the depthwise results)
    total: float | None = None  # the sum of every product
    bias: float | None = None
    pre_activation: float | None = None
    activation: str | None = None
    chosen: tuple[int, int] | None = None  # max pooling: the winning (row, col) on the layer's input
    terms: tuple[Term, ...] = ()  # the largest contributions (Dense, transposed conv, pointwise) or a merge's inputs
    rest: float | None = None  # the sum of the contributions not listed in terms
    rest_count: int = 0
    inputs: tuple[float, ...] = ()  # the input value(s) an elementwise or moving layer reads
    notes: tuple[str, ...] = dataclass_field(default_factory=tuple)

    def matches(self, tolerance: float = 1e-5) -> bool:
        """The recomputed value equals the model's (float32 rounding allowed)."""
        return bool(np.isclose(self.computed, self.value, rtol=tolerance, atol=tolerance))

    def lines(self) -> list[str]:
        """The derivation a student reads, with the numbers."""
        from .text import trace_lines

        return trace_lines(self)

    def explain_text(self) -> str:
        return "\n".join(self.lines())


def trace(model, x, layer_name: str, index) -> Trace:
    """Take apart the value at `index` of layer `layer_name`'s output for the image x.

    x: one example, (height, width, channels) or with a batch axis of 1. index: a tuple
    into one example's output (row, col, channel for a feature map; unit for a vector),
    or an int for a vector. Raises ValueError naming what is wrong.
    """
    from . import arithmetic

    layer, position = _find_layer(model, layer_name)
    x = _one_image(model, x)
    acts = model.activations(x)
    out = acts[layer.name][0]
    index = _check_index(index, out.shape, layer)
    sources = model.inbound[position]
    names = tuple(model.input_name if j == -1 else model.layers[j].name for j in sources)
    inputs = [np.asarray(x[0] if j == -1 else acts[model.layers[j].name][0], np.float64) for j in sources]
    parts = arithmetic.compute(layer, inputs, names, index)
    rows = cols = size = None
    report = model.analyse()
    inference = report.rows[position].inference
    if len(model.input_shape) == 3 and inference is not None:
        spatial = index[:2] if len(out.shape) == 3 else (0, 0)
        rows, cols = receptive_field(inference.field, spatial, model.input_shape[:2])
        size = tuple(inference.field.size)
    return Trace(layer_name=layer.name, class_name=layer.class_name, index=index,
                 value=float(out[index]), input_names=names, field_rows=rows, field_cols=cols,
                 field_size=size, **parts)


def receptive_field(field, spatial: tuple[int, int], image: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The input rows and columns (first, last; inclusive, clipped to the image) seen by
    the output cell at `spatial` (row, col), from the analysis' Field (size, jump, centre
    of cell (0, 0)). Fractional centres (transposed convolutions, upsampling) round outwards."""
    ranges = []
    for axis in (0, 1):
        centre = field.start[axis] + spatial[axis] * field.jump[axis]
        half = (field.size[axis] - 1) / 2
        first = math.floor(centre - half + 1e-9)
        last = math.ceil(centre + half - 1e-9)
        ranges.append((max(first, 0), min(last, image[axis] - 1)))
    return ranges[0], ranges[1]


def _find_layer(model, name: str):
    for position, layer in enumerate(model.layers):
        if layer.name == name:
            return layer, position
    known = ", ".join(layer.name for layer in model.layers)
    raise ValueError(f"trace: no layer named {name!r}; the layers are {known}")


def _one_image(model, x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.shape == tuple(model.input_shape):
        x = x[None]
    if x.shape[1:] != tuple(model.input_shape) or x.shape[0] != 1:
        raise ValueError(f"trace: x must be one example shaped {tuple(model.input_shape)} (or with a batch axis of 1), "
                         f"received {x.shape}")
    return np.ascontiguousarray(x)


def _check_index(index, shape: tuple, layer) -> tuple[int, ...]:
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        index = (int(index),)
    try:
        index = tuple(int(i) for i in index)
    except (TypeError, ValueError):
        raise ValueError(f"trace: index must be a tuple of integers such as (3, 4, 0), received {index!r}") from None
    if len(index) != len(shape) or any(not 0 <= i < n for i, n in zip(index, shape)):
        raise ValueError(f"trace: index {index} is outside {layer.where}'s output, which is shaped {shape} "
                         f"per example; give {len(shape)} indices from 0")
    return index


__all__ = ["trace", "Trace", "Term", "receptive_field"]
