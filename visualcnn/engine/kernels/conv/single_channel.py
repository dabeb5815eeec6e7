"""Single-channel "plane" kernels: C = 1, unit strides, any kernel size except 3x3
(which ``few_channel`` takes), typically few filters (LeNet-5's 5x5x1 -> 6 first conv).

Strategy: with one input channel and few output channels there is nothing to vectorise
over in the channel axes, so these kernels vectorise over output positions instead.
With unit strides, output position p = oy*WP + ox of the zero-padded image plane (row
pitch WP) reads input p + ky*dh*WP + kx*dw for tap (ky, kx), so per output channel and
tap the whole image is ONE contiguous multiply-add over OH*WP positions (the columns
ox >= OW of each row are computed and ignored); up to ``TAPS`` taps of a kernel row go
in one pass (the forward reads and writes the plane once per pass, the weight gradient
loads the output gradient once for TAPS dot products). The channel-major planes are
interleaved into NHWC at the end (forward) or from NHWC at the start (weight gradient).

Why (measured, LeNet-5 conv1 28x28x1 -> 6 "same", batch 64): the replicated direct
kernel took 4.5 ms forward, im2col + sgemm (K = 25, CO = 6: a GEMM far too thin for
sgemm) about 2 ms; the plane kernels run it well under 1 ms (benchmarks/bench_kernels.py
"lenet conv1"). A pass per tap took 0.49 ms forward and 0.50 ms weight gradient on one
core, a pass per TAPS taps 0.33-0.35 and 0.36. The input gradient of a first conv is never needed, so that op goes
through im2col + sgemm.
"""

import numba
import numpy as np
from numba import njit, prange

from visualcnn.engine.kernels._common import FAST, reduction_groups, twins
from visualcnn.engine.kernels.conv._shared import getter, pick, reduce_partials, scratch_slots

__all__ = ["conv2d_forward_plane", "conv2d_forward_plane_serial", "conv2d_backward_kernel_plane"]


def applies(kernel_shape, strides):
    KH, KW, C, _ = kernel_shape
    return C == 1 and tuple(strides) == (1, 1) and not (KH == 3 and KW == 3)


def plane_geometry(x_shape, kernel_shape, OH, OW, dh, dw, pad_top, pad_left):
    """(HP, WP, slack): padded plane size and the zero tail the last taps read past it."""
    KH, KW = kernel_shape[0], kernel_shape[1]
    H, W = x_shape[1], x_shape[2]
    HP = max(H + pad_top, OH + (KH - 1) * dh)
    WP = max(W + pad_left, OW + (KW - 1) * dw)
    return HP, WP, (KW - 1) * dw + 1


@njit(nogil=True, cache=True, fastmath=FAST)
def _pad_plane(x, n, xpf, HP, WP, pad_top, pad_left):
    """xpf[:HP*WP] = image n zero-padded (row pitch WP); the tail (slack) zeroed too."""
    H = x.shape[1]
    W = x.shape[2]
    xpf[:] = 0.0
    for iy in range(H):
        row = (iy + pad_top) * WP + pad_left
        for ix in range(W):
            xpf[row + ix] = x[n, iy, ix, 0]


# Taps of one kernel row summed per pass over a plane (a whole LeNet-5 5x5 row): each
# pass reads TAPS shifted views and the plane once, instead of one read-modify-write of
# the plane per tap (see the module docstring for the measurements).
TAPS = 5


@njit(nogil=True, cache=True, inline="always")
def _tap_views(xpf, ky, kx0, KW, L, dh, dw, WP):
    """Views of the padded plane for the up-to-TAPS taps (ky, kx0 ...), each L long from
    its tap's offset; a tap past the kernel's width gets the first tap's view (and a
    weight of 0, ``_tap_weights``)."""
    base = ky * dh * WP + kx0 * dw
    s0 = xpf[base:base + L]
    s1 = xpf[base + dw:base + dw + L] if kx0 + 1 < KW else s0
    s2 = xpf[base + 2 * dw:base + 2 * dw + L] if kx0 + 2 < KW else s0
    s3 = xpf[base + 3 * dw:base + 3 * dw + L] if kx0 + 3 < KW else s0
    s4 = xpf[base + 4 * dw:base + 4 * dw + L] if kx0 + 4 < KW else s0
    return s0, s1, s2, s3, s4


