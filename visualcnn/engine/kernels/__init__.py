"""Numba kernels of the engine: plain functions that fill preallocated outputs.

float32, NHWC, C-contiguous. Importing this package first configures the numba
threading layer (``visualcnn.engine.parallel``). Every parallel forward kernel has a
``*_serial`` twin for inference from a second thread; the python drivers
(``conv2d_forward`` ...) pick it when ``parallel.use_serial()`` is true.

The drivers' signatures are stable; faster paths sit behind them (see the docstring of
``kernels.conv``). Optional extras a caller can opt into:

* ``maxpool2d_backward(dy, argmax, dx, relu_out=y)``: the pool also applies the relu
  derivative of the layer before it (y = the pool's own output), so that Conv2D can
  skip its activation backward (``skip_activation=True``): one full memory pass less.
* ``conv_relu_maxpool_forward`` / ``conv_relu_maxpool_backward_kernel`` (``fused``): a
  first Conv2D(3x3 on one channel, relu) and the MaxPooling2D after it as one training
  block, without the conv output ever leaving the cache (``fused_block_supported``).
"""

from visualcnn.engine import parallel
from visualcnn.engine.kernels import blas
from visualcnn.engine.kernels._common import NO_BIAS
from visualcnn.engine.kernels.conv import (
    GEMM_CHUNK,
    GEMM_MIN_K,
    bias_act_rows,
    bias_act_rows_serial,
    bias_grad,
    col2im,
    conv2d_backward_input,
    conv2d_backward_input_direct,
    conv2d_backward_input_direct_serial,
    conv2d_backward_input_gemm,
    conv2d_backward_kernel,
    conv2d_backward_kernel_3x3c1,
    conv2d_backward_kernel_direct,
    conv2d_backward_kernel_gemm,
    conv2d_backward_kernel_thin,
    conv2d_forward,
    conv2d_forward_3x3c1,
    conv2d_forward_3x3c1_serial,
    conv2d_forward_direct,
    conv2d_forward_direct_serial,
    conv2d_forward_gemm,
    conv2d_forward_gemm_serial,
    conv2d_forward_thin,
    conv2d_forward_thin_serial,
    gemm_images_per_chunk,
    im2col,
    im2col_serial,
    reduce_partials,
    relu_backward,
    replicate_kernel,
    use_gemm,
)
from visualcnn.engine.kernels.depthwise import (
    depthwise_conv2d_backward_input,
    depthwise_conv2d_backward_kernel,
    depthwise_conv2d_backward_kernel_partials,
    depthwise_conv2d_forward,
    depthwise_conv2d_forward_serial,
)
from visualcnn.engine.kernels.fused import (
    conv_relu_maxpool_backward_kernel,
    conv_relu_maxpool_forward,
    fused_block_supported,
)
from visualcnn.engine.kernels.padding import (
    conv_transpose_output,
    same_padding,
    valid_output,
)
from visualcnn.engine.kernels.pooling import (
    avgpool2d_backward,
    avgpool2d_forward,
    avgpool2d_forward_serial,
    maxpool2d_backward,
    maxpool2d_backward_kernel,
    maxpool2d_forward,
    maxpool2d_forward_serial,
)
from visualcnn.engine.kernels.transpose import (
    conv2d_transpose_backward_input,
    conv2d_transpose_backward_kernel,
    conv2d_transpose_forward,
)
from visualcnn.engine.kernels.workspace import Workspace

__all__ = [
    "parallel",
    "blas",
    "NO_BIAS",
    "Workspace",
    "GEMM_CHUNK",
    "GEMM_MIN_K",
    "same_padding",
    "valid_output",
    "conv_transpose_output",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_kernel",
    "conv2d_forward_direct",
    "conv2d_forward_direct_serial",
    "conv2d_backward_input_direct",
    "conv2d_backward_input_direct_serial",
    "conv2d_backward_kernel_direct",
    "conv2d_forward_gemm",
    "conv2d_forward_gemm_serial",
    "conv2d_backward_input_gemm",
    "conv2d_backward_kernel_gemm",
    "conv2d_forward_3x3c1",
    "conv2d_forward_3x3c1_serial",
    "conv2d_backward_kernel_3x3c1",
    "conv2d_forward_thin",
    "conv2d_forward_thin_serial",
    "conv2d_backward_kernel_thin",
    "replicate_kernel",
    "gemm_images_per_chunk",
    "im2col",
    "im2col_serial",
    "col2im",
    "use_gemm",
    "bias_act_rows",
    "bias_act_rows_serial",
    "bias_grad",
    "relu_backward",
    "reduce_partials",
    "depthwise_conv2d_forward",
    "depthwise_conv2d_forward_serial",
    "depthwise_conv2d_backward_input",
    "depthwise_conv2d_backward_kernel",
    "depthwise_conv2d_backward_kernel_partials",
    "conv2d_transpose_forward",
    "conv2d_transpose_backward_input",
    "conv2d_transpose_backward_kernel",
    "fused_block_supported",
    "conv_relu_maxpool_forward",
    "conv_relu_maxpool_backward_kernel",
    "maxpool2d_forward",
    "maxpool2d_forward_serial",
    "maxpool2d_backward",
    "maxpool2d_backward_kernel",
    "avgpool2d_forward",
    "avgpool2d_forward_serial",
    "avgpool2d_backward",
]
