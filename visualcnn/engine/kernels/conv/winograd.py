"""Winograd F(2x2, 3x3): 3x3 convolutions with unit strides (any dilation, any padding)
on at least ``MIN_CHANNELS`` input channels and ``MIN_FILTERS`` filters, when numpy's
sgemm symbol was found; forward, input gradient and weight gradient.

Strategy: the output is cut into 2x2 tiles; each tile needs a 4x4 input tile. With the
transforms B (input), G (kernel) and A (output) of Lavin & Gray (2016),
    Y_tile = A^T [ (G g G^T) (.) (B^T d_tile B) ] A,
so per tile and transform position xi (16 of them) the channel mixing is one matrix
product: M[xi] (tiles, CO) = V[xi] (tiles, C) @ U[xi] (C, CO). That is 16 GEMMs with
16 multiplies per tile per (ci, co) instead of the 36 of im2col: 2.25x fewer. With
dilation d a tile covers outputs (o, o + d) along each axis and reads inputs
o - pad + {0, d, 2d, 3d}; tile t starts at ``_origin(t, d)``.
* forward: per chunk of about ``WINO_TILES`` tiles (prange; several small images or a
  band of tile rows of a big one), pad each image into a zero-bordered scratch,
  transform its input tiles into V, 16 single-threaded sgemms into M, transform M back
  into the output with bias and relu, all in the worker's cache.
* input gradient (unit strides): the forward of dy with the kernel flipped and its
  channels swapped, padding 2d - pad.
* weight gradient: dU[xi] = sum over tiles V[xi]^T @ (A dY A^T)[xi] (sgemm partial sums
  with beta = 1, one per fixed group of chunks), then grad = G^T dU G; the bias
  gradient on the way.
* compile time: the regions call their chunk, and the chunk its transforms, through
  machine-code addresses (``kernels.fnptr``), so each is compiled once, on its own.

Why (measured, batch 64, one core, thread CPU time, forward / input gradient / weight
gradient against im2col + sgemm): seed conv2 13x13x32 -> 64 valid 1.55 / 1.07 / 1.33x;
28x28x32 -> 32 "same" 1.70 / 1.77 / 1.46x; 14x14x64 -> 64 "same" 1.95 / 1.92 / 1.81x;
7x7x128 -> 128 "same" 1.57 / 1.52 / 1.47x; 28x28x16 -> 32 valid 1.47 / 1.35 / 1.29x;
dilation 2, 26x26x32 -> 32 valid 1.51 / 1.16 / 1.35x. Relative error against the float64
reference 1e-7..6e-7 (F(2x2, 3x3) is the well-conditioned Winograd size). With 8 input
channels the 16 GEMMs have too short a k-loop (weight gradient 0.88x), hence
``MIN_CHANNELS``. Two implementation details were worth 2-3x each and are kept on
purpose: plain indexing instead of an array view per tile (numba builds a view struct
each time), and one short loop per output stream in the transforms (a loop with 16
stores was not vectorised: too many runtime alias checks).
"""

import numba
import numpy as np
from numba import njit, prange

from visualcnn.engine.kernels import blas as _blas
from visualcnn.engine.kernels import fnptr as _fnptr
from visualcnn.engine.kernels._common import FAST, NO_BIAS, reduction_groups, twins
from visualcnn.engine.kernels.fnptr import call_address
from visualcnn.engine.kernels.conv._shared import getter, pick, scratch_slots

__all__ = [
    "winograd_forward",
    "winograd_forward_serial",
    "winograd_kernel_transform",
    "MIN_CHANNELS",
    "MIN_FILTERS",
    "WINO_TILES",
]

MIN_CHANNELS = 16
MIN_FILTERS = 8
# Tiles per chunk: V and M of a chunk (16 * tiles * channels floats each) stay in L2. At
# 256 tiles the seed CNN's conv2 (32 -> 64 channels) needed 1.5 MB of them, more than
# this machine's 1 MB per core; at 128, training steps (batch 64, 2 threads, alternated)
# measured 2.89-3.07 ms against 3.00-3.42 (seed CNN), 7.0-7.4 against 7.4-8.0 (dilated),
# 14.0-14.5 against 14.5-15.6 (ResNet), and no slower on the others (Conv-BN-ReLU, wide,
# 32x32x3, Inception: within 2 %).
WINO_TILES = 128


def applies(kernel_shape, strides):
    KH, KW, C, CO = kernel_shape
    return (KH == 3 and KW == 3 and tuple(strides) == (1, 1) and C >= MIN_CHANNELS
            and CO >= MIN_FILTERS and _blas.SGEMM is not None)


