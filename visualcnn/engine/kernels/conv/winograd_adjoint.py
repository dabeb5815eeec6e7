"""Both gradients of an F(2x2, 3x3) Winograd conv in one pass over its output gradient:
the weight gradient as ``winograd.run_backward_kernel`` computes it, and the input
gradient as the adjoint (the transpose) of the forward's own tiling, for maps small
enough that a chunk holds whole images.

The forward is, per tile and transform position xi, M[xi] = V[xi] @ U[xi] with V the
input tiles (B^T d B) and the output A^T M A. Its adjoint takes the output gradient's
tiles D = A dY A^T (the ones the weight gradient needs anyway), dV[xi] = D[xi] @ U[xi]^T,
and adds B dV B^T of each tile back onto the input positions the tile read (tiles
overlap by two rows and columns, so an image's input gradient is summed in a scratch of
the worker and copied out: a chunk holds whole images, so no two workers ever add to
the same image).

Why: the usual input gradient (``winograd.WinogradStrategy.backward_input``) is the
forward of dy with the flipped kernel, and it tiles the input, not the output. For a
"valid" conv the input is bigger: the seed CNN's 13x13x32 -> 11x11x64 conv has 49
tiles per image over its input against 36 over its output, and that forward transforms
64-channel tiles of the padded dy. Here the 36 output tiles serve both gradients, the
transform of dy is shared, and the inverse transform runs on the 32 input channels.
Measured 1.1-1.2x on both gradients where the input has at least ``MIN_RATIO`` times the
output's tiles, and no faster below that.
"""

import numba
import numpy as np
from numba import njit, prange

from visualcnn.engine.kernels import blas as _blas
from visualcnn.engine.kernels import fnptr as _fnptr
from visualcnn.engine.kernels._common import FAST, reduction_groups
from visualcnn.engine.kernels.conv import winograd as _w
from visualcnn.engine.kernels.conv._shared import getter, scratch_slots
from visualcnn.engine.kernels.fnptr import call_address

__all__ = ["applies", "WINOGRAD_ADJOINT"]


def tiles_both_ways(in_size, out_size, d):
    """Tiles along an axis for the input gradient computed as a forward over the input
    (``WinogradStrategy.backward_input``) and for this adjoint (over the output)."""
    return _w.tiles_along(in_size, d), _w.tiles_along(out_size, d)


# Where it pays (both gradients, batch 64, 2 threads, against the two ops apart; the ratio
# of the input's tiles to the output's in brackets): 13x13x32 -> 11x11x64, the seed CNN's
# (1.36) 1.13-1.20x; 13x13x16 -> 32 (1.36) 1.15x; 16x16x32 -> 32 (1.31) 1.13x; 9x9x64 -> 64
# (1.56) 1.11x; 24x24x32 -> 64 with dilation 2 (1.44) 1.16x; 22x22x16 -> 32 (1.21) 0.99x;
# 14x14x32 -> 32 "same" (1.0) 1.01x. Hence MIN_RATIO.
MIN_RATIO = 1.3


def applies(input_hw, output_hw, dilation, min_ratio=MIN_RATIO):
    """Whether the adjoint takes both gradients of an F(2x2, 3x3) conv with these map
    sizes: an image's output tiles fit one chunk (``winograd.WINO_TILES``), and the input
    gradient as a forward would transform at least ``min_ratio`` times as many tiles."""
    (H, W), (OH, OW) = input_hw, output_hw
    dh, dw = dilation
    th_in, th_out = tiles_both_ways(H, OH, dh)
    tw_in, tw_out = tiles_both_ways(W, OW, dw)
    out_tiles = th_out * tw_out
    return 0 < out_tiles <= _w.WINO_TILES and th_in * tw_in >= min_ratio * out_tiles


