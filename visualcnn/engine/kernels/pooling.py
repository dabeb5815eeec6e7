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


@njit(nogil=True, cache=True)
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


@njit(nogil=True, cache=True)
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
        a = r0[ix]
        b = r0[ix + 1]
        c = r1[ix]
        d = r1[ix + 1]
        o = orow[ox]
        ar = arow[ox]
        base = (iy * W + ix) * C
        for ch in range(C):
            m = a[ch]
            k = base + ch
            if b[ch] > m:
                m = b[ch]
                k = base + C + ch
            if c[ch] > m:
                m = c[ch]
                k = base + W * C + ch
            if d[ch] > m:
                m = d[ch]
                k = base + W * C + C + ch
            o[ch] = m
            ar[ch] = k


@njit(nogil=True, cache=True)
def _maxpool_out_row(x, out, argmax, r, PH, PW, sh, sw, pad_top, pad_left, fast):
    """Output row r of the N*OH rows (what each prange iteration calls)."""
    OH = out.shape[1]
    if fast:
        _maxpool_row_2x2(x, out, argmax, r // OH, r % OH)
    else:
        _maxpool_row(x, out, argmax, r // OH, r % OH, PH, PW, sh, sw, pad_top, pad_left)


def _maxpool_region(fn, x, out, argmax, PH, PW, sh, sw, pad_top, pad_left, fast):
    """prange over the N*OH output rows, each ``_maxpool_out_row`` called through its
    address fn (not linked in: the region and its twin compile in a fraction of a
    second, see ``fnptr``)."""
    for r in prange(out.shape[0] * out.shape[1]):
        call_address(fn, (x, out, argmax, np.int64(r), np.int64(PH), np.int64(PW), np.int64(sh), np.int64(sw),
                          np.int64(pad_top), np.int64(pad_left), fast))


MAXPOOL_FORWARD = twins(_maxpool_region)


def _maxpool_forward(serial, x, out, argmax, PH, PW, sh, sw, pad_top, pad_left):
    geo = (int(PH), int(PW), int(sh), int(sw), int(pad_top), int(pad_left))
    fast = (geo == (2, 2, 2, 2, 0, 0) and 2 * out.shape[1] <= x.shape[1]
            and 2 * out.shape[2] <= x.shape[2])  # no bottom/right pad
    fn = _fnptr.address(_maxpool_out_row, x, out, argmax, 0, *geo, fast)
    _fnptr.run(MAXPOOL_FORWARD[1] if serial else MAXPOOL_FORWARD[0], fn, x, out, argmax, *geo, fast)


def maxpool2d_forward(x, out, argmax, PH, PW, sh, sw, pad_top, pad_left):
    """out[n, oy, ox, c] = max over the real cells of the window; argmax (int32, same
    shape as out) records the winner as its flat index (iy*W + ix)*C + c in x[n], for the
    backward pass.

    x (N, H, W, C), out (N, OH, OW, C), argmax (N, OH, OW, C) int32.
    prange over N*OH output rows (a plain loop in the ``_serial`` twin); per row ox, ky,
    kx, c with c innermost (2x2 / stride 2 / unpadded: ``_maxpool_row_2x2``, the four
    candidates compared in registers).
    """
    _maxpool_forward(False, x, out, argmax, PH, PW, sh, sw, pad_top, pad_left)


def maxpool2d_forward_serial(x, out, argmax, PH, PW, sh, sw, pad_top, pad_left):
    """``maxpool2d_forward`` on the calling thread."""
    _maxpool_forward(True, x, out, argmax, PH, PW, sh, sw, pad_top, pad_left)


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


@njit(nogil=True, cache=True, fastmath=FAST)
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


def _avgpool_region(fn, x, out, PH, PW, sh, sw, pad_top, pad_left):
    """prange over the N*OH output rows, ``_avgpool_row`` called through its address."""
    OH = out.shape[1]
    for r in prange(out.shape[0] * OH):
        call_address(fn, (x, out, np.int64(r // OH), np.int64(r % OH), np.int64(PH), np.int64(PW), np.int64(sh),
                          np.int64(sw), np.int64(pad_top), np.int64(pad_left)))


AVGPOOL_FORWARD = twins(_avgpool_region)


def _avgpool_forward(serial, x, out, PH, PW, sh, sw, pad_top, pad_left):
    geo = (int(PH), int(PW), int(sh), int(sw), int(pad_top), int(pad_left))
    fn = _fnptr.address(_avgpool_row, x, out, 0, 0, *geo)
    _fnptr.run(AVGPOOL_FORWARD[1] if serial else AVGPOOL_FORWARD[0], fn, x, out, *geo)


def avgpool2d_forward(x, out, PH, PW, sh, sw, pad_top, pad_left):
    """out = mean of x over the REAL (unpadded) cells of each window (Keras "same").

    x (N, H, W, C), out (N, OH, OW, C). prange over N*OH output rows (a plain loop in
    the ``_serial`` twin); c innermost.
    """
    _avgpool_forward(False, x, out, PH, PW, sh, sw, pad_top, pad_left)


def avgpool2d_forward_serial(x, out, PH, PW, sh, sw, pad_top, pad_left):
    """``avgpool2d_forward`` on the calling thread."""
    _avgpool_forward(True, x, out, PH, PW, sh, sw, pad_top, pad_left)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def avgpool2d_backward(dy, dx, PH, PW, sh, sw, pad_top, pad_left):
    """dx (N, H, W, C) from dy (N, OH, OW, C): each output spreads dy / count over its
    real cells. dx fully overwritten; prange over N (windows overlap only in-image)."""
    N = dy.shape[0]
    OH = dy.shape[1]
    OW = dy.shape[2]
    C = dy.shape[3]
    H = dx.shape[1]
    W = dx.shape[2]
    for n in prange(N):
        dxn = dx[n]
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
