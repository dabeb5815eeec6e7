"""Direct convolution: no scratch memory, any stride / dilation / padding / channels.

Strategy: loop over output rows (forward), input rows (input gradient, gather form) or
per-thread batch chunks (weight gradient), with the channel axis innermost and
contiguous in NHWC activations and the (KH, KW, C, CO) kernel.

Why it is kept: it is the plain reference the fast strategies are tested against
(``plan_conv(..., force="direct")``), readable loop by loop. The planner never picks it:
every shape has a faster strategy (on the seed conv2 it is 3-4x slower than
``im2col_gemm``, on LeNet-5's 5x5 conv2 about 2x; benchmarks/bench_kernels.py).
"""

import numpy as np
from numba import njit, prange

from visualcnn.engine.kernels._common import FAST, fill_bias, gather_index, reduction_groups, relu_inplace, twins
from visualcnn.engine.kernels.conv._shared import BIAS_GRAD_KERNELS, bias_grad, getter, pick, reduce_partials

__all__ = [
    "conv2d_forward_direct",
    "conv2d_forward_direct_serial",
    "conv2d_backward_input_direct",
    "conv2d_backward_input_direct_serial",
    "conv2d_backward_kernel_direct",
]


@njit(nogil=True, cache=True, fastmath=FAST)
def _conv_fwd_row(x, kernel, bias, out, n, oy, sh, sw, dh, dw, pad_top, pad_left, relu):
    """One output row out[n, oy, :, :]. Loops ky, kx, ox, ci, co (co innermost,
    contiguous in both ``out`` and ``kernel`` so it vectorises)."""
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    KH = kernel.shape[0]
    KW = kernel.shape[1]
    CO = kernel.shape[3]
    OW = out.shape[2]
    orow = out[n, oy]
    fill_bias(orow, bias)
    for ky in range(KH):
        iy = oy * sh - pad_top + ky * dh
        if iy < 0 or iy >= H:
            continue
        xrow = x[n, iy]
        for kx in range(KW):
            wk = kernel[ky, kx]
            for ox in range(OW):
                ix = ox * sw - pad_left + kx * dw
                if ix < 0 or ix >= W:
                    continue
                for ci in range(C):
                    xv = xrow[ix, ci]
                    for co in range(CO):
                        orow[ox, co] += xv * wk[ci, co]
    if relu:
        relu_inplace(orow)


def conv2d_forward_direct(x, kernel, bias, out, sh, sw, dh, dw, pad_top, pad_left, relu):
    """out = conv2d(x, kernel) + bias, optionally relu'd, computed directly.

    x (N, H, W, C), kernel (KH, KW, C, CO), bias (CO,) or (0,) for no bias,
    out (N, OH, OW, CO) fully overwritten. prange over the N*OH output rows (disjoint
    writes); per row: ky, kx, ox, ci, co with co innermost.
    """
    N = out.shape[0]
    OH = out.shape[1]
    for r in prange(N * OH):
        _conv_fwd_row(x, kernel, bias, out, r // OH, r % OH, sh, sw, dh, dw,
                      pad_top, pad_left, relu)


FORWARD = twins(conv2d_forward_direct, fastmath=FAST)
conv2d_forward_direct, conv2d_forward_direct_serial = FORWARD


@njit(nogil=True, cache=True, fastmath=FAST)
def _conv_bwd_input_row(dy, kernel, dx, n, iy, sh, sw, dh, dw, pad_top, pad_left):
    W = dx.shape[2]
    C = dx.shape[3]
    OH = dy.shape[1]
    OW = dy.shape[2]
    KH = kernel.shape[0]
    KW = kernel.shape[1]
    CO = kernel.shape[3]
    dxrow = dx[n, iy]
    dxrow[:, :] = 0.0
    for ky in range(KH):
        oy = gather_index(iy, pad_top, ky, dh, sh, OH)
        if oy < 0:
            continue
        for kx in range(KW):
            wk = kernel[ky, kx]
            for ix in range(W):
                ox = gather_index(ix, pad_left, kx, dw, sw, OW)
                if ox < 0:
                    continue
                g = dy[n, oy, ox]
                for ci in range(C):
                    acc = np.float32(0.0)
                    for co in range(CO):
                        acc += g[co] * wk[ci, co]
                    dxrow[ix, ci] += acc


