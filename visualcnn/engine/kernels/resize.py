"""UpSampling2D kernels: nearest (repeat) and bilinear with half-pixel centres (NHWC float32).

prange over images; each kernel has a ``_serial`` twin for inference from a second thread
(``parallel.use_serial()``). Backward kernels write every dx value (no zeroing by the
caller) and never read or write the caller's dy beyond reading it.

Bilinear is Keras's ``ops.image.resize(..., "bilinear")`` with antialias off, which is
TensorFlow's half_pixel_centers resize and torch's ``interpolate(align_corners=False)``:
output index o reads input coordinate (o + 0.5) / scale - 0.5, clamped at 0, between
``lo = floor`` and ``hi = min(lo + 1, size - 1)`` with weight ``frac`` on ``hi``.
``bilinear_taps`` computes those per axis once per layer.
"""

import numpy as np
from numba import prange

from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["bilinear_taps", "upsample_nearest_forward", "upsample_nearest_forward_serial",
           "upsample_nearest_backward", "upsample_nearest_backward_serial", "upsample_bilinear_forward",
           "upsample_bilinear_forward_serial", "upsample_bilinear_backward", "upsample_bilinear_backward_serial"]


def bilinear_taps(in_size: int, scale: int):
    """(lo, hi, frac) per output index along one axis: int32, int32, float32 arrays."""
    out = np.arange(in_size * scale, dtype=np.float64)
    src = np.maximum((out + 0.5) / scale - 0.5, 0.0)
    lo = np.minimum(np.floor(src), in_size - 1).astype(np.int32)
    hi = np.minimum(lo + 1, in_size - 1).astype(np.int32)
    frac = (src - lo).astype(np.float32)
    return lo, hi, frac


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


def _upsample_bilinear_forward(x, y, ylo, yhi, yfrac, xlo, xhi, xfrac):
    """Each output mixes the 2x2 input cells around its source point, top row and bottom
    row first, then between them (TensorFlow's order of the two lerps)."""
    N, OH, OW, C = y.shape
    for n in prange(N):
        for oy in range(OH):
            r0 = x[n, ylo[oy]]
            r1 = x[n, yhi[oy]]
            fy = yfrac[oy]
            dst_row = y[n, oy]
            for ox in range(OW):
                a, b = xlo[ox], xhi[ox]
                fx = xfrac[ox]
                dst = dst_row[ox]
                for c in range(C):
                    top = r0[a, c] + (r0[b, c] - r0[a, c]) * fx
                    bottom = r1[a, c] + (r1[b, c] - r1[a, c]) * fx
                    dst[c] = top + (bottom - top) * fy


upsample_bilinear_forward, upsample_bilinear_forward_serial = twins(_upsample_bilinear_forward)


def _upsample_bilinear_backward(dy, dx, ylo, yhi, yfrac, xlo, xhi, xfrac):
    """Scatter form: every output sends dy times each of its four weights back to the
    cell it read. One image per prange iteration, so no two threads touch one dx."""
    N, OH, OW, C = dy.shape
    for n in prange(N):
        img = dx[n]
        for iy in range(img.shape[0]):
            for ix in range(img.shape[1]):
                for c in range(C):
                    img[iy, ix, c] = 0.0
        for oy in range(OH):
            fy = yfrac[oy]
            r0 = img[ylo[oy]]
            r1 = img[yhi[oy]]
            src_row = dy[n, oy]
            for ox in range(OW):
                a, b = xlo[ox], xhi[ox]
                fx = xfrac[ox]
                w00 = (np.float32(1.0) - fy) * (np.float32(1.0) - fx)
                w01 = (np.float32(1.0) - fy) * fx
                w10 = fy * (np.float32(1.0) - fx)
                w11 = fy * fx
                src = src_row[ox]
                for c in range(C):
                    g = src[c]
                    r0[a, c] += g * w00
                    r0[b, c] += g * w01
                    r1[a, c] += g * w10
                    r1[b, c] += g * w11


upsample_bilinear_backward, upsample_bilinear_backward_serial = twins(_upsample_bilinear_backward, fastmath=FAST)