@njit(nogil=True, cache=True, fastmath=FAST)
def _inverse_tiles(dV, dxp, row0, TH, TW, dh, dw, tmp):
    """dxp (HP, WP, C) += B dV B^T of every tile of one image (rows row0 + ty*TW + tx of
    dV (16, rows, C)), at the padded positions the forward's tile read
    (``winograd._input_tiles``: rows y0 + {0, 1, 2, 3}*dh, columns likewise). tmp (4, 4,
    C) holds dV B^T of one tile. B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0],
    [0, 1, 0, -1]], so a row (t0, t1, t2, t3) of dV times B^T is (t0, t1 - t2 + t3,
    t1 + t2 - t0, -t3), and B times a column of that the same."""
    C = dxp.shape[2]
    for ty in range(TH):
        y0 = _w._origin(ty, dh)
        for tx in range(TW):
            x0 = _w._origin(tx, dw)
            row = row0 + ty * TW + tx
            for r in range(4):
                for ci in range(C):
                    t0 = dV[4 * r, row, ci]
                    t1 = dV[4 * r + 1, row, ci]
                    t2 = dV[4 * r + 2, row, ci]
                    t3 = dV[4 * r + 3, row, ci]
                    tmp[r, 0, ci] = t0
                    tmp[r, 1, ci] = t1 - t2 + t3
                    tmp[r, 2, ci] = t1 + t2 - t0
                    tmp[r, 3, ci] = -t3
            for c in range(4):
                xc = x0 + c * dw
                for ci in range(C):
                    s0 = tmp[0, c, ci]
                    s1 = tmp[1, c, ci]
                    s2 = tmp[2, c, ci]
                    s3 = tmp[3, c, ci]
                    dxp[y0, xc, ci] += s0
                    dxp[y0 + dh, xc, ci] += s1 - s2 + s3
                    dxp[y0 + 2 * dh, xc, ci] += s1 + s2 - s0
                    dxp[y0 + 3 * dh, xc, ci] -= s3


@njit(nogil=True, cache=True, fastmath=FAST)
def _chunk(fns, gemm, x, dy, U, dx, pad, V, D, tin, gtmp, dU, bsum, dh, dw, pad_top, pad_left, n0, n1, TH, TW):
    """Images [n0, n1): dU (16, C, CO) += V^T @ D and bsum (CO,) += dy (as
    ``winograd._backward_kernel_chunk``), then dx[n] = the adjoint of the forward's
    tiling applied to D (see the module docstring); V is overwritten by dV and pad by
    each image's padded input gradient. fns: the addresses of ``winograd._pad_image``,
    ``winograd._input_tiles``, ``winograd._grad_tiles`` and ``_inverse_tiles``."""
    C = x.shape[3]
    H = x.shape[1]
    W = x.shape[2]
    CO = dy.shape[3]
    T = TH * TW
    for n in range(n0, n1):
        row = (n - n0) * T
        call_address(fns[0], x, n, pad, pad_top, pad_left, np.int64(0), TH, dh)
        call_address(fns[1], pad, V, row, np.int64(0), TH, TW, dh, dw, tin)
        call_address(fns[2], dy, n, D, row, np.int64(0), TH, TW, dh, dw, gtmp)
        if bsum.shape[0] > 0:
            for oy in range(dy.shape[1]):
                for ox in range(dy.shape[2]):
                    for co in range(CO):
                        bsum[co] += dy[n, oy, ox, co]
    rows = (n1 - n0) * T
    for xi in range(16):
        gemm(101, 112, 111, C, CO, rows, np.float32(1.0), V[xi].ctypes.data, C,
             D[xi].ctypes.data, CO, np.float32(1.0), dU[xi].ctypes.data, CO)
    for xi in range(16):  # dV[xi] = D[xi] @ U[xi]^T (U holds it transposed), into V (not read again)
        gemm(101, 111, 111, rows, C, CO, np.float32(1.0), D[xi].ctypes.data, CO,
             U[xi].ctypes.data, C, np.float32(0.0), V[xi].ctypes.data, C)
    HP = pad.shape[0]
    WP = pad.shape[1]
    for n in range(n0, n1):
        pad[:, :, :] = 0.0
        call_address(fns[3], V, pad, (n - n0) * T, TH, TW, dh, dw, tin)
        for iy in range(H):  # input rows and columns no tile reads get nothing
            py = iy + pad_top
            for ix in range(W):
                px = ix + pad_left
                if py < HP and px < WP:
                    for ci in range(C):
                        dx[n, iy, ix, ci] = pad[py, px, ci]
                else:
                    for ci in range(C):
                        dx[n, iy, ix, ci] = 0.0