def conv2d_backward_input_direct(dy, kernel, dx, sh, sw, dh, dw, pad_top, pad_left):
    """dx = d(loss)/d(x) given dy = d(loss)/d(out); gather form, fully overwrites dx.

    dy (N, OH, OW, CO), kernel (KH, KW, C, CO), dx (N, H, W, C).
    prange over the N*H input rows (each writes only its own row of dx). For each input
    pixel: ky, kx whose output position is integral and in range, then ci, and a dot
    product over co (contiguous in dy and kernel).
    """
    N = dx.shape[0]
    H = dx.shape[1]
    for r in prange(N * H):
        _conv_bwd_input_row(dy, kernel, dx, r // H, r % H, sh, sw, dh, dw, pad_top,
                            pad_left)


BACKWARD_INPUT = twins(conv2d_backward_input_direct, fastmath=FAST)
conv2d_backward_input_direct, conv2d_backward_input_direct_serial = BACKWARD_INPUT


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _conv_bwd_kernel_partials(x, dy, partial, sh, sw, dh, dw, pad_top, pad_left):
    T = partial.shape[0]
    N = dy.shape[0]
    OH = dy.shape[1]
    OW = dy.shape[2]
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    KH = partial.shape[1]
    KW = partial.shape[2]
    CO = partial.shape[4]
    for t in prange(T):
        p = partial[t]
        p[:, :, :, :] = 0.0
        n0 = (N * t) // T
        n1 = (N * (t + 1)) // T
        for n in range(n0, n1):
            for oy in range(OH):
                for ky in range(KH):
                    iy = oy * sh - pad_top + ky * dh
                    if iy < 0 or iy >= H:
                        continue
                    for kx in range(KW):
                        pk = p[ky, kx]
                        for ox in range(OW):
                            ix = ox * sw - pad_left + kx * dw
                            if ix < 0 or ix >= W:
                                continue
                            g = dy[n, oy, ox]
                            for ci in range(C):
                                xv = x[n, iy, ix, ci]
                                for co in range(CO):
                                    pk[ci, co] += xv * g[co]


def conv2d_backward_kernel_direct(x, dy, grad_kernel, partial, sh, sw, dh, dw, pad_top,
                                  pad_left):
    """grad_kernel = d(loss)/d(kernel), direct, with per-thread partial sums.

    x (N, H, W, C), dy (N, OH, OW, CO), grad_kernel (KH, KW, C, CO) overwritten,
    partial (T, KH, KW, C, CO) scratch: prange over T batch chunks, chunk t sums
    images [N*t/T, N*(t+1)/T) into partial[t] (ky, kx, ox, ci, co; co innermost);
    then a parallel reduction over kernel elements. T = partial.shape[0].
    """
    _conv_bwd_kernel_partials(x, dy, partial, sh, sw, dh, dw, pad_top, pad_left)
    reduce_partials(partial.reshape(partial.shape[0], -1), grad_kernel.reshape(-1))


# --- the strategy, as the planner calls it ----------------------------------------------


def forward(x, kernel, bias, out, geo, relu, ws, serial):
    pick(FORWARD, serial)(x, kernel, bias, out, *geo, relu)


def backward_input(dy, kernel, dx, geo, ws, serial):
    pick(BACKWARD_INPUT, serial)(dy, kernel, dx, *geo)


def backward_kernel(x, dy, grad_kernel, grad_bias, geo, ws):
    KH, KW, C, CO = grad_kernel.shape
    get = getter(ws)
    partial = get("kpartial", (reduction_groups(x.shape[0]), KH, KW, C, CO))
    conv2d_backward_kernel_direct(x, dy, grad_kernel, partial, *geo)
    if grad_bias.shape[0] > 0:
        dy2d = dy.reshape(-1, CO)
        bias_grad(dy2d, grad_bias, get("bpartial", (reduction_groups(dy2d.shape[0]), CO)))


def kernels(op, serial):
    if op == "forward":
        return [pick(FORWARD, serial)]
    if op == "backward_input":
        return [pick(BACKWARD_INPUT, serial)]
    return [_conv_bwd_kernel_partials, reduce_partials, *BIAS_GRAD_KERNELS]


class Direct:
    """The direct strategy as the planner holds it."""

    name = "direct"
    forward = staticmethod(forward)
    backward_input = staticmethod(backward_input)
    backward_kernel = staticmethod(backward_kernel)
    kernels = staticmethod(kernels)


DIRECT = Direct()
