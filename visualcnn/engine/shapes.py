"""Pure shape arithmetic, as Keras 3 does it (keras/src/ops/operation_utils.py).

No arrays here: every function takes and returns plain ints so the builder window can
re-run the whole pipeline on every keystroke. Each function returns the number together
with the sentence a student reads to see where it came from, so the number shown and
the explanation can never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Derived:
    """A computed size and the filled-in formula that produced it."""

    value: int
    formula: str


def conv_output_length(size: int, kernel: int, stride: int, dilation: int, padding: str) -> Derived:
    """Output length of a convolution along one axis (Keras compute_conv_output_shape).

    valid: floor((H - d*(k-1) - 1) / s) + 1; same: floor((H - 1) / s) + 1.
    The value may be <= 0: the caller turns that into an error naming its layer.
    """
    if padding == "valid":
        value = math.floor((size - dilation * (kernel - 1) - 1) / stride) + 1
        return Derived(value, f"floor(({size} - {dilation}*({kernel}-1) - 1) / {stride}) + 1 = {value}")
    value = math.floor((size - 1) / stride) + 1
    return Derived(value, f"floor(({size} - 1) / {stride}) + 1 = {value}  ('same' keeps ceil({size}/{stride}))")


def pool_output_length(size: int, pool: int, stride: int, padding: str) -> Derived:
    """Output length of a pooling window along one axis (Keras compute_pooling_output_shape)."""
    if padding == "valid":
        value = math.floor((size - pool) / stride) + 1
        return Derived(value, f"floor(({size} - {pool}) / {stride}) + 1 = {value}")
    value = math.floor((size - 1) / stride) + 1
    return Derived(value, f"floor(({size} - 1) / {stride}) + 1 = {value}  ('same' keeps ceil({size}/{stride}))")


def conv_transpose_output_length(
    size: int, kernel: int, stride: int, dilation: int, padding: str, output_padding: int | None
) -> Derived:
    """Output length of a transposed convolution (Keras deconv_output_length)."""
    k_eff = kernel + (kernel - 1) * (dilation - 1)
    if output_padding is None:
        if padding == "valid":
            value = size * stride + max(k_eff - stride, 0)
            return Derived(value, f"{size}*{stride} + max({k_eff} - {stride}, 0) = {value}")
        value = size * stride
        return Derived(value, f"{size}*{stride} = {value}  ('same' multiplies by the stride)")
    pad = k_eff // 2 if padding == "same" else 0
    value = (size - 1) * stride + k_eff - 2 * pad + output_padding
    return Derived(value, f"({size} - 1)*{stride} + {k_eff} - 2*{pad} + {output_padding} = {value}")


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(pad_before, pad_after) for 'same': the odd extra pixel goes at the END, as TensorFlow."""
    out = math.floor((size - 1) / stride) + 1
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class Field:
    """Receptive field of one output cell on the input image, per axis (rows, cols).

    size: how many input pixels one output value depends on;
    jump: how far apart (in input pixels) two neighbouring output values look;
    start: the input coordinate (pixel index) at the centre of output (0, 0)'s field,
    which 'same' padding shifts. Jump and start may be fractional.
    """

    size: tuple[float, float] = (1, 1)
    jump: tuple[float, float] = (1, 1)
    start: tuple[float, float] = (0, 0)

    def through_window(self, kernel: tuple[int, int], strides: tuple[int, int],
                       dilation: tuple[int, int] = (1, 1), padding: str = "valid",
                       in_size: tuple[int, int] | None = None) -> "Field":
        eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
        if padding == "same" and in_size is not None:
            pads = tuple(same_padding(n, k, s, d)[0] for n, k, s, d in zip(in_size, kernel, strides, dilation))
        else:
            pads = (0, 0)
        size = tuple(r + (e - 1) * j for r, e, j in zip(self.size, eff, self.jump))
        jump = tuple(j * s for j, s in zip(self.jump, strides))
        start = tuple(st + ((e - 1) / 2 - p) * j for st, e, p, j in zip(self.start, eff, pads, self.jump))
        return Field(_tidy_pair(size), _tidy_pair(jump), _tidy_pair(start))

    def through_transpose(self, kernel: tuple[int, int], strides: tuple[int, int],
                          dilation: tuple[int, int]) -> "Field":
        # Each output cell of a transposed conv is fed by ceil(k_eff / s) input cells per axis.
        eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
        size = tuple(r + (math.ceil(e / s) - 1) * j for r, e, s, j in zip(self.size, eff, strides, self.jump))
        jump = tuple(j / s for j, s in zip(self.jump, strides))
        start = tuple(st - (e - 1) / 2 * jo for st, e, jo in zip(self.start, eff, jump))
        return Field(_tidy_pair(size), _tidy_pair(jump), _tidy_pair(start))

    def whole(self, spatial: tuple[int, int]) -> "Field":
        """After a layer that mixes every position (global pooling, flatten)."""
        size = tuple(r + (n - 1) * j for r, n, j in zip(self.size, spatial, self.jump))
        start = tuple(st + (n - 1) / 2 * j for st, n, j in zip(self.start, spatial, self.jump))
        return Field(_tidy_pair(size), self.jump, _tidy_pair(start))


def _tidy_pair(values) -> tuple:
    return tuple(int(v) if float(v).is_integer() else float(v) for v in values)


def format_shape(shape: tuple) -> str:
    """Keras's rendering of a batch shape: (None, 26, 26, 32)."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def format_hw(pair) -> str:
    """'3x3' for a pair, for messages a student reads."""
    return f"{pair[0]}x{pair[1]}"
