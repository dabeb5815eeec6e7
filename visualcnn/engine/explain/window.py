"""Where a sliding layer's window sits for each output cell (issue 13 item 2, "watch it slide").

For a Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPooling2D or AveragePooling2D and the
height and width of its input, `slide_geometry` gives the output size, the padding on each
side ('same' puts Keras's odd extra pixel at the END: bottom / right, shapes.same_padding)
and, for any output cell, the input rows and columns its window reads: stride apart from
one cell to the next, dilation apart from one tap to the next, a position outside
0..size-1 being a padding zero. The GUI draws this; it never recomputes the geometry.
The tests compare every cell with trace()'s window, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..shapes import same_padding

SLIDING = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D")


@dataclass(frozen=True)
class SlideGeometry:
    """One sliding layer over an input of `input_size` (rows, cols).

    taps: kernel (or pool) size per axis; strides; dilation (1 for pooling);
    pads: ((top, bottom), (left, right)) zeros added around the input;
    output_size: (rows, cols) of the output map."""

    class_name: str
    padding: str
    input_size: tuple[int, int]
    taps: tuple[int, int]
    strides: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[tuple[int, int], tuple[int, int]]
    output_size: tuple[int, int]

    @property
    def pooling(self) -> bool:
        return self.class_name.endswith("Pooling2D")

    def window(self, i: int, j: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The input rows and columns output cell (i, j) reads (negative or >= size: padding)."""
        if not (0 <= i < self.output_size[0] and 0 <= j < self.output_size[1]):
            raise ValueError(f"cell ({i}, {j}) is outside the {self.output_size[0]}x{self.output_size[1]} output")
        return self._positions(0, i), self._positions(1, j)

    def _positions(self, axis: int, out: int) -> tuple[int, ...]:
        start = out * self.strides[axis] - self.pads[axis][0]
        return tuple(start + a * self.dilation[axis] for a in range(self.taps[axis]))

    def cells(self) -> list[tuple[int, int]]:
        """Every output cell in the order the window visits them: row by row, left to right."""
        return [(i, j) for i in range(self.output_size[0]) for j in range(self.output_size[1])]

    def describe(self) -> str:
        """One line a student reads: kernel, stride, dilation and where the padding went."""
        what = "pool" if self.pooling else "kernel"
        parts = [f"{self.taps[0]}x{self.taps[1]} {what}", f"stride {self.strides[0]}x{self.strides[1]}"]
        if self.dilation != (1, 1):
            parts.append(f"dilation {self.dilation[0]}x{self.dilation[1]} (gaps between the taps)")
        (top, bottom), (left, right) = self.pads
        if self.padding == "same" and not (top + bottom + left + right):
            parts.append("'same' padding: no zeros needed here (the windows fit the input exactly)")
        elif self.padding == "same":
            extra = " (Keras puts the odd extra zero at the end)" if top != bottom or left != right else ""
            parts.append(f"'same' padding: {top} zero row(s) on top, {bottom} at the bottom, {left} column(s) "
                         f"left, {right} right{extra}")
        else:
            parts.append("'valid' padding: no zeros, the window stays inside the input")
        h, w = self.input_size
        parts.append(f"{h}x{w} in -> {self.output_size[0]}x{self.output_size[1]} out")
        return ", ".join(parts)


def slide_geometry(layer, input_size: tuple[int, int]) -> SlideGeometry:
    """The window geometry of a sliding layer (see SLIDING) over an input of (rows, cols).

    Raises ValueError naming the layer when it does not slide a window."""
    if layer.class_name not in SLIDING:
        raise ValueError(f"layer '{layer.name}' ({layer.class_name}) does not slide a window; "
                         f"choose a {', '.join(SLIDING)} layer")
    c = layer.config
    if layer.class_name.endswith("Pooling2D"):
        taps = tuple(c["pool_size"])
        strides = tuple(c["strides"] or c["pool_size"])
        dilation = (1, 1)
    else:
        taps, strides, dilation = tuple(c["kernel_size"]), tuple(c["strides"]), tuple(c["dilation_rate"])
    pads, out = [], []
    for axis in (0, 1):
        size, k, s, d = int(input_size[axis]), int(taps[axis]), int(strides[axis]), int(dilation[axis])
        if c["padding"] == "same":
            pads.append(same_padding(size, k, s, d))
        else:
            pads.append((0, 0))
        span = (k - 1) * d + 1
        out.append((size + sum(pads[-1]) - span) // s + 1)
    return SlideGeometry(class_name=layer.class_name, padding=c["padding"],
                         input_size=(int(input_size[0]), int(input_size[1])), taps=(int(taps[0]), int(taps[1])),
                         strides=(int(strides[0]), int(strides[1])), dilation=(int(dilation[0]), int(dilation[1])),
                         pads=(tuple(pads[0]), tuple(pads[1])), output_size=(int(out[0]), int(out[1])))


__all__ = ["SLIDING", "SlideGeometry", "slide_geometry"]
