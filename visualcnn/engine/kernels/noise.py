"""Kernels of the noise layers: GaussianNoise's y = x + stddev*noise and
SpatialDropout2D's per-(image, channel) scale.

The layers draw their random numbers with their own seeded numpy generator (N*C
channel masks are tiny; the noise is drawn into a reused buffer), so reseeding a layer
reproduces a run. Each kernel has a ``_serial`` twin (``parallel.use_serial()``).
"""

from numba import prange

from visualcnn.engine import parallel  # noqa: F401  (the layers ask parallel.use_serial())
from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["add_scaled", "add_scaled_serial", "scale_channels", "scale_channels_serial"]

_BLOCK = 8192


def _add_scaled(x, noise, stddev, y):
    """y[i] = x[i] + stddev*noise[i] (flat arrays; y may alias noise). prange over
    blocks of 8192 values."""
    n = x.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(b * _BLOCK, min(n, b * _BLOCK + _BLOCK)):
            y[i] = x[i] + stddev * noise[i]


add_scaled, add_scaled_serial = twins(_add_scaled, fastmath=FAST)


def _scale_channels(x3, scale, y3):
    """y3[n, p, c] = x3[n, p, c]*scale[n, c]: a whole feature map kept (times 1/(1-rate))
    or dropped. x3 (N, P = H*W, C). prange over images."""
    N, P, C = x3.shape
    for n in prange(N):
        for p in range(P):
            for c in range(C):
                y3[n, p, c] = x3[n, p, c] * scale[n, c]


scale_channels, scale_channels_serial = twins(_scale_channels, fastmath=FAST)
