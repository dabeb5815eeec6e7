"""GroupNormalization kernels over the channels-last view x3 (N, P, C): P = every
position of one example, the C channels split into G groups of C/G neighbours. Each
(example, group) is normalised over its P*C/G values; gamma / beta are per channel.

Statistics in float64 (two passes), biased variance, as Keras (keras/src/layers/
normalization/group_normalization.py: ops.moments over the group, rsqrt(var + epsilon)).
Backward per (example, group), with xhat = (x - mean)*inv_std and g = dy*gamma:
    dx = inv_std*(g - mean(g) - xhat*mean(g*xhat));
the weight gradients are summed per example into float64 partials (N, C) and reduced by
the caller, so every prange iteration writes only its own rows.
"""

import math

import numpy as np
from numba import prange

from visualcnn.engine import parallel  # noqa: F401  (the layers ask parallel.use_serial())
from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["gn_forward", "gn_forward_serial", "gn_backward", "gn_backward_serial"]


def _gn_forward(x3, groups, gamma, beta, epsilon, y3, mean, inv_std):
    """y3 = (x3 - mean)*inv_std*gamma + beta per (example, group); mean, inv_std (N, G)
    float32 out; gamma / beta empty = 1 / 0. prange over (example, group) pairs."""
    N, P, C = x3.shape
    cg = C // groups
    count = P * cg
    for k in prange(N * groups):
        n = k // groups
        c0 = (k % groups) * cg
        s = 0.0
        for p in range(P):
            for c in range(c0, c0 + cg):
                s += np.float64(x3[n, p, c])
        mu = s / count
        q = 0.0
        for p in range(P):
            for c in range(c0, c0 + cg):
                t = np.float64(x3[n, p, c]) - mu
                q += t * t
        m = np.float32(mu)
        inv = np.float32(1.0 / math.sqrt(np.float64(np.float32(q / count)) + epsilon))
        mean[n, k % groups] = m
        inv_std[n, k % groups] = inv
        for p in range(P):
            for c in range(c0, c0 + cg):
                v = (x3[n, p, c] - m) * inv
                if gamma.shape[0] > 0:
                    v = v * gamma[c]
                if beta.shape[0] > 0:
                    v = v + beta[c]
                y3[n, p, c] = v


gn_forward, gn_forward_serial = twins(_gn_forward, fastmath=FAST)


def _gn_backward(x3, dy3, groups, gamma, mean, inv_std, need_dx, dx3, pgamma, pbeta):
    """dx3 (when need_dx) and the per-example partials pgamma[n, c] = sum over p of
    dy*xhat, pbeta[n, c] = sum over p of dy (float64). prange over examples; dx3 must
    not alias dy3."""
    N, P, C = x3.shape
    cg = C // groups
    count = P * cg
    has_gamma = gamma.shape[0] > 0
    for n in prange(N):
        for c in range(C):
            pgamma[n, c] = 0.0
            pbeta[n, c] = 0.0
        for gi in range(groups):
            c0 = gi * cg
            m = mean[n, gi]
            inv = inv_std[n, gi]
            sg = 0.0
            sgx = 0.0
            for p in range(P):
                for c in range(c0, c0 + cg):
                    xhat = (x3[n, p, c] - m) * inv
                    dy = dy3[n, p, c]
                    pgamma[n, c] += np.float64(dy) * np.float64(xhat)
                    pbeta[n, c] += dy
                    g = dy * gamma[c] if has_gamma else dy
                    sg += g
                    sgx += np.float64(g) * np.float64(xhat)
            if need_dx:
                a = np.float32(sg / count)
                b = np.float32(sgx / count)
                for p in range(P):
                    for c in range(c0, c0 + cg):
                        xhat = (x3[n, p, c] - m) * inv
                        g = dy3[n, p, c] * gamma[c] if has_gamma else dy3[n, p, c]
                        dx3[n, p, c] = inv * (g - a - xhat * b)


gn_backward, gn_backward_serial = twins(_gn_backward, fastmath=FAST)
