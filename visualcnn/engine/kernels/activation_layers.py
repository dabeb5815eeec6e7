"""Kernels of the parametrised activation layers (ReLU, LeakyReLU, ELU, PReLU) and Rescaling.

Flat float32 arrays, one pass each, serial and nogil like ``engine/activations.py``: an
elementwise pass is memory-bound, so threads do not pay at these sizes, and a serial
kernel is safe from any thread (inference from the GUI thread). The parameters come in
as float32 scalars so every product is computed in float32, as Keras does.

Outputs never alias inputs: a layer must not write into its input or into the dy it is
given (a fork in a graph hands the same array to several layers).
"""

import math

import numpy as np
from numba import njit

__all__ = ["relu_forward", "relu_backward", "elu_forward", "elu_backward", "prelu_forward",
           "prelu_backward", "scale_offset"]

# error_model="numpy": no per-element division checks, so the loops vectorise.
_OPTS = dict(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"}, error_model="numpy")


@njit(**_OPTS)
def relu_forward(x, y, max_value, negative_slope, threshold):
    """Keras's relu(x, negative_slope, max_value, threshold):
    x > threshold: min(x, max_value); otherwise negative_slope * (x - threshold).
    max_value = +inf when there is none; LeakyReLU is threshold 0, no maximum."""
    for i in range(x.shape[0]):
        v = x[i]
        if v > threshold:
            y[i] = v if v < max_value else max_value
        else:
            y[i] = negative_slope * (v - threshold)


@njit(**_OPTS)
def relu_backward(x, dy, dx, max_value, negative_slope, threshold):
    """dx = dy * d relu/dx: 1 between threshold and max_value, 0 above max_value,
    negative_slope at or below threshold."""
    for i in range(x.shape[0]):
        v = x[i]
        if v > threshold:
            dx[i] = dy[i] if v < max_value else np.float32(0.0)
        else:
            dx[i] = dy[i] * negative_slope


@njit(**_OPTS)
def elu_forward(x, y, alpha):
    """x > 0: x; otherwise alpha * (exp(x) - 1) (expm1: exact near 0 in float32)."""
    for i in range(x.shape[0]):
        v = x[i]
        y[i] = v if v > 0.0 else alpha * np.float32(math.expm1(v))


@njit(**_OPTS)
def elu_backward(x, y, dy, dx, alpha):
    """d elu/dx = alpha * exp(x) = y + alpha for x <= 0 (reads y: no second exp)."""
    for i in range(x.shape[0]):
        dx[i] = dy[i] if x[i] > 0.0 else dy[i] * (y[i] + alpha)


@njit(**_OPTS)
def prelu_forward(x2, alpha, index, y2):
    """x2, y2 (N, P): one example per row. index (P,) int32: the alpha entry each position
    uses (shared axes map several positions to one). y = x for x > 0, alpha * x otherwise
    (Keras: relu(x) - alpha * relu(-x))."""
    for n in range(x2.shape[0]):
        for p in range(x2.shape[1]):
            v = x2[n, p]
            y2[n, p] = v if v > 0.0 else alpha[index[p]] * v


@njit(**_OPTS)
def prelu_backward(x2, dy2, alpha, index, dalpha, dx2, need_dx):
    """dalpha[a] = sum of dy * x over the negative x that use alpha a (float64 sums: one
    shared alpha may gather a whole batch of feature maps); dx = dy or alpha * dy."""
    acc = np.zeros(dalpha.shape[0], np.float64)
    for n in range(x2.shape[0]):
        for p in range(x2.shape[1]):
            v = x2[n, p]
            if v > 0.0:
                if need_dx:
                    dx2[n, p] = dy2[n, p]
            else:
                acc[index[p]] += dy2[n, p] * v
                if need_dx:
                    dx2[n, p] = alpha[index[p]] * dy2[n, p]
    for a in range(dalpha.shape[0]):
        dalpha[a] = np.float32(acc[a])


@njit(**_OPTS)
def scale_offset(x, y, scale, offset):
    """y = x * scale + offset in one pass (Rescaling; its backward is scale_offset(dy, dx, scale, 0))."""
    for i in range(x.shape[0]):
        y[i] = x[i] * scale + offset