@njit(nogil=True, cache=True, inline="always")
def _tap_weights(kernel, ky, kx0, co):
    """The weights of output channel co for the taps of ``_tap_views`` (0 past the width)."""
    KW = kernel.shape[1]
    zero = np.float32(0.0)
    return (kernel[ky, kx0, 0, co],
            kernel[ky, kx0 + 1, 0, co] if kx0 + 1 < KW else zero,
            kernel[ky, kx0 + 2, 0, co] if kx0 + 2 < KW else zero,
            kernel[ky, kx0 + 3, 0, co] if kx0 + 3 < KW else zero,
            kernel[ky, kx0 + 4, 0, co] if kx0 + 4 < KW else zero)


@njit(nogil=True, cache=True, fastmath=FAST)
def _fwd_plane_image(x, kernel, bias, out, n, xpf, planes, HP, WP, dh, dw, pad_top,
                     pad_left, relu):
    KH = kernel.shape[0]
    KW = kernel.shape[1]
    CO = kernel.shape[3]
    OH = out.shape[1]
    OW = out.shape[2]
    L = OH * WP
    _pad_plane(x, n, xpf, HP, WP, pad_top, pad_left)
    has_bias = bias.shape[0] > 0
    for co in range(CO):
        pl_ = planes[co]
        b = bias[co] if has_bias else np.float32(0.0)
        for j in range(L):
            pl_[j] = b
        for ky in range(KH):
            for kx0 in range(0, KW, TAPS):
                s0, s1, s2, s3, s4 = _tap_views(xpf, ky, kx0, KW, L, dh, dw, WP)
                w0, w1, w2, w3, w4 = _tap_weights(kernel, ky, kx0, co)
                for j in range(L):
                    pl_[j] = pl_[j] + w0 * s0[j] + w1 * s1[j] + w2 * s2[j] + w3 * s3[j] + w4 * s4[j]
    zero = np.float32(0.0)
    for oy in range(OH):
        for ox in range(OW):
            j = oy * WP + ox
            for co in range(CO):
                v = planes[co, j]
                out[n, oy, ox, co] = max(v, zero) if relu else v


def conv2d_forward_plane(x, kernel, bias, out, xpf, planes, HP, WP, dh, dw, pad_top, pad_left,
                         relu):
    """out (N, OH, OW, CO) = [relu](conv2d(x, kernel) + bias) for C = 1, unit strides.

    xpf (T, HP*WP + slack) and planes (T, CO, OH*WP) scratch, one per numba worker.
    prange over images; per image: pad it into xpf, then per output channel: init the
    plane with the bias, one contiguous OH*WP-long FMA loop per tap, and finally
    interleave the planes into out[n] (NHWC), applying relu.
    """
    for n in prange(out.shape[0]):
        t = numba.get_thread_id()
        _fwd_plane_image(x, kernel, bias, out, n, xpf[t], planes[t], HP, WP, dh, dw,
                         pad_top, pad_left, relu)


