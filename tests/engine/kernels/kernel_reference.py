"""Plain-numpy (float64) references for the numba kernels: explicit padding + einsum.

Written from the definitions, sharing no code with visualcnn.engine.kernels.
"""

import numpy as np


def pads_for(in_size, k, s, d, padding):
    """(out, before, after) per Keras: "same" puts the odd pixel at the end."""
    if padding == "valid":
        return (in_size - d * (k - 1) - 1) // s + 1, 0, 0
    out = -(-in_size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - in_size, 0)
    return out, total // 2, total - total // 2


def _pad(x, pt, pb, pl, pr, value=0.0):
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def _tap(xp, ky, kx, oh, ow, sh, sw, dh, dw):
    return xp[:, ky * dh: ky * dh + (oh - 1) * sh + 1: sh,
              kx * dw: kx * dw + (ow - 1) * sw + 1: sw, :]


def conv2d(x, w, b, strides, dilation, pads, out_hw):
    """pads = (pt, pb, pl, pr); w (KH, KW, C, CO)."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    (sh, sw), (dh, dw), (oh, ow) = strides, dilation, out_hw
    xp = _pad(x, *pads)
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for ky in range(w.shape[0]):
        for kx in range(w.shape[1]):
            out += np.einsum("nhwc,co->nhwo", _tap(xp, ky, kx, oh, ow, sh, sw, dh, dw),
                             w[ky, kx])
    if b is not None:
        out += b
    return out


def conv2d_grads(x, w, dy, strides, dilation, pads):
    """Exact gradients of sum(conv2d(x, w) * dy): (dx, dw, db)."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    dy = dy.astype(np.float64)
    (sh, sw), (dh, dw_) = strides, dilation
    pt, pb, pl, pr = pads
    oh, ow = dy.shape[1:3]
    xp = _pad(x, *pads)
    dxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    for ky in range(w.shape[0]):
        for kx in range(w.shape[1]):
            sl = (slice(None), slice(ky * dh, ky * dh + (oh - 1) * sh + 1, sh),
                  slice(kx * dw_, kx * dw_ + (ow - 1) * sw + 1, sw), slice(None))
            dxp[sl] += np.einsum("nhwo,co->nhwc", dy, w[ky, kx])
            gw[ky, kx] = np.einsum("nhwc,nhwo->co", xp[sl], dy)
    H, W = x.shape[1:3]
    dx = dxp[:, pt:pt + H, pl:pl + W, :]
    return dx, gw, dy.sum(axis=(0, 1, 2))


def depthwise_expand(w):
    """(KH, KW, C, DM) depthwise kernel -> equivalent dense (KH, KW, C, C*DM) kernel."""
    KH, KW, C, DM = w.shape
    dense = np.zeros((KH, KW, C, C * DM), dtype=np.float64)
    for c in range(C):
        dense[:, :, c, c * DM:(c + 1) * DM] = w[:, :, c, :]
    return dense


def depthwise_conv2d(x, w, b, strides, dilation, pads, out_hw):
    """Per-channel loop (independent of depthwise_expand)."""
    x = x.astype(np.float64)
    KH, KW, C, DM = w.shape
    (sh, sw), (dh, dw), (oh, ow) = strides, dilation, out_hw
    xp = _pad(x, *pads)
    out = np.zeros((x.shape[0], oh, ow, C * DM))
    for c in range(C):
        for m in range(DM):
            for ky in range(KH):
                for kx in range(KW):
                    out[..., c * DM + m] += (_tap(xp, ky, kx, oh, ow, sh, sw, dh, dw)[..., c]
                                             * float(w[ky, kx, c, m]))
    if b is not None:
        out += b
    return out


def conv2d_transpose(x, k, b, strides, dilation, pad_tl, out_hw):
    """Scatter definition: y[i*s + ky*d - pt, j*s + kx*d - pl] += x[i, j] @ k[ky, kx].T.

    k (KH, KW, F, C_in) Keras layout.
    """
    x = x.astype(np.float64)
    k = k.astype(np.float64)
    (sh, sw), (dh, dw), (pt, pl), (oh, ow) = strides, dilation, pad_tl, out_hw
    N, H, W, _ = x.shape
    KH, KW, F, _ = k.shape
    big = np.zeros((N, (H - 1) * sh + (KH - 1) * dh + 1 + oh + pt,
                    (W - 1) * sw + (KW - 1) * dw + 1 + ow + pl, F))
    for ky in range(KH):
        for kx in range(KW):
            big[:, ky * dh: ky * dh + (H - 1) * sh + 1: sh,
                kx * dw: kx * dw + (W - 1) * sw + 1: sw, :] += np.einsum(
                    "nhwc,fc->nhwf", x, k[ky, kx])
    y = big[:, pt:pt + oh, pl:pl + ow, :]
    if b is not None:
        y = y + b
    return y


def maxpool2d(x, pool, strides, pads, out_hw):
    xp = _pad(x.astype(np.float64), *pads, value=-np.inf)
    (ph, pw), (sh, sw), (oh, ow) = pool, strides, out_hw
    out = np.full((x.shape[0], oh, ow, x.shape[3]), -np.inf)
    for ky in range(ph):
        for kx in range(pw):
            out = np.maximum(out, _tap(xp, ky, kx, oh, ow, sh, sw, 1, 1))
    return out


def maxpool2d_grad(x, dy, pool, strides, pads):
    """Route each dy to the first maximum of its window (scan order ky, kx)."""
    (ph, pw), (sh, sw) = pool, strides
    pt, _, pl, _ = pads
    N, H, W, C = x.shape
    dx = np.zeros(x.shape)
    for n in range(N):
        for oy in range(dy.shape[1]):
            for ox in range(dy.shape[2]):
                for c in range(C):
                    best, arg = -np.inf, None
                    for ky in range(ph):
                        for kx in range(pw):
                            iy, ix = oy * sh - pt + ky, ox * sw - pl + kx
                            if 0 <= iy < H and 0 <= ix < W and (
                                    arg is None or x[n, iy, ix, c] > best):
                                best, arg = x[n, iy, ix, c], (iy, ix)
                    dx[n, arg[0], arg[1], c] += dy[n, oy, ox, c]
    return dx


def avgpool2d(x, pool, strides, pads, out_hw):
    """Mean over the real cells only (Keras "same")."""
    x = x.astype(np.float64)
    ones = np.ones(x.shape[:3] + (1,))
    xp, op = _pad(x, *pads), _pad(ones, *pads)
    (ph, pw), (sh, sw), (oh, ow) = pool, strides, out_hw
    s = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    cnt = np.zeros((x.shape[0], oh, ow, 1))
    for ky in range(ph):
        for kx in range(pw):
            s += _tap(xp, ky, kx, oh, ow, sh, sw, 1, 1)
            cnt += _tap(op, ky, kx, oh, ow, sh, sw, 1, 1)
    return s / cnt
