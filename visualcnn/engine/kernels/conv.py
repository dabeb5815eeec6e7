"""Conv2D kernels (NHWC, float32, Keras kernel layout (kh, kw, c_in, c_out)).

The python drivers ``conv2d_forward`` / ``conv2d_backward_input`` /
``conv2d_backward_kernel`` pick the path; the njit functions underneath are public too.
Paths, fastest first (seed CNN, batch 64, numbers in benchmarks/bench_kernels.py):

* in-region sgemm (``conv2d_forward_gemm``, ``conv2d_backward_input_gemm``,
  ``conv2d_backward_kernel_gemm``), used when ``use_gemm(kernel)`` and a workspace is
  given: ONE numba parallel region per op; each worker takes chunks of images, unfolds
  a chunk (im2col) into its own cache-resident scratch, calls numpy's OpenBLAS sgemm
  single-threaded on it (``kernels.blas``), and finishes the chunk (bias + relu, or
  col2im, or per-thread weight-gradient partial sums) while the data is still in its
  cache. No BLAS thread pool competes with numba's workers for the cores;
* thin kernels for the first conv (C = 1, 3x3, column stride 1:
  ``conv2d_forward_3x3c1`` / ``conv2d_backward_kernel_3x3c1``): per output pixel the 9
  input values are scalars (broadcast) and one loop over the output channels does
  bias + 9 FMAs + relu; the weight gradient updates all 9 taps' accumulators for 4
  output pixels per pass over the channels;
* replicated thin kernels (``conv2d_forward_thin`` / ``conv2d_backward_kernel_thin``):
  other few-channel kernels with column stride 1 when the sgemm binding is missing;
* im2col + ``np.matmul`` (``im2col`` / ``col2im``): the fallback when numpy's BLAS has
  no ``cblas_sgemm`` symbol we can find;
* direct kernels (``conv2d_forward_direct`` ...): no scratch memory, any stride /
  dilation / padding; used without a workspace and for the serial Conv2DTranspose path.

Geometry arguments are always (sh, sw, dh, dw, pad_top, pad_left): input row
iy = oy*sh - pad_top + ky*dh. Bottom/right padding is implied by the output size, so
the same functions serve "valid", "same" and explicit padding.
"""

import numba
import numpy as np
from numba import njit, prange

from visualcnn.engine import parallel as _par
from visualcnn.engine.kernels import blas as _blas
from visualcnn.engine.kernels._common import FAST, NO_BIAS, fill_bias, gather_index, num_chunks, relu_inplace, twins