@njit(parallel=True, nogil=True, cache=True)
def _region(fn, fns, gemm, x, dy, U, dx, pads, Vs, Ds, tins, gtmps, partial, bpartial, dh, dw, pad_top, pad_left,
            chunks, TH, TW):
    """prange over the partial-sum groups, as ``winograd._backward_kernel_region`` (which
    also zeroes each group's sums); chunk c holds the whole images [c*N // chunks,
    (c + 1)*N // chunks)."""
    N = x.shape[0]
    G = partial.shape[0]
    for g in prange(G):
        t = numba.get_thread_id()
        partial[g][:] = 0.0
        bpartial[g][:] = 0.0
        for c in range(g * chunks // G, (g + 1) * chunks // G):
            call_address(fn, fns, gemm, x, dy, U, dx, pads[t], Vs[t], Ds[t], tins[t], gtmps[t], partial[g],
                         bpartial[g], dh, dw, pad_top, pad_left, np.int64(c * N // chunks),
                         np.int64((c + 1) * N // chunks), TH, TW)


def chunk_count(N, tiles_per_image):
    """Chunks of whole images: about ``winograd.WINO_TILES`` tiles each, their count a
    multiple of the workers and their sizes within one image of each other, so the
    workers share the images evenly (as ``winograd.balanced_rows`` does for tile rows:
    64 images in chunks of 7 left one worker 35 images and the other 29)."""
    per = max(1, _w.WINO_TILES // tiles_per_image)
    slots = scratch_slots()
    return min(N, -(-(-(-N // per)) // slots) * slots)


class WinogradAdjoint:
    """Both gradients at once, as the planner holds it (``ConvPlan.backward``)."""

    name = "winograd_adjoint"
    prefix = "wadj_"

    def backward(self, x, dy, kernel, grad_kernel, grad_bias, dx, geo, ws):
        _blas.ensure_single_threaded()
        _, _, dh, dw, pt, pl = (int(v) for v in geo)  # unit strides (``winograd.applies``)
        N, OH, OW, CO = dy.shape
        C = x.shape[3]
        TH, TW = _w.tiles_along(OH, dh), _w.tiles_along(OW, dw)
        chunks = chunk_count(N, TH * TW)
        per = -(-N // chunks)  # the most images in a chunk
        get = getter(ws)
        p = self.prefix
        slots = scratch_slots()
        # the forward's U (16, C, CO), stored transposed: as U[xi]^T, dV's sgemm ran 7 %
        # slower on the seed CNN's conv2 (OpenBLAS's transposed-B path)
        U0 = get(p + "U", (16, C, CO))
        _w.winograd_kernel_transform(kernel, U0, False, get(p + "g", (3, 3, CO)), get(p + "r", (6, CO)))
        U = get(p + "Ut", (16, CO, C))
        np.copyto(U, U0.transpose(0, 2, 1))
        groups = reduction_groups(chunks)
        partial = get(p + "dU", (groups, 16, C, CO))  # zeroed by the region
        bias_sums = get(p + "bpartial", (groups, CO))[:, :grad_bias.shape[0]]
        pads = get(p + "pad", (slots, _w.padded_extent(TH, dh), _w.padded_extent(TW, dw), C))
        Vs, Ds = get(p + "V", (slots, 16, per * TH * TW, C)), get(p + "D", (slots, 16, per * TH * TW, CO))
        tins = get(p + "tin", (slots, 4, 4, C))
        gtmps = get(p + "gtmp", (slots, 1, 1, CO))
        gtmps[...] = 0.0  # _grad_tiles reads it as the zeros beyond the map
        f2 = _w.F2
        fns = (_fnptr.address(f2.pad_image, x, 0, pads[0], pt, pl, 0, 0, dh),
               _fnptr.address(f2.input_tiles, pads[0], Vs[0], 0, 0, 0, 0, dh, dw, tins[0]),
               _fnptr.address(f2.grad_tiles, dy, 0, Ds[0], 0, 0, 0, 0, dh, dw, gtmps[0]),
               _fnptr.address(_inverse_tiles, Vs[0], pads[0], 0, 0, 0, dh, dw, tins[0]))
        fn = _fnptr.address_calling(fns, _chunk, fns, _blas.SGEMM, x, dy, U, dx, pads[0], Vs[0], Ds[0], tins[0],
                                    gtmps[0], partial[0], bias_sums[0], dh, dw, pt, pl, 0, 0, TH, TW)
        _fnptr.run(_region, fn, fns, _blas.SGEMM, x, dy, U, dx, pads, Vs, Ds, tins, gtmps, partial, bias_sums, dh,
                   dw, pt, pl, chunks, TH, TW)
        f2.kernel_gradient(partial, bias_sums, grad_kernel, grad_bias, get(p + "y", (3, 4, CO)))

    @staticmethod
    def scratch_positions(output_hw, dilation, batch):
        """Transform positions x tiles of one worker's chunk (the rows of V and D)."""
        tiles = _w.tiles_along(output_hw[0], dilation[0]) * _w.tiles_along(output_hw[1], dilation[1])
        return 16 * tiles * -(-batch // chunk_count(batch, tiles))

    @staticmethod
    def kernels():
        f2 = _w.F2
        return [_w.winograd_kernel_transform, f2.pad_image, f2.input_tiles, f2.grad_tiles, _inverse_tiles, _chunk,
                _region, f2.kernel_gradient]


WINOGRAD_ADJOINT = WinogradAdjoint()
