"""Conv2D kernels (NHWC, float32, Keras kernel layout (kh, kw, c_in, c_out)).

Two implementations of the same maths:

* direct kernels (``conv2d_forward_direct`` ...): no scratch memory, any stride /
  dilation / padding; used for thin layers (few input channels, e.g. the first conv)
  and for the serial single-image inference path;
* im2col + GEMM (``im2col`` / ``col2im`` + numpy matmul -> BLAS sgemm); used when the
  reduction length kh*kw*c_in is large (the 32->64 conv and its backward).

The python drivers ``conv2d_forward`` / ``conv2d_backward_input`` /
``conv2d_backward_kernel`` pick the path; the njit functions underneath are public too.

Geometry arguments are always (sh, sw, dh, dw, pad_top, pad_left): input row
iy = oy*sh - pad_top + ky*dh. Bottom/right padding is implied by the output size, so
the same functions serve "valid", "same" and explicit padding.
"""

import numpy as np
from numba import njit, prange

from visualcnn.engine import parallel as _par
from visualcnn.engine.kernels._common import FAST, NO_BIAS, num_chunks

__all__ = [
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_kernel",
    "conv2d_forward_direct",
    "conv2d_forward_direct_serial",
    "conv2d_backward_input_direct",
    "conv2d_backward_input_direct_serial",
    "conv2d_backward_kernel_direct",
    "im2col",
    "im2col_serial",
    "col2im",
    "bias_act_rows",
    "bias_act_rows_serial",
    "bias_grad",
    "relu_backward",
    "reduce_partials",
    "use_gemm",
]

# ---------------------------------------------------------------------------------
# direct forward
# ---------------------------------------------------------------------------------


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
    if bias.shape[0] > 0:
        for ox in range(OW):
            for co in range(CO):
                orow[ox, co] = bias[co]
    else:
        orow[:, :] = 0.0
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
        for ox in range(OW):
            for co in range(CO):
                if orow[ox, co] < 0.0:
                    orow[ox, co] = 0.0


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
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


@njit(nogil=True, cache=True, fastmath=FAST)
def conv2d_forward_direct_serial(x, kernel, bias, out, sh, sw, dh, dw, pad_top, pad_left,
                                 relu):
    """Serial twin of ``conv2d_forward_direct`` (never touches the threading layer)."""
    N = out.shape[0]
    OH = out.shape[1]
    for r in range(N * OH):
        _conv_fwd_row(x, kernel, bias, out, r // OH, r % OH, sh, sw, dh, dw,
                      pad_top, pad_left, relu)


# ---------------------------------------------------------------------------------
# direct backward
# ---------------------------------------------------------------------------------


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
        ty = iy + pad_top - ky * dh
        if ty < 0 or ty % sh != 0:
            continue
        oy = ty // sh
        if oy >= OH:
            continue
        for kx in range(KW):
            wk = kernel[ky, kx]
            for ix in range(W):
                tx = ix + pad_left - kx * dw
                if tx < 0 or tx % sw != 0:
                    continue
                ox = tx // sw
                if ox >= OW:
                    continue
                g = dy[n, oy, ox]
                for ci in range(C):
                    acc = np.float32(0.0)
                    for co in range(CO):
                        acc += g[co] * wk[ci, co]
                    dxrow[ix, ci] += acc


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def conv2d_backward_input_direct(dy, kernel, dx, sh, sw, dh, dw, pad_top, pad_left):
    """dx = d(loss)/d(x) given dy = d(loss)/d(out); gather form, fully overwrites dx.

    dy (N, OH, OW, CO), kernel (KH, KW, C, CO), dx (N, H, W, C).
    prange over the N*H input rows (each writes only its own row of dx). For each
    input pixel: ky, kx whose output position is integral and in range, then ci, and a
    dot product over co (contiguous in dy and kernel).
    """
    N = dx.shape[0]
    H = dx.shape[1]
    for r in prange(N * H):
        _conv_bwd_input_row(dy, kernel, dx, r // H, r % H, sh, sw, dh, dw, pad_top,
                            pad_left)


