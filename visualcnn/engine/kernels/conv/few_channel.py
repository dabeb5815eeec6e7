"""3x3 kernels on few input channels (C <= 4): the first conv of a network (a grey or an
RGB image), any stride and dilation.

Strategy: per image, the input is copied once into a zero-padded, channel-planar
scratch xp (C, HP, WP) so no tap needs a bounds check. Forward: per output pixel and
input channel the 9 input values are loaded as scalars (broadcast) and ONE loop over
the output channels does 9 FMAs per channel (+ the bias on the first channel, the relu
on the last); with unit column stride and dilation two output rows at a time
(``_conv_row_pair``), so each kernel load serves 18 FMAs.
Weight gradient (``_bwdk_planes``): per image, the output gradient channel-major with
rows as wide as the padded input, so each (input channel, output channel) is 9 dot
products over one contiguous range (one load of dz per 9 FMAs, the sums in registers),
into partial sums per fixed group of images (``reduction_groups``) summed at the end.

Why (measured, batch 64, one core, thread CPU time): with K = 9*C < 32 the im2col +
sgemm strategy spends its time in the unfold and in an sgemm whose k-loop is too short.
CIFAR-shaped first conv 32x32x3 -> 32: forward 1.67 ms against 3.50 (im2col + sgemm),
weight gradient 2.5 against 3.8; 32x32x3 -> 64 "same": 3.2 / 4.1 against 5.4 / 6.4;
the seed CNN's conv1 28x28x1 -> 32: forward 0.40-0.50 ms against 1.50, weight gradient
0.72-0.79 against 1.50 (the single-channel-only kernel it replaces: 0.44 / 0.55, so
the seed CNN's weight gradient lost about 0.2 ms for one kernel serving C = 1..4; the
dot-product form since: 0.73 ms for the whole batch, 0.39 on two threads). With a
column stride the weight gradient goes to im2col (the dot products need the taps of a
row one column apart). The input gradient of a first conv is never needed, so that op
goes through im2col + sgemm.
"""

import numba
import numpy as np
from numba import njit, prange

from visualcnn.engine.kernels import fnptr as _fnptr
from visualcnn.engine.kernels._common import FAST, reduction_groups, twins
from visualcnn.engine.kernels.conv._shared import getter, pick, resolve, scratch_slots
from visualcnn.engine.kernels.fnptr import call_address
from visualcnn.engine.kernels.pooling import max_of_2x2

__all__ = [
    "conv2d_forward_3x3few",
    "conv2d_forward_3x3few_serial",
    "conv2d_backward_kernel_3x3few",
    "padded_planes_shape",
    "channel_major",
    "MAX_CHANNELS",
]

# relu_out of a weight gradient whose dy needs no relu mask
_NO_RELU = np.zeros((0, 0, 0, 0), np.float32)

# The widest input this strategy takes (RGBA). Above it the im2col reduction is long
# enough (K >= 45) for sgemm.
MAX_CHANNELS = 4


def applies(kernel_shape):
    KH, KW, C, _ = kernel_shape
    return KH == 3 and KW == 3 and C <= MAX_CHANNELS


def applies_to_kernel_gradient(kernel_shape, strides):
    return applies(kernel_shape) and strides[1] == 1


def channel_major(kernel, wt):
    """wt (C, 9, CO)[ci, ky*3 + kx] = kernel (3, 3, C, CO)[ky, kx, ci]."""
    np.copyto(wt, kernel.reshape(9, kernel.shape[2], kernel.shape[3]).transpose(1, 0, 2))


