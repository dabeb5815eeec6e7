"""Kernels of the noise layers: GaussianNoise's y = x + stddev*N(0, 1) and
SpatialDropout2D's per-(image, channel) scale.

GaussianNoise draws no array of random numbers (numpy's generator, one core, cost twice a
32->32 3x3 convolution on the same map). As Dropout's mask (kernels/elementwise.py), the
normal value at position i is a pure function of (key, i): Marsaglia and Tsang's ziggurat
(J. Stat. Softw. 5(8), 2000; 128 layers) fed by a splitmix64 counter hash. The layer index
and the 32-bit value come from different bits of one 64-bit hash (the original shares
bits between them, a known flaw); the rare rejections (about 1 in 80) rehash with an
attempt counter. So the noise is exact normal, the same for any thread count or block
split, and the layer draws one key per call from its seeded generator.

SpatialDropout2D's N*C keep flags are drawn by the layer (tiny). Each kernel has a
``_serial`` twin (``parallel.use_serial()``).
"""

import math

import numpy as np
from numba import njit, prange

from visualcnn.engine import parallel  # noqa: F401  (the layers ask parallel.use_serial())
from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["add_normal_noise", "add_normal_noise_serial", "normal_reference", "scale_channels",
           "scale_channels_serial"]

_BLOCK = 8192
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_ATTEMPT = np.uint64(0xD1B54A32D192ED03)  # odd: separates the rehashes of one position
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32), np.uint64(11)
_R = 3.442619855899  # where the ziggurat's tail starts


def _ziggurat_tables():
    """kn, wn, fn of Marsaglia and Tsang's RNOR for 128 layers and 32-bit values."""
    m1 = 2147483648.0
    dn = tn = _R
    vn = 9.91256303526217e-3
    q = vn / math.exp(-0.5 * dn * dn)
    kn, wn, fn = np.zeros(128), np.zeros(128), np.zeros(128)
    kn[0], kn[1] = (dn / q) * m1, 0.0
    wn[0], wn[127] = q / m1, dn / m1
    fn[0], fn[127] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(126, 0, -1):
        dn = math.sqrt(-2.0 * math.log(vn / dn + math.exp(-0.5 * dn * dn)))
        kn[i + 1] = (dn / tn) * m1
        tn = dn
        fn[i] = math.exp(-0.5 * dn * dn)
        wn[i] = dn / m1
    return kn, wn, fn


_KN, _WN, _FN = _ziggurat_tables()


@njit(nogil=True, cache=True, inline="always")
def _hash(key, i, attempt):
    z = key + (np.uint64(i) + np.uint64(1)) * _GOLDEN + np.uint64(attempt) * _ATTEMPT
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(nogil=True, cache=True, inline="always")
def _uniform(key, i, attempt):
    """A uniform in (0, 1) from 53 bits of the hash."""
    return (np.float64(_hash(key, i, attempt) >> _S11) + 0.5) * (1.0 / 9007199254740992.0)


@njit(nogil=True, cache=True)
def _normal_slow(key, i, kn, wn, fn):
    """N(0, 1) at position i of key: the ziggurat, exact up to the 32-bit resolution. The
    kernel tests the first draw's rectangle itself (about 99 % of values end there) and
    calls this for the rest, which starts again from the same first draw."""
    attempt = 0
    while True:
        h = _hash(key, i, attempt)
        attempt += 1
        iz = np.int64(h & np.uint64(127))
        hz = np.float64(np.int64(h >> _S32) - 2147483648)  # signed 32-bit value
        x = hz * wn[iz]
        if abs(hz) < kn[iz]:
            return x  # inside the layer's rectangle: about 99 % of draws
        if iz == 0:  # the tail beyond R
            while True:
                xt = -math.log(_uniform(key, i, attempt)) / _R
                yt = -math.log(_uniform(key, i, attempt + 1))
                attempt += 2
                if yt + yt >= xt * xt:
                    break
            return _R + xt if hz > 0 else -_R - xt
        u = _uniform(key, i, attempt)
        attempt += 1
        if fn[iz] + u * (fn[iz - 1] - fn[iz]) < math.exp(-0.5 * x * x):
            return x


def _add_normal_noise(x, key, stddev, kn, wn, fn, y):
    """y[i] = x[i] + stddev*N(key, i) (flat arrays). prange over blocks of 8192 values.
    (The rectangle test written here, not in an inlined helper: numba then ran the serial
    twin 15x slower.)"""
    n = x.shape[0]
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(b * _BLOCK, min(n, b * _BLOCK + _BLOCK)):
            h = _hash(key, i, 0)
            iz = np.int64(h & np.uint64(127))
            hz = np.float64(np.int64(h >> _S32) - 2147483648)  # signed 32-bit value
            z = hz * wn[iz] if abs(hz) < kn[iz] else _normal_slow(key, i, kn, wn, fn)
            y[i] = x[i] + stddev * np.float32(z)


_add_normal_noise_par, _add_normal_noise_ser = twins(_add_normal_noise)


def add_normal_noise(x, key, stddev, y):
    """y = x + stddev*noise, noise[i] = N(key, i). Flat float32 arrays; y may alias x."""
    _add_normal_noise_par(x, np.uint64(key), np.float32(stddev), _KN, _WN, _FN, y)


def add_normal_noise_serial(x, key, stddev, y):
    """Serial twin of ``add_normal_noise`` (same values, on the calling thread)."""
    _add_normal_noise_ser(x, np.uint64(key), np.float32(stddev), _KN, _WN, _FN, y)


def normal_reference(key, n):
    """The noise ``add_normal_noise`` adds at positions 0..n-1 (for tests)."""
    out = np.zeros(n, np.float32)
    add_normal_noise_serial(np.zeros(n, np.float32), key, 1.0, out)
    return out


def _scale_channels(x3, scale, y3):
    """y3[n, p, c] = x3[n, p, c]*scale[n, c]: a whole feature map kept (times 1/(1-rate))
    or dropped. x3 (N, P = H*W, C). prange over images."""
    N, P, C = x3.shape
    for n in prange(N):
        for p in range(P):
            for c in range(C):
                y3[n, p, c] = x3[n, p, c] * scale[n, c]


scale_channels, scale_channels_serial = twins(_scale_channels, fastmath=FAST)
