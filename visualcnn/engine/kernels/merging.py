"""Merge-layer kernels: one memory pass each, parallel over blocks of values or rows.

Inputs of the same shape are passed as a tuple of flat C-contiguous float32 arrays (numba
compiles one version per input count). Concatenate along the last axis views every
tensor as rows (M, C): each input is copied into (forward) or out of (backward) its
channel slice, row by row. Each kernel has a ``_serial`` twin for inference from a second
thread or of one image (``parallel.use_serial()``).
"""

import numpy as np
from numba import njit, prange

from visualcnn.engine import parallel  # noqa: F401  (the layers ask parallel.use_serial())
from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["sum_forward", "sum_forward_serial", "extremum_backward", "extremum_backward_serial",
           "product_backward", "product_backward_serial", "concat_last", "concat_last_serial",
           "split_last", "split_last_serial"]

_BLOCK = 8192


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _add_into(dst, src):
    """dst += src over block slices (loops from 0 vectorise; an offset index did not)."""
    for i in range(dst.shape[0]):
        dst[i] += src[i]


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _finish(dst, scale, relu):
    if scale != 1.0:
        for i in range(dst.shape[0]):
            dst[i] *= scale
    if relu:
        for i in range(dst.shape[0]):
            if dst[i] < 0.0:
                dst[i] = 0.0


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _pair(dst, a, b, relu):
    if relu:
        for i in range(dst.shape[0]):
            v = a[i] + b[i]
            dst[i] = v if v > 0.0 else np.float32(0.0)
    else:
        for i in range(dst.shape[0]):
            dst[i] = a[i] + b[i]


def _sum_forward(xs, y, scale, relu):
    """y = (x0 + x1 + ...) * scale, then max(., 0) when relu (Add followed by its relu,
    Average). xs: a tuple of flat arrays shaped like y; prange over blocks of 8192."""
    n = y.shape[0]
    k = len(xs)
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        s, e = b * _BLOCK, min(n, b * _BLOCK + _BLOCK)
        out = y[s:e]
        if k == 2 and scale == 1.0:
            _pair(out, xs[0][s:e], xs[1][s:e], relu)  # the residual block's add: one pass
            continue
        out[:] = xs[0][s:e]
        for j in range(1, k):
            _add_into(out, xs[j][s:e])
        _finish(out, scale, relu)


sum_forward, sum_forward_serial = twins(_sum_forward, fastmath=FAST)


@njit(nogil=True, cache=True, inline="always")
def _claim(x, y, win, j):
    """win = j where x holds y and no earlier input did (win starts at 255: none)."""
    for i in range(win.shape[0]):
        if win[i] == 255 and x[i] == y[i]:
            win[i] = j


@njit(nogil=True, cache=True, inline="always")
def _route(dy, dx, win, j):
    for i in range(dx.shape[0]):
        dx[i] = dy[i] if win[i] == j else np.float32(0.0)


def _extremum_backward(xs, y, dy, dxs, win):
    """dxs[j] = dy where input j is the first to hold the forward's result y (Maximum,
    Minimum: ties go to the earlier input, as TensorFlow's x >= y), else 0. win: uint8
    scratch shaped like y (the winner per value; at most 255 inputs). prange over blocks."""
    n = y.shape[0]
    k = len(xs)
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        s, e = b * _BLOCK, min(n, b * _BLOCK + _BLOCK)
        w = win[s:e]
        w[:] = 255
        for j in range(k):
            _claim(xs[j][s:e], y[s:e], w, j)
        for j in range(k):
            _route(dy[s:e], dxs[j][s:e], w, j)


extremum_backward, extremum_backward_serial = twins(_extremum_backward)


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _mul_into(dst, src):
    for i in range(dst.shape[0]):
        dst[i] *= src[i]


def _product_backward(xs, dy, dxs):
    """dxs[j] = dy * (the product of every input but j) (Multiply)."""
    n = dy.shape[0]
    k = len(xs)
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        s, e = b * _BLOCK, min(n, b * _BLOCK + _BLOCK)
        for j in range(k):
            out = dxs[j][s:e]
            out[:] = dy[s:e]
            for m in range(k):
                if m != j:
                    _mul_into(out, xs[m][s:e])


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