@njit(nogil=True, cache=True, fastmath=FAST)
def conv2d_backward_input_direct_serial(dy, kernel, dx, sh, sw, dh, dw, pad_top,
                                        pad_left):
    """Serial twin of ``conv2d_backward_input_direct`` (Conv2DTranspose inference)."""
    N = dx.shape[0]
    H = dx.shape[1]
    for r in range(N * H):
        _conv_bwd_input_row(dy, kernel, dx, r // H, r % H, sh, sw, dh, dw, pad_top,
                            pad_left)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def reduce_partials(partial, out):
    """out[j] = sum_t partial[t, j]; partial (T, J), out (J,). prange over j."""
    T = partial.shape[0]
    J = partial.shape[1]
    for j in prange(J):
        s = np.float32(0.0)
        for t in range(T):
            s += partial[t, j]
        out[j] = s


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


# ---------------------------------------------------------------------------------
# im2col / col2im
# ---------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def _im2col_row(x, cols, n, oy, KH, KW, sh, sw, dh, dw, pad_top, pad_left, OH, OW,
                n_base):
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    row0 = ((n - n_base) * OH + oy) * OW
    for ox in range(OW):
        crow = cols[row0 + ox]
        for ky in range(KH):
            iy = oy * sh - pad_top + ky * dh
            for kx in range(KW):
                ix = ox * sw - pad_left + kx * dw
                base = (ky * KW + kx) * C
                if iy < 0 or iy >= H or ix < 0 or ix >= W:
                    for ci in range(C):
                        crow[base + ci] = 0.0
                else:
                    for ci in range(C):
                        crow[base + ci] = x[n, iy, ix, ci]