def padded_planes_shape(x_shape, OH, OW, sh, sw, dh, dw, pad_top, pad_left):
    """(C, HP, WP) of the zero-padded planar image the kernels read."""
    H, W, C = x_shape[1], x_shape[2], x_shape[3]
    HP = max(H + pad_top, (OH - 1) * sh + 2 * dh + 1)
    WP = max(W + pad_left, (OW - 1) * sw + 2 * dw + 1)
    return (C, HP, WP)


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _pad_planes(x, n, xp, pad_top, pad_left):
    """xp (C, HP, WP)[ci, iy + pad_top, ix + pad_left] = x[n, iy, ix, ci]; borders 0."""
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    if xp.shape[1] != H or xp.shape[2] != W:
        xp[:, :, :] = 0.0
    for ci in range(C):  # the long loop innermost (ix), writes contiguous
        for iy in range(H):
            src = x[n, iy]
            dst = xp[ci, iy + pad_top]
            for ix in range(W):
                dst[ix + pad_left] = src[ix, ci]


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _taps(orow, ox, wc, bias, r0, r1, r2, c0, dw, first, relu):
    """orow[ox] (CO,) = [relu]((bias if first else orow[ox]) + the 9 taps of one channel);
    wc (9, CO).

    Four loop variants chosen outside the co loop: a branch inside it stops LLVM from
    vectorising (measured 2.5x slower on the seed conv1)."""
    CO = orow.shape[1]
    x00 = r0[c0]
    x01 = r0[c0 + dw]
    x02 = r0[c0 + 2 * dw]
    x10 = r1[c0]
    x11 = r1[c0 + dw]
    x12 = r1[c0 + 2 * dw]
    x20 = r2[c0]
    x21 = r2[c0 + dw]
    x22 = r2[c0 + 2 * dw]
    if first and relu:
        for co in range(CO):
            orow[ox, co] = max(bias[co] + x00 * wc[0, co] + x01 * wc[1, co] + x02 * wc[2, co]
                        + x10 * wc[3, co] + x11 * wc[4, co] + x12 * wc[5, co]
                        + x20 * wc[6, co] + x21 * wc[7, co] + x22 * wc[8, co], np.float32(0.0))
    elif first:
        for co in range(CO):
            orow[ox, co] = (bias[co] + x00 * wc[0, co] + x01 * wc[1, co] + x02 * wc[2, co]
                     + x10 * wc[3, co] + x11 * wc[4, co] + x12 * wc[5, co]
                     + x20 * wc[6, co] + x21 * wc[7, co] + x22 * wc[8, co])
    elif relu:
        for co in range(CO):
            orow[ox, co] = max(orow[ox, co] + x00 * wc[0, co] + x01 * wc[1, co] + x02 * wc[2, co]
                        + x10 * wc[3, co] + x11 * wc[4, co] + x12 * wc[5, co]
                        + x20 * wc[6, co] + x21 * wc[7, co] + x22 * wc[8, co], np.float32(0.0))
    else:
        for co in range(CO):
            orow[ox, co] = (orow[ox, co] + x00 * wc[0, co] + x01 * wc[1, co] + x02 * wc[2, co]
                     + x10 * wc[3, co] + x11 * wc[4, co] + x12 * wc[5, co]
                     + x20 * wc[6, co] + x21 * wc[7, co] + x22 * wc[8, co])


@njit(nogil=True, cache=True, fastmath=FAST)
def _conv_row(orow, xp, wt, bias, oy, width, sh, sw, dh, dw, relu):
    """orow[:width] (width, CO) = [relu](bias + the taps of output row oy), from the padded
    planes xp. Loop order ci, ox, co: the row views are made once per (oy, ci), not per
    pixel (measured: views per pixel cost more than the seed conv1's FMAs), and the output
    row stays in L1 across the channels. Compiled once and called through its address by
    the plain and the pooling forward (inlined in both, their compile took 0.9 s more)."""
    C = xp.shape[0]
    for ci in range(C):
        r0 = xp[ci, oy * sh]
        r1 = xp[ci, oy * sh + dh]
        r2 = xp[ci, oy * sh + 2 * dh]
        wc = wt[ci]
        first = ci == 0
        last_relu = relu and ci == C - 1
        for ox in range(width):
            _taps(orow, ox, wc, bias, r0, r1, r2, ox * sw, dw, first, last_relu)


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _pair_channel(dst, r, xp, wt, bias, ci, oy, width, s, from_bias, relu):
    """dst[r], dst[r + 1] (width, CO) = [relu]((bias if from_bias else themselves) + the
    taps of input channel ci for output rows oy, oy + 1, which read the four input rows
    oy*s + {0, 1, 2, 3}*s. Inlined with constant flags, so each caller's loop has no
    branch left (one inside the channel loop stops LLVM from vectorising, as in
    ``_taps``); the sums are written in ``_taps``' order."""
    CO = dst.shape[2]
    zero = np.float32(0.0)
    r0 = xp[ci, oy * s]
    r1 = xp[ci, oy * s + s]
    r2 = xp[ci, oy * s + 2 * s]
    r3 = xp[ci, oy * s + 3 * s]
    wc = wt[ci]
    x00, x01, x10, x11, x20, x21, x30, x31 = r0[0], r0[1], r1[0], r1[1], r2[0], r2[1], r3[0], r3[1]
    for ox in range(width):
        x02, x12, x22, x32 = r0[ox + 2], r1[ox + 2], r2[ox + 2], r3[ox + 2]
        for co in range(CO):
            w0, w1, w2 = wc[0, co], wc[1, co], wc[2, co]
            w3, w4, w5 = wc[3, co], wc[4, co], wc[5, co]
            w6, w7, w8 = wc[6, co], wc[7, co], wc[8, co]
            a = bias[co] if from_bias else dst[r, ox, co]
            b = bias[co] if from_bias else dst[r + 1, ox, co]
            v = a + x00 * w0 + x01 * w1 + x02 * w2 + x10 * w3 + x11 * w4 + x12 * w5 + x20 * w6 + x21 * w7 + x22 * w8
            u = b + x10 * w0 + x11 * w1 + x12 * w2 + x20 * w3 + x21 * w4 + x22 * w5 + x30 * w6 + x31 * w7 + x32 * w8
            dst[r, ox, co] = max(v, zero) if relu else v
            dst[r + 1, ox, co] = max(u, zero) if relu else u
        x00, x01, x10, x11, x20, x21, x30, x31 = x01, x02, x11, x12, x21, x22, x31, x32


