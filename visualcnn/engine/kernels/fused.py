"""Fused first block: Conv2D(3x3, 1 input channel, relu) + MaxPooling2D, for training.

Why: the first conv's output is the biggest tensor of a small CNN (seed CNN, batch 64:
26x26x32 floats = 5.5 MB), and with separate layers it crosses the memory bus five
times per step (conv writes it, the pool reads it, the pool backward writes its
gradient, relu backward reads both and writes a third, the weight gradient reads that).
On a 2-core laptop the bus, not the FMAs, is the limit for these passes. Fused, each
image's conv output lives only in a per-thread scratch (86 KB, in L2):

* ``conv_relu_maxpool_forward``: per image (prange over images): the 3x3 single-channel
  conv + bias + relu into the scratch (``_conv_fwd_3x3c1_image``), then the max pool of
  that scratch into ``pooled`` / ``argmax`` (same argmax convention as
  ``maxpool2d_forward``: flat index (iy*OW + ix)*CO + c into the conv output of that
  image). The conv output itself is written to ``conv_out`` only if asked (feature maps).
* ``conv_relu_maxpool_backward_kernel``: per thread chunk of images: scatter the pooled
  gradient into the scratch where the pooled value is > 0 (that is relu's derivative at
  the winning cell), then the 3x3 single-channel weight-gradient pass
  (``_conv_bwdk_3x3c1_image``) over the scratch, into per-thread partial sums, reduced
  at the end. Nothing the size of the conv output touches memory.

The results equal the unfused sequence conv2d_forward(relu=True) -> maxpool2d_forward ->
maxpool2d_backward -> relu backward -> conv2d_backward_kernel (tests/engine/kernels).
Use ``fused_block_supported`` to check a layer pair; inference keeps the unfused path
(the window shows the conv's feature maps).
"""

import numba
import numpy as np
from numba import njit, prange

from visualcnn.engine.kernels._common import FAST, num_chunks
from visualcnn.engine.kernels.conv import (
    _conv_bwdk_3x3c1_image,
    _conv_fwd_3x3c1_image,
    _thin_padded_size,
    reduce_partials,
)
from visualcnn.engine.kernels.pooling import _maxpool_row, _maxpool_row_2x2

__all__ = ["fused_block_supported", "conv_relu_maxpool_forward", "conv_relu_maxpool_backward_kernel"]


def fused_block_supported(kernel_shape, strides=(1, 1), pool_padding=(0, 0)):
    """True when the fused kernels handle this Conv2D (+ relu) -> MaxPooling2D pair:
    a 3x3 kernel on one input channel, column stride 1, an unpadded pool."""
    KH, KW, C, _ = kernel_shape
    return KH == 3 and KW == 3 and C == 1 and strides[1] == 1 and tuple(pool_padding) == (0, 0)


