"""Kernels of the augmentation layers, NHWC float32, one random transform per image.

Each forward has its exact adjoint as backward (the layers can sit anywhere in a
network, so the gradient must pass back through the same transform):

* flip: rows and/or columns reversed per image; its own adjoint.
* affine sampling (RandomTranslation, RandomRotation, RandomZoom): output pixel (i, j)
  of image n reads the input at x = a0*j + a1*i + a2, y = b0*j + b1*i + b2 (params[n] =
  a0, a1, a2, b0, b1, b2: Keras's transform rows, keras/src/backend/torch/image.py
  affine_transform), by bilinear (order 1) or nearest (order 0, round half to even as
  torch.round) interpolation. Out-of-image indices follow the fill mode (map_coordinates'
  index fixers there): 0 constant (fill_value; the index counts only if inside),
  1 nearest (clamped), 2 reflect (d c b a | a b c d | d c b a), 3 wrap (modulo). The
  backward scatters dy with the same weights (the transpose of the sampling matrix);
  fill_value, a constant, gets no gradient.
* contrast: y = clip((x - mean)*f + mean, lo, hi), mean per image and channel.

All are parallel over images (disjoint writes) with ``_serial`` twins.
"""

import numpy as np
from numba import njit, prange

from visualcnn.engine import parallel  # noqa: F401  (the layers ask parallel.use_serial())
from visualcnn.engine.kernels._common import twins

__all__ = ["FILL_MODES", "flip_images", "flip_images_serial", "affine_sample", "affine_sample_serial",
           "affine_adjoint", "affine_adjoint_serial", "contrast_forward", "contrast_forward_serial",
           "contrast_backward", "contrast_backward_serial"]

FILL_MODES = ("constant", "nearest", "reflect", "wrap")  # the kernels' fill-mode codes 0..3


def _flip_images(x, flip_rows, flip_cols, y):
    """y[n] = x[n] with its rows reversed where flip_rows[n] and its columns where
    flip_cols[n]. prange over images."""
    N, H, W, C = x.shape
    for n in prange(N):
        for i in range(H):
            si = H - 1 - i if flip_rows[n] else i
            for j in range(W):
                sj = W - 1 - j if flip_cols[n] else j
                for c in range(C):
                    y[n, i, j, c] = x[n, si, sj, c]


flip_images, flip_images_serial = twins(_flip_images)


@njit(nogil=True, cache=True, inline="always")
def _fix(i, size, mode):
    """The in-image index read for index i (Keras's _INDEX_FIXERS, torch backend)."""
    if mode == 2:  # reflect: mirror(2i + 1, 2*size + 1) - 1, halved (floor)
        s = 2 * size
        m = abs((2 * i + 1 + s) % (2 * s) - s)
        return (m - 1) // 2
    if mode == 3:
        return i % size
    return min(max(i, 0), size - 1)  # constant (validity checked apart) and nearest


@njit(nogil=True, cache=True, inline="always")
def _inside(i, size, mode):
    return mode != 0 or (0 <= i < size)


@njit(nogil=True, cache=True, inline="always")
def _source(params, n, i, j):
    """Input coordinates (row, col) read by output pixel (i, j), float32 as Keras."""
    fi = np.float32(i)
    fj = np.float32(j)
    col = params[n, 0] * fj + params[n, 1] * fi + params[n, 2]
    row = params[n, 3] * fj + params[n, 4] * fi + params[n, 5]
    return row, col


def _affine_sample(x, params, order, mode, fill, y):
    """y[n, i, j, :] = the input of image n sampled at _source(n, i, j). prange over
    images. The four bilinear terms are summed in Keras's order (row-major corners)."""
    N, H, W, C = x.shape
    one = np.float32(1.0)
    for n in prange(N):
        for i in range(H):
            for j in range(W):
                row, col = _source(params, n, i, j)
                if order == 0:
                    r = int(np.rint(row))
                    q = int(np.rint(col))
                    ok = _inside(r, H, mode) and _inside(q, W, mode)
                    fr, fq = _fix(r, H, mode), _fix(q, W, mode)
                    for c in range(C):
                        y[n, i, j, c] = x[n, fr, fq, c] if ok else fill
                    continue
                r0f = np.floor(row)
                q0f = np.floor(col)
                wr1 = row - r0f
                wq1 = col - q0f
                wr0 = one - wr1
                wq0 = one - wq1
                r0 = int(r0f)
                q0 = int(q0f)
                w00, w01, w10, w11 = wr0 * wq0, wr0 * wq1, wr1 * wq0, wr1 * wq1
                if 0 <= r0 and r0 + 1 < H and 0 <= q0 and q0 + 1 < W:  # inside: no fill rule
                    for c in range(C):
                        y[n, i, j, c] = (((w00 * x[n, r0, q0, c] + w01 * x[n, r0, q0 + 1, c])
                                          + w10 * x[n, r0 + 1, q0, c]) + w11 * x[n, r0 + 1, q0 + 1, c])
                    continue
                ir0, ir1 = _inside(r0, H, mode), _inside(r0 + 1, H, mode)
                iq0, iq1 = _inside(q0, W, mode), _inside(q0 + 1, W, mode)
                fr0, fr1 = _fix(r0, H, mode), _fix(r0 + 1, H, mode)
                fq0, fq1 = _fix(q0, W, mode), _fix(q0 + 1, W, mode)
                for c in range(C):
                    v00 = x[n, fr0, fq0, c] if ir0 and iq0 else fill
                    v01 = x[n, fr0, fq1, c] if ir0 and iq1 else fill
                    v10 = x[n, fr1, fq0, c] if ir1 and iq0 else fill
                    v11 = x[n, fr1, fq1, c] if ir1 and iq1 else fill
                    y[n, i, j, c] = ((w00 * v00 + w01 * v01) + w10 * v10) + w11 * v11


