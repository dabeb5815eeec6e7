"""BatchNormalization kernels over the channels-last view x2d (M, C), M = every
position of every image, C = channels (the normalised axis is the last one).

Why: the numpy version made about six passes with temporaries and ran on one core
(BN+ReLU was 36 ms of an 80 ms step on Conv-BN-ReLU x2). Here a training step reads x
twice forward (statistics, then the affine map) and twice backward, and a relu that
follows the layer is applied in the same pass (``relu=True``).

Statistics: each of ``num_stat_chunks(M)`` row chunks sums x and x*x in float64 into
its own row of the partials (prange over chunks, disjoint writes); ``bn_finish_batch``
reduces them. The chunk count depends only on M, never on the thread count, so results
are the same with 1 or 2 threads. Variance is the biased batch variance
E[x^2] - E[x]^2 (float64 sums: no cancellation at float32 precision), the one Keras
normalises with and folds into moving_variance (keras/src/layers/normalization/
batch_normalization.py: ``moving_variance * momentum + variance * (1 - momentum)``).

Every kernel is nogil and cached; the ones an inference-mode call can reach (the affine
map, and the backward of a saliency map) have a ``_serial`` twin for a second thread
(``parallel.use_serial()``: under the workqueue layer two threads must never both launch
parallel regions). The batch statistics run in training only, in the training thread.
"""

import math

import numpy as np
from numba import njit, prange

from visualcnn.engine import parallel  # noqa: F401  (the layers ask parallel.use_serial())
from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["num_stat_chunks", "bn_stat_partials", "bn_finish_batch", "bn_finish_moving",
           "bn_apply", "bn_apply_serial", "bn_grad_partials", "bn_grad_partials_serial", "bn_finish_grads",
           "bn_backward_input", "bn_backward_input_serial"]

_ROWS_PER_CHUNK = 512
_MAX_CHUNKS = 16