__all__ = [
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_kernel",
    "conv2d_forward_direct",
    "conv2d_forward_direct_serial",
    "conv2d_backward_input_direct",
    "conv2d_backward_input_direct_serial",
    "conv2d_backward_kernel_direct",
    "conv2d_forward_gemm",
    "conv2d_forward_gemm_serial",
    "conv2d_backward_input_gemm",
    "conv2d_backward_kernel_gemm",
    "conv2d_forward_3x3c1",
    "conv2d_forward_3x3c1_serial",
    "conv2d_backward_kernel_3x3c1",
    "conv2d_forward_thin",
    "conv2d_forward_thin_serial",
    "conv2d_backward_kernel_thin",
    "replicate_kernel",
    "gemm_images_per_chunk",
    "GEMM_CHUNK",
    "GEMM_MIN_K",
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
    writes; a plain loop in the ``_serial`` twin); per row: ky, kx, ox, ci, co with co
    innermost.
    """
    N = out.shape[0]
    OH = out.shape[1]
    for r in prange(N * OH):
        _conv_fwd_row(x, kernel, bias, out, r // OH, r % OH, sh, sw, dh, dw,
                      pad_top, pad_left, relu)


conv2d_forward_direct, conv2d_forward_direct_serial = twins(conv2d_forward_direct,
                                                            fastmath=FAST)


# ---------------------------------------------------------------------------------
# thin kernels (few input channels, column stride 1: the first conv of a network)
# ---------------------------------------------------------------------------------
#
# With C = 1 a tap is one multiply per output channel, so any per-tap loop overhead
# (bounds checks, loop setup for a 32-long channel loop) costs more than the FMAs. These
# kernels make the innermost loop long instead: the image is replicated across the
# output channels once, xr[iy, ci, ix, co] = x[n, iy - pad_top, ix - pad_left, ci]
# (zero in the padding), so for a tap (ky, kx, ci) the products for a whole output row
# are ONE contiguous loop of OW*CO elements:
#     out_row[ox*CO + co] += xr[oy*sh + ky*dh, ci, (ox + kx*dw)*CO + co] * wr[ky, kx, ci, ox*CO + co]
# with wr the kernel replicated over ox (built once per call). Three contiguous streams,
# no index arithmetic, so LLVM vectorises it at full width (needs column stride 1).


@njit(nogil=True, cache=True, fastmath=FAST)
def _replicate_image(x, n, xr, pad_top, pad_left):
    """xr (HP, C, WP, CO)[iy + pad_top, ci, ix + pad_left, :] = x[n, iy, ix, ci]; padding 0."""
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    HP = xr.shape[0]
    WP = xr.shape[2]
    CO = xr.shape[3]
    if HP != H or WP != W:
        xr[:, :, :, :] = 0.0
    for iy in range(H):
        for ci in range(C):
            dst = xr[iy + pad_top, ci]
            for ix in range(W):
                v = x[n, iy, ix, ci]
                d = dst[ix + pad_left]
                for co in range(CO):
                    d[co] = v


@njit(nogil=True, cache=True, fastmath=FAST)
def replicate_kernel(kernel, bias, OW, wr, br):
    """wr (KH, KW, C, OW*CO) and br (OW*CO,): kernel / bias repeated for every ox."""
    KH = kernel.shape[0]
    KW = kernel.shape[1]
    C = kernel.shape[2]
    CO = kernel.shape[3]
    for ky in range(KH):
        for kx in range(KW):
            for ci in range(C):
                src = kernel[ky, kx, ci]
                dst = wr[ky, kx, ci]
                for ox in range(OW):
                    for co in range(CO):
                        dst[ox * CO + co] = src[co]
    for ox in range(OW):
        for co in range(CO):
            br[ox * CO + co] = bias[co] if bias.shape[0] > 0 else np.float32(0.0)


@njit(nogil=True, cache=True, fastmath=FAST)
def _conv_fwd_rep_image(x, xr, wr, br, out, n, sh, dh, dw, pad_top, pad_left, relu):
    H = x.shape[1]
    KH = wr.shape[0]
    KW = wr.shape[1]
    C = wr.shape[2]
    L = wr.shape[3]
    OH = out.shape[1]
    CO = out.shape[3]
    WP = xr.shape[2]
    _replicate_image(x, n, xr, pad_top, pad_left)
    for oy in range(OH):
        orow = out[n, oy].reshape(L)
        for j in range(L):
            orow[j] = br[j]
        for ky in range(KH):
            iyp = oy * sh + ky * dh
            if iyp < pad_top or iyp >= pad_top + H:
                continue  # a padded row: all zeros
            for kx in range(KW):
                off = kx * dw * CO
                for ci in range(C):
                    src = xr[iyp, ci].reshape(WP * CO)[off:off + L]
                    w = wr[ky, kx, ci]
                    for j in range(L):
                        orow[j] += src[j] * w[j]
        if relu:
            for j in range(L):
                orow[j] = max(orow[j], np.float32(0.0))


@njit(nogil=True, cache=True, fastmath=FAST)
def _conv_fwd_3x3c1_image(x, xp, kernel, bias, out, n, nd, sh, dh, dw, pad_top, pad_left,
                          relu):
    """The common first conv (C = 1, 3x3, column stride 1): image x[n] -> out[nd].

    xp (HP, WP): the zero-padded image. Per output pixel the 9 input values are loaded
    once (scalars, broadcast), then ONE loop over the output channels computes
    bias + 9 FMAs (+ relu) per channel: 9 kernel loads + 1 store per 9 FMAs, no
    read-modify-write of ``out``.
    """
    H = x.shape[1]
    W = x.shape[2]
    HP = xp.shape[0]
    WP = xp.shape[1]
    OH = out.shape[1]
    OW = out.shape[2]
    CO = out.shape[3]
    if HP != H or WP != W:
        xp[:, :] = 0.0
    for iy in range(H):
        for ix in range(W):
            xp[iy + pad_top, ix + pad_left] = x[n, iy, ix, 0]
    # one base pointer for all 9 taps (w9[t, co]) and an always-present bias, so LLVM
    # needs a single runtime alias check (out vs w9/bias) and vectorises the co loop
    w9 = kernel.reshape(9, CO)
    for oy in range(OH):
        r0 = xp[oy * sh]
        r1 = xp[oy * sh + dh]
        r2 = xp[oy * sh + 2 * dh]
        for ox in range(OW):
            x00 = r0[ox]
            x01 = r0[ox + dw]
            x02 = r0[ox + 2 * dw]
            x10 = r1[ox]
            x11 = r1[ox + dw]
            x12 = r1[ox + 2 * dw]
            x20 = r2[ox]
            x21 = r2[ox + dw]
            x22 = r2[ox + 2 * dw]
            o = out[nd, oy, ox]
            for co in range(CO):
                v = (bias[co] + x00 * w9[0, co] + x01 * w9[1, co] + x02 * w9[2, co]
                     + x10 * w9[3, co] + x11 * w9[4, co] + x12 * w9[5, co]
                     + x20 * w9[6, co] + x21 * w9[7, co] + x22 * w9[8, co])
                o[co] = max(v, np.float32(0.0)) if relu else v


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def conv2d_forward_3x3c1(x, xp, kernel, bias, out, sh, dh, dw, pad_top, pad_left, relu):
    """out = [relu](conv2d(x, kernel) + bias) for C = 1, 3x3 kernels, column stride 1.

    bias (CO,) must be present here (zeros for a layer without bias). xp (T, HP, WP)
    scratch: one zero-padded image per numba worker. prange over images; loop order
    oy, ox, co (co innermost and contiguous in ``out`` and ``kernel``, the 9 taps summed
    in registers; see ``_conv_fwd_3x3c1_image``).
    """
    for n in prange(out.shape[0]):
        _conv_fwd_3x3c1_image(x, xp[numba.get_thread_id()], kernel, bias, out, n, n, sh,
                              dh, dw, pad_top, pad_left, relu)


@njit(nogil=True, cache=True, fastmath=FAST)
def conv2d_forward_3x3c1_serial(x, xp, kernel, bias, out, sh, dh, dw, pad_top, pad_left,
                                relu):
    """Serial twin of ``conv2d_forward_3x3c1`` (uses xp[0])."""
    for n in range(out.shape[0]):
        _conv_fwd_3x3c1_image(x, xp[0], kernel, bias, out, n, n, sh, dh, dw, pad_top,
                              pad_left, relu)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def conv2d_forward_thin(x, xr, wr, br, out, sh, dh, dw, pad_top, pad_left, relu):
    """out (N, OH, OW, CO) = [relu](conv2d(x, kernel) + bias) for column stride 1.

    xr (T, HP, C, WP, CO) scratch, one replicated image per numba worker (HP = H + pads,
    WP = W + pads); wr, br from ``replicate_kernel``. prange over images; per image:
    replicate it, then for each output row: init with the bias, one contiguous
    OW*CO-long FMA loop per tap (ky, kx, ci) (padded rows skipped), relu in place.
    """
    N = out.shape[0]
    for n in prange(N):
        _conv_fwd_rep_image(x, xr[numba.get_thread_id()], wr, br, out, n, sh, dh, dw,
                            pad_top, pad_left, relu)


@njit(nogil=True, cache=True, fastmath=FAST)
def conv2d_forward_thin_serial(x, xr, wr, br, out, sh, dh, dw, pad_top, pad_left, relu):
    """Serial twin of ``conv2d_forward_thin`` (uses xr[0])."""
    for n in range(out.shape[0]):
        _conv_fwd_rep_image(x, xr[0], wr, br, out, n, sh, dh, dw, pad_top, pad_left, relu)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _conv_bwd_kernel_thin_partials(x, dy, xr, acc, bacc, sh, dh, dw, pad_top, pad_left):
    T = acc.shape[0]
    N = dy.shape[0]
    OH = dy.shape[1]
    CO = dy.shape[3]
    H = x.shape[1]
    KH = acc.shape[1]
    KW = acc.shape[2]
    C = acc.shape[3]
    L = acc.shape[4]
    WP = xr.shape[3]
    do_bias = bacc.shape[1] > 0
    for t in prange(T):
        a_t = acc[t]
        a_t[:, :, :, :] = 0.0
        b_t = bacc[t]
        b_t[:] = 0.0
        xr_t = xr[t]
        for n in range((N * t) // T, (N * (t + 1)) // T):
            _replicate_image(x, n, xr_t, pad_top, pad_left)
            for oy in range(OH):
                g = dy[n, oy].reshape(L)
                if do_bias:
                    for j in range(L):
                        b_t[j] += g[j]
                for ky in range(KH):
                    iyp = oy * sh + ky * dh
                    if iyp < pad_top or iyp >= pad_top + H:
                        continue
                    for kx in range(KW):
                        off = kx * dw * CO
                        for ci in range(C):
                            src = xr_t[iyp, ci].reshape(WP * CO)[off:off + L]
                            a = a_t[ky, kx, ci]
                            for j in range(L):
                                a[j] += src[j] * g[j]


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _reduce_thin_partials(acc, bacc, grad_kernel, grad_bias):
    T = acc.shape[0]
    KH = acc.shape[1]
    KW = acc.shape[2]
    C = acc.shape[3]
    L = acc.shape[4]
    CO = grad_kernel.shape[3]
    OW = L // CO
    for r in prange(KH * KW * C):
        ky = r // (KW * C)
        kx = (r // C) % KW
        ci = r % C
        g = grad_kernel[ky, kx, ci]
        g[:] = 0.0
        for t in range(T):
            a = acc[t, ky, kx, ci]
            for ox in range(OW):
                for co in range(CO):
                    g[co] += a[ox * CO + co]
    if grad_bias.shape[0] > 0:
        grad_bias[:] = 0.0
        for t in range(T):
            for ox in range(OW):
                for co in range(CO):
                    grad_bias[co] += bacc[t, ox * CO + co]


@njit(nogil=True, cache=True, fastmath=FAST)
def _conv_bwdk_3x3c1_image(x, dy, xp, acc, bacc, n, nd, sh, dh, dw, pad_top, pad_left):
    """acc (9, CO) += the weight gradient of image x[n] given dy[nd]; bacc (CO,) += its bias gradient
    (skipped when empty). C = 1, 3x3, column stride 1; xp (HP, WP) padded-image scratch.

    Per group of 4 output pixels along a row: 36 input scalars (broadcast) and 4 rows
    of dy, then ONE loop over the output channels updates all 9 taps' accumulators:
    4 dy loads + 9 accumulator loads / stores per 36 FMAs.
    """
    H = x.shape[1]
    W = x.shape[2]
    HP = xp.shape[0]
    WP = xp.shape[1]
    OH = dy.shape[1]
    OW = dy.shape[2]
    CO = dy.shape[3]
    if HP != H or WP != W:
        xp[:, :] = 0.0
    for iy in range(H):
        for ix in range(W):
            xp[iy + pad_top, ix + pad_left] = x[n, iy, ix, 0]
    do_bias = bacc.shape[0] > 0
    for oy in range(OH):
        r0 = xp[oy * sh]
        r1 = xp[oy * sh + dh]
        r2 = xp[oy * sh + 2 * dh]
        if do_bias:
            for ox in range(OW):
                g = dy[nd, oy, ox]
                for co in range(CO):
                    bacc[co] += g[co]
        ox = 0
        while ox + 4 <= OW:
            x00_0 = r0[ox]
            x01_0 = r0[ox + 1 * dw]
            x02_0 = r0[ox + 2 * dw]
            x10_0 = r1[ox]
            x11_0 = r1[ox + 1 * dw]
            x12_0 = r1[ox + 2 * dw]
            x20_0 = r2[ox]
            x21_0 = r2[ox + 1 * dw]
            x22_0 = r2[ox + 2 * dw]
            x00_1 = r0[ox + 1]
            x01_1 = r0[ox + 1 + 1 * dw]
            x02_1 = r0[ox + 1 + 2 * dw]
            x10_1 = r1[ox + 1]
            x11_1 = r1[ox + 1 + 1 * dw]
            x12_1 = r1[ox + 1 + 2 * dw]
            x20_1 = r2[ox + 1]
            x21_1 = r2[ox + 1 + 1 * dw]
            x22_1 = r2[ox + 1 + 2 * dw]
            x00_2 = r0[ox + 2]
            x01_2 = r0[ox + 2 + 1 * dw]
            x02_2 = r0[ox + 2 + 2 * dw]
            x10_2 = r1[ox + 2]
            x11_2 = r1[ox + 2 + 1 * dw]
            x12_2 = r1[ox + 2 + 2 * dw]
            x20_2 = r2[ox + 2]
            x21_2 = r2[ox + 2 + 1 * dw]
            x22_2 = r2[ox + 2 + 2 * dw]
            x00_3 = r0[ox + 3]
            x01_3 = r0[ox + 3 + 1 * dw]
            x02_3 = r0[ox + 3 + 2 * dw]
            x10_3 = r1[ox + 3]
            x11_3 = r1[ox + 3 + 1 * dw]
            x12_3 = r1[ox + 3 + 2 * dw]
            x20_3 = r2[ox + 3]
            x21_3 = r2[ox + 3 + 1 * dw]
            x22_3 = r2[ox + 3 + 2 * dw]
            g0 = dy[nd, oy, ox]
            g1 = dy[nd, oy, ox + 1]
            g2 = dy[nd, oy, ox + 2]
            g3 = dy[nd, oy, ox + 3]
            for co in range(CO):
                acc[0, co] += (x00_0 * g0[co] + x00_1 * g1[co] + x00_2 * g2[co]
                                + x00_3 * g3[co])
                acc[1, co] += (x01_0 * g0[co] + x01_1 * g1[co] + x01_2 * g2[co]
                                + x01_3 * g3[co])
                acc[2, co] += (x02_0 * g0[co] + x02_1 * g1[co] + x02_2 * g2[co]
                                + x02_3 * g3[co])
                acc[3, co] += (x10_0 * g0[co] + x10_1 * g1[co] + x10_2 * g2[co]
                                + x10_3 * g3[co])
                acc[4, co] += (x11_0 * g0[co] + x11_1 * g1[co] + x11_2 * g2[co]
                                + x11_3 * g3[co])
                acc[5, co] += (x12_0 * g0[co] + x12_1 * g1[co] + x12_2 * g2[co]
                                + x12_3 * g3[co])
                acc[6, co] += (x20_0 * g0[co] + x20_1 * g1[co] + x20_2 * g2[co]
                                + x20_3 * g3[co])
                acc[7, co] += (x21_0 * g0[co] + x21_1 * g1[co] + x21_2 * g2[co]
                                + x21_3 * g3[co])
                acc[8, co] += (x22_0 * g0[co] + x22_1 * g1[co] + x22_2 * g2[co]
                                + x22_3 * g3[co])
            ox += 4
        while ox < OW:
            x00_0 = r0[ox]
            x01_0 = r0[ox + 1 * dw]
            x02_0 = r0[ox + 2 * dw]
            x10_0 = r1[ox]
            x11_0 = r1[ox + 1 * dw]
            x12_0 = r1[ox + 2 * dw]
            x20_0 = r2[ox]
            x21_0 = r2[ox + 1 * dw]
            x22_0 = r2[ox + 2 * dw]
            g0 = dy[nd, oy, ox]
            for co in range(CO):
                acc[0, co] += x00_0 * g0[co]
                acc[1, co] += x01_0 * g0[co]
                acc[2, co] += x02_0 * g0[co]
                acc[3, co] += x10_0 * g0[co]
                acc[4, co] += x11_0 * g0[co]
                acc[5, co] += x12_0 * g0[co]
                acc[6, co] += x20_0 * g0[co]
                acc[7, co] += x21_0 * g0[co]
                acc[8, co] += x22_0 * g0[co]
            ox += 1


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _conv_bwdk_3x3c1_partials(x, dy, xp, acc, bacc, sh, dh, dw, pad_top, pad_left):
    T = acc.shape[0]
    N = dy.shape[0]
    for t in prange(T):
        acc[t, :, :] = 0.0
        bacc[t, :] = 0.0
        for n in range((N * t) // T, (N * (t + 1)) // T):
            _conv_bwdk_3x3c1_image(x, dy, xp[t], acc[t], bacc[t], n, n, sh, dh, dw,
                                   pad_top, pad_left)


def conv2d_backward_kernel_3x3c1(x, dy, grad_kernel, grad_bias, xp, acc, bacc, sh, dh, dw,
                                 pad_top, pad_left):
    """grad_kernel (3, 3, 1, CO) and grad_bias (CO,) (skipped when empty) for C = 1,
    column stride 1. xp (T, HP, WP), acc (T, 9, CO), bacc (T, CO or 0) scratch.

    prange over T batch chunks with per-thread partial sums (see
    ``_conv_bwdk_3x3c1_image`` for the loop order), then a parallel reduction."""
    _conv_bwdk_3x3c1_partials(x, dy, xp, acc, bacc, sh, dh, dw, pad_top, pad_left)
    reduce_partials(acc.reshape(acc.shape[0], -1), grad_kernel.reshape(-1))
    if grad_bias.shape[0] > 0:
        reduce_partials(bacc, grad_bias)


def conv2d_backward_kernel_thin(x, dy, grad_kernel, grad_bias, xr, acc, bacc, sh, dh, dw,
                                pad_top, pad_left):
    """grad_kernel (KH, KW, C, CO) and grad_bias (CO,) (skipped when empty) for column
    stride 1, with per-thread partial sums.

    xr (T, HP, C, WP, CO), acc (T, KH, KW, C, OW*CO), bacc (T, OW*CO or 0) scratch.
    prange over T batch chunks; per image: replicate it (see above), then per output
    row and tap one contiguous OW*CO-long loop acc[t, tap, j] += xr[...][j] * dy_row[j]
    (bias: bacc[t, j] += dy_row[j]). The ox positions are summed only at the end, in
    the parallel reduction over taps (prange over KH*KW*C).
    """
    _conv_bwd_kernel_thin_partials(x, dy, xr, acc, bacc, sh, dh, dw, pad_top, pad_left)
    _reduce_thin_partials(acc, bacc, grad_kernel, grad_bias)


# ---------------------------------------------------------------------------------
# single-channel "plane" kernels (C = 1, unit strides, any kernel size, few filters)
# ---------------------------------------------------------------------------------
#
# With one input channel and few output channels (LeNet-5: 5x5x1 -> 6) there is nothing
# to vectorise over in the channel axes. These kernels vectorise over output positions
# instead: with unit strides, output position p = oy*WP + ox of the zero-padded image
# plane (row pitch WP) reads input p + ky*dh*WP + kx*dw for tap (ky, kx), so per output
# channel and tap the whole image is ONE contiguous multiply-add over OH*WP positions
# (the columns ox >= OW of each row are computed and ignored). The channel-major planes
# are interleaved into NHWC at the end (forward) or from NHWC at the start (backward).


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


@njit(nogil=True, cache=True, fastmath=FAST)
def _conv_fwd_plane_image(x, kernel, bias, out, n, xpf, planes, HP, WP, dh, dw, pad_top,
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
            for kx in range(KW):
                off = ky * dh * WP + kx * dw
                src = xpf[off:off + L]
                wv = kernel[ky, kx, 0, co]
                for j in range(L):
                    pl_[j] += wv * src[j]
    for oy in range(OH):
        for ox in range(OW):
            o = out[n, oy, ox]
            j = oy * WP + ox
            for co in range(CO):
                v = planes[co, j]
                o[co] = max(v, np.float32(0.0)) if relu else v


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
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
        _conv_fwd_plane_image(x, kernel, bias, out, n, xpf[t], planes[t], HP, WP, dh, dw,
                              pad_top, pad_left, relu)


@njit(nogil=True, cache=True, fastmath=FAST)
def conv2d_forward_plane_serial(x, kernel, bias, out, xpf, planes, HP, WP, dh, dw, pad_top,
                                pad_left, relu):
    """Serial twin of ``conv2d_forward_plane`` (uses slot 0 of the scratch)."""
    for n in range(out.shape[0]):
        _conv_fwd_plane_image(x, kernel, bias, out, n, xpf[0], planes[0], HP, WP, dh, dw,
                              pad_top, pad_left, relu)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _conv_bwdk_plane_partials(x, dy, xpf, planes, acc, bacc, HP, WP, dh, dw, pad_top,
                              pad_left):
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
                    g = dy[n, oy, ox]
                    j = oy * WP + ox
                    for co in range(CO):
                        g_t[co, j] = g[co]
            for co in range(CO):
                gp = g_t[co]
                if do_bias:
                    sb = np.float32(0.0)
                    for j in range(L):
                        sb += gp[j]
                    bacc[t, co] += sb
                for ky in range(KH):
                    for kx in range(KW):
                        off = ky * dh * WP + kx * dw
                        src = xp_t[off:off + L]
                        sacc = np.float32(0.0)
                        for j in range(L):
                            sacc += src[j] * gp[j]
                        acc[t, ky, kx, co] += sacc


def conv2d_backward_kernel_plane(x, dy, grad_kernel, grad_bias, xpf, planes, acc, bacc, HP,
                                 WP, dh, dw, pad_top, pad_left):
    """grad_kernel (KH, KW, 1, CO) and grad_bias (skipped when empty) for C = 1, unit
    strides. xpf (T, HP*WP + slack), planes (T, CO, OH*WP), acc (T, KH, KW, CO),
    bacc (T, CO or 0) scratch; prange over T batch chunks with per-thread partial sums.
    Per image: pad it, de-interleave dy[n] into channel planes, then per channel and tap
    one contiguous OH*WP-long dot product (vectorised reduction). Then the reduction
    over threads."""
    _conv_bwdk_plane_partials(x, dy, xpf, planes, acc, bacc, HP, WP, dh, dw, pad_top,
                              pad_left)
    reduce_partials(acc.reshape(acc.shape[0], -1), grad_kernel.reshape(-1))
    if grad_bias.shape[0] > 0:
        reduce_partials(bacc, grad_bias)


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
    prange over the N*H input rows (each writes only its own row of dx; a plain loop in
    the ``_serial`` twin, used for Conv2DTranspose inference). For each input pixel:
    ky, kx whose output position is integral and in range, then ci, and a dot product
    over co (contiguous in dy and kernel).
    """
    N = dx.shape[0]
    H = dx.shape[1]
    for r in prange(N * H):
        _conv_bwd_input_row(dy, kernel, dx, r // H, r % H, sh, sw, dh, dw, pad_top,
                            pad_left)