affine_sample, affine_sample_serial = twins(_affine_sample)


def _affine_adjoint(dy, params, order, mode, dx):
    """dx = the transpose of ``affine_sample`` applied to dy: each output pixel gives
    dy times its weight back to the input pixels it read (fill values take nothing).
    dx is overwritten. prange over images (each writes only its own image)."""
    N, H, W, C = dy.shape
    one = np.float32(1.0)
    for n in prange(N):
        for i in range(H):
            for j in range(W):
                for c in range(C):
                    dx[n, i, j, c] = 0.0
        for i in range(H):
            for j in range(W):
                row, col = _source(params, n, i, j)
                if order == 0:
                    r = int(np.rint(row))
                    q = int(np.rint(col))
                    if _inside(r, H, mode) and _inside(q, W, mode):
                        fr, fq = _fix(r, H, mode), _fix(q, W, mode)
                        for c in range(C):
                            dx[n, fr, fq, c] += dy[n, i, j, c]
                    continue
                r0f = np.floor(row)
                q0f = np.floor(col)
                wr1 = row - r0f
                wq1 = col - q0f
                wr0 = one - wr1
                wq0 = one - wq1
                r0 = int(r0f)
                q0 = int(q0f)
                if 0 <= r0 and r0 + 1 < H and 0 <= q0 and q0 + 1 < W:  # inside: no fill rule
                    w00, w01, w10, w11 = wr0 * wq0, wr0 * wq1, wr1 * wq0, wr1 * wq1
                    for c in range(C):
                        g = dy[n, i, j, c]
                        dx[n, r0, q0, c] += w00 * g
                        dx[n, r0, q0 + 1, c] += w01 * g
                        dx[n, r0 + 1, q0, c] += w10 * g
                        dx[n, r0 + 1, q0 + 1, c] += w11 * g
                    continue
                for a in range(2):
                    if not _inside(r0 + a, H, mode):
                        continue
                    fr = _fix(r0 + a, H, mode)
                    wr = wr1 if a else wr0
                    for b in range(2):
                        if not _inside(q0 + b, W, mode):
                            continue
                        fq = _fix(q0 + b, W, mode)
                        w = wr * (wq1 if b else wq0)
                        for c in range(C):
                            dx[n, fr, fq, c] += w * dy[n, i, j, c]


affine_adjoint, affine_adjoint_serial = twins(_affine_adjoint)


def _contrast_forward(x3, factor, lo, hi, y3, mean):
    """y3 = clip((x3 - mean)*factor[n] + mean, lo, hi), mean[n, c] (float32 out) over the
    P = H*W positions of image n, channel c. prange over images."""
    N, P, C = x3.shape
    for n in prange(N):
        f = factor[n]
        for c in range(C):
            s = 0.0
            for p in range(P):
                s += np.float64(x3[n, p, c])
            mean[n, c] = np.float32(s / P)
        for p in range(P):
            for c in range(C):
                m = mean[n, c]
                v = (x3[n, p, c] - m) * f + m
                y3[n, p, c] = min(max(v, lo), hi)


contrast_forward, contrast_forward_serial = twins(_contrast_forward)  # no fastmath: backward recomputes z bit for bit


def _contrast_backward(x3, dy3, factor, lo, hi, mean, dx3):
    """dx3 of ``contrast_forward``: with dz = dy where lo <= z <= hi (clip passes the
    gradient there, as torch.clamp), dx = f*dz + (1 - f)*mean over p of dz (the channel
    mean depends on every x). dz goes into dx3 first, so x and dy are read once. dx3 must
    not alias dy3. prange over images."""
    N, P, C = x3.shape
    for n in prange(N):
        f = factor[n]
        sums = np.zeros(C, np.float64)
        for p in range(P):
            for c in range(C):
                m = mean[n, c]
                z = (x3[n, p, c] - m) * f + m
                g = dy3[n, p, c] if (z >= lo and z <= hi) else np.float32(0.0)
                dx3[n, p, c] = g
                sums[c] += g
        k = np.empty(C, np.float32)
        for c in range(C):
            k[c] = np.float32((1.0 - f) * sums[c] / P)
        for p in range(P):
            for c in range(C):
                dx3[n, p, c] = f * dx3[n, p, c] + k[c]


contrast_backward, contrast_backward_serial = twins(_contrast_backward)