@njit(nogil=True, cache=True, fastmath=FAST)
def _block_fwd_image(x, xp, kernel, bias, zimg, pooled, argmax, n, sh, dh, dw, pad_top,
                     pad_left, PH, PW, psh, psw):
    _conv_fwd_3x3c1_image(x, xp, kernel, bias, zimg, n, 0, sh, dh, dw, pad_top, pad_left,
                          True)
    p = pooled[n:n + 1]
    a = argmax[n:n + 1]
    fast = (PH == 2 and PW == 2 and psh == 2 and psw == 2 and 2 * pooled.shape[1] <= zimg.shape[1]
            and 2 * pooled.shape[2] <= zimg.shape[2])
    for py in range(pooled.shape[1]):
        if fast:
            _maxpool_row_2x2(zimg, p, a, 0, py)
        else:
            _maxpool_row(zimg, p, a, 0, py, PH, PW, psh, psw, 0, 0)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _block_forward(x, kernel, bias, pooled, argmax, conv_out, xp, zbuf, sh, dh, dw, pad_top,
                   pad_left, PH, PW, psh, psw):
    N = x.shape[0]
    keep = conv_out.shape[0] == N
    for n in prange(N):
        t = numba.get_thread_id()
        zimg = conv_out[n:n + 1] if keep else zbuf[t:t + 1]
        _block_fwd_image(x, xp[t], kernel, bias, zimg, pooled, argmax, n, sh, dh, dw,
                         pad_top, pad_left, PH, PW, psh, psw)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _block_backward_partials(x, dp, argmax, pooled, xp, dzbuf, acc, bacc, sh, dh, dw,
                             pad_top, pad_left):
    T = acc.shape[0]
    N = dp.shape[0]
    PQ = dp.shape[1] * dp.shape[2] * dp.shape[3]
    for t in prange(T):
        acc[t, :, :] = 0.0
        bacc[t, :] = 0.0
        dz = dzbuf[t:t + 1]
        dzf = dzbuf[t].reshape(-1)
        for n in range((N * t) // T, (N * (t + 1)) // T):
            dzf[:] = 0.0
            an = argmax[n].reshape(-1)
            gn = dp[n].reshape(-1)
            yn = pooled[n].reshape(-1)
            for i in range(PQ):
                a = an[i]
                if a >= 0 and yn[i] > 0.0:
                    dzf[a] += gn[i]
            _conv_bwdk_3x3c1_image(x, dz, xp[t], acc[t], bacc[t], n, 0, sh, dh, dw, pad_top,
                                   pad_left)


def _geometry(x, kernel, conv_hw, strides, dilation, pad):
    sh, sw = strides
    dh, dw = dilation
    pt, pl = pad
    OH, OW = conv_hw
    HP, WP = _thin_padded_size(x, kernel, OH, OW, sh, dh, dw, pt, pl)
    return sh, dh, dw, pt, pl, HP, WP


def conv_relu_maxpool_forward(x, kernel, bias, pooled, argmax, conv_hw, strides=(1, 1),
                              dilation=(1, 1), pad=(0, 0), pool=(2, 2), pool_strides=None,
                              conv_out=None, ws=None):
    """pooled, argmax = maxpool(relu(conv2d(x, kernel) + bias)), fused per image.

    x (N, H, W, 1); kernel (3, 3, 1, CO); bias (CO,) or None; conv_hw = (OH, OW) of the
    conv output; pooled (N, PH_out, PW_out, CO) float32 and argmax (same shape, int32)
    are overwritten (argmax as ``maxpool2d_forward`` records it). conv_out (N, OH, OW,
    CO): also keep the relu'd conv output there (else it only exists per image, in
    cache). pool / pool_strides: the (unpadded) MaxPooling2D window and strides.
    """
    if not fused_block_supported(kernel.shape, strides):
        raise ValueError(f"conv_relu_maxpool_forward: unsupported kernel {kernel.shape} / strides "
                         f"{strides} (needs 3x3, one input channel, column stride 1)")
    sh, dh, dw, pt, pl, HP, WP = _geometry(x, kernel, conv_hw, strides, dilation, pad)
    OH, OW = conv_hw
    CO = kernel.shape[3]
    PH, PW = pool
    psh, psw = pool_strides if pool_strides is not None else pool
    slots = numba.config.NUMBA_NUM_THREADS
    get = ws.get if ws is not None else (lambda name, shape: np.empty(shape, np.float32))
    b = bias
    if b is None or b.shape[0] == 0:
        b = get("fused_zero_bias", (CO,))
        b[:] = 0.0
    xp = get("fused_xp", (slots, HP, WP))
    if conv_out is None:
        conv_out = get("fused_no_out", (0, OH, OW, CO))
        zbuf = get("fused_z", (slots, OH, OW, CO))
    else:
        zbuf = get("fused_z", (0, OH, OW, CO))
    _block_forward(x, kernel, b, pooled, argmax, conv_out, xp, zbuf, sh, dh, dw, pt, pl, PH, PW,
                   psh, psw)


def conv_relu_maxpool_backward_kernel(x, dpooled, argmax, pooled, grad_kernel, grad_bias,
                                      conv_hw, strides=(1, 1), dilation=(1, 1), pad=(0, 0),
                                      ws=None, threads=None):
    """grad_kernel (3, 3, 1, CO) and grad_bias (CO,) (or None) of the fused block from
    dpooled = d(loss)/d(pooled), with argmax and pooled from the fused forward.

    Equals maxpool2d_backward -> relu backward -> conv2d_backward_kernel, without
    materialising the two conv-output-sized gradients (see the module docstring).
    """
    if not fused_block_supported(grad_kernel.shape, strides):
        raise ValueError(f"conv_relu_maxpool_backward_kernel: unsupported kernel {grad_kernel.shape}")
    sh, dh, dw, pt, pl, HP, WP = _geometry(x, grad_kernel, conv_hw, strides, dilation, pad)
    OH, OW = conv_hw
    CO = grad_kernel.shape[3]
    N = x.shape[0]
    if threads is None:
        threads = ws.threads if ws is not None else numba.get_num_threads()
    T = num_chunks(N, threads)
    get = ws.get if ws is not None else (lambda name, shape: np.empty(shape, np.float32))
    xp = get("fused_xp", (T, HP, WP))
    dzbuf = get("fused_dz", (T, OH, OW, CO))
    acc = get("fused_acc", (T, 9, CO))
    bacc = get("fused_bacc", (T, CO))
    _block_backward_partials(x, dpooled, argmax, pooled, xp, dzbuf, acc, bacc, sh, dh, dw, pt, pl)
    reduce_partials(acc.reshape(T, -1), grad_kernel.reshape(-1))
    if grad_bias is not None and grad_bias.shape[0] > 0:
        reduce_partials(bacc, grad_bias)

