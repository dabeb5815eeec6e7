"""Choose, once per layer, how each conv op runs: the ``ConvPlan``.

A layer asks for its plan at setup (``plan_conv(kernel_shape, strides, dilation, pad)``)
and calls the plan's ``forward`` / ``backward_input`` / ``backward_kernel`` on every
batch; the python drivers ``conv2d_forward`` ... ask for the same (cached) plan per call.
This is the only place a strategy is chosen. In order:

1. ``few_channel`` (3x3 kernel, C <= 4): forward, and the weight gradient when the
   column stride is 1;
2. ``single_channel`` (C = 1, unit strides, any other kernel size): forward and
   weight gradient;
3. ``winograd`` (3x3, unit strides, any dilation, >= 16 channels, sgemm found): all
   three ops (the bulk of every 3x3 CNN after its first layer), except the forward of
   a single image with at most 256 output positions, which takes ``im2col_gemm``
   (``ConvPlan.single_image_strategy``: the per-call kernel transform dominates there);
   when the layer's sizes are given and its 4x4 tiles fill the map (no dilation;
   ``winograd4.applies``), ``winograd4`` takes the forward and the weight gradient
   (which tile the output) and the input gradient (which tiles the input), except the
   forward of a single bigger image, which stays with ``winograd``
   (``ConvPlan.single_image_large_strategy``); where F(2x2, 3x3) takes both gradients
   and the input has at least 1.3 times the output's tiles (a "valid" conv on a small
   map, as the seed CNN's second), ``winograd_adjoint`` takes both in one pass
   (``ConvPlan.backward``);
4. ``im2col_gemm``: everything else, and the input gradient of 1 and 2 (the first conv
   of a network, where they apply, never needs one). With numpy's ``cblas_sgemm``
   found: the in-region sgemm; otherwise ``np.matmul`` on unfolded chunks.

``direct`` is never chosen automatically (every shape has a faster strategy); tests and
benchmarks force it (``force="direct"``) as the reference. Each strategy module's
docstring gives the measurement behind its place in this order.

Serial or parallel is the caller's argument, decided one way: ``serial=None`` asks
``parallel.use_serial()``; the plan runs the ``_serial`` twin of the same kernel then.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from visualcnn.engine.kernels import blas as _blas
from visualcnn.engine.kernels._common import NO_BIAS
from visualcnn.engine.kernels.conv import (direct, few_channel, im2col_gemm, single_channel, winograd, winograd4,
                                           winograd_adjoint)

__all__ = ["ConvPlan", "plan_conv", "STRATEGIES"]

STRATEGIES = {
    s.name: s for s in (direct.DIRECT, few_channel.FEW_CHANNEL_3X3,
                        single_channel.SINGLE_CHANNEL_PLANE, winograd.WINOGRAD, winograd4.WINOGRAD4,
                        im2col_gemm.SGEMM_REGION, im2col_gemm.NUMPY_MATMUL)
}


def _unique(funcs):
    out = []
    for f in funcs:
        if f not in out:
            out.append(f)
    return out


@dataclass(frozen=True)
class ConvPlan:
    """How one conv geometry runs. kernel (KH, KW, C, CO); geometry as the kernels take it."""

    kernel_shape: tuple
    strides: tuple
    dilation: tuple
    pad: tuple
    forward_strategy: object
    input_strategy: object
    kernel_strategy: object
    reason: str
    # forward of ONE image with a small output: Winograd transforms the whole kernel on
    # every call (12 us for 32 -> 64 channels), more than its 2.25x fewer multiplies
    # save on a few tiles. Measured, one image, serial, 3x3 32 -> 64: 11x11 / 13x13
    # outputs 0.037 / 0.042 ms Winograd against 0.030 / 0.039 ms im2col + sgemm; at
    # 28x28 (32 -> 32) Winograd stays ahead (0.072 against 0.100 ms).
    single_image_strategy: object = None
    # forward of ONE image with a bigger output, when the batch forward is F(4x4, 3x3):
    # its kernel transform (36 positions) costs 3.5x F(2x2)'s (0.032 against 0.009 ms for
    # 32 -> 32 channels), more than the 4x4 tiles save on one image (the Conv-BN-ReLU
    # network's single-image latency went from 0.148 to 0.174 ms), so F(2x2) takes it.
    single_image_large_strategy: object = None
    # both gradients in one pass (``backward``), where F(2x2, 3x3) takes both and the
    # input gradient as a forward would tile a bigger map (``winograd_adjoint``)
    both_strategy: object = None

    SINGLE_IMAGE_MAX_POSITIONS = 256

    @property
    def geo(self):
        """(sh, sw, dh, dw, pad_top, pad_left): input row iy = oy*sh - pad_top + ky*dh."""
        return (*self.strides, *self.dilation, *self.pad)

    def forward(self, x, kernel, bias, out, relu=False, ws=None, serial=None):
        """out (N, OH, OW, CO) = [relu](conv2d(x, kernel) + bias); bias (CO,) or None."""
        strategy = self.forward_strategy
        if out.shape[0] == 1:
            if out.shape[1] * out.shape[2] <= self.SINGLE_IMAGE_MAX_POSITIONS:
                strategy = self.single_image_strategy or strategy
            else:
                strategy = self.single_image_large_strategy or strategy
        strategy.forward(x, kernel, NO_BIAS if bias is None else bias, out, self.geo,
                                      relu, ws, serial)

    def backward_input(self, dy, kernel, dx, ws=None, serial=None):
        """dx (N, H, W, C) = d(loss)/d(x) for dy (N, OH, OW, CO); fully overwritten."""
        self.input_strategy.backward_input(dy, kernel, dx, self.geo, ws, serial)

    def backward_kernel(self, x, dy, grad_kernel, grad_bias, ws=None, relu_out=None):
        """grad_kernel (KH, KW, C, CO) and grad_bias (CO,) (or None), overwritten. With
        relu_out (only where ``takes_relu_output``), dy is the gradient of relu(conv) and
        the kernel applies relu's derivative as it reads it."""
        bias = NO_BIAS if grad_bias is None else grad_bias
        if relu_out is None:
            self.kernel_strategy.backward_kernel(x, dy, grad_kernel, bias, self.geo, ws)
        else:
            self.kernel_strategy.backward_kernel(x, dy, grad_kernel, bias, self.geo, ws, relu_out=relu_out)

    def backward(self, x, dy, kernel, grad_kernel, grad_bias, dx, ws=None):
        """``backward_kernel`` and ``backward_input`` (dx fully overwritten), in one pass
        where the plan has a ``both_strategy``."""
        if self.both_strategy is None:
            self.backward_kernel(x, dy, grad_kernel, grad_bias, ws)
            self.backward_input(dy, kernel, dx, ws)
            return
        self.both_strategy.backward(x, dy, kernel, grad_kernel, NO_BIAS if grad_bias is None else grad_bias, dx,
                                    self.geo, ws)

    @property
    def takes_relu_output(self):
        """Whether ``backward_kernel`` takes relu_out (the few-channel weight gradient)."""
        return getattr(self.kernel_strategy, "takes_relu_output", False)

    @property
    def takes_pooled_forward(self):
        """Whether ``forward_pooled`` runs here (the few-channel forward)."""
        return hasattr(self.forward_strategy, "forward_pooled")

    def forward_pooled(self, x, kernel, bias, conv_shape, y, argmax, ws=None, serial=None):
        """The 2x2 / stride 2 max pool of relu(conv(x) + bias) into y and argmax, the conv's
        output (shaped conv_shape) never stored: what ``forward(relu=True)`` and then
        ``maxpool2d_forward`` give, bit for bit."""
        self.forward_strategy.forward_pooled(x, kernel, NO_BIAS if bias is None else bias, conv_shape, y,
                                             argmax, self.geo, ws, serial)

    @property
    def takes_pooled_gradient(self):
        """Whether ``backward_kernel_pooled`` runs here (the few-channel weight gradient)."""
        return hasattr(self.kernel_strategy, "backward_kernel_pooled")

    def backward_kernel_pooled(self, x, pooled, grad_kernel, grad_bias, ws=None):
        """``backward_kernel`` of a relu conv from the gradient of the max pool after it:
        pooled = (dy, argmax, y, z_shape) of the pool (``MaxPooling2D.pooled_gradient``)."""
        self.kernel_strategy.backward_kernel_pooled(x, pooled, grad_kernel, NO_BIAS if grad_bias is None
                                                    else grad_bias, self.geo, ws)

    def kernels(self, training=True, need_dx=True, serial=False):
        """The numba dispatchers this plan calls: forward (the ``serial`` twin when
        serial), plus, when training, the weight gradient and (need_dx) the input
        gradient. For warm-up: compiling these compiles everything the layer runs."""
        out = list(self.forward_strategy.kernels("forward", bool(serial) and not training))
        for single in (self.single_image_strategy, self.single_image_large_strategy):
            if single is not None:
                out += single.kernels("forward", bool(serial) and not training)
        if training:
            if self.takes_pooled_forward:
                out += self.forward_strategy.kernels("forward_pooled", False)
            if need_dx and self.both_strategy is not None:
                out += self.both_strategy.kernels()
            else:
                out += self.kernel_strategy.kernels("backward_kernel", False)
                if need_dx:
                    out += self.input_strategy.kernels("backward_input", False)
        return _unique(out)

    def describe(self):
        names = {self.forward_strategy.name, self.input_strategy.name, self.kernel_strategy.name}
        if self.both_strategy is not None:
            return (f"forward {self.forward_strategy.name}, both gradients {self.both_strategy.name} "
                    f"({self.reason})")
        if len(names) == 1:
            return f"{self.forward_strategy.name} ({self.reason})"
        return (f"forward {self.forward_strategy.name}, input gradient {self.input_strategy.name}, "
                f"weight gradient {self.kernel_strategy.name} ({self.reason})")


