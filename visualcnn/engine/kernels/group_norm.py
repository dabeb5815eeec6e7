"""GroupNormalization kernels over the channels-last view x3 (N, P, C): P = every
position of one example, the C channels split into G groups of C/G neighbours. Each
(example, group) is normalised over its P*C/G values; gamma / beta are per channel.

Every pass runs over whole rows of C channels (contiguous, so the inner loop
vectorises; a loop over the C/G channels of one group at a time was 10x slower), with
per-channel sums folded into per-group figures between the passes. Statistics in
float64 (two passes: mean, then squared deviations), biased variance, as Keras
(keras/src/layers/normalization/group_normalization.py: moments over the group,
rsqrt(var + epsilon)).

Backward per example and group, with xhat = (x - mean)*inv_std and g = dy*gamma:
    dx = inv_std*(g - mean(g) - xhat*mean(g*xhat)),
written per channel as dx = A*dy + B*x + K. The weight gradients are summed per example
into float64 partials (N, C), reduced by the caller, so every prange iteration writes
only its own rows. prange over examples.
"""

import math

import numpy as np
from numba import prange

from visualcnn.engine import parallel  # noqa: F401  (the layers ask parallel.use_serial())
from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["gn_forward", "gn_forward_serial", "gn_backward", "gn_backward_serial"]


def _gn_forward(x3, groups, gamma, beta, epsilon, y3, mean, inv_std):
    """y3 = (x3 - mean)*inv_std*gamma + beta per (example, group); mean, inv_std (N, G)
    float32 out; gamma / beta empty = 1 / 0. prange over examples."""
    N, P, C = x3.shape
    cg = C // groups
    count = P * cg
    for n in prange(N):
        s = np.zeros(C, np.float64)
        for p in range(P):
            for c in range(C):
                s[c] += x3[n, p, c]
        mc = np.empty(C, np.float64)  # each channel's group mean
        for gi in range(groups):
            t = 0.0
            for c in range(gi * cg, gi * cg + cg):
                t += s[c]
            for c in range(gi * cg, gi * cg + cg):
                mc[c] = t / count
        q = np.zeros(C, np.float64)
        for p in range(P):
            for c in range(C):
                d = x3[n, p, c] - mc[c]
                q[c] += d * d
        scale = np.empty(C, np.float32)
        shift = np.empty(C, np.float32)
        for gi in range(groups):
            t = 0.0
            for c in range(gi * cg, gi * cg + cg):
                t += q[c]
            m = np.float32(mc[gi * cg])
            inv = np.float32(1.0 / math.sqrt(np.float64(np.float32(t / count)) + epsilon))
            mean[n, gi] = m
            inv_std[n, gi] = inv
            for c in range(gi * cg, gi * cg + cg):
                g = gamma[c] if gamma.shape[0] > 0 else np.float32(1.0)
                b = beta[c] if beta.shape[0] > 0 else np.float32(0.0)
                scale[c] = inv * g
                shift[c] = b - m * inv * g
        for p in range(P):
            for c in range(C):
                y3[n, p, c] = x3[n, p, c] * scale[c] + shift[c]


gn_forward, gn_forward_serial = twins(_gn_forward, fastmath=FAST)


def _gn_backward(x3, dy3, groups, gamma, mean, inv_std, need_dx, dx3, pgamma, pbeta):
    """dx3 (when need_dx) and the per-example partials pgamma[n, c] = sum over p of
    dy*xhat, pbeta[n, c] = sum over p of dy (float64). dx3 must not alias dy3."""
    N, P, C = x3.shape
    cg = C // groups
    count = P * cg
    has_gamma = gamma.shape[0] > 0
    for n in prange(N):
        mc = np.empty(C, np.float32)
        ic = np.empty(C, np.float32)
        for c in range(C):
            mc[c] = mean[n, c // cg]
            ic[c] = inv_std[n, c // cg]
        sdy = np.zeros(C, np.float64)
        sdyx = np.zeros(C, np.float64)  # sum of dy*(x - mean)
        for p in range(P):
            for c in range(C):
                dy = dy3[n, p, c]
                sdy[c] += dy
                sdyx[c] += dy * (x3[n, p, c] - mc[c])
        for c in range(C):
            pbeta[n, c] = sdy[c]
            pgamma[n, c] = sdyx[c] * ic[c]
        if not need_dx:
            continue
        a = np.empty(C, np.float32)  # dx = a*dy + b*x + k per channel
        b = np.empty(C, np.float32)
        k = np.empty(C, np.float32)
        for gi in range(groups):
            sg = 0.0
            sgx = 0.0  # sums over the group of g and g*xhat
            for c in range(gi * cg, gi * cg + cg):
                gam = np.float64(gamma[c]) if has_gamma else 1.0
                sg += gam * sdy[c]
                sgx += gam * pgamma[n, c]
            inv = np.float64(ic[gi * cg])
            m = np.float64(mc[gi * cg])
            mg = sg / count
            mgx = sgx / count
            for c in range(gi * cg, gi * cg + cg):
                gam = np.float64(gamma[c]) if has_gamma else 1.0
                # inv*(gam*dy - mg - (x - m)*inv*mgx)
                a[c] = np.float32(inv * gam)
                b[c] = np.float32(-inv * inv * mgx)
                k[c] = np.float32(-inv * mg + inv * inv * mgx * m)
        for p in range(P):
            for c in range(C):
                dx3[n, p, c] = a[c] * dy3[n, p, c] + b[c] * x3[n, p, c] + k[c]


gn_backward, gn_backward_serial = twins(_gn_backward, fastmath=FAST)
