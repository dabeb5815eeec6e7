"""Conv2DTranspose = the input gradient of a Conv2D, so it runs on that conv's plan.

Keras kernel (KH, KW, filters, C_in) is exactly the conv-layout kernel of the conv that
maps the transpose's OUTPUT (filters channels) to its INPUT (C_in channels). With that
conv's geometry (same strides, dilation, pad_top/pad_left from
``padding.conv_transpose_output``):

    forward(x)            = conv.backward_input(dy=x)           (+ bias, relu)
    backward_input(dy)    = conv.forward(dy)                    (no bias)
    backward_kernel(x,dy) = conv.backward_kernel(x=dy, dy=x);   grad_bias = sum(dy)

so it needs no strategy of its own: whatever the planner picks for that conv (the
in-region sgemm for every transpose measured) serves it.
"""

from __future__ import annotations

from dataclasses import dataclass

from visualcnn.engine.kernels._common import NO_BIAS, reduction_groups
from visualcnn.engine.kernels.conv._shared import BIAS_ACT_ROWS, BIAS_GRAD_KERNELS, bias_grad, getter, pick
from visualcnn.engine.kernels.conv.planner import ConvPlan, _unique, plan_conv

__all__ = [
    "TransposePlan",
    "plan_conv_transpose",
    "conv2d_transpose_forward",
    "conv2d_transpose_backward_input",
    "conv2d_transpose_backward_kernel",
]


@dataclass(frozen=True)
class TransposePlan:
    conv: ConvPlan

    def forward(self, x, kernel, bias, out, relu=False, ws=None, serial=None):
        """out (N, OH, OW, F) = [relu](conv_transpose(x, kernel) + bias).
        x (N, H, W, C_in), kernel (KH, KW, F, C_in), bias (F,) or None."""
        self.conv.backward_input(x, kernel, out, ws=ws, serial=serial)
        b = NO_BIAS if bias is None else bias
        if relu or b.shape[0] > 0:
            pick(BIAS_ACT_ROWS, serial)(out.reshape(-1, out.shape[3]), b, relu)

    def backward_input(self, dy, kernel, dx, ws=None, serial=None):
        """dx (N, H, W, C_in) from dy (N, OH, OW, F)."""
        self.conv.forward(dy, kernel, None, dx, relu=False, ws=ws, serial=serial)

    def backward_kernel(self, x, dy, grad_kernel, grad_bias, ws=None):
        """grad_kernel (KH, KW, F, C_in), grad_bias (F,) or None."""
        self.conv.backward_kernel(dy, x, grad_kernel, None, ws=ws)
        if grad_bias is not None:
            dy2d = dy.reshape(-1, dy.shape[3])
            T = reduction_groups(dy2d.shape[0])
            bias_grad(dy2d, grad_bias, getter(ws)("t_bpartial", (T, dy2d.shape[1])))

    def kernels(self, training=True, need_dx=True, serial=False):
        s = bool(serial) and not training
        out = self.conv.input_strategy.kernels("backward_input", s) + [pick(BIAS_ACT_ROWS, s)]
        if training:
            out += self.conv.kernel_strategy.kernels("backward_kernel", False) + list(BIAS_GRAD_KERNELS)
            if need_dx:
                out += self.conv.forward_strategy.kernels("forward", False)
        return _unique(out)

    def describe(self):
        return "transpose of " + self.conv.describe()


def plan_conv_transpose(kernel_shape, strides=(1, 1), dilation=(1, 1), pad=(0, 0), force=None):
    """kernel_shape (KH, KW, F, C_in), as Keras stores a Conv2DTranspose kernel."""
    return TransposePlan(plan_conv(kernel_shape, strides, dilation, pad, force))


def conv2d_transpose_forward(x, kernel, bias, out, strides=(1, 1), dilation=(1, 1),
                             pad=(0, 0), relu=False, ws=None, serial=None):
    plan_conv_transpose(kernel.shape, strides, dilation, pad).forward(x, kernel, bias, out, relu, ws,
                                                                      serial)


def conv2d_transpose_backward_input(dy, kernel, dx, strides=(1, 1), dilation=(1, 1),
                                    pad=(0, 0), ws=None, serial=None):
    plan_conv_transpose(kernel.shape, strides, dilation, pad).backward_input(dy, kernel, dx, ws, serial)


def conv2d_transpose_backward_kernel(x, dy, grad_kernel, grad_bias, strides=(1, 1),
                                     dilation=(1, 1), pad=(0, 0), ws=None):
    plan_conv_transpose(grad_kernel.shape, strides, dilation, pad).backward_kernel(
        x, dy, grad_kernel, grad_bias, ws)
