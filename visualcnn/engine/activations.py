"""Activation functions by Keras name: forward and backward side by side.

Every name in ``layers.arguments.ACTIVATIONS`` has an entry here. Each activation is a
pair of numba kernels over flat float32 arrays (softmax / log_softmax over the last
axis of a (rows, classes) view):

    forward(x, y)             y = f(x)
    backward(x, y, dy, dx)    dx = dy * f'(x)   (may read x, y or both; dx may alias dy)

All kernels are serial (an elementwise pass is memory-bound; threads do not pay at these
sizes) and nogil, so they are safe from any thread.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .layers.arguments import ACTIVATIONS

# error_model="numpy": IEEE division without a per-element zero check, so the loops
# with a division vectorise (no denominator here can be zero anyway).
_OPTS = dict(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"}, error_model="numpy")

LEAKY_RELU_SLOPE = np.float32(0.2)  # Keras 3 default negative_slope
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


# --- linear ------------------------------------------------------------------------

@njit(**_OPTS)
def _linear_fwd(x, y):
    for i in range(x.shape[0]):
        y[i] = x[i]


@njit(**_OPTS)
def _linear_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        dx[i] = dy[i]


# --- relu family --------------------------------------------------------------------

@njit(**_OPTS)
def _relu_fwd(x, y):
    for i in range(x.shape[0]):
        y[i] = x[i] if x[i] > 0.0 else np.float32(0.0)


@njit(**_OPTS)
def _relu_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        dx[i] = dy[i] if y[i] > 0.0 else np.float32(0.0)


@njit(**_OPTS)
def _relu6_fwd(x, y):
    for i in range(x.shape[0]):
        v = x[i]
        y[i] = np.float32(0.0) if v < 0.0 else (np.float32(6.0) if v > 6.0 else v)


@njit(**_OPTS)
def _relu6_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        dx[i] = dy[i] if (x[i] > 0.0 and x[i] < 6.0) else np.float32(0.0)


@njit(**_OPTS)
def _leaky_fwd(x, y):
    for i in range(x.shape[0]):
        y[i] = x[i] if x[i] > 0.0 else x[i] * LEAKY_RELU_SLOPE


@njit(**_OPTS)
def _leaky_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        dx[i] = dy[i] if x[i] > 0.0 else dy[i] * LEAKY_RELU_SLOPE


@njit(**_OPTS)
def _elu_fwd(x, y):
    for i in range(x.shape[0]):
        y[i] = x[i] if x[i] > 0.0 else np.float32(math.expm1(x[i]))


@njit(**_OPTS)
def _elu_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        dx[i] = dy[i] if x[i] > 0.0 else dy[i] * (y[i] + np.float32(1.0))


@njit(**_OPTS)
def _selu_fwd(x, y):
    for i in range(x.shape[0]):
        v = x[i]
        y[i] = np.float32(SELU_SCALE * v) if v > 0.0 else np.float32(SELU_SCALE * SELU_ALPHA * math.expm1(v))


@njit(**_OPTS)
def _selu_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        v = x[i]
        g = SELU_SCALE if v > 0.0 else SELU_SCALE * SELU_ALPHA * math.exp(v)
        dx[i] = np.float32(dy[i] * g)


@njit(**_OPTS)
def _gelu_fwd(x, y):
    # Keras's default gelu is the exact erf form (approximate=False).
    for i in range(x.shape[0]):
        v = float(x[i])
        y[i] = np.float32(0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))


@njit(**_OPTS)
def _gelu_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        v = float(x[i])
        cdf = 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))
        pdf = math.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)
        dx[i] = np.float32(dy[i] * (cdf + v * pdf))


# --- sigmoid family -----------------------------------------------------------------

@njit(**_OPTS)
def _sigmoid_scalar(v):
    if v >= 0.0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


@njit(**_OPTS)
def _sigmoid_fwd(x, y):
    for i in range(x.shape[0]):
        y[i] = np.float32(_sigmoid_scalar(float(x[i])))


@njit(**_OPTS)
def _sigmoid_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        dx[i] = dy[i] * y[i] * (np.float32(1.0) - y[i])


@njit(**_OPTS)
def _hard_sigmoid_fwd(x, y):
    # Keras 3: relu6(x + 3) / 6, i.e. clip(x / 6 + 0.5, 0, 1).
    for i in range(x.shape[0]):
        v = x[i] / np.float32(6.0) + np.float32(0.5)
        y[i] = np.float32(0.0) if v < 0.0 else (np.float32(1.0) if v > 1.0 else v)


@njit(**_OPTS)
def _hard_sigmoid_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        dx[i] = dy[i] / np.float32(6.0) if (x[i] > -3.0 and x[i] < 3.0) else np.float32(0.0)


@njit(**_OPTS)
def _silu_fwd(x, y):
    for i in range(x.shape[0]):
        v = float(x[i])
        y[i] = np.float32(v * _sigmoid_scalar(v))


@njit(**_OPTS)
def _silu_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        v = float(x[i])
        s = _sigmoid_scalar(v)
        dx[i] = np.float32(dy[i] * (s * (1.0 + v * (1.0 - s))))


def _tanh_fwd(x, y):
    # numpy's tanh is vectorised; numba's scalar libm call measured ~47x slower here
    # (4.2 ms vs 0.09 ms for LeNet's 301k values). Ufuncs release the GIL as well.
    np.tanh(x, out=y)


@njit(**_OPTS)
def _tanh_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        dx[i] = dy[i] * (np.float32(1.0) - y[i] * y[i])


@njit(**_OPTS)
def _softplus_fwd(x, y):
    for i in range(x.shape[0]):
        v = float(x[i])
        y[i] = np.float32(max(v, 0.0) + math.log1p(math.exp(-abs(v))))


@njit(**_OPTS)
def _softplus_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        dx[i] = np.float32(dy[i] * _sigmoid_scalar(float(x[i])))


@njit(**_OPTS)
def _softsign_fwd(x, y):
    for i in range(x.shape[0]):
        y[i] = x[i] / (np.float32(1.0) + abs(x[i]))


@njit(**_OPTS)
def _softsign_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        d = np.float32(1.0) + abs(x[i])
        dx[i] = dy[i] / (d * d)


@njit(**_OPTS)
def _exponential_fwd(x, y):
    for i in range(x.shape[0]):
        y[i] = np.float32(math.exp(x[i]))


@njit(**_OPTS)
def _exponential_bwd(x, y, dy, dx):
    for i in range(dy.shape[0]):
        dx[i] = dy[i] * y[i]


# --- softmax over the last axis (x, y viewed as (rows, K)) ---------------------------

@njit(inline="always", **_OPTS)
def _row_max(x, r):
    """max over row r: subtracted before exp so softmax never overflows."""
    m = x[r, 0]
    for k in range(1, x.shape[1]):
        if x[r, k] > m:
            m = x[r, k]
    return m


@njit(**_OPTS)
def _softmax_fwd(x, y):
    """Row by row: subtract the max, exponentiate, normalise (stable)."""
    for r in range(x.shape[0]):
        m = _row_max(x, r)
        s = 0.0
        for k in range(x.shape[1]):
            e = math.exp(x[r, k] - m)
            y[r, k] = np.float32(e)
            s += e
        inv = np.float32(1.0 / s)
        for k in range(x.shape[1]):
            y[r, k] *= inv


@njit(**_OPTS)
def _softmax_bwd(x, y, dy, dx):
    """dx = y * (dy - sum(dy * y)) per row."""
    for r in range(y.shape[0]):
        s = np.float32(0.0)
        for k in range(y.shape[1]):
            s += dy[r, k] * y[r, k]
        for k in range(y.shape[1]):
            dx[r, k] = y[r, k] * (dy[r, k] - s)


@njit(**_OPTS)
def _log_softmax_fwd(x, y):
    for r in range(x.shape[0]):
        m = _row_max(x, r)
        s = 0.0
        for k in range(x.shape[1]):
            s += math.exp(x[r, k] - m)
        lse = m + math.log(s)
        for k in range(x.shape[1]):
            y[r, k] = np.float32(x[r, k] - lse)


@njit(**_OPTS)
def _log_softmax_bwd(x, y, dy, dx):
    """dx = dy - softmax * sum(dy) per row; softmax = exp(y)."""
    for r in range(y.shape[0]):
        s = np.float32(0.0)
        for k in range(y.shape[1]):
            s += dy[r, k]
        for k in range(y.shape[1]):
            dx[r, k] = dy[r, k] - np.float32(math.exp(y[r, k])) * s


class Activation:
    """One activation function: ``forward(x, out)`` and ``backward(x, y, dy, out)``.

    Arrays are float32 and C-contiguous; ``out`` is preallocated by the caller and may be
    ``dy`` itself in ``backward``. ``needs_input`` says whether backward reads x (the
    layer must then keep the pre-activation alive).
    """

    def __init__(self, name: str, fwd, bwd, needs_input: bool, rowwise: bool = False):
        self.name = name
        self._fwd = fwd
        self._bwd = bwd
        self.needs_input = needs_input
        self.rowwise = rowwise

    def _view(self, a: np.ndarray) -> np.ndarray:
        return a.reshape(-1, a.shape[-1]) if self.rowwise else a.reshape(-1)

    def forward(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        self._fwd(self._view(x), self._view(out))
        return out

    def backward(self, x: np.ndarray | None, y: np.ndarray, dy: np.ndarray, out: np.ndarray) -> np.ndarray:
        xv = self._view(x) if x is not None else self._view(y)
        self._bwd(xv, self._view(y), self._view(dy), self._view(out))
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Allocating convenience form: f(x) as a new float32 array."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.forward(x, np.empty_like(x))

    def __repr__(self) -> str:
        return f"<activation {self.name}>"


_TABLE = {
    "linear": Activation("linear", _linear_fwd, _linear_bwd, False),
    "relu": Activation("relu", _relu_fwd, _relu_bwd, False),
    "relu6": Activation("relu6", _relu6_fwd, _relu6_bwd, True),
    "leaky_relu": Activation("leaky_relu", _leaky_fwd, _leaky_bwd, True),
    "elu": Activation("elu", _elu_fwd, _elu_bwd, True),
    "selu": Activation("selu", _selu_fwd, _selu_bwd, True),
    "gelu": Activation("gelu", _gelu_fwd, _gelu_bwd, True),
    "sigmoid": Activation("sigmoid", _sigmoid_fwd, _sigmoid_bwd, False),
    "hard_sigmoid": Activation("hard_sigmoid", _hard_sigmoid_fwd, _hard_sigmoid_bwd, True),
    "tanh": Activation("tanh", _tanh_fwd, _tanh_bwd, False),
    "softmax": Activation("softmax", _softmax_fwd, _softmax_bwd, False, rowwise=True),
    "log_softmax": Activation("log_softmax", _log_softmax_fwd, _log_softmax_bwd, False, rowwise=True),
    "softplus": Activation("softplus", _softplus_fwd, _softplus_bwd, True),
    "softsign": Activation("softsign", _softsign_fwd, _softsign_bwd, True),
    "silu": Activation("silu", _silu_fwd, _silu_bwd, True),
    "exponential": Activation("exponential", _exponential_fwd, _exponential_bwd, False),
}
assert set(_TABLE) == set(ACTIVATIONS), "activations.py must implement every name in ACTIVATIONS"


def get(name: str | None) -> Activation:
    """The activation for a normalised Keras name (None means linear)."""
    key = "linear" if name is None else name
    try:
        return _TABLE[key]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}") from None


__all__ = ["Activation", "get", "LEAKY_RELU_SLOPE"]
