"""Winograd F(4x4, 3x3): 3x3 convolutions with unit strides and no dilation, on maps its
bigger tiles fill (``applies``); forward, input gradient and weight gradient.

Strategy: as ``winograd`` (F(2x2, 3x3)), whose regions, chunks and drivers it shares
through a ``TileScheme``, with 4x4 output tiles read from 6x6 input tiles: per tile and
transform position xi (36 of them) one matrix product M[xi] (tiles, CO) = V[xi] (tiles,
C) @ U[xi] (C, CO). That is 36 multiplies per 16 outputs per (ci, co): 4x fewer than
im2col's 144, and 1.78x fewer than F(2x2, 3x3)'s 64. The transforms are those of Lavin
& Gray (2016), points 0, +-1, +-2 and infinity:

    B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
           [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    G   = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6],
           [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]
    A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
           [0, 1, -1, 8, -8, 1]]

Why: the GEMMs are 75-85 % of a Winograd conv's time (measured, one thread, batch 64:
13x13x32 -> 64 forward 1.36 of 1.70 ms, 7x7x128 -> 128 5.69 of 6.02), so fewer
multiplies is what pays. Measured in training steps (batch 64, 2 threads): the wide
32-64-128 "same" network 39.7 against 44 ms per step, the Conv-BN-ReLU network 14.2-14.6
against 15.3-16.1. Numerics: relative error against the float64 reference up to 8e-6 in
the forward and 4.4e-6 in the weight gradient, against 3e-7 and 6e-7 for F(2x2, 3x3)
(the known cost of the larger points; the tests' bound is 1e-4).
"""

import numpy as np
from numba import njit

from visualcnn.engine.kernels._common import FAST
from visualcnn.engine.kernels.conv import winograd as _w

__all__ = ["winograd4_kernel_transform", "WINO4_TILES"]

# The input transform's channel loops run in blocks of LANES channels with a constant trip
# count (``for k in range(LANES)``), then the rest: LLVM turns a block into whole 16-float
# vector operations. Measured on 112 tiles: 42.6 -> 31.7 us at C = 32, 74.8 -> 51.1 us at
# C = 64; whole ops (batch 64, 2 threads) 7-12 % faster on the wide network's layers;
# bit-identical. The same blocks made this output transform 1.4x and F(2x2, 3x3)'s input
# transform 1.4x slower, and this gradient transform no faster: they keep plain loops.
LANES = 16

# Tiles per chunk: V and M of a chunk (36 * tiles * channels floats each) stay in L2,
# about the bytes of F(2x2, 3x3)'s 256 tiles.
WINO4_TILES = 112