@njit(parallel=True, nogil=True, cache=True)
def im2col(x, cols, n0, n1, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """Unfold images x[n0:n1] into cols ((n1-n0)*OH*OW, KH*KW*C).

    Row (n-n0)*OH*OW + oy*OW + ox holds the receptive field of that output pixel in
    (ky, kx, c) order, i.e. the order of kernel.reshape(KH*KW*C, CO), so
    cols @ kernel2d is the conv output in NHWC. Padded taps are zero.
    prange over (n, oy) output rows (disjoint rows of cols).
    """
    for r in prange((n1 - n0) * OH):
        _im2col_row(x, cols, n0 + r // OH, r % OH, KH, KW, sh, sw, dh, dw, pad_top,
                    pad_left, OH, OW, n0)


@njit(nogil=True, cache=True)
def im2col_serial(x, cols, n0, n1, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """Serial twin of ``im2col``."""
    for r in range((n1 - n0) * OH):
        _im2col_row(x, cols, n0 + r // OH, r % OH, KH, KW, sh, sw, dh, dw, pad_top,
                    pad_left, OH, OW, n0)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def col2im(dcols, dx, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """Fold dcols (N*OH*OW, KH*KW*C) back into dx (N, H, W, C) (adjoint of im2col).

    Gather form: each input row dx[n, iy] sums the dcols entries that came from it, so
    prange over the N*H input rows writes disjoint memory. dx is fully overwritten.
    """
    N = dx.shape[0]
    H = dx.shape[1]
    W = dx.shape[2]
    C = dx.shape[3]
    for r in prange(N * H):
        n = r // H
        iy = r % H
        dxrow = dx[n, iy]
        dxrow[:, :] = 0.0
        for ky in range(KH):
            ty = iy + pad_top - ky * dh
            if ty < 0 or ty % sh != 0:
                continue
            oy = ty // sh
            if oy >= OH:
                continue
            for kx in range(KW):
                base = (ky * KW + kx) * C
                for ix in range(W):
                    tx = ix + pad_left - kx * dw
                    if tx < 0 or tx % sw != 0:
                        continue
                    ox = tx // sw
                    if ox >= OW:
                        continue
                    crow = dcols[(n * OH + oy) * OW + ox]
                    for ci in range(C):
                        dxrow[ix, ci] += crow[base + ci]


# ---------------------------------------------------------------------------------
# elementwise helpers
# ---------------------------------------------------------------------------------


@njit(nogil=True, cache=True, fastmath=FAST)
def _bias_act_row(y, bias, relu, i):
    CO = y.shape[1]
    row = y[i]
    if bias.shape[0] > 0:
        for co in range(CO):
            row[co] += bias[co]
    if relu:
        for co in range(CO):
            if row[co] < 0.0:
                row[co] = 0.0


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def bias_act_rows(y, bias, relu):
    """In place: y (M, CO) += bias (CO,) (skipped if bias is empty), then relu if asked.
    prange over 256-row blocks."""
    M = y.shape[0]
    nb = (M + 255) // 256
    for b in prange(nb):
        for i in range(b * 256, min(M, b * 256 + 256)):
            _bias_act_row(y, bias, relu, i)


@njit(nogil=True, cache=True, fastmath=FAST)
def bias_act_rows_serial(y, bias, relu):
    """Serial twin of ``bias_act_rows``."""
    for i in range(y.shape[0]):
        _bias_act_row(y, bias, relu, i)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _bias_grad_partials(dy2d, partial):
    T = partial.shape[0]
    M = dy2d.shape[0]
    CO = dy2d.shape[1]
    for t in prange(T):
        p = partial[t]
        p[:] = 0.0
        for i in range((M * t) // T, (M * (t + 1)) // T):
            for co in range(CO):
                p[co] += dy2d[i, co]


def bias_grad(dy2d, grad_bias, partial):
    """grad_bias (CO,) = dy2d (M, CO) summed over rows; partial (T, CO) scratch
    (prange over T row chunks, then a reduction)."""
    _bias_grad_partials(dy2d, partial)
    reduce_partials(partial, grad_bias)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def relu_backward(y, dy, dx):
    """dx = dy * (y > 0) elementwise on flat arrays (dx may alias dy). prange over
    4096-element blocks."""
    M = y.shape[0]
    nb = (M + 4095) // 4096
    for b in prange(nb):
        for i in range(b * 4096, min(M, b * 4096 + 4096)):
            dx[i] = dy[i] if y[i] > 0.0 else np.float32(0.0)


# ---------------------------------------------------------------------------------
# python drivers (choose the path, manage workspace)
# ---------------------------------------------------------------------------------

# Below this reduction length (KH*KW*C) the direct kernel beats im2col + sgemm
# (measured in benchmarks/bench_kernels.py: the 1-channel first conv, K=9).
GEMM_MIN_K = 32
# Images per im2col chunk: bounds the workspace (and keeps it in cache) for big
# inference batches.
GEMM_CHUNK = 64


def use_gemm(kernel):
    """True when the im2col + GEMM path is the faster one for this kernel shape."""
    KH, KW, C, _ = kernel.shape
    return KH * KW * C >= GEMM_MIN_K


def _bias_or_empty(bias):
    return NO_BIAS if bias is None else bias


def conv2d_forward(x, kernel, bias, out, strides=(1, 1), dilation=(1, 1), pad=(0, 0),
                   relu=False, ws=None, serial=None):
    """out (N, OH, OW, CO) = [relu](conv2d(x, kernel) + bias).

    x (N, H, W, C); kernel (KH, KW, C, CO); bias (CO,) or None; pad = (pad_top,
    pad_left). ``ws``: a ``Workspace`` (needed for the GEMM path; without one the
    direct kernel runs). ``serial``: None = ask ``parallel.use_serial()``.
    After a GEMM-path call, ``ws`` holds the im2col of x as "cols" when N <= GEMM_CHUNK,
    which ``conv2d_backward_kernel(..., reuse_cols=True)`` can reuse.
    Returns True when the cols left in ``ws`` are valid for x.
    """
    sh, sw = strides
    dh, dw = dilation
    pt, pl = pad
    b = _bias_or_empty(bias)
    if serial is None:
        serial = _par.use_serial()
    KH, KW, C, CO = kernel.shape
    N, OH, OW, _ = out.shape
    if ws is None or not use_gemm(kernel):
        if serial:
            conv2d_forward_direct_serial(x, kernel, b, out, sh, sw, dh, dw, pt, pl, relu)
        else:
            conv2d_forward_direct(x, kernel, b, out, sh, sw, dh, dw, pt, pl, relu)
        return False
    K = KH * KW * C
    k2d = kernel.reshape(K, CO)
    out2d = out.reshape(N * OH * OW, CO)
    chunk = N if N <= GEMM_CHUNK else GEMM_CHUNK
    cols_all = ws.get("cols", (chunk * OH * OW, K))
    i2c = im2col_serial if serial else im2col
    bact = bias_act_rows_serial if serial else bias_act_rows
    for n0 in range(0, N, chunk):
        n1 = min(N, n0 + chunk)
        rows = (n1 - n0) * OH * OW
        cols = cols_all[:rows]
        i2c(x, cols, n0, n1, KH, KW, OH, OW, sh, sw, dh, dw, pt, pl)
        o = out2d[n0 * OH * OW:n1 * OH * OW]
        np.matmul(cols, k2d, out=o)
        if relu or b.shape[0] > 0:
            bact(o, b, relu)
    return N <= chunk


def conv2d_backward_input(dy, kernel, dx, strides=(1, 1), dilation=(1, 1), pad=(0, 0),
                          ws=None, serial=False):
    """dx (N, H, W, C) = d(loss)/d(x) for dy (N, OH, OW, CO). Fully overwrites dx.

    GEMM path (needs ``ws``): dcols = dy2d @ kernel2d.T (BLAS), then ``col2im``.
    ``serial=True`` (Conv2DTranspose inference) runs the serial direct kernel.
    """
    sh, sw = strides
    dh, dw = dilation
    pt, pl = pad
    if serial:
        conv2d_backward_input_direct_serial(dy, kernel, dx, sh, sw, dh, dw, pt, pl)
        return
    if ws is None or not use_gemm(kernel):
        conv2d_backward_input_direct(dy, kernel, dx, sh, sw, dh, dw, pt, pl)
        return
    KH, KW, C, CO = kernel.shape
    N, OH, OW, _ = dy.shape
    K = KH * KW * C
    dcols = ws.get("dcols", (N * OH * OW, K))
    np.matmul(dy.reshape(N * OH * OW, CO), kernel.reshape(K, CO).T, out=dcols)
    col2im(dcols, dx, KH, KW, OH, OW, sh, sw, dh, dw, pt, pl)


def conv2d_backward_kernel(x, dy, grad_kernel, grad_bias, strides=(1, 1),
                           dilation=(1, 1), pad=(0, 0), ws=None, reuse_cols=False):
    """grad_kernel (KH, KW, C, CO) and grad_bias (CO,) (or None) from x and dy.

    GEMM path (needs ``ws``): grad_kernel2d = cols.T @ dy2d (BLAS sums over the batch,
    no race); ``reuse_cols=True`` reuses the im2col left in ``ws`` by the forward call
    on this same x (its return value says whether that is valid). Direct path: per-
    thread partial sums in a workspace (or a temporary when ``ws`` is None).
    """
    sh, sw = strides
    dh, dw = dilation
    pt, pl = pad
    KH, KW, C, CO = grad_kernel.shape
    N, OH, OW, _ = dy.shape
    M = N * OH * OW
    dy2d = dy.reshape(M, CO)
    threads = ws.threads if ws is not None else _par.get_num_threads()
    if ws is not None and use_gemm(grad_kernel):
        K = KH * KW * C
        cols = ws.get("cols", (M, K))
        if not reuse_cols:
            im2col(x, cols, 0, N, KH, KW, OH, OW, sh, sw, dh, dw, pt, pl)
        np.matmul(cols.T, dy2d, out=grad_kernel.reshape(K, CO))
    else:
        T = num_chunks(N, threads)
        shape = (T, KH, KW, C, CO)
        partial = (ws.get("kpartial", shape) if ws is not None
                   else np.empty(shape, np.float32))
        conv2d_backward_kernel_direct(x, dy, grad_kernel, partial, sh, sw, dh, dw, pt, pl)
    if grad_bias is not None:
        T = num_chunks(M, threads)
        bpartial = (ws.get("bpartial", (T, CO)) if ws is not None
                    else np.empty((T, CO), np.float32))
        bias_grad(dy2d, grad_bias, bpartial)
