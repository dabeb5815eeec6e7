"""im2col + GEMM: the strategy for every conv with a reduction of at least ``GEMM_MIN_K``
(KH*KW*C) multiply-adds per output, and for every other shape no specialised kernel takes.

Strategy (``SGEMM_REGION``, used when numpy's OpenBLAS exports ``cblas_sgemm``): ONE numba
parallel region per op; each worker takes chunks of about ``GEMM_ROWS`` output pixels
(whole output rows; ``rows_per_chunk``), unfolds a chunk (im2col) into its own
cache-resident scratch, calls single-threaded sgemm
on it (``kernels.blas``), and finishes the chunk (bias + relu, or col2im, or per-group
weight-gradient partial sums) while the data is still in its cache. No BLAS thread pool
competes with numba's workers for the cores.

Why (measured, seed CNN batch 64, 2 cores, benchmarks/bench_kernels.py): the seed conv2
(13x13x32 -> 64, K = 288) runs at about half the machine's sgemm peak this way; the same
GEMMs through ``np.matmul`` with OpenBLAS's own threads were 1.3-1.6x slower (BLAS and
numba threads fighting for 2 cores), and the direct kernel 3-4x slower. Keeping the
whole batch's im2col for the weight gradient (instead of unfolding each chunk again) was
measured slower too (conv2 forward 4.3 -> 3.0 ms, weight gradient 3.4 -> 2.8 ms without
it): writing 8.9 MB of cols to memory and reading them back costs more than the unfold.

``NUMPY_MATMUL`` is the same maths with ``np.matmul`` on whole-batch im2col, for a numpy
whose BLAS has no ``cblas_sgemm`` symbol we can find.
"""

import numba
import numpy as np
from numba import njit, prange

from visualcnn.engine.kernels import blas as _blas
from visualcnn.engine.kernels._common import FAST, U, gather_index, reduction_groups, twins
from visualcnn.engine.kernels.conv._shared import (
    BIAS_ACT_ROWS,
    BIAS_GRAD_KERNELS,
    bias_act_row,
    bias_grad,
    getter,
    pick,
    scratch_slots,
    threads_of,
)

__all__ = [
    "conv2d_forward_gemm",
    "conv2d_forward_gemm_serial",
    "conv2d_backward_input_gemm",
    "conv2d_backward_input_gemm_serial",
    "conv2d_backward_kernel_gemm",
    "gemm_images_per_chunk",
    "GEMM_CHUNK",
    "GEMM_MIN_K",
    "GEMM_ROWS",
    "im2col",
    "im2col_serial",
    "col2im",
    "col2im_serial",
]

# Below this reduction length (KH*KW*C) the GEMM's k-loop is too short for sgemm to reach
# its speed; the planner then prefers a specialised kernel where one exists.
GEMM_MIN_K = 32
# Images per im2col chunk of the numpy-matmul strategy: bounds its workspace.
GEMM_CHUNK = 64
# Rows of im2col per sgemm call inside the parallel regions: big enough for sgemm to
# run near its peak, small enough that a chunk's cols stay in the worker's L2
# (seed conv2: 4 images = 484 rows x 288 = 557 KB).
GEMM_ROWS = 512