conv2d_backward_input_direct, conv2d_backward_input_direct_serial = twins(
    conv2d_backward_input_direct, fastmath=FAST)


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


def im2col(x, cols, n0, n1, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """Unfold images x[n0:n1] into cols ((n1-n0)*OH*OW, KH*KW*C).

    Row (n-n0)*OH*OW + oy*OW + ox holds the receptive field of that output pixel in
    (ky, kx, c) order, i.e. the order of kernel.reshape(KH*KW*C, CO), so
    cols @ kernel2d is the conv output in NHWC. Padded taps are zero.
    prange over (n, oy) output rows (disjoint rows of cols; a plain loop in the
    ``_serial`` twin).
    """
    for r in prange((n1 - n0) * OH):
        _im2col_row(x, cols, n0 + r // OH, r % OH, KH, KW, sh, sw, dh, dw, pad_top,
                    pad_left, OH, OW, n0)


im2col, im2col_serial = twins(im2col)


@njit(nogil=True, cache=True, fastmath=FAST)
def _col2im_image_row(dcols, dx, n, iy, n_base, KH, KW, OH, OW, sh, sw, dh, dw, pad_top,
                      pad_left):
    """dx[n, iy] (overwritten) = the sum of the dcols entries that came from that input
    row; dcols rows are numbered from image n_base. Loops ky, kx, ix, ci."""
    W = dx.shape[2]
    C = dx.shape[3]
    dxrow = dx[n, iy]
    dxrow[:, :] = 0.0
    for ky in range(KH):
        oy = gather_index(iy, pad_top, ky, dh, sh, OH)
        if oy < 0:
            continue
        for kx in range(KW):
            base = (ky * KW + kx) * C
            for ix in range(W):
                ox = gather_index(ix, pad_left, kx, dw, sw, OW)
                if ox < 0:
                    continue
                crow = dcols[((n - n_base) * OH + oy) * OW + ox]
                for ci in range(C):
                    dxrow[ix, ci] += crow[base + ci]


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def col2im(dcols, dx, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """Fold dcols (N*OH*OW, KH*KW*C) back into dx (N, H, W, C) (adjoint of im2col).

    Gather form: each input row dx[n, iy] sums the dcols entries that came from it, so
    prange over the N*H input rows writes disjoint memory. dx is fully overwritten.
    """
    N = dx.shape[0]
    H = dx.shape[1]
    for r in prange(N * H):
        _col2im_image_row(dcols, dx, r // H, r % H, 0, KH, KW, OH, OW, sh, sw, dh, dw,
                          pad_top, pad_left)


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


def bias_act_rows(y, bias, relu):
    """In place: y (M, CO) += bias (CO,) (skipped if bias is empty), then relu if asked.
    prange over 256-row blocks (a plain loop in the ``_serial`` twin)."""
    M = y.shape[0]
    nb = (M + 255) // 256
    for b in prange(nb):
        for i in range(b * 256, min(M, b * 256 + 256)):
            _bias_act_row(y, bias, relu, i)


bias_act_rows, bias_act_rows_serial = twins(bias_act_rows, fastmath=FAST)


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
# im2col + sgemm inside ONE parallel region (numpy's OpenBLAS called per chunk)
# ---------------------------------------------------------------------------------


@njit(nogil=True, cache=True, fastmath=FAST)
def _unfold_image(x, n, pad, buf, row0, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """im2col of image n into buf[row0 : row0 + OH*OW].

    C >= 4: the row-wise ``_im2col_row``. Fewer channels (a first conv): no per-tap
    branches; with padding, the image is first copied into the zero-bordered ``pad`` (HP, WP, C);
    without, x[n] is read directly. Per output pixel and kernel row ky the KW*C values
    are one contiguous run of the (padded) image when dw == 1: a straight copy.
    """
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    if C >= 4:
        # enough channels for the per-tap copy loop to vectorise: the row-wise im2col
        # (measured faster for the seed conv2, C = 32, and LeNet-5 conv2, C = 6)
        n_base = n - row0 // (OH * OW)
        for oy in range(OH):
            _im2col_row(x, buf, n, oy, KH, KW, sh, sw, dh, dw, pad_top, pad_left, OH, OW,
                        n_base)
        return
    if pad_top > 0 or pad_left > 0 or pad.shape[0] > H or pad.shape[1] > W:
        HP = pad.shape[0]
        WP = pad.shape[1]
        for iy in range(HP):
            for ix in range(WP):
                sy = iy - pad_top
                sx = ix - pad_left
                if sy < 0 or sy >= H or sx < 0 or sx >= W:
                    for ci in range(C):
                        pad[iy, ix, ci] = 0.0
                else:
                    for ci in range(C):
                        pad[iy, ix, ci] = x[n, sy, sx, ci]
        img = pad
    else:
        img = x[n]
    # flat indices: a view per (pixel, ky) costs more than copying its KW*C floats
    WC = img.shape[1] * C
    KC = KW * C
    K = KH * KC
    src = img.reshape(img.shape[0] * WC)
    dst = buf.reshape(buf.shape[0] * buf.shape[1])
    for oy in range(OH):
        for ox in range(OW):
            d_pix = (row0 + oy * OW + ox) * K
            for ky in range(KH):
                s0 = (oy * sh + ky * dh) * WC + ox * sw * C
                d0 = d_pix + ky * KC
                if dw == 1:
                    for j in range(KC):
                        dst[d0 + j] = src[s0 + j]
                else:
                    for kx in range(KW):
                        for ci in range(C):
                            dst[d0 + kx * C + ci] = src[s0 + kx * dw * C + ci]


@njit(nogil=True, cache=True, fastmath=FAST)
def _fwd_gemm_chunk(gemm, x, k2d, bias, out2d, buf, pad, n0, n1, KH, KW, OH, OW, sh, sw, dh,
                    dw, pad_top, pad_left, relu):
    P = OH * OW
    K = k2d.shape[0]
    CO = k2d.shape[1]
    rows = (n1 - n0) * P
    for n in range(n0, n1):
        _unfold_image(x, n, pad, buf, (n - n0) * P, KH, KW, OH, OW, sh, sw, dh, dw, pad_top,
                      pad_left)
    o = out2d[n0 * P:n1 * P]
    gemm(101, 111, 111, rows, CO, K, np.float32(1.0), buf.ctypes.data, K,
         k2d.ctypes.data, CO, np.float32(0.0), o.ctypes.data, CO)
    if relu or bias.shape[0] > 0:
        for i in range(rows):
            _bias_act_row(o, bias, relu, i)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def conv2d_forward_gemm(gemm, x, k2d, bias, out2d, cols, scratch, pads, KH, KW, OH, OW, sh,
                        sw, dh, dw, pad_top, pad_left, relu, sub):
    """out2d (N*OH*OW, CO) = [relu](im2col(x) @ k2d + bias) in one parallel region.

    prange over chunks of ``sub`` images; each worker unfolds its chunk (im2col, rows in
    (n, oy, ox) order), calls single-threaded sgemm on it while it is hot in its cache,
    then adds bias / relu to its own output rows. Chunks write disjoint rows of out2d.
    cols (N*OH*OW, K): when it is that large the unfolded images are kept there (for the
    weight gradient); otherwise each worker uses scratch[thread id] (sub*OH*OW, K).
    """
    N = x.shape[0]
    P = OH * OW
    keep = cols.shape[0] >= N * P
    nchunks = (N + sub - 1) // sub
    for c in prange(nchunks):
        n0 = c * sub
        n1 = min(N, n0 + sub)
        t = numba.get_thread_id()
        if keep:
            buf = cols[n0 * P:n1 * P]
        else:
            buf = scratch[t][:(n1 - n0) * P]
        _fwd_gemm_chunk(gemm, x, k2d, bias, out2d, buf, pads[t], n0, n1, KH, KW, OH, OW, sh,
                        sw, dh, dw, pad_top, pad_left, relu)


@njit(nogil=True, cache=True, fastmath=FAST)
def conv2d_forward_gemm_serial(gemm, x, k2d, bias, out2d, cols, scratch, pads, KH, KW, OH,
                               OW, sh, sw, dh, dw, pad_top, pad_left, relu, sub):
    """Serial twin of ``conv2d_forward_gemm`` (uses scratch[0])."""
    N = x.shape[0]
    P = OH * OW
    keep = cols.shape[0] >= N * P
    for n0 in range(0, N, sub):
        n1 = min(N, n0 + sub)
        if keep:
            buf = cols[n0 * P:n1 * P]
        else:
            buf = scratch[0][:(n1 - n0) * P]
        _fwd_gemm_chunk(gemm, x, k2d, bias, out2d, buf, pads[0], n0, n1, KH, KW, OH, OW, sh,
                        sw, dh, dw, pad_top, pad_left, relu)


@njit(nogil=True, cache=True, fastmath=FAST)
def _bwd_input_gemm_chunk(gemm, dy2d, k2d, dx, buf, n0, n1, KH, KW, OH, OW, sh, sw, dh, dw,
                          pad_top, pad_left):
    P = OH * OW
    K = k2d.shape[0]
    CO = k2d.shape[1]
    H = dx.shape[1]
    rows = (n1 - n0) * P
    gemm(101, 111, 112, rows, K, CO, np.float32(1.0), dy2d[n0 * P:].ctypes.data, CO,
         k2d.ctypes.data, CO, np.float32(0.0), buf.ctypes.data, K)
    for n in range(n0, n1):
        for iy in range(H):
            _col2im_image_row(buf, dx, n, iy, n0, KH, KW, OH, OW, sh, sw, dh, dw, pad_top,
                              pad_left)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def conv2d_backward_input_gemm(gemm, dy2d, k2d, dx, scratch, KH, KW, OH, OW, sh, sw, dh, dw,
                               pad_top, pad_left, sub):
    """dx (N, H, W, C) from dy2d (N*OH*OW, CO) in one parallel region.

    prange over chunks of ``sub`` images: dcols = dy_chunk @ k2d.T (single-threaded
    sgemm into scratch[thread id], (sub*OH*OW, K)), then col2im of that chunk in gather
    form (each dx row sums the dcols entries that came from it). Images are
    independent, so chunks write disjoint parts of dx; dx is fully overwritten.
    """
    N = dx.shape[0]
    nchunks = (N + sub - 1) // sub
    for c in prange(nchunks):
        n0 = c * sub
        n1 = min(N, n0 + sub)
        buf = scratch[numba.get_thread_id()][:(n1 - n0) * OH * OW]
        _bwd_input_gemm_chunk(gemm, dy2d, k2d, dx, buf, n0, n1, KH, KW, OH, OW, sh, sw, dh,
                              dw, pad_top, pad_left)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def conv2d_backward_kernel_gemm(gemm, x, dy2d, cols, reuse, scratch, pads, partial, bpartial,
                                grad2d, grad_bias, KH, KW, OH, OW, sh, sw, dh, dw, pad_top,
                                pad_left, sub):
    """grad2d (K, CO) = im2col(x).T @ dy2d and grad_bias (CO,) (if non-empty).

    prange over chunks of ``sub`` images; the worker with thread id t accumulates
    cols_chunk.T @ dy_chunk into partial[t] (sgemm with beta=1) and the row sums of
    dy_chunk into bpartial[t]: one worker never runs two chunks at once, so the partial
    sums are race-free. ``reuse``: cols (N*OH*OW, K) already holds im2col(x) from the
    forward call; otherwise each chunk is unfolded into scratch[t]. Then the T partials
    are summed (serially: K*CO*T adds).
    """
    N = x.shape[0]
    P = OH * OW
    K = grad2d.shape[0]
    CO = grad2d.shape[1]
    T = partial.shape[0]
    partial[:, :, :] = 0.0
    bpartial[:, :] = 0.0
    nchunks = (N + sub - 1) // sub
    for c in prange(nchunks):
        t = numba.get_thread_id()
        n0 = c * sub
        n1 = min(N, n0 + sub)
        rows = (n1 - n0) * P
        if reuse:
            buf = cols[n0 * P:n1 * P]
        else:
            buf = scratch[t][:rows]
            for n in range(n0, n1):
                _unfold_image(x, n, pads[t], buf, (n - n0) * P, KH, KW, OH, OW, sh, sw, dh,
                              dw, pad_top, pad_left)
        gemm(101, 112, 111, K, CO, rows, np.float32(1.0), buf.ctypes.data, K,
             dy2d[n0 * P:].ctypes.data, CO, np.float32(1.0), partial[t].ctypes.data, CO)
        if grad_bias.shape[0] > 0:
            bp = bpartial[t]
            for i in range(n0 * P, n1 * P):
                for co in range(CO):
                    bp[co] += dy2d[i, co]
    for k in range(K):
        for co in range(CO):
            s = np.float32(0.0)
            for t in range(T):
                s += partial[t, k, co]
            grad2d[k, co] = s
    for co in range(grad_bias.shape[0]):
        s = np.float32(0.0)
        for t in range(T):
            s += bpartial[t, co]
        grad_bias[co] = s


# ---------------------------------------------------------------------------------
# python drivers (choose the path, manage workspace)
# ---------------------------------------------------------------------------------

# Below this reduction length (KH*KW*C) the direct kernel beats im2col + sgemm
# (measured in benchmarks/bench_kernels.py: the 1-channel first conv, K=9).
GEMM_MIN_K = 32
# Images per im2col chunk: bounds the workspace (and keeps it in cache) for big
# inference batches.
GEMM_CHUNK = 64


# Rows of im2col per sgemm call inside the parallel regions: big enough for sgemm to
# run near its peak, small enough that a chunk's cols stay in the worker's L2
# (seed conv2: 4 images = 484 rows x 288 = 557 KB).
GEMM_ROWS = 512


# Keep the whole im2col of the batch for the weight gradient? Measured on the seed
# conv2 (batch 64, one core, whole conv stack in sequence): no. Writing the 8.9 MB of
# cols to memory and reading them back costs more than unfolding each chunk again into
# a cache-resident scratch in the backward pass (conv2 fwd 4.3 -> 3.0 ms, weight
# gradient 3.4 -> 2.8 ms).
KEEP_COLS = False


def gemm_images_per_chunk(pixels_per_image):
    return max(1, GEMM_ROWS // max(1, pixels_per_image))


# Use the single-channel plane kernels (see above) for C = 1 kernels other than 3x3
# with unit strides: LeNet-5's 5x5x1->6 "same" conv, batch 64, one thread: forward
# 2.19 -> see benchmarks/bench_kernels.py; the 3x3 case has its own register kernels.
THIN_PLANE = True


def use_plane(kernel, strides):
    """True when the single-channel plane kernels handle this conv."""
    KH, KW, C, _ = kernel.shape
    return (THIN_PLANE and C == 1 and tuple(strides) == (1, 1)
            and not (KH == 3 and KW == 3))


def _plane_geometry(x, kernel, OH, OW, dh, dw, pad_top, pad_left):
    """(HP, WP, slack): padded plane size and the zero tail the last taps read past it."""
    KH, KW = kernel.shape[0], kernel.shape[1]
    H, W = x.shape[1], x.shape[2]
    HP = max(H + pad_top, OH + (KH - 1) * dh)
    WP = max(W + pad_left, OW + (KW - 1) * dw)
    return HP, WP, (KW - 1) * dw + 1


def _thin_padded_size(x, kernel, OH, OW, sh, dh, dw, pad_top, pad_left):
    """(HP, WP) of the replicated, zero-padded image the thin kernels read."""
    KH, KW = kernel.shape[0], kernel.shape[1]
    H, W = x.shape[1], x.shape[2]
    HP = max(H + pad_top, (OH - 1) * sh + (KH - 1) * dh + 1)
    WP = max(W + pad_left, (OW - 1) + (KW - 1) * dw + 1)
    return HP, WP


def _padded_image_shape(x, kernel, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """(HP, WP, C) of the zero-padded image ``_unfold_image`` reads ((0, 0, C) if none)."""
    KH, KW = kernel.shape[0], kernel.shape[1]
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    HP = max(H + pad_top, (OH - 1) * sh + (KH - 1) * dh + 1)
    WP = max(W + pad_left, (OW - 1) * sw + (KW - 1) * dw + 1)
    if pad_top == 0 and pad_left == 0 and HP <= H and WP <= W:
        return (0, 0, C)
    return (HP, WP, C)


def _scratch_slots(serial):
    # one slot per numba worker (indexed by numba.get_thread_id())
    return 1 if serial else numba.config.NUMBA_NUM_THREADS


def use_gemm(kernel):
    """True when the im2col + GEMM path is the faster one for this kernel shape."""
    KH, KW, C, _ = kernel.shape
    if KH * KW * C >= GEMM_MIN_K:
        return True
    # Thin kernels: the specialised 3x3 single-channel kernels win; every other thin
    # shape goes through the in-region sgemm when it is available (LeNet-5's 5x5x1->6
    # "same" conv, batch 64 forward: 4.5 ms with the replicated direct kernel).
    return not (KH == 3 and KW == 3 and C == 1) and _blas.SGEMM is not None


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
    if use_plane(kernel, strides):
        HP, WP, slack = _plane_geometry(x, kernel, OH, OW, dh, dw, pt, pl)
        slots = _scratch_slots(serial)
        get = ws.get if ws is not None else (lambda name, shape: np.empty(shape, np.float32))
        fn = conv2d_forward_plane_serial if serial else conv2d_forward_plane
        fn(x, kernel, b, out, get("plane_x", (slots, HP * WP + slack)),
           get("plane_out", (slots, CO, OH * WP)), HP, WP, dh, dw, pt, pl, relu)
        return False
    if not use_gemm(kernel) and sw == 1:
        KH, KW, C, CO = kernel.shape
        N, OH, OW, _ = out.shape
        HP, WP = _thin_padded_size(x, kernel, OH, OW, sh, dh, dw, pt, pl)
        slots = _scratch_slots(serial)
        L = OW * CO
        get = ws.get if ws is not None else (lambda name, shape: np.empty(shape, np.float32))
        if KH == 3 and KW == 3 and C == 1:
            fn = conv2d_forward_3x3c1_serial if serial else conv2d_forward_3x3c1
            if b.shape[0] == 0:
                b = get("thin_zero_bias", (CO,))
                b[:] = 0.0
            fn(x, get("thin_xp", (slots, HP, WP)), kernel, b, out, sh, dh, dw, pt, pl, relu)
            return False
        xr = get("thin_xr", (slots, HP, C, WP, CO))
        wr = get("thin_wr", (KH, KW, C, L))
        br = get("thin_br", (L,))
        replicate_kernel(kernel, b, OW, wr, br)
        fn = conv2d_forward_thin_serial if serial else conv2d_forward_thin
        fn(x, xr, wr, br, out, sh, dh, dw, pt, pl, relu)
        return False
    if ws is None:
        if serial:
            conv2d_forward_direct_serial(x, kernel, b, out, sh, sw, dh, dw, pt, pl, relu)
        else:
            conv2d_forward_direct(x, kernel, b, out, sh, sw, dh, dw, pt, pl, relu)
        return False
    K = KH * KW * C
    k2d = kernel.reshape(K, CO)
    out2d = out.reshape(N * OH * OW, CO)
    if _blas.SGEMM is not None:
        _blas.ensure_single_threaded()
        P = OH * OW
        sub = gemm_images_per_chunk(P)
        keep = KEEP_COLS and N <= GEMM_CHUNK
        cols = ws.get("cols", (N * P, K)) if keep else ws.get("cols_unused", (0, K))
        scratch = ws.get("scratch", (_scratch_slots(serial), 0 if keep else sub * P, K))
        pads = ws.get("pad", (_scratch_slots(serial),
                              *_padded_image_shape(x, kernel, OH, OW, sh, sw, dh, dw, pt, pl)))
        fn = conv2d_forward_gemm_serial if serial else conv2d_forward_gemm
        fn(_blas.SGEMM, x, k2d, b, out2d, cols, scratch, pads, KH, KW, OH, OW, sh, sw, dh,
           dw, pt, pl, relu, sub)
        return keep
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
    if _blas.SGEMM is not None:
        _blas.ensure_single_threaded()
        sub = gemm_images_per_chunk(OH * OW)
        scratch = ws.get("scratch", (_scratch_slots(False), sub * OH * OW, K))
        conv2d_backward_input_gemm(_blas.SGEMM, dy.reshape(N * OH * OW, CO),
                                   kernel.reshape(K, CO), dx, scratch, KH, KW, OH, OW, sh,
                                   sw, dh, dw, pt, pl, sub)
        return
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
    if use_plane(grad_kernel, strides):
        T = num_chunks(N, threads)
        HP, WP, slack = _plane_geometry(x, grad_kernel, OH, OW, dh, dw, pt, pl)
        get = ws.get if ws is not None else (lambda name, shape: np.empty(shape, np.float32))
        conv2d_backward_kernel_plane(
            x, dy, grad_kernel, NO_BIAS if grad_bias is None else grad_bias,
            get("plane_x", (T, HP * WP + slack)), get("plane_out", (T, CO, OH * WP)),
            get("plane_acc", (T, KH, KW, CO)), get("plane_bacc", (T, 0 if grad_bias is None else CO)),
            HP, WP, dh, dw, pt, pl)
        return
    if ws is not None and use_gemm(grad_kernel) and _blas.SGEMM is not None:
        _blas.ensure_single_threaded()
        K = KH * KW * C
        P = OH * OW
        sub = gemm_images_per_chunk(P)
        slots = _scratch_slots(False)
        cols = ws.get("cols", (M, K)) if reuse_cols else ws.get("cols_unused", (0, K))
        scratch = ws.get("scratch", (slots, 0 if reuse_cols else sub * P, K))
        gb = NO_BIAS if grad_bias is None else grad_bias
        conv2d_backward_kernel_gemm(
            _blas.SGEMM, x, dy2d, cols, bool(reuse_cols), scratch,
            ws.get("pad", (slots, *_padded_image_shape(x, grad_kernel, OH, OW, sh, sw, dh, dw,
                                                       pt, pl))),
            ws.get("kpartial", (slots, K, CO)), ws.get("bpartial", (slots, CO)),
            grad_kernel.reshape(K, CO), gb, KH, KW, OH, OW, sh, sw, dh, dw, pt, pl, sub)
        return
    if ws is not None and use_gemm(grad_kernel):
        K = KH * KW * C
        cols = ws.get("cols", (M, K))
        if not reuse_cols:
            im2col(x, cols, 0, N, KH, KW, OH, OW, sh, sw, dh, dw, pt, pl)
        np.matmul(cols.T, dy2d, out=grad_kernel.reshape(K, CO))
    elif not use_gemm(grad_kernel) and sw == 1:
        T = num_chunks(N, threads)
        HP, WP = _thin_padded_size(x, grad_kernel, OH, OW, sh, dh, dw, pt, pl)
        get = ws.get if ws is not None else (lambda name, shape: np.empty(shape, np.float32))
        if KH == 3 and KW == 3 and C == 1:
            conv2d_backward_kernel_3x3c1(
                x, dy, grad_kernel, NO_BIAS if grad_bias is None else grad_bias,
                get("thin_xp", (T, HP, WP)), get("thin_acc", (T, 9, CO)),
                get("thin_bacc", (T, 0 if grad_bias is None else CO)), sh, dh, dw, pt, pl)
            return
        L = OW * CO
        xr = get("thin_xr", (T, HP, C, WP, CO))
        acc = get("thin_acc", (T, KH, KW, C, L))
        bacc = get("thin_bacc", (T, 0 if grad_bias is None else L))
        conv2d_backward_kernel_thin(x, dy, grad_kernel, NO_BIAS if grad_bias is None
                                    else grad_bias, xr, acc, bacc, sh, dh, dw, pt, pl)
        return
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
