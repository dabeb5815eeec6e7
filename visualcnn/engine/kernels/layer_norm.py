"""LayerNormalization kernels over a (M, D) view: each of the M rows (one per example,
or per position when only the channels are normalised) is normalised over its D values.

Statistics per row in float64 (two passes: mean, then the squared deviations: no
cancellation), the biased variance, as Keras (keras/src/ops/nn.py: moments with
keepdims, rsqrt(variance + epsilon)). The row means and 1/std are kept for backward.

Backward (xhat = (x - mean)*inv_std, g = dy*gamma):
    dx = inv_std*(g - mean_d(g) - xhat*mean_d(g*xhat)),
    dgamma = sum over rows of dy*xhat, dbeta = sum over rows of dy.
The weight gradients are summed per row chunk into float64 partials (``num_chunks(M)``,
a function of M alone, so the result does not depend on the thread count).
"""

import math

import numpy as np
from numba import prange

from visualcnn.engine import parallel  # noqa: F401  (the layers ask parallel.use_serial())
from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["num_chunks", "ln_forward", "ln_forward_serial", "ln_backward", "ln_backward_serial"]

_ROWS_PER_CHUNK = 256
_MAX_CHUNKS = 16


def num_chunks(rows):
    """Row chunks of the weight-gradient partials: a function of M alone (determinism)."""
    return max(1, min(_MAX_CHUNKS, (rows + _ROWS_PER_CHUNK - 1) // _ROWS_PER_CHUNK))


def _ln_forward(x2d, gamma, beta, epsilon, y2d, mean, inv_std):
    """y2d = (x2d - mean)*inv_std*gamma + beta per row; gamma / beta empty = 1 / 0.
    mean, inv_std (M,) float32 out. prange over rows."""
    M, D = x2d.shape
    for r in prange(M):
        s = 0.0
        for d in range(D):
            s += np.float64(x2d[r, d])
        mu = s / D
        q = 0.0
        for d in range(D):
            t = np.float64(x2d[r, d]) - mu
            q += t * t
        m = np.float32(mu)
        inv = np.float32(1.0 / math.sqrt(np.float64(np.float32(q / D)) + epsilon))
        mean[r] = m
        inv_std[r] = inv
        for d in range(D):
            v = (x2d[r, d] - m) * inv
            if gamma.shape[0] > 0:
                v = v * gamma[d]
            if beta.shape[0] > 0:
                v = v + beta[d]
            y2d[r, d] = v


ln_forward, ln_forward_serial = twins(_ln_forward, fastmath=FAST)


def _ln_backward(x2d, dy2d, gamma, mean, inv_std, need_dx, dx2d, pgamma, pbeta):
    """dx2d (when need_dx) and the weight-gradient partials pgamma[t, d] = sum of
    dy*xhat, pbeta[t, d] = sum of dy over the rows of chunk t (float64). prange over
    chunks; dx2d must not alias dy2d."""
    M, D = x2d.shape
    T = pgamma.shape[0]
    has_gamma = gamma.shape[0] > 0
    for t in prange(T):
        r0 = t * M // T
        r1 = (t + 1) * M // T
        pg = np.zeros(D, np.float64)
        pb = np.zeros(D, np.float64)
        for r in range(r0, r1):
            m = mean[r]
            inv = inv_std[r]
            sg = 0.0
            sgx = 0.0
            for d in range(D):
                xhat = (x2d[r, d] - m) * inv
                dy = dy2d[r, d]
                pg[d] += np.float64(dy) * np.float64(xhat)
                pb[d] += dy
                g = dy * gamma[d] if has_gamma else dy
                sg += g
                sgx += np.float64(g) * np.float64(xhat)
            if need_dx:
                a = np.float32(sg / D)
                b = np.float32(sgx / D)
                for d in range(D):
                    xhat = (x2d[r, d] - m) * inv
                    g = dy2d[r, d] * gamma[d] if has_gamma else dy2d[r, d]
                    dx2d[r, d] = inv * (g - a - xhat * b)
        for d in range(D):
            pgamma[t, d] = pg[d]
            pbeta[t, d] = pb[d]


ln_backward, ln_backward_serial = twins(_ln_backward, fastmath=FAST)
