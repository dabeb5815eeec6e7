"""UpSampling2D kernels: nearest (repeat), and bilinear / bicubic as separable taps (NHWC float32).

prange over images; each kernel has a ``_serial`` twin for inference from a second thread
(``parallel.use_serial()``). Backward kernels write every dx value (no zeroing by the
caller) and only read the dy they are given.

Bilinear and bicubic are Keras's ``ops.image.resize`` with antialias off, as the torch
backend computes it (``interpolate(align_corners=False)``): output index o reads input
coordinate (o + 0.5) / scale - 0.5. Both are separable: along each axis an output mixes
K input indices (2 for bilinear, 4 for bicubic) with K weights, and ``resize_taps``
computes those once per layer; one pair of kernels serves both modes.
- bilinear: the coordinate is clamped at 0; indices floor and min(floor + 1, size - 1)
  (TensorFlow's half_pixel_centers resize gives the same values).
- bicubic: PyTorch's cubic convolution with A = -0.75, indices floor - 1 .. floor + 2
  clamped to the image (the edge pixel repeats). TensorFlow and JAX use A = -0.5, so
  Keras on those backends differs slightly; the torch backend is the reference here.
"""

import numpy as np
from numba import prange

from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["resize_taps", "upsample_nearest_forward", "upsample_nearest_forward_serial",
           "upsample_nearest_backward", "upsample_nearest_backward_serial", "upsample_taps_forward",
           "upsample_taps_forward_serial", "upsample_two_taps_forward", "upsample_two_taps_forward_serial",
           "upsample_taps_backward", "upsample_taps_backward_serial"]

_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution coefficient


def _cubic_near(t):
    """Weight of a tap at distance t <= 1 (Keys' cubic convolution)."""
    return ((_CUBIC_A + 2) * t - (_CUBIC_A + 3)) * t * t + 1


def _cubic_far(t):
    """Weight of a tap at distance 1 < t < 2."""
    return ((_CUBIC_A * t - 5 * _CUBIC_A) * t + 8 * _CUBIC_A) * t - 4 * _CUBIC_A


def resize_taps(in_size: int, scale: int, interpolation: str):
    """(index, weight) per output index along one axis: int32 and float32 arrays of shape
    (in_size * scale, K), K = 2 (bilinear) or 4 (bicubic)."""
    out = np.arange(in_size * scale, dtype=np.float64)
    src = (out + 0.5) / scale - 0.5
    if interpolation == "bilinear":
        src = np.maximum(src, 0.0)
        lo = np.minimum(np.floor(src), in_size - 1)
        frac = src - lo
        index = np.stack([lo, np.minimum(lo + 1, in_size - 1)], axis=1)
        weight = np.stack([1.0 - frac, frac], axis=1)
    elif interpolation == "bicubic":
        floor = np.floor(src)
        t = src - floor
        index = np.clip(floor[:, None] + np.arange(-1, 3), 0, in_size - 1)
        weight = np.stack([_cubic_far(t + 1), _cubic_near(t), _cubic_near(1 - t), _cubic_far(2 - t)], axis=1)
    else:
        raise ValueError(f"no taps for interpolation {interpolation!r}")
    return np.ascontiguousarray(index, dtype=np.int32), np.ascontiguousarray(weight, dtype=np.float32)


