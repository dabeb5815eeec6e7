"""Dropout and global pooling: one memory pass each, parallel over blocks or images.

Dropout draws no array of random numbers. Whether value i is kept is a pure function of
(key, i): a splitmix64 hash of ``key + (i + 1) * golden``, whose top 24 bits are compared
with ``rate * 2**24`` (keep when >=, as tf.nn.dropout keeps uniform >= rate). So the mask
is the same for a key whatever the thread count or block split, nothing is stored
between forward and backward (the backward recomputes it), and the layer draws one key
per call from its seeded generator (reseeding reproduces the masks).

Global pooling views x (N, H, W, C) as x3 (N, P = H*W, C); prange over images. Each has
a ``_serial`` twin: inference and a saliency map's backward from a second thread must
not launch parallel regions (``parallel.use_serial()``).
"""

import numpy as np
from numba import njit, prange

from visualcnn.engine import parallel  # noqa: F401  (the layers ask parallel.use_serial())
from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["dropout_threshold", "dropout_forward", "dropout_backward", "keep_mask_reference",
           "global_avg_forward", "global_avg_forward_serial", "global_avg_backward",
           "global_avg_backward_serial", "global_max_forward", "global_max_forward_serial",
           "global_max_backward", "global_max_backward_serial"]

_BLOCK = 8192
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)


def dropout_threshold(rate):
    """The 24-bit integer t with keep <=> hash24 >= t, i.e. P(keep) = 1 - rate."""
    return np.uint64(min(1 << 24, int(np.ceil(float(rate) * (1 << 24)))))


@njit(nogil=True, cache=True, inline="always")
def _hash24(key, i):
    z = key + (np.uint64(i) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    z = z ^ (z >> _S31)
    return z >> _S40


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _dropout_block(src, dst, first, key, threshold, scale):
    """dst[j] = src[j]*scale where value first + j is kept, else 0 (block slices: loops
    from 0 vectorise, an offset index did not)."""
    for j in range(src.shape[0]):
        keep = _hash24(key, first + j) >= threshold
        dst[j] = src[j] * scale if keep else np.float32(0.0)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def dropout_forward(x, y, key, threshold, scale):
    """y[i] = x[i]*scale where hash24(key, i) >= threshold, else 0. Flat arrays; prange
    over blocks of 8192 values."""
    n = x.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        s, e = b * _BLOCK, min(n, b * _BLOCK + _BLOCK)
        _dropout_block(x[s:e], y[s:e], s, key, threshold, scale)


def dropout_backward(dy, dx, key, threshold, scale):
    """dx[i] = dy[i]*scale where the forward kept value i (same key), else 0. dx may
    alias dy. The forward's own kernel: the same mask from the same key, so one kernel
    to compile instead of two (0.4 s on a fresh install)."""
    dropout_forward(dy, dx, key, threshold, scale)


def keep_mask_reference(key, n, rate):
    """The keep mask of ``dropout_forward`` computed with numpy (for tests)."""
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        z = z ^ (z >> _S31)
    return (z >> _S40) >= dropout_threshold(rate)


def _global_avg_forward(x3, y):
    """y[n, c] = mean over p of x3[n, p, c] (float32 sums). prange over images."""
    N, P, C = x3.shape
    inv = np.float32(1.0 / P)
    for n in prange(N):
        for c in range(C):
            y[n, c] = 0.0
        for p in range(P):
            for c in range(C):
                y[n, c] += x3[n, p, c]
        for c in range(C):
            y[n, c] *= inv


global_avg_forward, global_avg_forward_serial = twins(_global_avg_forward, fastmath=FAST)


def _global_avg_backward(dy, dx3):
    """dx3[n, p, c] = dy[n, c] / P: every position shared the average equally."""
    N, P, C = dx3.shape
    inv = np.float32(1.0 / P)
    for n in prange(N):
        for p in range(P):
            for c in range(C):
                dx3[n, p, c] = dy[n, c] * inv


global_avg_backward, global_avg_backward_serial = twins(_global_avg_backward, fastmath=FAST)


def _global_max_forward(x3, y, argmax):
    """y[n, c] = max over p of x3[n, p, c]; argmax[n, c] = the first p holding it (a NaN
    counts as the maximum, as np.argmax). prange over images."""
    N, P, C = x3.shape
    for n in prange(N):
        for c in range(C):
            y[n, c] = x3[n, 0, c]
            argmax[n, c] = 0
        for p in range(1, P):
            for c in range(C):
                v = x3[n, p, c]
                best = y[n, c]
                if v > best or (v != v and best == best):
                    y[n, c] = v
                    argmax[n, c] = p


global_max_forward, global_max_forward_serial = twins(_global_max_forward)


def _global_max_backward(dy, argmax, dx3):
    """dx3 = 0 except dx3[n, argmax[n, c], c] = dy[n, c] (the winner takes the gradient)."""
    N, P, C = dx3.shape
    for n in prange(N):
        for p in range(P):
            for c in range(C):
                dx3[n, p, c] = 0.0
        for c in range(C):
            dx3[n, argmax[n, c], c] = dy[n, c]


global_max_backward, global_max_backward_serial = twins(_global_max_backward)