@njit(nogil=True, cache=True, inline="always")
def _origin(t, d):
    """First output position of tile t along an axis with dilation d: the tiles of
    residue class t % d are stepped 2d apart, so (o, o + d) pairs cover every output."""
    return (t // d) * 2 * d + t % d


def tiles_along(out_size, d):
    """Tiles along an axis: d residue classes of ceil(out / 2d) tiles each."""
    return d * (-(-out_size // (2 * d)))


def balanced_rows(TW, total_rows, max_tiles):
    """Tile rows (of all N*TH) per parallel chunk: at most about ``max_tiles`` tiles (whole
    images or parts of one, so the scratch per worker stays bounded for any image size),
    and the chunks a multiple of the workers, so none waits for another's last chunk. The
    count depends on the machine's workers, not the live thread count (the results do not
    depend on it either way)."""
    chunks = -(-total_rows // max(1, max_tiles // TW))
    slots = scratch_slots()
    chunks = -(-chunks // slots) * slots
    return max(1, -(-total_rows // chunks))


def tile_rows_per_chunk(TW, total_rows):
    """``balanced_rows`` of about ``WINO_TILES`` tiles. Measured on the seed CNN's conv2d_1
    (a batch is 384 tile rows of 6 tiles), at 256 tiles a chunk: 42-row chunks made 9
    full ones and one of 6 rows, so one worker ran 36 rows fewer than the other."""
    return balanced_rows(TW, total_rows, WINO_TILES)


def padded_extent(tiles, d):
    """Padded input length the tiles read: the last tile's origin + 3d + 1."""
    return (tiles // d - 1) * 2 * d + (d - 1) + 3 * d + 1


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _transform_rows(g, U, a, h, r):
    """U[:, a, :] = G g G^T for the (3, 3, B) block g of kernel taps; r (6, B) scratch
    for the middle rows of G g. One short loop per output row (one store stream each):
    written as one loop with 16 stores, LLVM gave up on the alias checks and did not
    vectorise it (measured 0.5 ms for a 3x3x128x128 kernel)."""
    B = g.shape[2]
    for b in range(B):
        r[0, b] = h * (g[0, 0, b] + g[1, 0, b] + g[2, 0, b])
    for b in range(B):
        r[1, b] = h * (g[0, 1, b] + g[1, 1, b] + g[2, 1, b])
    for b in range(B):
        r[2, b] = h * (g[0, 2, b] + g[1, 2, b] + g[2, 2, b])
    for b in range(B):
        r[3, b] = h * (g[0, 0, b] - g[1, 0, b] + g[2, 0, b])
    for b in range(B):
        r[4, b] = h * (g[0, 1, b] - g[1, 1, b] + g[2, 1, b])
    for b in range(B):
        r[5, b] = h * (g[0, 2, b] - g[1, 2, b] + g[2, 2, b])
    # rows of G g: (g[0, :]), (r0, r1, r2), (r3, r4, r5), (g[2, :]); then G^T on the right
    for i in range(4):
        if i == 0:
            c0 = g[0, 0]
            c1 = g[0, 1]
            c2 = g[0, 2]
        elif i == 1:
            c0 = r[0]
            c1 = r[1]
            c2 = r[2]
        elif i == 2:
            c0 = r[3]
            c1 = r[4]
            c2 = r[5]
        else:
            c0 = g[2, 0]
            c1 = g[2, 1]
            c2 = g[2, 2]
        u0 = U[4 * i, a]
        u1 = U[4 * i + 1, a]
        u2 = U[4 * i + 2, a]
        u3 = U[4 * i + 3, a]
        for b in range(B):
            u0[b] = c0[b]
        for b in range(B):
            u1[b] = h * (c0[b] + c1[b] + c2[b])
        for b in range(B):
            u2[b] = h * (c0[b] - c1[b] + c2[b])
        for b in range(B):
            u3[b] = c2[b]


@njit(nogil=True, cache=True, fastmath=FAST)
def winograd_kernel_transform(kernel, U, flip, gbuf, r):
    """U (16, C, CO) = G g G^T for every (ci, co) of kernel (3, 3, C, CO); with ``flip``,
    U (16, CO, C) of the kernel rotated by 180 degrees with its channels swapped (the
    kernel of the input gradient). gbuf (3, 3, B) and r (6, B) scratch, B = U.shape[2]:
    the taps of one row of U gathered contiguous, so the transform vectorises over B."""
    C = kernel.shape[2]
    CO = kernel.shape[3]
    h = np.float32(0.5)
    for a in range(CO if flip else C):  # one call site: _transform_rows is inlined
        gather_taps(kernel, a, flip, gbuf)
        _transform_rows(gbuf, U, a, h, r)


@njit(nogil=True, cache=True, inline="always")
def gather_taps(kernel, a, flip, gbuf):
    """gbuf (3, 3, B) = the taps of input channel a for every output channel of kernel
    (3, 3, C, CO), contiguous; with ``flip``, of output channel a for every input channel,
    the kernel rotated by 180 degrees (the input gradient's kernel)."""
    if flip:
        for ky in range(3):
            for kx in range(3):
                for ci in range(kernel.shape[2]):
                    gbuf[ky, kx, ci] = kernel[2 - ky, 2 - kx, ci, a]
    else:
        for ky in range(3):
            for kx in range(3):
                for co in range(kernel.shape[3]):
                    gbuf[ky, kx, co] = kernel[ky, kx, a, co]


@njit(nogil=True, cache=True, fastmath=FAST)
def _pad_image(x, n, xp, pad_top, pad_left, ty0, ty1, dh):
    """The padded rows of image n that tile rows [ty0, ty1) read, into xp (HP, WP, C)
    (padded row py = image row py - pad_top; zero outside the image). Only that band:
    a chunk may hold a few tile rows of a big image."""
    p0 = xp.shape[0]
    p1 = 0
    for ty in range(ty0, min(ty1, ty0 + dh)):  # the first tile row of each residue class
        p0 = min(p0, _origin(ty, dh))
    for ty in range(max(ty0, ty1 - dh), ty1):  # the last one of each
        p1 = max(p1, _origin(ty, dh) + 3 * dh + 1)
    pad_rows(x, n, xp, pad_top, pad_left, p0, min(p1, xp.shape[0]))


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def pad_rows(x, n, xp, pad_top, pad_left, p0, p1):
    """xp[py] for the padded rows [p0, p1) of image n: padded row py = image row
    py - pad_top, column px = image column px - pad_left, zero outside the image."""
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    WP = xp.shape[1]
    for py in range(p0, p1):
        dst = xp[py]
        iy = py - pad_top
        if iy < 0 or iy >= H:
            dst[:, :] = 0.0
            continue
        src = x[n, iy]
        for px in range(WP):
            ix = px - pad_left
            if ix < 0 or ix >= W:
                for ci in range(C):
                    dst[px, ci] = 0.0
            else:
                for ci in range(C):
                    dst[px, ci] = src[ix, ci]


@njit(nogil=True, cache=True, fastmath=FAST)
def _input_tiles(xp, V, row0, ty0, ty1, TW, dh, dw, tmp):
    """V[xi, row0 + (ty - ty0)*TW + tx, :] = (B^T d B)[xi] of the tiles in tile rows
    [ty0, ty1) of the padded image xp.
    tmp (4, 4, C) holds B^T d of one tile (in L1), so V is written once. Vectorised over
    the channels, with plain indexing: a numba array view per (tile, row) cost more
    than the arithmetic (measured 0.56 -> see the module docstring)."""
    C = xp.shape[2]
    for ty in range(ty0, ty1):
        y0 = _origin(ty, dh)
        y1 = y0 + dh
        y2 = y0 + 2 * dh
        y3 = y0 + 3 * dh
        for tx in range(TW):
            x0 = _origin(tx, dw)
            row = row0 + (ty - ty0) * TW + tx
            for c in range(4):  # column c of B^T d
                xc = x0 + c * dw
                for ci in range(C):
                    a0 = xp[y0, xc, ci]
                    a1 = xp[y1, xc, ci]
                    a2 = xp[y2, xc, ci]
                    a3 = xp[y3, xc, ci]
                    tmp[0, c, ci] = a0 - a2
                    tmp[1, c, ci] = a1 + a2
                    tmp[2, c, ci] = a2 - a1
                    tmp[3, c, ci] = a1 - a3
            for r in range(4):  # row r of (B^T d) B
                for ci in range(C):
                    b0 = tmp[r, 0, ci]
                    b1 = tmp[r, 1, ci]
                    b2 = tmp[r, 2, ci]
                    b3 = tmp[r, 3, ci]
                    V[4 * r, row, ci] = b0 - b2
                    V[4 * r + 1, row, ci] = b1 + b2
                    V[4 * r + 2, row, ci] = b2 - b1
                    V[4 * r + 3, row, ci] = b1 - b3


@njit(nogil=True, cache=True, fastmath=FAST)
def _output_tiles(M, out, n, row0, ty0, ty1, TW, dh, dw, bias, relu, tmp):
    """out[n] positions of the tiles in tile rows [ty0, ty1) = [relu]((A^T M A) + bias)
    (M rows numbered from row0, as ``_input_tiles`` wrote V); bias (CO,) always
    present (zeros for none); tmp (2, 4, CO) holds A^T M of one tile."""
    OH = out.shape[1]
    OW = out.shape[2]
    CO = out.shape[3]
    zero = np.float32(0.0)
    for ty in range(ty0, ty1):
        y0 = _origin(ty, dh)
        for tx in range(TW):
            x0 = _origin(tx, dw)
            if x0 >= OW or y0 >= OH:  # with dilation a tile may start past the end
                continue
            row = row0 + (ty - ty0) * TW + tx
            for c in range(4):
                for co in range(CO):
                    m1 = M[4 + c, row, co]
                    m2 = M[8 + c, row, co]
                    tmp[0, c, co] = M[c, row, co] + m1 + m2
                    tmp[1, c, co] = m1 - m2 - M[12 + c, row, co]
            x1 = x0 + dw
            for r in range(2):
                oy = y0 + r * dh
                if oy >= OH:
                    continue
                if relu:
                    for co in range(CO):
                        out[n, oy, x0, co] = max(tmp[r, 0, co] + tmp[r, 1, co] + tmp[r, 2, co] + bias[co], zero)
                    if x1 < OW:
                        for co in range(CO):
                            out[n, oy, x1, co] = max(tmp[r, 1, co] - tmp[r, 2, co] - tmp[r, 3, co] + bias[co],
                                                     zero)
                else:
                    for co in range(CO):
                        out[n, oy, x0, co] = tmp[r, 0, co] + tmp[r, 1, co] + tmp[r, 2, co] + bias[co]
                    if x1 < OW:
                        for co in range(CO):
                            out[n, oy, x1, co] = tmp[r, 1, co] - tmp[r, 2, co] - tmp[r, 3, co] + bias[co]


@njit(nogil=True, cache=True, fastmath=FAST)
def _grad_tiles(dy, n, D, row0, ty0, ty1, TW, dh, dw, zero):
    """D[xi, row0 + tile, :] = (A dY A^T)[xi] of the 2x2 tiles of dy[n] in tile rows
    [ty0, ty1) (positions beyond the output read ``zero``, a (1, 1, CO) block of zeros)."""
    OH = dy.shape[1]
    OW = dy.shape[2]
    CO = dy.shape[3]
    dyn = dy[n]
    for ty in range(ty0, ty1):
        y0 = _origin(ty, dh)
        y1 = y0 + dh
        for tx in range(TW):
            x0 = _origin(tx, dw)
            x1 = x0 + dw
            row = row0 + (ty - ty0) * TW + tx
            # A = [[1, 0], [1, 1], [1, -1], [0, -1]]; D = A dY A^T. Missing positions
            # read zero[0, 0] (an array, so the co loop has no branch)
            src00 = dyn if (y0 < OH and x0 < OW) else zero
            src01 = dyn if (y0 < OH and x1 < OW) else zero
            src10 = dyn if (y1 < OH and x0 < OW) else zero
            src11 = dyn if (y1 < OH and x1 < OW) else zero
            i00y, i00x = (y0, x0) if (y0 < OH and x0 < OW) else (0, 0)
            i01y, i01x = (y0, x1) if (y0 < OH and x1 < OW) else (0, 0)
            i10y, i10x = (y1, x0) if (y1 < OH and x0 < OW) else (0, 0)
            i11y, i11x = (y1, x1) if (y1 < OH and x1 < OW) else (0, 0)
            # one loop per row i of A dY (4 stores each): one loop with 16 stores was not
            # vectorised (too many runtime alias checks)
            for i in range(4):
                sa = np.float32(1.0) if i < 3 else np.float32(0.0)
                sc = np.float32(0.0) if i == 0 else (np.float32(1.0) if i == 1 else np.float32(-1.0))
                d0 = D[4 * i, row]
                d1 = D[4 * i + 1, row]
                d2 = D[4 * i + 2, row]
                d3 = D[4 * i + 3, row]
                for co in range(CO):
                    p = sa * src00[i00y, i00x, co] + sc * src10[i10y, i10x, co]
                    q = sa * src01[i01y, i01x, co] + sc * src11[i11y, i11x, co]
                    d0[co] = p
                    d1[co] = p + q
                    d2[co] = p - q
                    d3[co] = -q


@njit(nogil=True, cache=True, fastmath=FAST)
def _forward_chunk(fns, gemm, x, U, bias, out, pad, V, M, tin, tout, dh, dw, pad_top, pad_left, relu, R0,
                   R1, TH, TW):
    """Global tile rows [R0, R1) of the forward (global tile row R = n*TH + ty: a chunk
    may hold several small images or part of a big one), in one worker's scratch.
    fns: the addresses of ``_pad_image``, ``_input_tiles`` and ``_output_tiles`` for
    these arguments (called, not linked in: see ``fnptr``; linked, each chunk compiled
    their code again, 2-3 s each on a fresh install)."""
    C = x.shape[3]
    CO = out.shape[3]
    row = 0
    r = R0
    while r < R1:  # the (image, tile rows) pieces of the chunk
        n = r // TH
        ty0 = r % TH
        ty1 = min(TH, ty0 + (R1 - r))
        call_address(fns[0], x, n, pad, pad_top, pad_left, ty0, ty1, dh)
        call_address(fns[1], pad, V, row, ty0, ty1, TW, dh, dw, tin)
        row += (ty1 - ty0) * TW
        r += ty1 - ty0
    for xi in range(V.shape[0]):  # 16 transform positions here, 36 in F(4x4, 3x3)
        gemm(101, 111, 111, row, CO, C, np.float32(1.0), V[xi].ctypes.data, C,
             U[xi].ctypes.data, CO, np.float32(0.0), M[xi].ctypes.data, CO)
    row = 0
    r = R0
    while r < R1:
        n = r // TH
        ty0 = r % TH
        ty1 = min(TH, ty0 + (R1 - r))
        call_address(fns[2], M, out, n, row, ty0, ty1, TW, dh, dw, bias, relu, tout)
        row += (ty1 - ty0) * TW
        r += ty1 - ty0


def winograd_forward(fn, fns, gemm, x, U, bias, out, pads, Vs, Ms, tins, touts, dh, dw, pad_top, pad_left,
                     relu, rows, TH, TW):
    """out (N, OH, OW, CO) = [relu](conv3x3(x) + bias), unit strides, dilation (dh, dw);
    TH x TW tiles per image (the scheme's ``tiles_along``).

    fn: ``fnptr.address`` of ``_forward_chunk`` for these arguments (``run_forward``).
    U (16, C, CO) from ``winograd_kernel_transform``; bias (CO,) must be present. Scratch
    per numba worker: pads (T, HP, WP, C), Vs (T, 16, rows*TW, C), Ms (T, 16, rows*TW,
    CO), tins (T, 4, 4, C), touts (T, 2, 4, CO). prange over chunks of ``rows`` tile
    rows of the whole batch (``tile_rows_per_chunk``): per image piece pad the image and
    transform its input tiles, then 16 sgemms, then the output transform (see the
    module docstring).
    """
    total = x.shape[0] * TH
    # the prange body is one call through an address: the chunk is compiled once, on its
    # own (called directly, numba re-optimised its code inside this region and its twin:
    # 12-14 s of compile on a fresh install; inline, 22 s)
    for c in prange((total + rows - 1) // rows):
        t = numba.get_thread_id()
        call_address(fn, fns, gemm, x, U, bias, out, pads[t], Vs[t], Ms[t], tins[t], touts[t], dh, dw, pad_top,
                     pad_left, relu, np.int64(c * rows), np.int64(min(total, c * rows + rows)), TH, TW)


FORWARD = twins(winograd_forward, fastmath=FAST)
winograd_forward, winograd_forward_serial = FORWARD


@njit(nogil=True, cache=True, fastmath=FAST)
def _backward_kernel_chunk(fns, gemm, x, dy, pad, V, D, tin, gtmp, dU, bsum, dh, dw, pad_top, pad_left, R0, R1,
                           TH, TW, m):
    """dU (P, C, CO) += V^T @ D and bsum (CO,) += dy over global tile rows [R0, R1).
    fns: the addresses of the scheme's ``_pad_image``, ``_input_tiles`` and
    ``_grad_tiles`` for these arguments; m outputs per tile along an axis (2 or 4), P
    transform positions (V.shape[0]); gtmp the grad-tile transform's scratch."""
    C = x.shape[3]
    OH = dy.shape[1]
    OW = dy.shape[2]
    CO = dy.shape[3]
    row = 0
    r = R0
    while r < R1:
        n = r // TH
        ty0 = r % TH
        ty1 = min(TH, ty0 + (R1 - r))
        call_address(fns[0], x, n, pad, pad_top, pad_left, ty0, ty1, dh)
        call_address(fns[1], pad, V, row, ty0, ty1, TW, dh, dw, tin)
        call_address(fns[2], dy, n, D, row, ty0, ty1, TW, dh, dw, gtmp)
        row += (ty1 - ty0) * TW
        r += ty1 - ty0
        if bsum.shape[0] > 0:
            # the dy rows of these tile rows (each output row belongs to one tile row)
            for ty in range(ty0, ty1):
                y0 = (ty // dh) * m * dh + ty % dh
                for k in range(m):
                    oy = y0 + k * dh
                    if oy < OH:
                        for ox in range(OW):
                            for co in range(CO):
                                bsum[co] += dy[n, oy, ox, co]
    for xi in range(V.shape[0]):
        gemm(101, 112, 111, C, CO, row, np.float32(1.0), V[xi].ctypes.data, C,
             D[xi].ctypes.data, CO, np.float32(1.0), dU[xi].ctypes.data, CO)


@njit(parallel=True, nogil=True, cache=True)
def _backward_kernel_region(fn, fns, gemm, x, dy, pads, Vs, Ds, tins, gtmps, partial, bpartial, dh, dw, pad_top,
                            pad_left, rows, TH, TW, m):
    """prange over the partial-sum groups: group g zeroes partial[g] / bpartial[g] and
    adds its chunks into them, in order, in the scratch of the worker running it (zeroed
    here, not by the caller: for the seed CNN's conv2, 1 MB of partial sums was a 17 us
    serial memset per step)."""
    total = x.shape[0] * TH
    chunks = (total + rows - 1) // rows
    G = partial.shape[0]
    for g in prange(G):
        t = numba.get_thread_id()
        partial[g][:] = 0.0
        bpartial[g][:] = 0.0
        for c in range(g * chunks // G, (g + 1) * chunks // G):
            call_address(fn, fns, gemm, x, dy, pads[t], Vs[t], Ds[t], tins[t], gtmps[t], partial[g], bpartial[g],
                         dh, dw, pad_top, pad_left, np.int64(c * rows), np.int64(min(total, c * rows + rows)), TH,
                         TW, m)


def run_backward_kernel(scheme, x, dy, grad_kernel, grad_bias, dh, dw, pt, pl, ws, prefix):
    """grad_kernel (3, 3, C, CO) = G^T dU G with dU (P, C, CO) = sum over all tiles of
    V[xi]^T @ (A dY A^T)[xi], and grad_bias (CO,) (if non-empty) = sum of dy, by
    ``scheme``. The forward's chunks are cut into G = ``reduction_groups`` groups (fixed
    by the shapes, not by the live thread count, so the sums are bit-identical however
    many threads run); prange over the groups, each summing into its own partial sums in
    the scratch slot of its worker; then the groups' sum in order and the transform
    (``scheme.kernel_gradient``)."""
    _blas.ensure_single_threaded()
    N, OH, OW, CO = dy.shape
    C = x.shape[3]
    dh, dw, pt, pl = int(dh), int(dw), int(pt), int(pl)
    TH, TW = scheme.tiles_along(OH, dh), scheme.tiles_along(OW, dw)
    rows = scheme.rows_per_chunk(TW, N * TH)
    get = getter(ws)
    slots = scratch_slots()
    P, t = scheme.positions, scheme.tile + 2
    groups = reduction_groups(-(-N * TH // rows))
    partial = get(prefix + "dU", (groups, P, C, CO))  # zeroed by the region
    bias_sums = get(prefix + "bpartial", (groups, CO))[:, :grad_bias.shape[0]]
    pads = get(prefix + "pad", (slots, scheme.padded_extent(TH, dh), scheme.padded_extent(TW, dw), C))
    Vs, Ds = get(prefix + "V", (slots, P, rows * TW, C)), get(prefix + "D", (slots, P, rows * TW, CO))
    tins = get(prefix + "tin", (slots, t, t, C))
    gtmps = get(prefix + "gtmp", (slots, *scheme.grad_scratch, CO))
    gtmps[...] = 0.0  # F(2x2) reads it as the zeros beyond the map
    m = np.int64(scheme.tile)
    fns = (_fnptr.address(scheme.pad_image, x, 0, pads[0], pt, pl, 0, 0, dh),
           _fnptr.address(scheme.input_tiles, pads[0], Vs[0], 0, 0, 0, 0, dh, dw, tins[0]),
           _fnptr.address(scheme.grad_tiles, dy, 0, Ds[0], 0, 0, 0, 0, dh, dw, gtmps[0]))
    fn = _fnptr.address_calling(fns, _backward_kernel_chunk, fns, _blas.SGEMM, x, dy, pads[0], Vs[0], Ds[0], tins[0],
                                gtmps[0], partial[0], bias_sums[0], dh, dw, pt, pl, 0, 0, TH, TW, m)
    _fnptr.run(_backward_kernel_region, fn, fns, _blas.SGEMM, x, dy, pads, Vs, Ds, tins, gtmps, partial, bias_sums,
               dh, dw, pt, pl, rows, TH, TW, m)
    scheme.kernel_gradient(partial, bias_sums, grad_kernel, grad_bias, get(prefix + "y", (3, t, CO)))


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def sum_groups(partial, bpartial, grad_bias):
    """partial[0] += partial[1:] and grad_bias = the sum of bpartial's rows (when
    non-empty), in group order (so the result does not depend on the threads)."""
    G = partial.shape[0]
    p0 = partial[0].reshape(-1)
    for g in range(1, G):
        pg = partial[g].reshape(-1)
        for i in range(p0.shape[0]):
            p0[i] += pg[i]
    for co in range(grad_bias.shape[0]):
        s = np.float32(0.0)
        for g in range(G):
            s += bpartial[g, co]
        grad_bias[co] = s


@njit(nogil=True, cache=True, fastmath=FAST)
def _kernel_gradient(partial, bpartial, grad_kernel, grad_bias, y):
    """dU = the groups' sum (``sum_groups``), then grad_kernel (3, 3, C, CO) = G^T dU G
    for every (ci, co); dU (16, C, CO); y (3, 4, CO) scratch. G^T X (3 x 4) has rows
    X0 + (X1 + X2)/2, (X1 - X2)/2, (X1 + X2)/2 + X3 (X_i the rows of X); the same again
    along the columns. Vectorised over co."""
    sum_groups(partial, bpartial, grad_bias)
    dU = partial[0]
    C = dU.shape[1]
    CO = dU.shape[2]
    h = np.float32(0.5)
    for ci in range(C):
        for j in range(4):
            for co in range(CO):
                x0 = dU[j, ci, co]
                x1 = dU[4 + j, ci, co]
                x2 = dU[8 + j, ci, co]
                x3 = dU[12 + j, ci, co]
                y[0, j, co] = x0 + h * (x1 + x2)
                y[1, j, co] = h * (x1 - x2)
                y[2, j, co] = h * (x1 + x2) + x3
        for r in range(3):
            for co in range(CO):
                y0 = y[r, 0, co]
                y1 = y[r, 1, co]
                y2 = y[r, 2, co]
                y3 = y[r, 3, co]
                grad_kernel[r, 0, ci, co] = y0 + h * (y1 + y2)
                grad_kernel[r, 1, ci, co] = h * (y1 - y2)
                grad_kernel[r, 2, ci, co] = h * (y1 + y2) + y3


class TileScheme:
    """How one Winograd size cuts the output into tiles: F(2x2, 3x3) here, F(4x4, 3x3) in
    ``winograd4``. Both share the regions and chunks above; a scheme brings its transforms
    (with the signatures of ``_pad_image``, ``_input_tiles``, ``_output_tiles``,
    ``_grad_tiles`` and ``_kernel_gradient``), its tile counts and its scratch shapes."""

    def __init__(self, tile, pad_image, input_tiles, output_tiles, grad_tiles, grad_scratch, kernel_gradient,
                 tiles_along, padded_extent, rows_per_chunk):
        self.tile = tile  # outputs per tile along each axis
        self.positions = (tile + 2) ** 2  # transform positions per tile (a 3x3 kernel)
        self.pad_image = pad_image
        self.input_tiles = input_tiles
        self.output_tiles = output_tiles
        self.grad_tiles = grad_tiles
        self.grad_scratch = grad_scratch  # per-worker scratch of grad_tiles: (a, b) x CO
        self.kernel_gradient = kernel_gradient
        self.tiles_along = tiles_along
        self.padded_extent = padded_extent
        self.rows_per_chunk = rows_per_chunk  # (TW, N * TH) -> tile rows per chunk

    def kernels(self, op):
        """The numba dispatchers ``run_forward`` ("forward") or ``run_backward_kernel``
        ("backward_kernel") calls for this scheme, besides the region."""
        if op == "forward":
            return [self.pad_image, self.input_tiles, self.output_tiles, _forward_chunk]
        return [self.pad_image, self.input_tiles, self.grad_tiles, _backward_kernel_chunk, _backward_kernel_region,
                self.kernel_gradient]


F2 = TileScheme(2, _pad_image, _input_tiles, _output_tiles, _grad_tiles, (1, 1), _kernel_gradient, tiles_along,
                padded_extent, tile_rows_per_chunk)


def run_forward(scheme, x, U, bias, out, dh, dw, pt, pl, relu, ws, serial, prefix):
    """out = [relu](conv3x3(x) with the transformed kernel U + bias) by ``scheme``; the
    scratch is named ``prefix`` + ... in ws (the input gradient keeps its own)."""
    N, OH, OW, CO = out.shape
    C = x.shape[3]
    dh, dw, pt, pl, relu = int(dh), int(dw), int(pt), int(pl), bool(relu)
    TH, TW = scheme.tiles_along(OH, dh), scheme.tiles_along(OW, dw)
    rows = scheme.rows_per_chunk(TW, N * TH)
    get = getter(ws)
    slots = scratch_slots()
    if bias.shape[0] == 0:
        bias = get(prefix + "zero_bias", (CO,))
        bias[:] = 0.0
    P, t = scheme.positions, scheme.tile + 2
    pads = get(prefix + "pad", (slots, scheme.padded_extent(TH, dh), scheme.padded_extent(TW, dw), C))
    Vs, Ms = get(prefix + "V", (slots, P, rows * TW, C)), get(prefix + "M", (slots, P, rows * TW, CO))
    tins, touts = get(prefix + "tin", (slots, t, t, C)), get(prefix + "tout", (slots, scheme.tile, t, CO))
    fns = (_fnptr.address(scheme.pad_image, x, 0, pads[0], pt, pl, 0, 0, dh),
           _fnptr.address(scheme.input_tiles, pads[0], Vs[0], 0, 0, 0, 0, dh, dw, tins[0]),
           _fnptr.address(scheme.output_tiles, Ms[0], out, 0, 0, 0, 0, 0, dh, dw, bias, relu, touts[0]))
    fn = _fnptr.address_calling(fns, _forward_chunk, fns, _blas.SGEMM, x, U, bias, out, pads[0], Vs[0], Ms[0],
                                tins[0], touts[0], dh, dw, pt, pl, relu, 0, 0, TH, TW)
    _fnptr.run(pick(FORWARD, serial), fn, fns, _blas.SGEMM, x, U, bias, out, pads, Vs, Ms, tins, touts, dh, dw, pt,
               pl, relu, rows, TH, TW)


class WinogradStrategy:
    """A Winograd tile size as the planner holds it (all three ops): ``WINOGRAD`` (F(2x2,
    3x3)) here, ``winograd4.WINOGRAD4`` there. The kernel transform writes
    ``scheme.positions`` matrices, with ``transform_rows`` rows of per-channel scratch;
    the scratch is named ``prefix`` + ... in the workspace."""

    def __init__(self, name, scheme, kernel_transform, transform_rows, prefix):
        self.name = name
        self.scheme = scheme
        self.kernel_transform = kernel_transform
        self.transform_rows = transform_rows
        self.prefix = prefix

    def _transformed(self, kernel, flip, ws):
        """U = G g G^T of kernel, or (flip) of the input gradient's kernel."""
        get = getter(ws)
        C, CO = kernel.shape[2], kernel.shape[3]
        a, b = (CO, C) if flip else (C, CO)
        t = "t" if flip else ""
        U = get(f"{self.prefix}U{t}", (self.scheme.positions, a, b))
        self.kernel_transform(kernel, U, flip, get(f"{self.prefix}g{t}", (3, 3, b)),
                              get(f"{self.prefix}r{t}", (self.transform_rows, b)))
        return U

    def forward(self, x, kernel, bias, out, geo, relu, ws, serial):
        _blas.ensure_single_threaded()
        sh, sw, dh, dw, pt, pl = geo
        U = self._transformed(kernel, False, ws)
        run_forward(self.scheme, x, U, bias, out, dh, dw, pt, pl, relu, ws, serial, self.prefix)

    def backward_input(self, dy, kernel, dx, geo, ws, serial):
        _blas.ensure_single_threaded()
        sh, sw, dh, dw, pt, pl = geo
        U = self._transformed(kernel, True, ws)
        run_forward(self.scheme, dy, U, NO_BIAS, dx, dh, dw, 2 * dh - pt, 2 * dw - pl, False, ws, serial,
                    self.prefix + "dx_")

    def backward_kernel(self, x, dy, grad_kernel, grad_bias, geo, ws):
        sh, sw, dh, dw, pt, pl = geo
        run_backward_kernel(self.scheme, x, dy, grad_kernel, grad_bias, dh, dw, pt, pl, ws, self.prefix)

    def kernels(self, op, serial):
        if op in ("forward", "backward_input"):
            return [self.kernel_transform, *self.scheme.kernels("forward"), pick(FORWARD, serial)]
        return self.scheme.kernels("backward_kernel")

    def scratch_positions(self, map_hw, dilation, batch):
        """Transform positions x tiles of one worker's chunk for an op that tiles map_hw
        (the output; the input for the input gradient) of a batch: the rows of V and M."""
        (h, w), (dh, dw) = map_hw, dilation
        TH, TW = self.scheme.tiles_along(h, dh), self.scheme.tiles_along(w, dw)
        return self.scheme.positions * self.scheme.rows_per_chunk(TW, batch * TH) * TW


WINOGRAD = WinogradStrategy("winograd", F2, winograd_kernel_transform, 6, "wino_")