def multiplies(out_h, out_w):
    """Transform-position products per (ci, co) for an out_h x out_w output: F(4x4, 3x3)
    and F(2x2, 3x3), the partial tiles at the edges counted whole."""
    return 36 * (-(-out_h // 4)) * (-(-out_w // 4)), 16 * (-(-out_h // 2)) * (-(-out_w // 2))


# When the 4x4 tiles are used (measured in training steps of the benchmark networks,
# batch 64, 2 threads, each op switched on its own):
# * how many times fewer multiplies than F(2x2, 3x3) they must give on the map. Forward:
#   a 14x14 map fills 4x4 tiles to 77 % (1.36x fewer; 14x14x64 -> 64: 2.43 against
#   2.75 ms); a 5x5 or 6x6 one to 39-56 % (none fewer). The two gradients need 1.5x: the
#   seed CNN's input gradient on its 13x13 map (1.36x) ran slower with them.
# * enough work per image, 4x4 tiles x C x CO: below about 24,000 the fixed costs per
#   tile and per GEMM call eat the saving. Slower or no faster: 14x14x32 -> 32 (16 tiles:
#   16,384), 14x14x16 -> 24 (6,144), the seed's 11x11x32 -> 64 weight gradient (9 tiles:
#   18,432). Faster: 28x28x32 -> 32 (50,176; 10-20 %), 7x7x64 -> 128 (4 tiles: 32,768;
#   22 %), 7x7x128 -> 128, 14x14x64 -> 64.
MIN_GAIN = 1.25
MIN_GAIN_GRADIENT = 1.5
MIN_WORK_PER_IMAGE = 24_000


def applies(kernel_shape, strides, dilation, map_hw=None, min_gain=MIN_GAIN):
    """3x3, unit strides and dilation, enough channels for the GEMMs (as ``winograd``),
    and, when the size of the map the op tiles is known, at least ``min_gain`` times
    fewer multiplies than F(2x2, 3x3) on it and ``MIN_WORK_PER_IMAGE``."""
    if tuple(dilation) != (1, 1) or not _w.applies(kernel_shape, strides):
        return False
    if map_hw is None:
        return True
    big, small = multiplies(*map_hw)
    work = (big // 36) * kernel_shape[2] * kernel_shape[3]
    return big * min_gain <= small and work >= MIN_WORK_PER_IMAGE


def tiles_along(out_size, d):
    return -(-out_size // 4)


def padded_extent(tiles, d):
    return 4 * tiles + 2


def tile_rows_per_chunk(TW, total_rows):
    """``winograd.balanced_rows`` of about ``WINO4_TILES`` tiles. Measured: a 7x7 map in
    112-tile chunks made 3 chunks of 64 images, and 2 threads ran them no faster than one
    (2.9 against 3.3 ms); in 4 chunks 2.3 ms."""
    return _w.balanced_rows(TW, total_rows, WINO4_TILES)


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _gmul(s0, s1, s2, d0, d1, d2, d3, d4, d5):
    """(d0 .. d5) = G (s0, s1, s2) along one axis of the kernel; one loop per output (one
    store stream each, so each vectorises)."""
    B = s0.shape[0]
    q = np.float32(0.25)
    s6 = np.float32(1.0 / 6.0)
    s12 = np.float32(1.0 / 12.0)
    s24 = np.float32(1.0 / 24.0)
    for b in range(B):
        d0[b] = q * s0[b]
    for b in range(B):
        d1[b] = -s6 * (s0[b] + s1[b] + s2[b])
    for b in range(B):
        d2[b] = -s6 * (s0[b] - s1[b] + s2[b])
    for b in range(B):
        d3[b] = s24 * s0[b] + s12 * s1[b] + s6 * s2[b]
    for b in range(B):
        d4[b] = s24 * s0[b] - s12 * s1[b] + s6 * s2[b]
    for b in range(B):
        d5[b] = s2[b]


@njit(nogil=True, cache=True, fastmath=FAST)
def winograd4_kernel_transform(kernel, U, flip, gbuf, r):
    """U (36, C, CO) = G g G^T for every (ci, co) of kernel (3, 3, C, CO); with ``flip``,
    U (36, CO, C) of the kernel rotated by 180 degrees with its channels swapped (the
    kernel of the input gradient). gbuf (3, 3, B) and r (18, B) scratch, B = U.shape[2]."""
    C = kernel.shape[2]
    CO = kernel.shape[3]
    for a in range(CO if flip else C):
        _w.gather_taps(kernel, a, flip, gbuf)
        for kx in range(3):  # r[3 i + kx] = (G g)[i, kx]
            _gmul(gbuf[0, kx], gbuf[1, kx], gbuf[2, kx], r[kx], r[3 + kx], r[6 + kx], r[9 + kx], r[12 + kx],
                  r[15 + kx])
        for i in range(6):  # U[6 i + j] = ((G g) G^T)[i, j]
            _gmul(r[3 * i], r[3 * i + 1], r[3 * i + 2], U[6 * i, a], U[6 * i + 1, a], U[6 * i + 2, a],
                  U[6 * i + 3, a], U[6 * i + 4, a], U[6 * i + 5, a])


@njit(nogil=True, cache=True, fastmath=FAST)
def _pad_image(x, n, xp, pad_top, pad_left, ty0, ty1, dh):
    """The padded rows of image n that tile rows [ty0, ty1) read (4 ty0 .. 4 ty1 + 1),
    into xp (HP, WP, C) (padded row py = image row py - pad_top; zero outside the image).
    dh is always 1 here (the signature is ``winograd._pad_image``'s)."""
    _w.pad_rows(x, n, xp, pad_top, pad_left, 4 * ty0, min(4 * ty1 + 2, xp.shape[0]))


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _bt_column(xp, y0, xc, ci, tmp, c):
    """tmp[:, c, ci] = B^T of the input column xc, rows y0 .. y0 + 5, channel ci."""
    f4 = np.float32(4.0)
    f5 = np.float32(5.0)
    f2 = np.float32(2.0)
    d0 = xp[y0, xc, ci]
    d1 = xp[y0 + 1, xc, ci]
    d2 = xp[y0 + 2, xc, ci]
    d3 = xp[y0 + 3, xc, ci]
    d4 = xp[y0 + 4, xc, ci]
    d5 = xp[y0 + 5, xc, ci]
    tmp[0, c, ci] = f4 * d0 - f5 * d2 + d4
    tmp[1, c, ci] = d3 + d4 - f4 * (d1 + d2)
    tmp[2, c, ci] = d4 - d3 + f4 * (d1 - d2)
    tmp[3, c, ci] = d4 - d2 + f2 * (d3 - d1)
    tmp[4, c, ci] = d4 - d2 + f2 * (d1 - d3)
    tmp[5, c, ci] = f4 * d1 - f5 * d3 + d5


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _bt_row(tmp, r, ci, V, row):
    """V[6 r .. 6 r + 5, row, ci] = row r of (B^T d) B, channel ci."""
    f4 = np.float32(4.0)
    f5 = np.float32(5.0)
    f2 = np.float32(2.0)
    d0 = tmp[r, 0, ci]
    d1 = tmp[r, 1, ci]
    d2 = tmp[r, 2, ci]
    d3 = tmp[r, 3, ci]
    d4 = tmp[r, 4, ci]
    d5 = tmp[r, 5, ci]
    V[6 * r, row, ci] = f4 * d0 - f5 * d2 + d4
    V[6 * r + 1, row, ci] = d3 + d4 - f4 * (d1 + d2)
    V[6 * r + 2, row, ci] = d4 - d3 + f4 * (d1 - d2)
    V[6 * r + 3, row, ci] = d4 - d2 + f2 * (d3 - d1)
    V[6 * r + 4, row, ci] = d4 - d2 + f2 * (d1 - d3)
    V[6 * r + 5, row, ci] = f4 * d1 - f5 * d3 + d5


@njit(nogil=True, cache=True, fastmath=FAST)
def _input_tiles(xp, V, row0, ty0, ty1, TW, dh, dw, tmp):
    """V[xi, row0 + (ty - ty0)*TW + tx, :] = (B^T d B)[xi] of the 6x6 input tiles of tile
    rows [ty0, ty1) of the padded image xp; tmp (6, 6, C) holds B^T d of one tile (in
    L1). Vectorised over the channels, in blocks of ``LANES``."""
    C = xp.shape[2]
    CB = C - C % LANES
    for ty in range(ty0, ty1):
        y0 = 4 * ty
        for tx in range(TW):
            x0 = 4 * tx
            row = row0 + (ty - ty0) * TW + tx
            for c in range(6):  # column c of B^T d
                for cb in range(0, CB, LANES):
                    for k in range(LANES):
                        _bt_column(xp, y0, x0 + c, cb + k, tmp, c)
                for ci in range(CB, C):
                    _bt_column(xp, y0, x0 + c, ci, tmp, c)
            for r in range(6):  # row r of (B^T d) B
                for cb in range(0, CB, LANES):
                    for k in range(LANES):
                        _bt_row(tmp, r, cb + k, V, row)
                for ci in range(CB, C):
                    _bt_row(tmp, r, ci, V, row)


@njit(nogil=True, cache=True, fastmath=FAST)
def _output_tiles(M, out, n, row0, ty0, ty1, TW, dh, dw, bias, relu, tmp):
    """out[n] positions of the 4x4 tiles in tile rows [ty0, ty1) = [relu]((A^T M A) +
    bias); tmp (4, 6, CO) holds A^T M of one tile; each output row (A^T M)[r] A is then
    written one loop per output column (one store stream each), skipping the columns and
    rows of a partial tile that fall outside the output."""
    OH = out.shape[1]
    OW = out.shape[2]
    CO = out.shape[3]
    f2 = np.float32(2.0)
    f4 = np.float32(4.0)
    f8 = np.float32(8.0)
    for ty in range(ty0, ty1):
        y0 = 4 * ty
        for tx in range(TW):
            x0 = 4 * tx
            row = row0 + (ty - ty0) * TW + tx
            for c in range(6):  # column c of A^T M
                for co in range(CO):
                    m0 = M[c, row, co]
                    m1 = M[6 + c, row, co]
                    m2 = M[12 + c, row, co]
                    m3 = M[18 + c, row, co]
                    m4 = M[24 + c, row, co]
                    m5 = M[30 + c, row, co]
                    s12 = m1 + m2
                    d12 = m1 - m2
                    s34 = m3 + m4
                    d34 = m3 - m4
                    tmp[0, c, co] = m0 + s12 + s34
                    tmp[1, c, co] = d12 + f2 * d34
                    tmp[2, c, co] = s12 + f4 * s34
                    tmp[3, c, co] = d12 + f8 * d34 + m5
            for r in range(4):  # output row y0 + r = (A^T M)[r] A
                oy = y0 + r
                if oy >= OH:
                    break
                t = tmp[r]
                dst = out[n, oy]
                for co in range(CO):
                    t0 = t[0, co]
                    s12 = t[1, co] + t[2, co]
                    s34 = t[3, co] + t[4, co]
                    v = t0 + s12 + s34 + bias[co]
                    dst[x0, co] = max(v, np.float32(0.0)) if relu else v
                if x0 + 1 < OW:
                    for co in range(CO):
                        v = t[1, co] - t[2, co] + f2 * (t[3, co] - t[4, co]) + bias[co]
                        dst[x0 + 1, co] = max(v, np.float32(0.0)) if relu else v
                if x0 + 2 < OW:
                    for co in range(CO):
                        v = t[1, co] + t[2, co] + f4 * (t[3, co] + t[4, co]) + bias[co]
                        dst[x0 + 2, co] = max(v, np.float32(0.0)) if relu else v
                if x0 + 3 < OW:
                    for co in range(CO):
                        v = t[1, co] - t[2, co] + f8 * (t[3, co] - t[4, co]) + t[5, co] + bias[co]
                        dst[x0 + 3, co] = max(v, np.float32(0.0)) if relu else v


@njit(nogil=True, cache=True, fastmath=FAST)
def _grad_tiles(dy, n, D, row0, ty0, ty1, TW, dh, dw, tmp):
    """D[xi, row0 + tile, :] = (A dY A^T)[xi] of the 4x4 tiles of dy[n] in tile rows
    [ty0, ty1); tmp (10, 4, CO): rows 0-3 the dY tile (zeros beyond the output), rows
    4-9 A dY. A = [[1, 0, 0, 0], [1, 1, 1, 1], [1, -1, 1, -1], [1, 2, 4, 8],
    [1, -2, 4, -8], [0, 0, 0, 1]] (A^T of the forward)."""
    OH = dy.shape[1]
    OW = dy.shape[2]
    CO = dy.shape[3]
    f2 = np.float32(2.0)
    f4 = np.float32(4.0)
    f8 = np.float32(8.0)
    for ty in range(ty0, ty1):
        y0 = 4 * ty
        for tx in range(TW):
            x0 = 4 * tx
            row = row0 + (ty - ty0) * TW + tx
            for r in range(4):
                for c in range(4):
                    # plain indexing: a view per position cost more than its copy
                    if y0 + r < OH and x0 + c < OW:
                        for co in range(CO):
                            tmp[r, c, co] = dy[n, y0 + r, x0 + c, co]
                    else:
                        for co in range(CO):
                            tmp[r, c, co] = 0.0
            for c in range(4):  # column c of A dY
                for co in range(CO):
                    d0 = tmp[0, c, co]
                    d1 = tmp[1, c, co]
                    d2 = tmp[2, c, co]
                    d3 = tmp[3, c, co]
                    s02 = d0 + d2
                    s13 = d1 + d3
                    q02 = d0 + f4 * d2
                    q13 = f2 * d1 + f8 * d3
                    tmp[4, c, co] = d0
                    tmp[5, c, co] = s02 + s13
                    tmp[6, c, co] = s02 - s13
                    tmp[7, c, co] = q02 + q13
                    tmp[8, c, co] = q02 - q13
                    tmp[9, c, co] = d3
            for i in range(6):  # row i of (A dY) A^T
                for co in range(CO):
                    d0 = tmp[4 + i, 0, co]
                    d1 = tmp[4 + i, 1, co]
                    d2 = tmp[4 + i, 2, co]
                    d3 = tmp[4 + i, 3, co]
                    s02 = d0 + d2
                    s13 = d1 + d3
                    q02 = d0 + f4 * d2
                    q13 = f2 * d1 + f8 * d3
                    D[6 * i, row, co] = d0
                    D[6 * i + 1, row, co] = s02 + s13
                    D[6 * i + 2, row, co] = s02 - s13
                    D[6 * i + 3, row, co] = q02 + q13
                    D[6 * i + 4, row, co] = q02 - q13
                    D[6 * i + 5, row, co] = d3


@njit(nogil=True, cache=True, fastmath=FAST)
def _kernel_gradient(partial, bpartial, grad_kernel, grad_bias, y):
    """dU = the groups' sum (``winograd.sum_groups``), then grad_kernel (3, 3, C, CO) =
    G^T dU G for every (ci, co); dU (36, C, CO); y (3, 6, CO) scratch. G^T X (3 x 6) has
    rows X0/4 - (X1 + X2)/6 + (X3 + X4)/24, (X2 - X1)/6 + (X3 - X4)/12 and
    (X3 + X4)/6 - (X1 + X2)/6 + X5 (X_i the rows of X); the same again along the
    columns. Vectorised over co."""
    _w.sum_groups(partial, bpartial, grad_bias)
    dU = partial[0]
    C = dU.shape[1]
    CO = dU.shape[2]
    q = np.float32(0.25)
    s6 = np.float32(1.0 / 6.0)
    s12 = np.float32(1.0 / 12.0)
    s24 = np.float32(1.0 / 24.0)
    for ci in range(C):
        for j in range(6):
            for co in range(CO):
                x0 = dU[j, ci, co]
                x1 = dU[6 + j, ci, co]
                x2 = dU[12 + j, ci, co]
                x3 = dU[18 + j, ci, co]
                x4 = dU[24 + j, ci, co]
                x5 = dU[30 + j, ci, co]
                a12 = x1 + x2
                a34 = x3 + x4
                y[0, j, co] = q * x0 - s6 * a12 + s24 * a34
                y[1, j, co] = s6 * (x2 - x1) + s12 * (x3 - x4)
                y[2, j, co] = s6 * (a34 - a12) + x5
        for r in range(3):
            for co in range(CO):
                x0 = y[r, 0, co]
                x1 = y[r, 1, co]
                x2 = y[r, 2, co]
                x3 = y[r, 3, co]
                x4 = y[r, 4, co]
                x5 = y[r, 5, co]
                a12 = x1 + x2
                a34 = x3 + x4
                grad_kernel[r, 0, ci, co] = q * x0 - s6 * a12 + s24 * a34
                grad_kernel[r, 1, ci, co] = s6 * (x2 - x1) + s12 * (x3 - x4)
                grad_kernel[r, 2, ci, co] = s6 * (a34 - a12) + x5


F4 = _w.TileScheme(4, _pad_image, _input_tiles, _output_tiles, _grad_tiles, (10, 4), _kernel_gradient,
                   tiles_along, padded_extent, tile_rows_per_chunk)


# no dilation: the planner sends none here (tiles_along and the transforms take none)
WINOGRAD4 = _w.WinogradStrategy("winograd4", F4, winograd4_kernel_transform, 18, "wino4_")
