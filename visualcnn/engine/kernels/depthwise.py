"""DepthwiseConv2D kernels (NHWC float32).

kernel (KH, KW, C, DM); output channel j = c*DM + m (Keras order), so
kernel.reshape(KH, KW, C*DM)[ky, kx, j] is the weight of output channel j and the
innermost loop runs over j, contiguous in out, dy and the kernel. Geometry arguments as
in ``conv``: (sh, sw, dh, dw, pad_top, pad_left).
"""

import numpy as np
from numba import njit, prange

from visualcnn.engine import parallel as _par  # noqa: F401  (the threading layer is chosen first)
from visualcnn.engine.kernels._common import FAST, fill_bias, gather_index, reduction_groups, relu_inplace, twins
from visualcnn.engine.kernels.conv._shared import bias_grad, reduce_partials

__all__ = [
    "depthwise_conv2d_forward",
    "depthwise_conv2d_forward_serial",
    "depthwise_conv2d_backward_input",
    "depthwise_conv2d_backward_kernel",
    "depthwise_conv2d_backward_kernel_partials",
]


@njit(nogil=True, cache=True, fastmath=FAST)
def _dw_fwd_row(x, kernel, bias, out, n, oy, sh, sw, dh, dw, pad_top, pad_left, relu):
    H = x.shape[1]
    W = x.shape[2]
    KH = kernel.shape[0]
    KW = kernel.shape[1]
    DM = kernel.shape[3]
    J = out.shape[3]
    OW = out.shape[2]
    w3 = kernel.reshape(KH, KW, J)
    orow = out[n, oy]
    fill_bias(orow, bias)
    for ky in range(KH):
        iy = oy * sh - pad_top + ky * dh
        if iy < 0 or iy >= H:
            continue
        xrow = x[n, iy]
        for kx in range(KW):
            wk = w3[ky, kx]
            for ox in range(OW):
                ix = ox * sw - pad_left + kx * dw
                if ix < 0 or ix >= W:
                    continue
                xp = xrow[ix]
                if DM == 1:
                    for j in range(J):
                        orow[ox, j] += xp[j] * wk[j]
                else:
                    for j in range(J):
                        orow[ox, j] += xp[j // DM] * wk[j]
    if relu:
        relu_inplace(orow)


def depthwise_conv2d_forward(x, kernel, bias, out, sh, sw, dh, dw, pad_top, pad_left,
                             relu):
    """out (N, OH, OW, C*DM) = [relu](depthwise_conv(x, kernel) + bias).

    x (N, H, W, C), kernel (KH, KW, C, DM), bias (C*DM,) or (0,). prange over the N*OH
    output rows (a plain loop in the ``_serial`` twin); per row ky, kx, ox, j
    (j = output channel, innermost).
    """
    N = out.shape[0]
    OH = out.shape[1]
    for r in prange(N * OH):
        _dw_fwd_row(x, kernel, bias, out, r // OH, r % OH, sh, sw, dh, dw, pad_top,
                    pad_left, relu)


depthwise_conv2d_forward, depthwise_conv2d_forward_serial = twins(depthwise_conv2d_forward,
                                                                  fastmath=FAST)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def depthwise_conv2d_backward_input(dy, kernel, dx, sh, sw, dh, dw, pad_top, pad_left):
    """dx (N, H, W, C) from dy (N, OH, OW, C*DM); gather form, dx fully overwritten.

    prange over the N*H input rows; per row ky, kx, ix, c, m.
    """
    N = dx.shape[0]
    H = dx.shape[1]
    W = dx.shape[2]
    C = dx.shape[3]
    OH = dy.shape[1]
    OW = dy.shape[2]
    KH = kernel.shape[0]
    KW = kernel.shape[1]
    DM = kernel.shape[3]
    for r in prange(N * H):
        n = r // H
        iy = r % H
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
                    if DM == 1:
                        for c in range(C):
                            dxrow[ix, c] += g[c] * wk[c, 0]
                    else:
                        for c in range(C):
                            acc = np.float32(0.0)
                            for m in range(DM):
                                acc += g[c * DM + m] * wk[c, m]
                            dxrow[ix, c] += acc


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def depthwise_conv2d_backward_kernel_partials(x, dy, partial, sh, sw, dh, dw, pad_top,
                                              pad_left):
    """partial (T, KH, KW, C*DM): chunk t sums images [N*t/T, N*(t+1)/T) (prange over
    T; per chunk n, oy, ky, kx, ox, j with j innermost)."""
    T = partial.shape[0]
    N = dy.shape[0]
    OH = dy.shape[1]
    OW = dy.shape[2]
    H = x.shape[1]
    W = x.shape[2]
    KH = partial.shape[1]
    KW = partial.shape[2]
    J = partial.shape[3]
    DM = J // x.shape[3]
    for t in prange(T):
        p = partial[t]
        p[:, :, :] = 0.0
        for n in range((N * t) // T, (N * (t + 1)) // T):
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
                            xp = x[n, iy, ix]
                            if DM == 1:
                                for j in range(J):
                                    pk[j] += xp[j] * g[j]
                            else:
                                for j in range(J):
                                    pk[j] += xp[j // DM] * g[j]


def depthwise_conv2d_backward_kernel(x, dy, grad_kernel, grad_bias, sh, sw, dh, dw,
                                     pad_top, pad_left, ws=None):
    """grad_kernel (KH, KW, C, DM) and grad_bias (C*DM,) (or None).

    Per-thread partial sums (``depthwise_conv2d_backward_kernel_partials``) kept in
    ``ws`` (a ``Workspace``; a temporary if None), then a parallel reduction.
    """
    KH, KW, C, DM = grad_kernel.shape
    N = dy.shape[0]
    T = reduction_groups(N)
    shape = (T, KH, KW, C * DM)
    partial = ws.get("dw_kpartial", shape) if ws is not None else np.empty(shape,
                                                                           np.float32)
    depthwise_conv2d_backward_kernel_partials(x, dy, partial, sh, sw, dh, dw, pad_top,
                                              pad_left)
    reduce_partials(partial.reshape(T, -1), grad_kernel.reshape(-1))
    if grad_bias is not None:
        dy2d = dy.reshape(-1, C * DM)
        Tb = reduction_groups(dy2d.shape[0])
        bpartial = (ws.get("dw_bpartial", (Tb, C * DM)) if ws is not None
                    else np.empty((Tb, C * DM), np.float32))
        bias_grad(dy2d, grad_bias, bpartial)