def _upsample_nearest_forward(x, y, sh, sw):
    """y[n, oy, ox] = x[n, oy // sh, ox // sw] (Keras: ops.repeat along height, then width)."""
    N, OH, OW, C = y.shape
    for n in prange(N):
        for oy in range(OH):
            src_row = x[n, oy // sh]
            dst_row = y[n, oy]
            for ox in range(OW):
                src = src_row[ox // sw]
                dst = dst_row[ox]
                for c in range(C):
                    dst[c] = src[c]


upsample_nearest_forward, upsample_nearest_forward_serial = twins(_upsample_nearest_forward)


def _upsample_nearest_backward(dy, dx, sh, sw):
    """dx[n, iy, ix] = the sum of dy over the sh x sw block that copied it."""
    N, H, W, C = dx.shape
    for n in prange(N):
        for iy in range(H):
            for ix in range(W):
                dst = dx[n, iy, ix]
                for c in range(C):
                    dst[c] = 0.0
                for ky in range(sh):
                    row = dy[n, iy * sh + ky]
                    for kx in range(sw):
                        src = row[ix * sw + kx]
                        for c in range(C):
                            dst[c] += src[c]


upsample_nearest_backward, upsample_nearest_backward_serial = twins(_upsample_nearest_backward, fastmath=FAST)


def _upsample_taps_forward(x, y, yidx, yw, xidx, xw):
    """y[n, oy, ox] = sum over taps i, j of yw[oy, i] * xw[ox, j] * x[n, yidx[oy, i], xidx[ox, j]],
    one axis at a time: per output row, first the rows' blend (a W x C line), then the
    columns' (4x fewer multiply-adds than all KY*KX taps per output)."""
    N, OH, OW, C = y.shape
    W = x.shape[2]
    KY, KX = yw.shape[1], xw.shape[1]
    for n in prange(N):
        line = np.empty((W, C), np.float32)
        for oy in range(OH):
            first = x[n, yidx[oy, 0]]
            w = yw[oy, 0]
            for ix in range(W):
                for c in range(C):
                    line[ix, c] = w * first[ix, c]
            for i in range(1, KY):
                row = x[n, yidx[oy, i]]
                w = yw[oy, i]
                for ix in range(W):
                    for c in range(C):
                        line[ix, c] += w * row[ix, c]
            for ox in range(OW):
                dst = y[n, oy, ox]
                src = line[xidx[ox, 0]]
                w = xw[ox, 0]
                for c in range(C):
                    dst[c] = w * src[c]
                for j in range(1, KX):
                    src = line[xidx[ox, j]]
                    w = xw[ox, j]
                    for c in range(C):
                        dst[c] += w * src[c]


upsample_taps_forward, upsample_taps_forward_serial = twins(_upsample_taps_forward, fastmath=FAST)


def _upsample_two_taps_forward(x, y, yidx, yw, xidx, xw):
    """The 2-tap (bilinear) case of ``upsample_taps_forward``: each output's four inputs
    are blended in registers, as PyTorch orders it (h0*(w0*x00 + w1*x01) + h1*(...)); a
    single streaming pass, about 3x faster than the general loop (measured on
    64x28x28x32 -> 56x56)."""
    N, OH, OW, C = y.shape
    for n in prange(N):
        for oy in range(OH):
            r0 = x[n, yidx[oy, 0]]
            r1 = x[n, yidx[oy, 1]]
            h0, h1 = yw[oy, 0], yw[oy, 1]
            dst_row = y[n, oy]
            for ox in range(OW):
                a, b = xidx[ox, 0], xidx[ox, 1]
                w0, w1 = xw[ox, 0], xw[ox, 1]
                dst = dst_row[ox]
                for c in range(C):
                    dst[c] = h0 * (w0 * r0[a, c] + w1 * r0[b, c]) + h1 * (w0 * r1[a, c] + w1 * r1[b, c])


upsample_two_taps_forward, upsample_two_taps_forward_serial = twins(_upsample_two_taps_forward)


def _upsample_taps_backward(dy, dx, yidx, yw, xidx, xw):
    """The adjoint, one axis at a time: per output row, dy is scattered along the columns
    into a W x C line, which goes to the KY input rows it was read from. One image per
    prange iteration, so no two threads touch one dx."""
    N, OH, OW, C = dy.shape
    W = dx.shape[2]
    KY, KX = yw.shape[1], xw.shape[1]
    for n in prange(N):
        img = dx[n]
        line = np.empty((W, C), np.float32)
        for iy in range(img.shape[0]):
            for ix in range(W):
                for c in range(C):
                    img[iy, ix, c] = 0.0
        for oy in range(OH):
            for ix in range(W):
                for c in range(C):
                    line[ix, c] = 0.0
            for ox in range(OW):
                src = dy[n, oy, ox]
                for j in range(KX):
                    dst = line[xidx[ox, j]]
                    w = xw[ox, j]
                    for c in range(C):
                        dst[c] += w * src[c]
            for i in range(KY):
                row = img[yidx[oy, i]]
                w = yw[oy, i]
                for ix in range(W):
                    for c in range(C):
                        row[ix, c] += w * line[ix, c]


upsample_taps_backward, upsample_taps_backward_serial = twins(_upsample_taps_backward, fastmath=FAST)
