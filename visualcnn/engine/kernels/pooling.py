"""2D max / average pooling kernels (NHWC float32).

Geometry arguments: (PH, PW, sh, sw, pad_top, pad_left); the output size comes from
``out``. Max pooling treats padded cells as -inf (never chosen); average pooling divides
by the number of REAL cells in the window (Keras "same"). Ties in max pooling go to the
first maximum in (ky, kx) scan order. Global pools are plain numpy reductions.
"""

import numpy as np
from numba import njit, prange

from visualcnn.engine.kernels import fnptr as _fnptr
from visualcnn.engine.kernels._common import FAST, twins
from visualcnn.engine.kernels.fnptr import call_address

__all__ = [
    "maxpool2d_forward",
    "maxpool2d_forward_serial",
    "maxpool2d_backward",
    "maxpool2d_backward_kernel",
    "avgpool2d_forward",
    "avgpool2d_forward_serial",
    "avgpool2d_backward",
]


@njit(nogil=True, cache=True, inline="always")
def _maxpool_row(x, out, argmax, n, oy, PH, PW, sh, sw, pad_top, pad_left):
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    OW = out.shape[2]
    orow = out[n, oy]
    arow = argmax[n, oy]
    for ox in range(OW):
        for c in range(C):
            orow[ox, c] = -np.inf
            arow[ox, c] = -1
        for ky in range(PH):
            iy = oy * sh - pad_top + ky
            if iy < 0 or iy >= H:
                continue
            for kx in range(PW):
                ix = ox * sw - pad_left + kx
                if ix < 0 or ix >= W:
                    continue
                flat = (iy * W + ix) * C
                xv = x[n, iy, ix]
                for c in range(C):
                    # strict > keeps the first maximum; the "arow < 0" clause lets a
                    # real cell win even when it is -inf or NaN.
                    if xv[c] > orow[ox, c] or arow[ox, c] < 0:
                        orow[ox, c] = xv[c]
                        arow[ox, c] = flat + c


@njit(nogil=True, cache=True, inline="always")
def _maxpool_row_unit_stride(x, out, argmax, n, oy, PH, PW, sh, pad_top, pad_left):
    """``_maxpool_row`` for a unit column stride: per window tap (ky, kx), the outputs
    it reaches read one contiguous run of the input row, so the compare runs over
    (outputs x channels) values in one loop, as selects, instead of C at a time with a
    branch per value (a 3x3 / stride 1 "same" pool of 64 14x14x16 maps, Inception's
    branch: 0.43 ms). The taps are visited in the same (ky, kx) order, with the same
    rule, so every output and argmax is the same. Contiguous arrays only (reshape): the
    driver sees to it."""
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    OW = out.shape[2]
    orow = out[n, oy].reshape(OW * C)
    arow = argmax[n, oy].reshape(OW * C)
    for i in range(OW * C):
        orow[i] = -np.inf
        arow[i] = -1
    for ky in range(PH):
        iy = oy * sh - pad_top + ky
        if iy < 0 or iy >= H:
            continue
        xrow = x[n, iy].reshape(W * C)
        for kx in range(PW):
            ox0 = max(0, pad_left - kx)
            ox1 = min(OW, W + pad_left - kx)
            if ox0 >= ox1:
                continue
            src = (ox0 - pad_left + kx) * C
            dst = ox0 * C
            flat = np.int32(iy * W * C + src)
            L = (ox1 - ox0) * C
            xs = xrow[src:src + L]
            os_ = orow[dst:dst + L]
            as_ = arow[dst:dst + L]
            for i in range(L):
                v = xs[i]
                m = os_[i]
                a = as_[i]
                better = (v > m) | (a < np.int32(0))
                os_[i] = v if better else m
                as_[i] = (flat + np.int32(i)) if better else a


@njit(nogil=True, cache=True, inline="always")
def max_of_2x2(a, b, c, d, o, ar, base, row):
    """o[ch] = the largest of a[ch], b[ch] (right of a), c[ch] (below a), d[ch], and ar[ch]
    the flat index of the first cell holding it: base + ch for a, + C for b, + row for c,
    + row + C for d (row: the values in one input row). Strict >: the first of equal
    maxima wins, and a NaN in the first cell stays."""
    C = o.shape[0]
    for ch in range(C):
        m = a[ch]
        k = base + ch
        if b[ch] > m:
            m = b[ch]
            k = base + C + ch
        if c[ch] > m:
            m = c[ch]
            k = base + row + ch
        if d[ch] > m:
            m = d[ch]
            k = base + row + C + ch
        o[ch] = m
        ar[ch] = k