@njit(nogil=True, cache=True, fastmath=FAST)
def _conv_row_pair(dst, r, xp, wt, bias, oy, width, s, relu, more):
    """dst[r], dst[r + 1] (width, CO) = [relu](bias + the taps of output rows oy, oy + 1)
    for unit column stride and dilation and a row stride equal to the row dilation s
    (``pairs_rows``). This function takes the first input channel; the others are added
    by ``_conv_row_pair_more`` (its address ``more``; 0 for one channel, so a grey
    image's conv compiles half the loops).

    Why: per output pixel ``_conv_row`` loads its 9 inputs, reloads the 9 weight vectors
    and enters the channel loop; with 32 filters that loop is two vector iterations, so
    the per-pixel work cost as much as the FMAs. Here each weight load serves two rows,
    each input is loaded once (the 3x4 window slides one column per step, the values
    carried in registers), and the channel loop runs half as often. Measured on the seed
    CNN's conv1 (28x28x1 -> 32, batch 64, one core): 0.30 ms against 0.54."""
    C = xp.shape[0]
    if relu and C == 1:
        _pair_channel(dst, r, xp, wt, bias, 0, oy, width, s, True, True)
    else:
        _pair_channel(dst, r, xp, wt, bias, 0, oy, width, s, True, False)
    for ci in range(1, C):
        call_address(more, dst, r, xp, wt, bias, ci, oy, width, s, relu and ci == C - 1)


@njit(nogil=True, cache=True, fastmath=FAST)
def _conv_row_pair_more(dst, r, xp, wt, bias, ci, oy, width, s, relu):
    """``_conv_row_pair`` for input channel ci > 0: its taps added to dst[r], dst[r + 1],
    then relu when asked (the last channel)."""
    if relu:
        _pair_channel(dst, r, xp, wt, bias, ci, oy, width, s, False, True)
    else:
        _pair_channel(dst, r, xp, wt, bias, ci, oy, width, s, False, False)


def pairs_rows(sh, sw, dh, dw):
    """Whether ``_conv_row_pair`` computes this geometry's output rows two at a time."""
    return sw == 1 and dw == 1 and sh == dh


@njit(nogil=True, cache=True, fastmath=FAST)
def _fwd_image(row, pair, more, x, xp, wt, bias, out, n, sh, sw, dh, dw, pad_top, pad_left, relu):
    """out[n] = [relu](conv(x[n]) + bias); wt (C, 9, CO) the kernel channel-major (one
    contiguous (9, CO) block per channel); bias (CO,) always present (zeros if none);
    row, pair, more: the addresses of ``_conv_row``, ``_conv_row_pair`` and
    ``_conv_row_pair_more`` (``_row_addresses``; 0 for one not called)."""
    OH = out.shape[1]
    OW = out.shape[2]
    _pad_planes(x, n, xp, pad_top, pad_left)
    done = 0
    if pair != 0:
        out_n = out[n]
        done = OH - OH % 2
        for oy in range(0, done, 2):
            call_address(pair, out_n, np.int64(oy), xp, wt, bias, np.int64(oy), OW, sh, relu, more)
    for oy in range(done, OH):
        call_address(row, out[n, oy], xp, wt, bias, np.int64(oy), OW, sh, sw, dh, dw, relu)


def _fwd_region(fn, row, pair, more, x, xp, wt, bias, out, sh, sw, dh, dw, pad_top, pad_left, relu):
    """prange over images, each ``_fwd_image`` called through its address fn (not
    linked in: the region and its serial twin compile in a fraction of a second)."""
    for n in prange(out.shape[0]):
        call_address(fn, row, pair, more, x, xp[numba.get_thread_id()], wt, bias, out, np.int64(n), sh, sw, dh,
                     dw, pad_top, pad_left, relu)


FORWARD = twins(_fwd_region)