def plan_conv(kernel_shape, strides=(1, 1), dilation=(1, 1), pad=(0, 0), force=None, input_hw=None,
              output_hw=None) -> ConvPlan:
    """The plan for a conv with this kernel shape (KH, KW, C, CO) and geometry.

    input_hw / output_hw: the layer's spatial sizes, when known (a layer knows them at
    setup); they choose between the Winograd tile sizes, which depend on how well the
    tiles fill the output (and the input, for the input gradient). Without them the plan
    is one that fits every size.
    force: a strategy name from ``STRATEGIES`` to use for every op it implements (tests
    and benchmarks compare strategies with it)."""
    sizes = None if input_hw is None or output_hw is None else (tuple(input_hw), tuple(output_hw))
    return _plan(tuple(int(v) for v in kernel_shape), tuple(strides), tuple(dilation), tuple(pad),
                 force, _blas.SGEMM is not None, sizes)


@functools.lru_cache(maxsize=512)
def _plan(kernel_shape, strides, dilation, pad, force, has_sgemm, sizes):
    gemm = im2col_gemm.SGEMM_REGION if has_sgemm else im2col_gemm.NUMPY_MATMUL
    if force is not None:
        s = STRATEGIES[force]
        if s is im2col_gemm.SGEMM_REGION and not has_sgemm:
            raise ValueError("plan_conv: force='im2col_sgemm' but numpy's cblas_sgemm was not found")
        kernel_s = s if hasattr(s, "backward_kernel") else gemm
        if s is few_channel.FEW_CHANNEL_3X3 and not few_channel.applies_to_kernel_gradient(kernel_shape, strides):
            kernel_s = gemm
        input_s = s if hasattr(s, "backward_input") else gemm
        return ConvPlan(kernel_shape, strides, dilation, pad, s, input_s, kernel_s, f"forced {force}")
    KH, KW, C, CO = kernel_shape
    if few_channel.applies(kernel_shape):
        main = few_channel.FEW_CHANNEL_3X3
        reason = f"3x3 kernel on {C} input channel{'s' if C > 1 else ''}"
    elif single_channel.applies(kernel_shape, strides):
        main = single_channel.SINGLE_CHANNEL_PLANE
        reason = f"{KH}x{KW} kernel on 1 input channel, unit strides"
    elif has_sgemm and winograd.applies(kernel_shape, strides):
        # the forward and the weight gradient tile the output, the input gradient the input
        forward_s = input_s = kernel_s = winograd.WINOGRAD
        reason = f"3x3 kernel, unit strides, {C} channels: 2.25x fewer multiplies"
        if sizes is not None:
            if winograd4.applies(kernel_shape, strides, dilation, sizes[1]):
                forward_s = winograd4.WINOGRAD4
            if winograd4.applies(kernel_shape, strides, dilation, sizes[0], winograd4.MIN_GAIN_GRADIENT):
                input_s = winograd4.WINOGRAD4
            if winograd4.applies(kernel_shape, strides, dilation, sizes[1], winograd4.MIN_GAIN_GRADIENT):
                kernel_s = winograd4.WINOGRAD4
            if winograd4.WINOGRAD4 in (forward_s, input_s, kernel_s):
                reason += "; 4x4 tiles where they fill the map: 4x fewer"
        both = None
        if (sizes is not None and input_s is kernel_s is winograd.WINOGRAD
                and winograd_adjoint.applies(sizes[0], sizes[1], dilation)):
            both = winograd_adjoint.WINOGRAD_ADJOINT
            reason += "; both gradients from the output's tiles (the input's are more)"
        single = gemm if gemm is im2col_gemm.SGEMM_REGION else None
        single_large = winograd.WINOGRAD if forward_s is winograd4.WINOGRAD4 else None
        return ConvPlan(kernel_shape, strides, dilation, pad, forward_s, input_s, kernel_s, reason, single,
                        single_large, both)
    else:
        main = gemm
        reason = f"reduction of {KH * KW * C} per output"
    kernel_s = main
    if main is few_channel.FEW_CHANNEL_3X3 and not few_channel.applies_to_kernel_gradient(kernel_shape, strides):
        kernel_s = gemm
        reason += f"; column stride {strides[1]}: weight gradient by sgemm"
    return ConvPlan(kernel_shape, strides, dilation, pad, main, gemm, kernel_s, reason)