@njit(nogil=True, cache=True, inline="always")
def _maxpool_row_2x2(x, out, argmax, n, oy):
    """The common 2x2 / stride 2 / unpadded window: the four candidates of each output
    are compared in registers (one pass over the channels, no read-modify-write of
    ``out``); same tie and NaN rules as ``_maxpool_row`` (first of equal maxima wins, a
    NaN in the first cell stays)."""
    W = x.shape[2]
    C = x.shape[3]
    OW = out.shape[2]
    iy = 2 * oy
    r0 = x[n, iy]
    r1 = x[n, iy + 1]
    orow = out[n, oy]
    arow = argmax[n, oy]
    for ox in range(OW):
        ix = 2 * ox
        max_of_2x2(r0[ix], r0[ix + 1], r1[ix], r1[ix + 1], orow[ox], arow[ox], (iy * W + ix) * C, W * C)


# Output rows per call through an address: all of them on the calling thread (a single
# image is one call), else about a BLOCKS-th of them, for the workers to share.
BLOCKS = 16


@njit(nogil=True, cache=True)
def _maxpool_rows(x, out, argmax, r0, r1, PH, PW, sh, sw, pad_top, pad_left, fast):
    """Output rows [r0, r1) of the N*OH rows."""
    OH = out.shape[1]
    for r in range(r0, r1):
        if fast:
            _maxpool_row_2x2(x, out, argmax, r // OH, r % OH)
        else:
            _maxpool_row(x, out, argmax, r // OH, r % OH, PH, PW, sh, sw, pad_top, pad_left)


@njit(nogil=True, cache=True)
def _maxpool_rows_unit_stride(x, out, argmax, r0, r1, PH, PW, sh, sw, pad_top, pad_left, fast):
    """``_maxpool_rows`` when the column stride is 1 (``_maxpool_row_unit_stride``): a
    function of its own, compiled only for a model that has such a pool (the seed CNN's
    first compile is not made longer by it)."""
    OH = out.shape[1]
    for r in range(r0, r1):
        _maxpool_row_unit_stride(x, out, argmax, r // OH, r % OH, PH, PW, sh, pad_top, pad_left)


def _maxpool_region(fn, x, out, argmax, step, PH, PW, sh, sw, pad_top, pad_left, fast):
    """prange over blocks of ``step`` output rows, each ``_maxpool_rows`` called through
    its address fn (not linked in: the region and its twin compile in a fraction of a
    second, see ``fnptr``)."""
    rows = out.shape[0] * out.shape[1]
    for b in prange((rows + step - 1) // step):
        call_address(fn, x, out, argmax, np.int64(b * step), np.int64(min(rows, b * step + step)), PH, PW, sh, sw,
                     pad_top, pad_left, fast)


MAXPOOL_FORWARD = twins(_maxpool_region)


def _maxpool_driver(serial, name, doc):
    region = MAXPOOL_FORWARD[1] if serial else MAXPOOL_FORWARD[0]

    # runs on every call, single-image predictions included: kept to a few operations.
    # The geometry goes to the region and the row function unchanged (same types).
    def forward(x, out, argmax, PH, PW, sh, sw, pad_top, pad_left):
        fast = halves_without_padding(x.shape, out.shape, PH, PW, sh, sw, pad_top, pad_left)
        rows_fn = _maxpool_rows_unit_stride if sw == 1 and not fast else _maxpool_rows
        if rows_fn is _maxpool_rows_unit_stride and not (
                x.flags.c_contiguous and out.flags.c_contiguous and argmax.flags.c_contiguous):
            # its rows are read and written as flat runs: contiguous arrays only (a
            # layer's own buffers always are)
            o, a = np.empty(out.shape, np.float32), np.empty(argmax.shape, np.int32)
            forward(np.ascontiguousarray(x), o, a, PH, PW, sh, sw, pad_top, pad_left)
            out[...], argmax[...] = o, a
            return
        fn = _fnptr.address(rows_fn, x, out, argmax, 0, 0, PH, PW, sh, sw, pad_top, pad_left, fast)
        rows = out.shape[0] * out.shape[1]
        _fnptr.run(region, fn, x, out, argmax, rows if serial else -(-rows // BLOCKS), PH, PW, sh, sw, pad_top,
                   pad_left, fast)

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = doc
    return forward


maxpool2d_forward = _maxpool_driver(False, "maxpool2d_forward", """\
out[n, oy, ox, c] = max over the real cells of the window; argmax (int32, same shape as
out) records the winner as its flat index (iy*W + ix)*C + c in x[n], for the backward
pass: ``maxpool2d_forward(x, out, argmax, PH, PW, sh, sw, pad_top, pad_left)``.

x (N, H, W, C), out (N, OH, OW, C), argmax (N, OH, OW, C) int32. prange over blocks of
output rows (one call on the calling thread in the ``_serial`` twin); per row ox, ky, kx,
c with c innermost (2x2 / stride 2 / unpadded: ``_maxpool_row_2x2``, the four candidates
compared in registers; a column stride of 1: ``_maxpool_row_unit_stride``, ky, kx, then
one run over the outputs and channels a tap reaches).""")
maxpool2d_forward_serial = _maxpool_driver(True, "maxpool2d_forward_serial",
                                           "``maxpool2d_forward`` on the calling thread.")


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def maxpool2d_backward_kernel(dy, argmax, dx, y, masked):
    """dx (N, H, W, C) = scatter of dy (N, OH, OW, C) to the recorded argmax cells;
    with ``masked``, only where the pool output y (N, OH, OW, C) is > 0.

    dx is fully overwritten. Overlapping windows may hit one cell twice, but only
    within an image, so prange over N (disjoint dx[n]) is race-free; each image's dx[n]
    is zeroed right before its scatter, while it is in cache.
    """
    N = dy.shape[0]
    OH = dy.shape[1]
    OW = dy.shape[2]
    C = dy.shape[3]
    for n in prange(N):
        dxn = dx[n].reshape(-1)
        dxn[:] = 0.0
        an = argmax[n].reshape(-1)
        dyn = dy[n].reshape(-1)
        if masked:
            yn = y[n].reshape(-1)
            for i in range(OH * OW * C):
                a = an[i]
                if a >= 0 and yn[i] > 0.0:
                    dxn[a] += dyn[i]
        else:
            for i in range(OH * OW * C):
                a = an[i]
                if a >= 0:
                    dxn[a] += dyn[i]


def maxpool2d_backward(dy, argmax, dx, relu_out=None):
    """dx (N, H, W, C) = d(loss)/d(pool input) from dy = d(loss)/d(pool output).

    ``relu_out``: the pool's own output y, when its input came from a relu (e.g. a
    Conv2D with activation="relu"). The gradient is then routed only where y > 0, which
    is exactly relu's derivative at the winning cell (max(relu(z)) > 0 iff the winner's
    z > 0; a window whose max is 0 passes nothing back through relu either). dx is then
    already the gradient of the conv's pre-activation, so the conv layer can skip its own
    relu backward pass (a full read of its output and of dx, and a write).
    """
    if relu_out is None:
        maxpool2d_backward_kernel(dy, argmax, dx, dy, False)
    else:
        maxpool2d_backward_kernel(dy, argmax, dx, relu_out, True)


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _avgpool_row(x, out, n, oy, PH, PW, sh, sw, pad_top, pad_left):
    H = x.shape[1]
    W = x.shape[2]
    C = x.shape[3]
    OW = out.shape[2]
    orow = out[n, oy]
    y0 = max(oy * sh - pad_top, 0)
    y1 = min(oy * sh - pad_top + PH, H)
    for ox in range(OW):
        x0 = max(ox * sw - pad_left, 0)
        x1 = min(ox * sw - pad_left + PW, W)
        for c in range(C):
            orow[ox, c] = 0.0
        for iy in range(y0, y1):
            for ix in range(x0, x1):
                for c in range(C):
                    orow[ox, c] += x[n, iy, ix, c]
        cnt = (y1 - y0) * (x1 - x0)
        inv = np.float32(1.0) / np.float32(cnt if cnt > 0 else 1)
        for c in range(C):
            orow[ox, c] *= inv


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _avgpool_row_2x2(x, out, n, oy):
    """The common 2x2 / stride 2 / unpadded window: the four cells summed in registers
    in ``_avgpool_row``'s order, then times 1/4 (no zeroing and read-modify-write of
    ``out`` per cell, no division per window). Measured, LeNet-5's first pool (28x28x6,
    batch 64, ``visualcnn bench``, three alternated runs): forward 0.147-0.149 ->
    0.054-0.057 ms, backward (``_avgpool_backward``'s fast form) 0.128-0.129 ->
    0.041-0.043 ms."""
    OW = out.shape[2]
    C = out.shape[3]
    iy = 2 * oy
    quarter = np.float32(0.25)
    for ox in range(OW):
        ix = 2 * ox
        for c in range(C):
            out[n, oy, ox, c] = (x[n, iy, ix, c] + x[n, iy, ix + 1, c] + x[n, iy + 1, ix, c]
                                 + x[n, iy + 1, ix + 1, c]) * quarter


@njit(nogil=True, cache=True, fastmath=FAST)
def _avgpool_rows(x, out, r0, r1, PH, PW, sh, sw, pad_top, pad_left, fast):
    """Output rows [r0, r1) of the N*OH rows."""
    OH = out.shape[1]
    for r in range(r0, r1):
        if fast:
            _avgpool_row_2x2(x, out, r // OH, r % OH)
        else:
            _avgpool_row(x, out, r // OH, r % OH, PH, PW, sh, sw, pad_top, pad_left)


def halves_without_padding(x_shape, out_shape, PH, PW, sh, sw, pad_top, pad_left):
    """2x2 windows at stride 2 that all lie inside the input (no padding on any side):
    the pools' fast rows."""
    return (PH == 2 and PW == 2 and sh == 2 and sw == 2 and pad_top == 0 and pad_left == 0
            and 2 * out_shape[1] <= x_shape[1] and 2 * out_shape[2] <= x_shape[2])


def _avgpool_region(fn, x, out, step, PH, PW, sh, sw, pad_top, pad_left, fast):
    """prange over blocks of ``step`` output rows, ``_avgpool_rows`` called through its
    address."""
    rows = out.shape[0] * out.shape[1]
    for b in prange((rows + step - 1) // step):
        call_address(fn, x, out, np.int64(b * step), np.int64(min(rows, b * step + step)), PH, PW, sh, sw, pad_top,
                     pad_left, fast)


AVGPOOL_FORWARD = twins(_avgpool_region)


def _avgpool_driver(serial, name, doc):
    region = AVGPOOL_FORWARD[1] if serial else AVGPOOL_FORWARD[0]

    def forward(x, out, PH, PW, sh, sw, pad_top, pad_left):
        fast = halves_without_padding(x.shape, out.shape, PH, PW, sh, sw, pad_top, pad_left)
        fn = _fnptr.address(_avgpool_rows, x, out, 0, 0, PH, PW, sh, sw, pad_top, pad_left, fast)
        rows = out.shape[0] * out.shape[1]
        _fnptr.run(region, fn, x, out, rows if serial else -(-rows // BLOCKS), PH, PW, sh, sw, pad_top, pad_left,
                   fast)

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = doc
    return forward


avgpool2d_forward = _avgpool_driver(False, "avgpool2d_forward", """\
out = mean of x over the REAL (unpadded) cells of each window (Keras "same"):
``avgpool2d_forward(x, out, PH, PW, sh, sw, pad_top, pad_left)``.

x (N, H, W, C), out (N, OH, OW, C). prange over blocks of output rows (one call on the
calling thread in the ``_serial`` twin); c innermost.""")
avgpool2d_forward_serial = _avgpool_driver(True, "avgpool2d_forward_serial",
                                           "``avgpool2d_forward`` on the calling thread.")


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _avgpool_backward(dy, dx, PH, PW, sh, sw, pad_top, pad_left, fast):
    """dx (N, H, W, C) from dy (N, OH, OW, C): each output spreads dy / count over its
    real cells. dx fully overwritten; prange over N (windows overlap only in-image).
    fast (``halves_without_padding``): each cell of the 2x2 windows gets dy / 4 written
    once (the windows are disjoint; rows and columns past them are zeroed)."""
    N = dy.shape[0]
    OH = dy.shape[1]
    OW = dy.shape[2]
    C = dy.shape[3]
    H = dx.shape[1]
    W = dx.shape[2]
    for n in prange(N):
        dxn = dx[n]
        if fast:
            quarter = np.float32(0.25)
            for oy in range(OH):
                for r in range(2):
                    for ox in range(OW):
                        for c in range(C):
                            v = dy[n, oy, ox, c] * quarter
                            dxn[2 * oy + r, 2 * ox, c] = v
                            dxn[2 * oy + r, 2 * ox + 1, c] = v
                    for ix in range(2 * OW, W):
                        for c in range(C):
                            dxn[2 * oy + r, ix, c] = 0.0
            for iy in range(2 * OH, H):
                dxn[iy, :, :] = 0.0
            continue
        dxn[:, :, :] = 0.0
        for oy in range(OH):
            y0 = max(oy * sh - pad_top, 0)
            y1 = min(oy * sh - pad_top + PH, H)
            for ox in range(OW):
                x0 = max(ox * sw - pad_left, 0)
                x1 = min(ox * sw - pad_left + PW, W)
                cnt = (y1 - y0) * (x1 - x0)
                if cnt <= 0:
                    continue
                inv = np.float32(1.0) / np.float32(cnt)
                g = dy[n, oy, ox]
                for iy in range(y0, y1):
                    for ix in range(x0, x1):
                        for c in range(C):
                            dxn[iy, ix, c] += g[c] * inv


def avgpool2d_backward(dy, dx, PH, PW, sh, sw, pad_top, pad_left):
    """dx (N, H, W, C) from dy (N, OH, OW, C) of an average pool; dx fully overwritten
    (``_avgpool_backward``)."""
    fast = halves_without_padding(dx.shape, dy.shape, PH, PW, sh, sw, pad_top, pad_left)
    _avgpool_backward(dy, dx, PH, PW, sh, sw, pad_top, pad_left, fast)