def _row_addresses(dst, xp, wt, bias, sh, sw, dh, dw, relu, odd_rows):
    """((row, pair, more), needed): the addresses of ``_conv_row``, ``_conv_row_pair`` and
    ``_conv_row_pair_more`` for a destination dst (rows, OW, CO), each 0 when not called
    (paired rows, ``pairs_rows``, need the single-row function only for an odd last row,
    and one input channel needs no ``more``: not compiling them saved 0.6 s and 0.4 s of
    the seed CNN's first run), and the ones asked for (``fnptr.address_calling``)."""
    paired = pairs_rows(sh, sw, dh, dw)
    row = pair = more = 0
    needed = ()
    if odd_rows or not paired:
        row = _fnptr.address(_conv_row, dst[0], xp[0], wt, bias, 0, dst.shape[1], sh, sw, dh, dw, relu)
        needed += (row,)
    if paired:
        if xp.shape[1] > 1:
            more = _fnptr.address(_conv_row_pair_more, dst, 0, xp[0], wt, bias, 1, 0, dst.shape[1], sh, relu)
        pair = _fnptr.address_calling((more,) if xp.shape[1] > 1 else (), _conv_row_pair, dst, 0, xp[0], wt, bias,
                                      0, dst.shape[1], sh, relu, more)
        needed += (pair,)
    return (row, pair, more), needed


def _forward(serial, x, xp, wt, bias, out, sh, sw, dh, dw, pad_top, pad_left, relu):
    geo, relu = (int(sh), int(sw), int(dh), int(dw), int(pad_top), int(pad_left)), bool(relu)
    odd = out.shape[1] % 2 == 1
    (row, pair, more), needed = _row_addresses(out[0], xp, wt, bias, *geo[:4], relu, odd)
    fn = _fnptr.address_calling(needed, _fwd_image, row, pair, more, x, xp[0], wt, bias, out, 0, *geo, relu)
    _fnptr.run(FORWARD[1] if serial else FORWARD[0], fn, row, pair, more, x, xp, wt, bias, out, *geo, relu)


@njit(nogil=True, cache=True, fastmath=FAST)
def _fwd_pool_image(row, pair, more, x, xp, wt, bias, rows, y, argmax, n, sh, sw, dh, dw, pad_top, pad_left,
                    relu):
    """y[n], argmax[n] = the 2x2 / stride 2 max pool of relu(conv(x[n]) + bias), the conv
    computed two rows at a time into rows (2, OW, CO), a worker's scratch, and never
    stored: the same row loops as ``_fwd_image`` and the same comparisons as
    ``pooling._maxpool_row_2x2`` (first of equal maxima wins; argmax the flat index into
    the conv's (OH, OW, CO) output), so bit-identical to the two passes. Conv rows and
    columns past 2*PH, 2*PW (an odd size) are never pooled, so never computed. relu: True
    (an argument, typed like the plain forward's, for the row function both call)."""
    PH = y.shape[1]
    PW = y.shape[2]
    CO = y.shape[3]
    OW = rows.shape[1]
    _pad_planes(x, n, xp, pad_top, pad_left)
    for ph in range(PH):
        if pair != 0:
            call_address(pair, rows, np.int64(0), xp, wt, bias, np.int64(2 * ph), np.int64(2 * PW), sh, relu,
                         more)
        else:
            for half in range(2):
                call_address(row, rows[half], xp, wt, bias, np.int64(2 * ph + half), np.int64(2 * PW), sh, sw, dh,
                             dw, relu)
        yrow = y[n, ph]
        arow = argmax[n, ph]
        for pw in range(PW):
            ix = 2 * pw
            max_of_2x2(rows[0, ix], rows[0, ix + 1], rows[1, ix], rows[1, ix + 1], yrow[pw], arow[pw],
                       (2 * ph * OW + ix) * CO, OW * CO)


def _fwd_pool_region(fn, row, pair, more, x, xp, wt, bias, rows, y, argmax, sh, sw, dh, dw, pad_top, pad_left,
                     relu):
    """prange over images, each ``_fwd_pool_image`` called through its address fn."""
    for n in prange(y.shape[0]):
        t = numba.get_thread_id()
        call_address(fn, row, pair, more, x, xp[t], wt, bias, rows[t], y, argmax, np.int64(n), sh, sw, dh, dw,
                     pad_top, pad_left, relu)


FORWARD_POOLED = twins(_fwd_pool_region)


def conv2d_forward_3x3few(x, xp, wt, bias, out, sh, sw, dh, dw, pad_top, pad_left, relu):
    """out (N, OH, OW, CO) = [relu](conv2d(x, kernel) + bias) for 3x3 kernels, C <= 4.

    wt (C, 9, CO) = kernel (3, 3, C, CO) channel-major (``channel_major``). bias (CO,)
    must be present (zeros for a layer without bias). xp (T, C, HP, WP) scratch: one
    padded planar image per numba worker. prange over images; loop order oy (two rows at
    a time where ``pairs_rows``), ci, ox, co (co innermost and contiguous in ``out`` and
    ``kernel``, the 9 taps of a channel summed in registers).
    """
    _forward(False, x, xp, wt, bias, out, sh, sw, dh, dw, pad_top, pad_left, relu)


