"""Conv2DTranspose = the input-gradient of a Conv2D, so it reuses the conv kernels.

Keras kernel (KH, KW, filters, C_in) is exactly the conv-layout kernel of the conv that
maps the transpose's OUTPUT (filters channels) to its INPUT (C_in channels). With that
conv's geometry (same strides, dilation, pad_top/pad_left from
``padding.conv_transpose_output``):

    forward(x)            = conv2d_backward_input(dy=x)          (+ bias, relu)
    backward_input(dy)    = conv2d_forward(dy)                   (no bias)
    backward_kernel(x,dy) = conv2d_backward_kernel(x=dy, dy=x);  grad_bias = sum(dy)
"""

import numpy as np

from visualcnn.engine import parallel as _par
from visualcnn.engine.kernels._common import NO_BIAS, num_chunks
from visualcnn.engine.kernels.conv import (
    bias_act_rows,
    bias_act_rows_serial,
    bias_grad,
    conv2d_backward_input,
    conv2d_backward_kernel,
    conv2d_forward,
)

__all__ = [
    "conv2d_transpose_forward",
    "conv2d_transpose_backward_input",
    "conv2d_transpose_backward_kernel",
]


def conv2d_transpose_forward(x, kernel, bias, out, strides=(1, 1), dilation=(1, 1),
                             pad=(0, 0), relu=False, ws=None, serial=None):
    """out (N, OH, OW, F) = [relu](conv_transpose(x, kernel) + bias).

    x (N, H, W, C_in), kernel (KH, KW, F, C_in), bias (F,) or None.
    """
    if serial is None:
        serial = _par.use_serial()
    conv2d_backward_input(x, kernel, out, strides, dilation, pad, ws=ws, serial=serial)
    b = NO_BIAS if bias is None else bias
    if relu or b.shape[0] > 0:
        o2 = out.reshape(-1, out.shape[3])
        (bias_act_rows_serial if serial else bias_act_rows)(o2, b, relu)


def conv2d_transpose_backward_input(dy, kernel, dx, strides=(1, 1), dilation=(1, 1),
                                    pad=(0, 0), ws=None):
    """dx (N, H, W, C_in) from dy (N, OH, OW, F)."""
    conv2d_forward(dy, kernel, None, dx, strides, dilation, pad, relu=False, ws=ws,
                   serial=False)


def conv2d_transpose_backward_kernel(x, dy, grad_kernel, grad_bias, strides=(1, 1),
                                     dilation=(1, 1), pad=(0, 0), ws=None):
    """grad_kernel (KH, KW, F, C_in), grad_bias (F,) or None."""
    conv2d_backward_kernel(dy, x, grad_kernel, None, strides, dilation, pad, ws=ws)
    if grad_bias is not None:
        F = dy.shape[3]
        dy2d = dy.reshape(-1, F)
        threads = ws.threads if ws is not None else _par.get_num_threads()
        T = num_chunks(dy2d.shape[0], threads)
        bpartial = (ws.get("t_bpartial", (T, F)) if ws is not None
                    else np.empty((T, F), np.float32))
        bias_grad(dy2d, grad_bias, bpartial)