def gemm_images_per_chunk(pixels_per_image):
    return max(1, GEMM_ROWS // max(1, pixels_per_image))


# --- im2col / col2im ---------------------------------------------------------------------


@njit(nogil=True, cache=True)
def _im2col_row(x, cols, n, oy, KH, KW, sh, sw, dh, dw, pad_top, pad_left, OW, row0):
    """cols[row0 : row0 + OW] = the receptive fields of output row oy of image n.

    With unit column dilation a pixel's KW taps of one kernel row are one contiguous run
    of KW*C values of x (NHWC), copied as one loop over flat unsigned indices: a signed
    computed index keeps numba's negative-index wraparound in the loop, which stops LLVM
    from vectorising it, and a loop per tap over C values is too short to vectorise.
    Measured (batch 64, one core): LeNet-5's conv2 (14x14x6, 5x5) 0.48 -> 0.17 ms, a
    3x3 conv on 32 channels 0.21 -> 0.16. 1x1 kernels and dilated columns keep the
    per-tap loop (the run form measured 1.5x and 1.1x slower there)."""
    if dw == 1 and KW > 1:
        _im2col_row_runs(x, cols, n, oy, KH, KW, sh, sw, dh, pad_top, pad_left, OW, row0)
        return
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
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


@njit(nogil=True, cache=True, inline="always")
def _im2col_row_runs(x, cols, n, oy, KH, KW, sh, sw, dh, pad_top, pad_left, OW, row0):
    """``_im2col_row`` for unit column dilation: one run of KW*C values per kernel row
    where the pixel's taps are all inside the image, per-tap runs of C at the borders."""
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    K = cols.shape[1]
    KC = KW * C
    xf = x.reshape(x.size)
    cf = cols.reshape(cols.size)
    for ox in range(OW):
        ix0 = ox * sw - pad_left
        inside = ix0 >= 0 and ix0 + KW <= W
        d_pix = (row0 + ox) * K
        for ky in range(KH):
            iy = oy * sh - pad_top + ky * dh
            d = d_pix + ky * KC
            if iy < 0 or iy >= H:
                for j in range(KC):
                    cf[U(d + j)] = 0.0
            elif inside:
                src = ((n * H + iy) * W + ix0) * C
                for j in range(KC):
                    cf[U(d + j)] = xf[U(src + j)]
            else:
                for kx in range(KW):
                    ix = ix0 + kx
                    dk = d + kx * C
                    if ix < 0 or ix >= W:
                        for ci in range(C):
                            cf[U(dk + ci)] = 0.0
                    else:
                        src = ((n * H + iy) * W + ix) * C
                        for ci in range(C):
                            cf[U(dk + ci)] = xf[U(src + ci)]


def im2col(x, cols, n0, n1, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """Unfold images x[n0:n1] into cols ((n1-n0)*OH*OW, KH*KW*C).

    Row (n-n0)*OH*OW + oy*OW + ox holds the receptive field of that output pixel in
    (ky, kx, c) order, i.e. the order of kernel.reshape(KH*KW*C, CO), so
    cols @ kernel2d is the conv output in NHWC. Padded taps are zero.
    prange over (n, oy) output rows (disjoint rows of cols).
    """
    for r in prange((n1 - n0) * OH):
        _im2col_row(x, cols, n0 + r // OH, r % OH, KH, KW, sh, sw, dh, dw, pad_top,
                    pad_left, OW, r * OW)


IM2COL = twins(im2col)
im2col, im2col_serial = IM2COL


@njit(nogil=True, cache=True, fastmath=FAST)
def _col2im_image_row(dcols, dx, n, iy, n_base, KH, KW, OH, OW, sh, sw, dh, dw, pad_top,
                      pad_left):
    """dx[n, iy] (overwritten) = the sum of the dcols entries that came from that input
    row; dcols rows are numbered from image n_base. Loops ky, kx, ix, ci; with unit
    column stride and dilation ``_col2im_row_runs``."""
    W = dx.shape[2]
    C = dx.shape[3]
    dxrow = dx[n, iy]
    dxrow[:, :] = 0.0
    if sw == 1 and dw == 1:
        _col2im_row_runs(dcols, dxrow, n - n_base, iy, KH, KW, OH, OW, sh, dh, pad_top, pad_left)
        return
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


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _col2im_row_runs(dcols, dxrow, image, iy, KH, KW, OH, OW, sh, dh, pad_top, pad_left):
    """dxrow (W, C), zeroed, += the dcols entries of input row iy, unit column stride and
    dilation: per kernel row and output pixel, its kernel row's taps inside the image are
    one run of values in both dcols and dx (a flat loop over unsigned indices, as in
    ``_im2col_row_runs``). The pixels are walked right to left, so each dx value receives
    its terms in (ky, kx) order, as in the per-tap loop: the same sums, bit for bit.
    Measured, LeNet-5's conv2 input gradient (batch 64, one core): col2im 0.56 -> 0.30 ms."""
    W = dxrow.shape[0]
    C = dxrow.shape[1]
    K = dcols.shape[1]
    KC = KW * C
    df = dxrow.reshape(W * C)
    cf = dcols.reshape(dcols.size)
    for ky in range(KH):
        oy = gather_index(iy, pad_top, ky, dh, sh, OH)
        if oy < 0:
            continue
        first = (image * OH + oy) * OW
        for ox in range(OW - 1, -1, -1):
            ix0 = ox - pad_left
            k0 = max(0, -ix0)
            k1 = min(KW, W - ix0)
            if k0 >= k1:
                continue
            src = (first + ox) * K + ky * KC + k0 * C
            dst = (ix0 + k0) * C
            for j in range((k1 - k0) * C):
                df[U(dst + j)] += cf[U(src + j)]


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


COL2IM = twins(col2im, fastmath=FAST)
col2im, col2im_serial = COL2IM


# --- im2col + sgemm inside ONE parallel region -------------------------------------------


@njit(nogil=True, cache=True, fastmath=FAST)
def _unfold_image(x, n, pad, buf, row0, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """im2col of image n into buf[row0 : row0 + OH*OW].

    C >= 4: the row-wise ``_im2col_row``. Fewer channels: no per-tap branches; with
    padding, the image is first copied into the zero-bordered ``pad`` (HP, WP, C);
    without, x[n] is read directly. Per output pixel and kernel row ky the KW*C values
    are one contiguous run of the (padded) image when dw == 1: a straight copy.
    """
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    if C >= 4:
        # enough channels for the per-tap copy loop to vectorise: the row-wise im2col
        # (measured faster for the seed conv2, C = 32, and LeNet-5 conv2, C = 6)
        for oy in range(OH):
            _im2col_row(x, buf, n, oy, KH, KW, sh, sw, dh, dw, pad_top, pad_left, OW,
                        row0 + oy * OW)
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
                        dst[U(d0 + j)] = src[U(s0 + j)]
                else:
                    for kx in range(KW):
                        for ci in range(C):
                            dst[U(d0 + kx * C + ci)] = src[U(s0 + kx * dw * C + ci)]


@njit(nogil=True, cache=True, fastmath=FAST)
def _unfold_rows(x, pad, buf, r0, r1, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """im2col of the global output rows [r0, r1) (row r = image r // OH, row r % OH) into
    buf[0 : (r1 - r0)*OW]. C >= 4: row by row; fewer channels: r0, r1 are whole images
    (``rows_per_chunk``) and each is unfolded through its padded copy."""
    if x.shape[3] >= 4:
        for r in range(r0, r1):
            _im2col_row(x, buf, r // OH, r % OH, KH, KW, sh, sw, dh, dw, pad_top, pad_left, OW,
                        (r - r0) * OW)
    else:
        for n in range(r0 // OH, r1 // OH):
            _unfold_image(x, n, pad, buf, (n * OH - r0) * OW, KH, KW, OH, OW, sh, sw, dh, dw,
                          pad_top, pad_left)


def conv2d_forward_gemm(gemm, x, k2d, bias, out2d, scratch, pads, KH, KW, OH, OW, sh, sw, dh,
                        dw, pad_top, pad_left, relu, rows):
    """out2d (N*OH*OW, CO) = [relu](im2col(x) @ k2d + bias) in one parallel region.

    prange over chunks of ``rows`` output rows (of all N*OH; whole images when C < 4);
    each worker unfolds its chunk into scratch[thread id] (rows*OW, K) (im2col, rows in
    (n, oy, ox) order), calls single-threaded sgemm on it while it is hot in its cache,
    then adds bias / relu to its own output rows. Chunks write disjoint rows of out2d.
    """
    total = x.shape[0] * OH
    K = k2d.shape[0]
    CO = k2d.shape[1]
    for c in prange((total + rows - 1) // rows):
        r0 = c * rows
        r1 = min(total, r0 + rows)
        t = numba.get_thread_id()
        m = (r1 - r0) * OW
        buf = scratch[t][:m]
        _unfold_rows(x, pads[t], buf, r0, r1, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left)
        o = out2d[r0 * OW:r1 * OW]
        gemm(101, 111, 111, m, CO, K, np.float32(1.0), buf.ctypes.data, K,
             k2d.ctypes.data, CO, np.float32(0.0), o.ctypes.data, CO)
        if relu or bias.shape[0] > 0:
            for i in range(m):
                bias_act_row(o, bias, relu, i)


FORWARD_GEMM = twins(conv2d_forward_gemm, fastmath=FAST)
conv2d_forward_gemm, conv2d_forward_gemm_serial = FORWARD_GEMM


def conv2d_backward_input_gemm(gemm, dy2d, k2d, dx, scratch, KH, KW, OH, OW, sh, sw, dh, dw,
                               pad_top, pad_left, sub):
    """dx (N, H, W, C) from dy2d (N*OH*OW, CO) in one parallel region.

    prange over chunks of ``sub`` images: dcols = dy_chunk @ k2d.T (single-threaded
    sgemm into scratch[thread id], (sub*OH*OW, K)), then col2im of that chunk in gather
    form (each dx row sums the dcols entries that came from it). Images are
    independent, so chunks write disjoint parts of dx; dx is fully overwritten.
    """
    N = dx.shape[0]
    H = dx.shape[1]
    P = OH * OW
    K = k2d.shape[0]
    CO = k2d.shape[1]
    for c in prange((N + sub - 1) // sub):
        n0 = c * sub
        n1 = min(N, n0 + sub)
        buf = scratch[numba.get_thread_id()][:(n1 - n0) * P]
        gemm(101, 111, 112, (n1 - n0) * P, K, CO, np.float32(1.0), dy2d[n0 * P:].ctypes.data,
             CO, k2d.ctypes.data, CO, np.float32(0.0), buf.ctypes.data, K)
        for n in range(n0, n1):
            for iy in range(H):
                _col2im_image_row(buf, dx, n, iy, n0, KH, KW, OH, OW, sh, sw, dh, dw, pad_top,
                                  pad_left)


BACKWARD_INPUT_GEMM = twins(conv2d_backward_input_gemm, fastmath=FAST)
conv2d_backward_input_gemm, conv2d_backward_input_gemm_serial = BACKWARD_INPUT_GEMM


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def conv2d_backward_kernel_gemm(gemm, x, dy2d, scratch, pads, partial, bpartial, grad2d,
                                grad_bias, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left,
                                rows):
    """grad2d (K, CO) = im2col(x).T @ dy2d and grad_bias (CO,) (if non-empty).

    Chunks of ``rows`` output rows (as in ``conv2d_forward_gemm``) in T =
    partial.shape[0] groups of consecutive chunks (``reduction_groups``: fixed by the
    shapes, not the live thread count, so the sums are bit-identical however many
    threads run); prange over the groups: the worker with thread id t unfolds each chunk
    of its group into scratch[t] and accumulates cols_chunk.T @ dy_chunk into
    partial[g] (sgemm with beta=1), the row sums of dy_chunk into bpartial[g]. Then the
    T partials are summed in order (serially: K*CO*T adds).
    """
    total = x.shape[0] * OH
    K = grad2d.shape[0]
    CO = grad2d.shape[1]
    T = partial.shape[0]
    chunks = (total + rows - 1) // rows
    partial[:, :, :] = 0.0
    bpartial[:, :] = 0.0
    for g in prange(T):
        t = numba.get_thread_id()
        for c in range(g * chunks // T, (g + 1) * chunks // T):
            r0 = c * rows
            r1 = min(total, r0 + rows)
            m = (r1 - r0) * OW
            buf = scratch[t][:m]
            _unfold_rows(x, pads[t], buf, r0, r1, KH, KW, OH, OW, sh, sw, dh, dw, pad_top, pad_left)
            gemm(101, 112, 111, K, CO, m, np.float32(1.0), buf.ctypes.data, K,
                 dy2d[r0 * OW:].ctypes.data, CO, np.float32(1.0), partial[g].ctypes.data, CO)
            if grad_bias.shape[0] > 0:
                bp = bpartial[g]
                for i in range(r0 * OW, r1 * OW):
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


def rows_per_chunk(OH, OW, C):
    """Output rows (of the N*OH) per parallel chunk of the forward and weight gradient:
    about ``GEMM_ROWS`` pixels, so a chunk's cols stay in the worker's L2; whole images
    when C < 4 (their unfold goes through a padded copy of each image).

    A small batch is not split further to give every worker a chunk: measured on a busy
    machine (load 5.9 on 2 cores), one image's seed conv2 split over 2 workers took
    54 us against 50 us on one (the second worker is often not there to take its half).
    """
    if C < 4:
        return OH * gemm_images_per_chunk(OH * OW)
    return max(1, GEMM_ROWS // max(1, OW))


def _padded_image_shape(x_shape, kernel_shape, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """(HP, WP, C) of the zero-padded image ``_unfold_image`` reads ((0, 0, C) if none)."""
    KH, KW = kernel_shape[0], kernel_shape[1]
    H, W, C = x_shape[1], x_shape[2], x_shape[3]
    HP = max(H + pad_top, (OH - 1) * sh + (KH - 1) * dh + 1)
    WP = max(W + pad_left, (OW - 1) * sw + (KW - 1) * dw + 1)
    if C >= 4 or (pad_top == 0 and pad_left == 0 and HP <= H and WP <= W):
        return (0, 0, C)
    return (HP, WP, C)


class SgemmRegion:
    """im2col + numpy's sgemm called per chunk from inside one parallel region."""

    name = "im2col_sgemm"

    @staticmethod
    def forward(x, kernel, bias, out, geo, relu, ws, serial):
        _blas.ensure_single_threaded()
        KH, KW, C, CO = kernel.shape
        N, OH, OW, _ = out.shape
        K = KH * KW * C
        rows = rows_per_chunk(OH, OW, C)
        get = getter(ws)
        slots = scratch_slots()
        pick(FORWARD_GEMM, serial)(
            _blas.SGEMM, x, kernel.reshape(K, CO), bias, out.reshape(N * OH * OW, CO),
            get("scratch", (slots, rows * OW, K)),
            get("pad", (slots, *_padded_image_shape(x.shape, kernel.shape, OH, OW, *geo))),
            KH, KW, OH, OW, *geo, relu, rows)

    @staticmethod
    def backward_input(dy, kernel, dx, geo, ws, serial):
        _blas.ensure_single_threaded()
        KH, KW, C, CO = kernel.shape
        N, OH, OW, _ = dy.shape
        K = KH * KW * C
        sub = gemm_images_per_chunk(OH * OW)
        pick(BACKWARD_INPUT_GEMM, serial)(
            _blas.SGEMM, dy.reshape(N * OH * OW, CO), kernel.reshape(K, CO), dx,
            getter(ws)("scratch", (scratch_slots(), sub * OH * OW, K)), KH, KW, OH, OW, *geo,
            sub)

    @staticmethod
    def backward_kernel(x, dy, grad_kernel, grad_bias, geo, ws):
        _blas.ensure_single_threaded()
        KH, KW, C, CO = grad_kernel.shape
        N, OH, OW, _ = dy.shape
        K = KH * KW * C
        rows = rows_per_chunk(OH, OW, C)
        get = getter(ws)
        slots = scratch_slots()
        groups = reduction_groups(-(-N * OH // rows))
        conv2d_backward_kernel_gemm(
            _blas.SGEMM, x, dy.reshape(N * OH * OW, CO), get("scratch", (slots, rows * OW, K)),
            get("pad", (slots, *_padded_image_shape(x.shape, grad_kernel.shape, OH, OW, *geo))),
            get("kpartial", (groups, K, CO)), get("bpartial", (groups, CO)),
            grad_kernel.reshape(K, CO), grad_bias, KH, KW, OH, OW, *geo, rows)

    @staticmethod
    def kernels(op, serial):
        if op == "forward":
            return [pick(FORWARD_GEMM, serial)]
        if op == "backward_input":
            return [pick(BACKWARD_INPUT_GEMM, serial)]
        return [conv2d_backward_kernel_gemm]


class NumpyMatmul:
    """im2col + ``np.matmul`` per chunk of ``GEMM_CHUNK`` images (no sgemm symbol)."""

    name = "im2col_matmul"

    @staticmethod
    def forward(x, kernel, bias, out, geo, relu, ws, serial):
        KH, KW, C, CO = kernel.shape
        N, OH, OW, _ = out.shape
        K = KH * KW * C
        k2d = kernel.reshape(K, CO)
        out2d = out.reshape(N * OH * OW, CO)
        chunk = min(N, GEMM_CHUNK)
        cols_all = getter(ws)("cols", (chunk * OH * OW, K))
        i2c = pick(IM2COL, serial)
        bact = pick(BIAS_ACT_ROWS, serial)
        for n0 in range(0, N, chunk):
            n1 = min(N, n0 + chunk)
            cols = cols_all[:(n1 - n0) * OH * OW]
            i2c(x, cols, n0, n1, KH, KW, OH, OW, *geo)
            o = out2d[n0 * OH * OW:n1 * OH * OW]
            np.matmul(cols, k2d, out=o)
            if relu or bias.shape[0] > 0:
                bact(o, bias, relu)

    @staticmethod
    def backward_input(dy, kernel, dx, geo, ws, serial):
        KH, KW, C, CO = kernel.shape
        N, OH, OW, _ = dy.shape
        K = KH * KW * C
        dcols = getter(ws)("dcols", (N * OH * OW, K))
        np.matmul(dy.reshape(N * OH * OW, CO), kernel.reshape(K, CO).T, out=dcols)
        pick(COL2IM, serial)(dcols, dx, KH, KW, OH, OW, *geo)

    @staticmethod
    def backward_kernel(x, dy, grad_kernel, grad_bias, geo, ws):
        KH, KW, C, CO = grad_kernel.shape
        N, OH, OW, _ = dy.shape
        K = KH * KW * C
        M = N * OH * OW
        get = getter(ws)
        cols = get("cols", (M, K))
        im2col(x, cols, 0, N, KH, KW, OH, OW, *geo)
        dy2d = dy.reshape(M, CO)
        np.matmul(cols.T, dy2d, out=grad_kernel.reshape(K, CO))
        if grad_bias.shape[0] > 0:
            bias_grad(dy2d, grad_bias, get("bpartial", (reduction_groups(M), CO)))

    @staticmethod
    def kernels(op, serial):
        if op == "forward":
            return [pick(IM2COL, serial), pick(BIAS_ACT_ROWS, serial)]
        if op == "backward_input":
            return [pick(COL2IM, serial)]
        return [IM2COL[0], *BIAS_GRAD_KERNELS]


SGEMM_REGION = SgemmRegion()
NUMPY_MATMUL = NumpyMatmul()