def num_stat_chunks(rows):
    """Row chunks of the statistics partial sums: a function of M alone (determinism)."""
    return max(1, min(_MAX_CHUNKS, (rows + _ROWS_PER_CHUNK - 1) // _ROWS_PER_CHUNK))


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def bn_stat_partials(x2d, psum, psq):
    """psum[t, c] = sum of x2d[r, c], psq[t, c] = sum of x2d[r, c]^2 over the rows r of
    chunk t (T = psum.shape[0] equal chunks), float64. prange over chunks."""
    M, C = x2d.shape
    T = psum.shape[0]
    for t in prange(T):
        r0 = t * M // T
        r1 = (t + 1) * M // T
        s = np.zeros(C, np.float64)
        q = np.zeros(C, np.float64)
        for r in range(r0, r1):
            for c in range(C):
                v = np.float64(x2d[r, c])
                s[c] += v
                q[c] += v * v
        for c in range(C):
            psum[t, c] = s[c]
            psq[t, c] = q[c]


@njit(nogil=True, cache=True)
def bn_finish_batch(psum, psq, rows, gamma, beta, epsilon, momentum, update,
                    moving_mean, moving_var, mean, inv_std, scale, shift):
    """Batch statistics from the partials and the affine map they give.

    mean, inv_std = 1/sqrt(var + epsilon), scale = gamma*inv_std, shift = beta -
    mean*scale (gamma / beta empty = 1 / 0). update: moving = moving*momentum +
    batch*(1 - momentum) with the biased variance, as Keras. All (C,) float32.
    """
    T, C = psum.shape
    for c in range(C):
        s = 0.0
        q = 0.0
        for t in range(T):
            s += psum[t, c]
            q += psq[t, c]
        m = s / rows
        var = max(q / rows - m * m, 0.0)
        mf = np.float32(m)
        vf = np.float32(var)
        mean[c] = mf
        inv = np.float32(1.0) / np.float32(math.sqrt(vf + epsilon))
        inv_std[c] = inv
        g = gamma[c] if gamma.shape[0] > 0 else np.float32(1.0)
        b = beta[c] if beta.shape[0] > 0 else np.float32(0.0)
        scale[c] = g * inv
        shift[c] = b - mf * g * inv
        if update:
            moving_mean[c] = moving_mean[c] * momentum + mf * (np.float32(1.0) - momentum)
            moving_var[c] = moving_var[c] * momentum + vf * (np.float32(1.0) - momentum)


@njit(nogil=True, cache=True)
def bn_finish_moving(gamma, beta, epsilon, moving_mean, moving_var, mean, inv_std, scale, shift):
    """Inference: the same outputs as ``bn_finish_batch`` from the moving statistics."""
    for c in range(moving_mean.shape[0]):
        mf = moving_mean[c]
        inv = np.float32(1.0) / np.float32(math.sqrt(moving_var[c] + epsilon))
        mean[c] = mf
        inv_std[c] = inv
        g = gamma[c] if gamma.shape[0] > 0 else np.float32(1.0)
        b = beta[c] if beta.shape[0] > 0 else np.float32(0.0)
        scale[c] = g * inv
        shift[c] = b - mf * g * inv


@njit(nogil=True, cache=True)
def bn_fold_moving(gamma, beta, epsilon, moving_mean, moving_var, kernel2d, bias, folded2d, folded_bias):
    """Inference folded into the conv before: folded2d (K, CO) = kernel2d * scale per output
    channel, folded_bias = bias * scale + shift (shift alone when bias is empty), with the
    scale and shift of ``bn_finish_moving``, bit for bit. One call instead of that kernel,
    two numpy passes and three buffers: a single image's predict paid 7.8 us per folded
    layer."""
    CO = moving_mean.shape[0]
    scale = np.empty(CO, np.float32)
    for c in range(CO):
        mf = moving_mean[c]
        inv = np.float32(1.0) / np.float32(math.sqrt(moving_var[c] + epsilon))
        g = gamma[c] if gamma.shape[0] > 0 else np.float32(1.0)
        b = beta[c] if beta.shape[0] > 0 else np.float32(0.0)
        scale[c] = g * inv
        shift = b - mf * g * inv
        folded_bias[c] = bias[c] * scale[c] + shift if bias.shape[0] > 0 else shift
    for k in range(kernel2d.shape[0]):  # row by row: the output channels are contiguous
        for c in range(CO):
            folded2d[k, c] = kernel2d[k, c] * scale[c]


def _bn_apply(x2d, scale, shift, y2d, relu):
    """y2d = x2d*scale + shift per channel, then max(., 0) when relu. prange over
    256-row blocks (disjoint rows of y2d)."""
    M, C = x2d.shape
    nb = (M + 255) // 256
    for b in prange(nb):
        for r in range(b * 256, min(M, b * 256 + 256)):
            for c in range(C):
                v = x2d[r, c] * scale[c] + shift[c]
                if relu and v < 0.0:
                    v = np.float32(0.0)
                y2d[r, c] = v


bn_apply, bn_apply_serial = twins(_bn_apply, fastmath=FAST)


def _bn_grad_partials(x2d, dy2d, scale, shift, mean, relu, pdy, pdyx):
    """Per chunk t (rows split as in ``bn_stat_partials``): pdy[t, c] = sum of g and
    pdyx[t, c] = sum of g*(x - mean), float64, with g = dy, or dy*(x*scale + shift > 0)
    when relu (the relu that followed the layer; its mask is recomputed from x, which is
    read anyway, instead of reading the output y: one stream less). prange over chunks."""
    M, C = x2d.shape
    T = pdy.shape[0]
    for t in prange(T):
        r0 = t * M // T
        r1 = (t + 1) * M // T
        s = np.zeros(C, np.float64)
        q = np.zeros(C, np.float64)
        for r in range(r0, r1):
            for c in range(C):
                g = dy2d[r, c]
                if relu and x2d[r, c] * scale[c] + shift[c] <= 0.0:
                    g = np.float32(0.0)
                s[c] += g
                q[c] += np.float64(g) * np.float64(x2d[r, c] - mean[c])
        for c in range(C):
            pdy[t, c] = s[c]
            pdyx[t, c] = q[c]


@njit(nogil=True, cache=True)
def bn_finish_grads(pdy, pdyx, rows, gamma, mean, inv_std, batch_stats, grad_gamma, grad_beta,
                    coef_dy, coef_x, coef_c):
    """Weight gradients and the per-channel coefficients of dx = coef_dy*g + coef_x*x + coef_c.

    grad_beta = sum g, grad_gamma = sum g*xhat (xhat = (x - mean)*inv_std), written when
    non-empty. With batch statistics (training) dx = gamma*inv_std*(g - mean(g) -
    xhat*mean(g*xhat)); with fixed statistics (inference) dx = gamma*inv_std*g.
    """
    T, C = pdy.shape
    for c in range(C):
        sg = 0.0
        sgx = 0.0
        for t in range(T):
            sg += pdy[t, c]
            sgx += pdyx[t, c]
        inv = np.float64(inv_std[c])
        dgamma = sgx * inv
        if grad_beta.shape[0] > 0:
            grad_beta[c] = np.float32(sg)
        if grad_gamma.shape[0] > 0:
            grad_gamma[c] = np.float32(dgamma)
        g = np.float64(gamma[c]) if gamma.shape[0] > 0 else 1.0
        a = g * inv
        if batch_stats:
            b = -a * inv * dgamma / rows
            coef_dy[c] = np.float32(a)
            coef_x[c] = np.float32(b)
            coef_c[c] = np.float32(-a * sg / rows - b * np.float64(mean[c]))
        else:
            coef_dy[c] = np.float32(a)
            coef_x[c] = np.float32(0.0)
            coef_c[c] = np.float32(0.0)


bn_grad_partials, bn_grad_partials_serial = twins(_bn_grad_partials, fastmath=FAST)


def _bn_backward_input(x2d, dy2d, scale, shift, coef_dy, coef_x, coef_c, relu, dx2d):
    """dx2d = coef_dy*g + coef_x*x + coef_c per channel, g = dy (times x*scale + shift > 0
    when relu). dx2d may alias dy2d. prange over 256-row blocks."""
    M, C = x2d.shape
    nb = (M + 255) // 256
    for b in prange(nb):
        for r in range(b * 256, min(M, b * 256 + 256)):
            for c in range(C):
                xv = x2d[r, c]
                g = dy2d[r, c]
                if relu and xv * scale[c] + shift[c] <= 0.0:
                    g = np.float32(0.0)
                dx2d[r, c] = coef_dy[c] * g + coef_x[c] * xv + coef_c[c]


bn_backward_input, bn_backward_input_serial = twins(_bn_backward_input, fastmath=FAST)
