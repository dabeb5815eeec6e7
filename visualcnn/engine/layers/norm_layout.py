"""The memory layout LayerNormalization and GroupNormalization compute in: the
normalised axes last, so the kernels see contiguous rows.

With the usual axis=-1 nothing moves (the permutation is the identity and the arrays are
only reshaped); any other axis costs one transposed copy each way, into the layer's
buffers (never into the caller's x or dy).
"""

from __future__ import annotations

import numpy as np


class AxesLast:
    """Moves `axes` (positive, in order) of a rank-`rank` array to the end and back."""

    def __init__(self, rank: int, axes: tuple[int, ...]):
        self.perm = tuple(a for a in range(rank) if a not in axes) + tuple(axes)
        self.inverse = tuple(int(i) for i in np.argsort(self.perm))
        self.identity = self.perm == tuple(range(rank))

    def to_last(self, a, ctx, name: str):
        """a with the axes moved last, C-contiguous (a itself when nothing moves)."""
        if self.identity:
            return a
        moved = a.transpose(self.perm)
        out = ctx.buf(name, moved.shape)
        np.copyto(out, moved)
        return out

    def back(self, a, ctx, name: str):
        """The inverse of to_last, into ctx's buffer `name` (a itself when nothing moves)."""
        if self.identity:
            return a
        moved = a.transpose(self.inverse)
        out = ctx.buf(name, moved.shape)
        np.copyto(out, moved)
        return out
