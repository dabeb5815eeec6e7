"""Merge-layer kernels: one memory pass each, parallel over blocks of values or rows.

Inputs of the same shape are passed as a tuple of flat C-contiguous float32 arrays (numba
compiles one version per input count). Concatenate along the last axis views every
tensor as rows (M, C): each input is copied into (forward) or out of (backward) its
channel slice, row by row. Each kernel has a ``_serial`` twin for inference from a second
thread or of one image (``parallel.use_serial()``).
"""

from numba import prange

from visualcnn.engine import parallel  # noqa: F401  (the layers ask parallel.use_serial())
from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["sum_forward", "sum_forward_serial", "extremum_backward", "extremum_backward_serial",
           "product_backward", "product_backward_serial", "concat_last", "concat_last_serial",
           "split_last", "split_last_serial"]

_BLOCK = 8192


def _sum_forward(xs, y, scale, relu):
    """y = (x0 + x1 + ...) * scale, then max(., 0) when relu (Add followed by its relu,
    Average). xs: a tuple of flat arrays shaped like y."""
    n = y.shape[0]
    k = len(xs)
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        s, e = b * _BLOCK, min(n, b * _BLOCK + _BLOCK)
        for i in range(s, e):
            y[i] = xs[0][i]
        for j in range(1, k):
            x = xs[j]
            for i in range(s, e):
                y[i] += x[i]
        if scale != 1.0:
            for i in range(s, e):
                y[i] *= scale
        if relu:
            for i in range(s, e):
                if y[i] < 0.0:
                    y[i] = 0.0


sum_forward, sum_forward_serial = twins(_sum_forward, fastmath=FAST)


def _extremum_backward(xs, y, dy, dxs):
    """dxs[j] = dy where input j is the first to hold the forward's result y (Maximum,
    Minimum: ties go to the earlier input, as TensorFlow's x >= y), else 0."""
    n = y.shape[0]
    k = len(xs)
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        s, e = b * _BLOCK, min(n, b * _BLOCK + _BLOCK)
        for i in range(s, e):
            won = False
            for j in range(k):
                if not won and xs[j][i] == y[i]:
                    dxs[j][i] = dy[i]
                    won = True
                else:
                    dxs[j][i] = 0.0


extremum_backward, extremum_backward_serial = twins(_extremum_backward)


def _product_backward(xs, dy, dxs):
    """dxs[j] = dy * (the product of every input but j) (Multiply)."""
    n = dy.shape[0]
    k = len(xs)
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        s, e = b * _BLOCK, min(n, b * _BLOCK + _BLOCK)
        for j in range(k):
            out = dxs[j]
            for i in range(s, e):
                out[i] = dy[i]
            for m in range(k):
                if m != j:
                    x = xs[m]
                    for i in range(s, e):
                        out[i] *= x[i]


product_backward, product_backward_serial = twins(_product_backward, fastmath=FAST)


def _concat_last(x2, y2, offset):
    """y2[:, offset:offset + C_k] = x2 (M, C_k): one input's channels into the output."""
    M, ck = x2.shape
    for m in prange(M):
        for c in range(ck):
            y2[m, offset + c] = x2[m, c]


concat_last, concat_last_serial = twins(_concat_last)


def _split_last(dy2, dx2, offset):
    """dx2 (M, C_k) = dy2[:, offset:offset + C_k]: one input's share of the gradient."""
    M, ck = dx2.shape
    for m in prange(M):
        for c in range(ck):
            dx2[m, c] = dy2[m, offset + c]


split_last, split_last_serial = twins(_split_last)


def flat_tuple(arrays) -> tuple:
    """The arrays as a tuple of flat views (the kernels' input form)."""
    return tuple(a.reshape(-1) for a in arrays)


__all__ += ["flat_tuple"]