def conv2d_forward_3x3few_serial(x, xp, wt, bias, out, sh, sw, dh, dw, pad_top, pad_left, relu):
    """``conv2d_forward_3x3few`` on the calling thread."""
    _forward(True, x, xp, wt, bias, out, sh, sw, dh, dw, pad_top, pad_left, relu)


@njit(nogil=True, cache=True, fastmath=FAST)
def _bwdk_planes(xp, rows, dz, acc, bacc, OH, sh, dh, dw):
    """acc (C, 9, CO) += the weight gradient of one image and bacc (CO,) its bias
    gradient (skipped when empty), from its padded planes xp (C, HP, WP) and its output
    gradient dz (CO, OH*WP) channel-major, rows of WP with zeros past the OW real columns.

    Why this layout: with output pixel p = oy*WP + ox, the input value tap (ky, kx) reads
    is X_ky[p + kx*dw], X_ky the plane's rows ky*dh, ky*dh + sh, ... laid end to end (for
    unit row stride the plane itself from row ky*dh: a view), so each (channel, output
    channel) is 9 dot products over ONE contiguous range, summed in registers with one
    load of dz per 9 FMAs. The zero columns make the rows' ends contribute nothing.
    Measured, seed conv1 (28x28x1 -> 32, batch 64, one thread): 0.30 ms against 0.70 for
    the per-pixel loop over output channels it replaces. rows (3, OH*WP): scratch for
    the gathered rows of a strided conv."""
    C = xp.shape[0]
    WP = xp.shape[2]
    CO = dz.shape[0]
    L = OH * WP - 2 * dw  # the last 2*dw positions are zero columns (WP >= OW + 2*dw)
    for ci in range(C):
        if sh == 1:
            plane = xp[ci].reshape(-1)
            X0 = plane[0:]
            X1 = plane[dh * WP:]
            X2 = plane[2 * dh * WP:]
        else:  # explicit loops: a slice assignment here tripled this kernel's compile time
            for oy in range(OH):
                for ky in range(3):
                    src = xp[ci, oy * sh + ky * dh]
                    dst = rows[ky]
                    for ix in range(WP):
                        dst[oy * WP + ix] = src[ix]
            X0 = rows[0][0:]
            X1 = rows[1][0:]
            X2 = rows[2][0:]
        # one view per tap, each indexed from 0: the loop index is then provably
        # non-negative and LLVM vectorises (an offset index kept numba's wraparound check)
        x0 = X0[0:]
        x1 = X0[dw:]
        x2 = X0[2 * dw:]
        x3 = X1[0:]
        x4 = X1[dw:]
        x5 = X1[2 * dw:]
        x6 = X2[0:]
        x7 = X2[dw:]
        x8 = X2[2 * dw:]
        a = acc[ci]
        for co in range(CO):
            d = dz[co]
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = s8 = np.float32(0.0)
            for p in range(L):
                g = d[p]
                s0 += x0[p] * g
                s1 += x1[p] * g
                s2 += x2[p] * g
                s3 += x3[p] * g
                s4 += x4[p] * g
                s5 += x5[p] * g
                s6 += x6[p] * g
                s7 += x7[p] * g
                s8 += x8[p] * g
            a[0, co] += s0
            a[1, co] += s1
            a[2, co] += s2
            a[3, co] += s3
            a[4, co] += s4
            a[5, co] += s5
            a[6, co] += s6
            a[7, co] += s7
            a[8, co] += s8
    if bacc.shape[0] > 0:
        for co in range(CO):
            d = dz[co]
            s = np.float32(0.0)
            for p in range(L):
                s += d[p]
            bacc[co] += s


@njit(nogil=True, cache=True, inline="always")
def _channel_major_image(dy, y, n, dz, WP, tmp):
    """dz (CO, OH*WP)[co, oy*WP + ox] = dy[n, oy, ox, co], zero past column OW; times
    relu's derivative (y[n, oy, ox, co] > 0, y the relu's output) unless y is empty: the
    relu backward a first conv would otherwise run as a pass of its own over dy. The
    mask goes through tmp (>= CO values), one pixel at a time, so that it vectorises: in
    the loop of strided stores into dz it compiled to a branch per value (measured 15x
    slower)."""
    OH = dy.shape[1]
    OW = dy.shape[2]
    CO = dy.shape[3]
    zero = np.float32(0.0)
    masked = y.shape[0] > 0
    for oy in range(OH):
        for ox in range(OW):
            p = oy * WP + ox
            if masked:
                for co in range(CO):
                    v = dy[n, oy, ox, co]
                    tmp[co] = v if y[n, oy, ox, co] > zero else zero
                for co in range(CO):
                    dz[co, p] = tmp[co]
            else:
                for co in range(CO):
                    dz[co, p] = dy[n, oy, ox, co]
        for co in range(CO):
            for ox in range(OW, WP):
                dz[co, oy * WP + ox] = 0.0