FORWARD = twins(conv2d_forward_plane, fastmath=FAST)
conv2d_forward_plane, conv2d_forward_plane_serial = FORWARD


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _bwdk_plane_partials(x, dy, xpf, planes, acc, bacc, HP, WP, dh, dw, pad_top, pad_left):
    T = acc.shape[0]
    N = dy.shape[0]
    OH = dy.shape[1]
    OW = dy.shape[2]
    CO = dy.shape[3]
    KH = acc.shape[1]
    KW = acc.shape[2]
    L = OH * WP
    do_bias = bacc.shape[1] > 0
    for t in prange(T):
        acc[t, :, :, :] = 0.0
        bacc[t, :] = 0.0
        xp_t = xpf[t]
        g_t = planes[t]
        g_t[:, :] = 0.0  # the ignored columns ox >= OW stay 0
        for n in range((N * t) // T, (N * (t + 1)) // T):
            _pad_plane(x, n, xp_t, HP, WP, pad_top, pad_left)
            for oy in range(OH):
                for ox in range(OW):
                    j = oy * WP + ox
                    for co in range(CO):
                        g_t[co, j] = dy[n, oy, ox, co]
            for co in range(CO):
                gp = g_t[co]
                if do_bias:
                    sb = np.float32(0.0)
                    for j in range(L):
                        sb += gp[j]
                    bacc[t, co] += sb
                for ky in range(KH):
                    for kx0 in range(0, KW, TAPS):
                        # up to TAPS dot products in one pass: one load of the gradient each
                        s0, s1, s2, s3, s4 = _tap_views(xp_t, ky, kx0, KW, L, dh, dw, WP)
                        a0 = a1 = a2 = a3 = a4 = np.float32(0.0)
                        for j in range(L):
                            g = gp[j]
                            a0 += s0[j] * g
                            a1 += s1[j] * g
                            a2 += s2[j] * g
                            a3 += s3[j] * g
                            a4 += s4[j] * g
                        acc[t, ky, kx0, co] += a0
                        if kx0 + 1 < KW:
                            acc[t, ky, kx0 + 1, co] += a1
                        if kx0 + 2 < KW:
                            acc[t, ky, kx0 + 2, co] += a2
                        if kx0 + 3 < KW:
                            acc[t, ky, kx0 + 3, co] += a3
                        if kx0 + 4 < KW:
                            acc[t, ky, kx0 + 4, co] += a4


def conv2d_backward_kernel_plane(x, dy, grad_kernel, grad_bias, xpf, planes, acc, bacc, HP,
                                 WP, dh, dw, pad_top, pad_left):
    """grad_kernel (KH, KW, 1, CO) and grad_bias (skipped when empty) for C = 1, unit
    strides. xpf (T, HP*WP + slack), planes (T, CO, OH*WP), acc (T, KH, KW, CO),
    bacc (T, CO or 0) scratch; prange over T batch chunks with per-thread partial sums.
    Per image: pad it, de-interleave dy[n] into channel planes, then per channel and tap
    one contiguous OH*WP-long dot product (vectorised reduction). Then the reduction
    over threads."""
    _bwdk_plane_partials(x, dy, xpf, planes, acc, bacc, HP, WP, dh, dw, pad_top, pad_left)
    reduce_partials(acc.reshape(acc.shape[0], -1), grad_kernel.reshape(-1))
    if grad_bias.shape[0] > 0:
        reduce_partials(bacc, grad_bias)


class SingleChannelPlane:
    """The plane strategy as the planner holds it (forward, weight gradient)."""

    name = "single_channel_plane"

    @staticmethod
    def forward(x, kernel, bias, out, geo, relu, ws, serial):
        sh, sw, dh, dw, pt, pl = geo
        N, OH, OW, CO = out.shape
        HP, WP, slack = plane_geometry(x.shape, kernel.shape, OH, OW, dh, dw, pt, pl)
        get = getter(ws)
        slots = scratch_slots()
        pick(FORWARD, serial)(x, kernel, bias, out, get("plane_x", (slots, HP * WP + slack)),
                              get("plane_out", (slots, CO, OH * WP)), HP, WP, dh, dw, pt, pl, relu)

    @staticmethod
    def backward_kernel(x, dy, grad_kernel, grad_bias, geo, ws):
        sh, sw, dh, dw, pt, pl = geo
        KH, KW, _, CO = grad_kernel.shape
        N, OH, OW, _ = dy.shape
        T = reduction_groups(N)
        HP, WP, slack = plane_geometry(x.shape, grad_kernel.shape, OH, OW, dh, dw, pt, pl)
        get = getter(ws)
        conv2d_backward_kernel_plane(
            x, dy, grad_kernel, grad_bias, get("plane_x", (T, HP * WP + slack)),
            get("plane_out", (T, CO, OH * WP)), get("plane_acc", (T, KH, KW, CO)),
            get("plane_bacc", (T, grad_bias.shape[0])), HP, WP, dh, dw, pt, pl)

    @staticmethod
    def kernels(op, serial):
        if op == "forward":
            return [pick(FORWARD, serial)]
        return [_bwdk_plane_partials, reduce_partials]


SINGLE_CHANNEL_PLANE = SingleChannelPlane()
