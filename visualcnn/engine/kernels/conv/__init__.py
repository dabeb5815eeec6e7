"""Conv2D kernels (NHWC, float32, Keras kernel layout (KH, KW, C_in, C_out)), one module
per strategy and a planner that picks one per layer at setup:

* ``planner``: ``plan_conv(kernel_shape, strides, dilation, pad, input_hw=, output_hw=)``
  -> ``ConvPlan`` with
  ``forward`` / ``backward_input`` / ``backward_kernel`` / ``backward`` (both
  gradients) / ``kernels()``; the order in
  which strategies are tried and why;
* ``few_channel``: 3x3 kernels on C <= 4 input channels (first convs: grey, RGB);
* ``single_channel``: C = 1 with other kernel sizes, unit strides (LeNet-5's 5x5);
* ``winograd``: F(2x2, 3x3) for 3x3 unit-stride convs on >= 16 channels (all three ops);
* ``winograd4``: F(4x4, 3x3), the forward and input gradient of those convs (no
  dilation) where 4x4 tiles fill the map;
* ``winograd_adjoint``: both F(2x2, 3x3) gradients in one pass, the input gradient as
  the adjoint of the forward's tiling, where the input has many more tiles than the
  output ("valid" convs on small maps);
* ``im2col_gemm``: im2col + numpy's sgemm inside one parallel region (every other conv,
  and the input gradient of the two above), or ``np.matmul`` without the sgemm symbol;
* ``direct``: no scratch, any shape: the reference, never picked automatically;
* ``transpose``: Conv2DTranspose as the input gradient of a conv, on that conv's plan.

Geometry arguments are always (sh, sw, dh, dw, pad_top, pad_left): input row
iy = oy*sh - pad_top + ky*dh. Bottom/right padding is implied by the output size, so
the same functions serve "valid", "same" (odd extra pixel at the end) and explicit
padding. The drivers below keep the old call signatures; they look the plan up per call
(cached), so a layer that holds its plan skips only that look-up.
"""

from visualcnn.engine.kernels.conv import (direct, few_channel, im2col_gemm, planner, single_channel, transpose, winograd,
                                           winograd4, winograd_adjoint)
from visualcnn.engine.kernels.conv._shared import bias_act_rows, bias_act_rows_serial, bias_grad, reduce_partials, relu_backward
from visualcnn.engine.kernels.conv.direct import *  # noqa: F401,F403
from visualcnn.engine.kernels.conv.few_channel import *  # noqa: F401,F403
from visualcnn.engine.kernels.conv.im2col_gemm import *  # noqa: F401,F403
from visualcnn.engine.kernels.conv.planner import ConvPlan, plan_conv
from visualcnn.engine.kernels.conv.single_channel import *  # noqa: F401,F403
from visualcnn.engine.kernels.conv.transpose import *  # noqa: F401,F403
from visualcnn.engine.kernels.conv.winograd import *  # noqa: F401,F403
from visualcnn.engine.kernels.conv.winograd4 import *  # noqa: F401,F403

__all__ = [
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_kernel",
    "ConvPlan",
    "plan_conv",
    "bias_act_rows",
    "bias_act_rows_serial",
    "bias_grad",
    "reduce_partials",
    "relu_backward",
]
__all__ += direct.__all__ + few_channel.__all__ + im2col_gemm.__all__ + single_channel.__all__
__all__ += transpose.__all__ + winograd.__all__ + winograd4.__all__


def conv2d_forward(x, kernel, bias, out, strides=(1, 1), dilation=(1, 1), pad=(0, 0),
                   relu=False, ws=None, serial=None):
    """out (N, OH, OW, CO) = [relu](conv2d(x, kernel) + bias).

    x (N, H, W, C); kernel (KH, KW, C, CO); bias (CO,) or None; pad = (pad_top,
    pad_left). ``ws``: a ``Workspace`` for the scratch (None: allocated per call).
    ``serial``: None = ask ``parallel.use_serial()``.
    """
    plan_conv(kernel.shape, strides, dilation, pad).forward(x, kernel, bias, out, relu, ws, serial)


def conv2d_backward_input(dy, kernel, dx, strides=(1, 1), dilation=(1, 1), pad=(0, 0),
                          ws=None, serial=None):
    """dx (N, H, W, C) = d(loss)/d(x) for dy (N, OH, OW, CO). Fully overwrites dx."""
    plan_conv(kernel.shape, strides, dilation, pad).backward_input(dy, kernel, dx, ws, serial)


def conv2d_backward_kernel(x, dy, grad_kernel, grad_bias, strides=(1, 1), dilation=(1, 1),
                           pad=(0, 0), ws=None):
    """grad_kernel (KH, KW, C, CO) and grad_bias (CO,) (or None) from x and dy."""
    plan_conv(grad_kernel.shape, strides, dilation, pad).backward_kernel(x, dy, grad_kernel,
                                                                          grad_bias, ws)