@njit(nogil=True, cache=True)
def _plain_image(fn, x, dy, y, xp, rows, dz, acc, bacc, n, sh, dh, dw, pad_top, pad_left):
    """acc / bacc += the gradients of image n: its planes and its dy made channel-major in
    the worker's scratch (masked by relu's derivative when y is not empty), then
    ``_bwdk_planes`` (its address fn)."""
    _pad_planes(x, n, xp, pad_top, pad_left)
    _channel_major_image(dy, y, n, dz, xp.shape[2], rows[0])  # rows: free until _bwdk_planes
    call_address(fn, xp, rows, dz, acc, bacc, np.int64(dy.shape[1]), sh, dh, dw)


@njit(parallel=True, nogil=True, cache=True)
def _bwdk_partials(fn, fn_planes, x, dy, y, xp, rows, dz, acc, bacc, sh, dh, dw, pad_top, pad_left):
    """acc[g] / bacc[g] (zeroed by the caller) += the gradients of the images of group g
    (G = acc.shape[0] contiguous groups of images, each summed in order: the grouping is
    the work's, not the live thread count's), image by image (``_plain_image``, its
    address fn; the region stays a few lines of LLVM)."""
    G = acc.shape[0]
    N = dy.shape[0]
    for g in prange(G):
        t = numba.get_thread_id()
        for n in range((N * g) // G, (N * (g + 1)) // G):
            call_address(fn, fn_planes, x, dy, y, xp[t], rows[t], dz[t], acc[g], bacc[g], np.int64(n), sh, dh, dw,
                         pad_top, pad_left)


@njit(nogil=True, cache=True)
def channel_major_positions(where, OH, OW, CO, WP):
    """where[(iy*OW + ix)*CO + c] = c*OH*WP + iy*WP + ix: a max pool's argmax (a flat index
    into the conv output (OH, OW, CO)) to the position in the channel-major gradient."""
    for iy in range(OH):
        for ix in range(OW):
            for c in range(CO):
                where[(iy * OW + ix) * CO + c] = c * OH * WP + iy * WP + ix


@njit(nogil=True, cache=True, inline="always")
def _unpool(dyp, argmax, yp, where, dz, n):
    """dz (CO, OH*WP) = the max pool's backward of image n, channel-major: dyp (N, PH, PW,
    CO) scattered to the argmax cells where the pool's output yp > 0 (relu's derivative),
    zero elsewhere; the same additions in the same order as ``pooling.maxpool2d_backward``."""
    flat = dz.reshape(-1)
    for i in range(flat.shape[0]):
        flat[i] = 0.0
    an = argmax[n].reshape(-1)
    dyn = dyp[n].reshape(-1)
    yn = yp[n].reshape(-1)
    for i in range(an.shape[0]):
        a = an[i]
        if a >= 0 and yn[i] > 0.0:
            flat[where[a]] += dyn[i]


@njit(nogil=True, cache=True)
def _pooled_image(fn, x, dyp, argmax, yp, where, xp, rows, dz, acc, bacc, n, OH, sh, dh, dw, pad_top, pad_left):
    """``_plain_image`` with the output gradient rebuilt from the max pool after the conv
    (``_unpool``): the same values as the pool's backward, so bit-identical results, with
    the gradient in the worker's cache instead of a whole batch's in memory."""
    _pad_planes(x, n, xp, pad_top, pad_left)
    _unpool(dyp, argmax, yp, where, dz, n)
    call_address(fn, xp, rows, dz, acc, bacc, OH, sh, dh, dw)


@njit(parallel=True, nogil=True, cache=True)
def _bwdk_partials_pooled(fn, fn_planes, x, dyp, argmax, yp, where, xp, rows, dz, acc, bacc, OH, sh, dh, dw,
                          pad_top, pad_left):
    """``_bwdk_partials`` with ``_pooled_image`` (its address fn) per image."""
    G = acc.shape[0]
    N = dyp.shape[0]
    for g in prange(G):
        t = numba.get_thread_id()
        for n in range((N * g) // G, (N * (g + 1)) // G):
            call_address(fn, fn_planes, x, dyp, argmax, yp, where, xp[t], rows[t], dz[t], acc[g], bacc[g],
                         np.int64(n), OH, sh, dh, dw, pad_top, pad_left)


@njit(nogil=True, cache=True, fastmath=FAST)
def _sum_groups(acc, bacc, grad_kernel, grad_bias):
    """grad_kernel (3, 3, C, CO)[tap // 3, tap % 3, ci] = sum over the groups of
    acc[:, ci, tap], and grad_bias (when non-empty) the sum of bacc's rows, each in
    group order. On the calling thread: G*C*9*CO is a few thousand additions."""
    G = acc.shape[0]
    C = acc.shape[1]
    CO = acc.shape[3]
    g = grad_kernel.reshape(9, C, CO)
    for ci in range(C):
        for tap in range(9):
            for co in range(CO):
                s = np.float32(0.0)
                for t in range(G):
                    s += acc[t, ci, tap, co]
                g[tap, ci, co] = s
    for co in range(grad_bias.shape[0]):
        s = np.float32(0.0)
        for t in range(G):
            s += bacc[t, co]
        grad_bias[co] = s


def gradient_scratch_shapes(x_shape, OH, OW, CO, sh, sw, dh, dw, pad_top, pad_left):
    """Per worker: the padded planes (C, HP, WP), the gathered rows of a strided conv
    (3, OH*WP; before them, at least CO values for ``_channel_major_image``'s mask) and
    the channel-major output gradient (CO, OH*WP) ``_bwdk_planes`` reads."""
    planes = padded_planes_shape(x_shape, OH, OW, sh, sw, dh, dw, pad_top, pad_left)
    return planes, (3, max(OH * planes[2], CO)), (CO, OH * planes[2])


def _planes_address(xp, rows, dz, acc, bacc, sh, dh, dw):
    return _fnptr.address(_bwdk_planes, xp[0], rows[0], dz[0], acc[0], bacc[0], 0, sh, dh, dw)


def conv2d_backward_kernel_3x3few(x, dy, grad_kernel, grad_bias, xp, rows, dz, acc, bacc, sh, dh, dw,
                                  pad_top, pad_left, relu_out=None):
    """grad_kernel (3, 3, C, CO) and grad_bias (CO,) (skipped when empty), C <= 4,
    column stride 1 (``applies_to_kernel_gradient``); dy the gradient of the conv's
    output, or, with relu_out (the relu's output), of its relu's output.

    xp, rows, dz: scratch per numba worker (T, ...) shaped by ``gradient_scratch_shapes``;
    acc (G, C, 9, CO), bacc (G, CO or 0) partial sums of G groups of images
    (``reduction_groups(N)``). prange over the groups (``_bwdk_partials``), then the
    groups summed in order."""
    sh, dh, dw, pad_top, pad_left = int(sh), int(dh), int(dw), int(pad_top), int(pad_left)
    acc[...] = 0.0
    bacc[...] = 0.0
    y = _NO_RELU if relu_out is None else relu_out
    planes = _planes_address(xp, rows, dz, acc, bacc, sh, dh, dw)
    fn = _fnptr.address_calling((planes,), _plain_image, planes, x, dy, y, xp[0], rows[0], dz[0], acc[0], bacc[0], 0,
                                sh, dh, dw, pad_top, pad_left)
    _fnptr.run(_bwdk_partials, fn, planes, x, dy, y, xp, rows, dz, acc, bacc, sh, dh, dw, pad_top, pad_left)
    _sum_groups(acc, bacc, grad_kernel, grad_bias)


class FewChannel3x3:
    """The few-channel 3x3 strategy as the planner holds it (forward, weight gradient)."""

    name = "few_channel_3x3"

    @staticmethod
    def forward(x, kernel, bias, out, geo, relu, ws, serial):
        N, OH, OW, CO = out.shape
        get = getter(ws)
        if bias.shape[0] == 0:
            bias = get("zero_bias", (CO,))
            bias[:] = 0.0
        xp = get("planes", (scratch_slots(), *padded_planes_shape(x.shape, OH, OW, *geo)))
        wt = get("kernel_t", (x.shape[3], 9, CO))
        channel_major(kernel, wt)
        _forward(resolve(serial), x, xp, wt, bias, out, *geo, relu)

    @staticmethod
    def forward_pooled(x, kernel, bias, conv_shape, y, argmax, geo, ws, serial):
        """y, argmax (N, PH, PW, CO) = the 2x2 / stride 2 max pool of relu(conv(x) + bias)
        and its winners, as ``maxpool2d_forward`` gives them for the conv output shaped
        conv_shape (N, OH, OW, CO), without that output (``_fwd_pool_image``): measured on
        the seed CNN, its 5.5 MB write and the pool's read of it go."""
        N, OH, OW, CO = conv_shape
        get = getter(ws)
        if bias.shape[0] == 0:
            bias = get("zero_bias", (CO,))
            bias[:] = 0.0
        slots = scratch_slots()
        xp = get("planes", (slots, *padded_planes_shape(x.shape, OH, OW, *geo)))
        rows = get("pool_rows", (slots, 2, OW, CO))
        wt = get("kernel_t", (x.shape[3], 9, CO))
        channel_major(kernel, wt)
        geo = tuple(int(v) for v in geo)
        (row, pair, more), needed = _row_addresses(rows[0], xp, wt, bias, *geo[:4], True, False)  # row pairs only
        fn = _fnptr.address_calling(needed, _fwd_pool_image, row, pair, more, x, xp[0], wt, bias, rows[0], y, argmax,
                                    0, *geo, True)
        _fnptr.run(pick(FORWARD_POOLED, serial), fn, row, pair, more, x, xp, wt, bias, rows, y, argmax, *geo, True)

    # the weight gradient applies a relu's derivative as it reads dy (``_channel_major_image``)
    takes_relu_output = True

    @staticmethod
    def backward_kernel(x, dy, grad_kernel, grad_bias, geo, ws, relu_out=None):
        N, OH, OW, CO = dy.shape
        C = x.shape[3]
        G = reduction_groups(N)
        get = getter(ws)
        slots = scratch_slots()
        planes, rows, dz = gradient_scratch_shapes(x.shape, OH, OW, CO, *geo)
        conv2d_backward_kernel_3x3few(
            x, dy, grad_kernel, grad_bias, get("planes", (slots, *planes)), get("grad_rows", (slots, *rows)),
            get("grad_dz", (slots, *dz)), get("acc", (G, C, 9, CO)), get("bacc", (G, grad_bias.shape[0])), geo[0],
            *geo[2:], relu_out)

    @staticmethod
    def backward_kernel_pooled(x, pooled, grad_kernel, grad_bias, geo, ws):
        """``backward_kernel`` for a conv whose relu output went straight into a max pool,
        from the pool's gradient: pooled = (dyp, argmax, yp, z_shape), the pool's output
        gradient, winners and output, and the shape of the conv output it pooled
        (``MaxPooling2D.pooled_gradient``). The conv's own output gradient is rebuilt image
        by image in the worker's cache (``_bwdk_partials_pooled``): measured on the seed
        CNN, the pool's backward (a zeroed 5.5 MB gradient and its scatter, 0.41 ms) and
        the re-read of it by this kernel go."""
        dyp, argmax, yp, z_shape = pooled
        N, OH, OW, CO = z_shape
        C = x.shape[3]
        G = reduction_groups(N)
        get = getter(ws)
        sh, sw, dh, dw, pt, pl = (int(v) for v in geo)
        slots = scratch_slots()
        acc, bacc = get("acc", (G, C, 9, CO)), get("bacc", (G, grad_bias.shape[0]))
        acc[...] = 0.0
        bacc[...] = 0.0
        planes, rows, dz = gradient_scratch_shapes(x.shape, OH, OW, CO, *geo)
        xp, rows, dz = get("planes", (slots, *planes)), get("grad_rows", (slots, *rows)), get("grad_dz", (slots, *dz))
        where = get("pooled_where", (OH * OW * CO,), np.int32)
        channel_major_positions(where, OH, OW, CO, planes[2])
        planes = _planes_address(xp, rows, dz, acc, bacc, sh, dh, dw)
        fn = _fnptr.address_calling((planes,), _pooled_image, planes, x, dyp, argmax, yp, where, xp[0], rows[0], dz[0],
                                    acc[0], bacc[0], 0, OH, sh, dh, dw, pt, pl)
        _fnptr.run(_bwdk_partials_pooled, fn, planes, x, dyp, argmax, yp, where, xp, rows, dz, acc, bacc, OH, sh, dh,
                   dw, pt, pl)
        _sum_groups(acc, bacc, grad_kernel, grad_bias)

    @staticmethod
    def kernels(op, serial):
        if op == "forward":  # the region twin and what it calls
            return [_conv_row, _conv_row_pair, _conv_row_pair_more, _fwd_image, pick(FORWARD, serial)]
        if op == "forward_pooled":
            return [_conv_row, _conv_row_pair, _conv_row_pair_more, _fwd_pool_image, pick(FORWARD_POOLED, serial)]
        if op == "backward_kernel_pooled":
            return [channel_major_positions, _bwdk_planes, _pooled_image, _bwdk_partials_pooled, _sum_groups]
        return [_bwdk_planes, _plain_image, _bwdk_partials, _sum_groups]


FEW_CHANNEL_3X3 = FewChannel3x3()
