"""Numba kernels of the engine: plain functions that fill preallocated outputs.

float32, NHWC, C-contiguous. Importing this package first configures the numba
threading layer (``visualcnn.engine.parallel``). Every parallel forward kernel has a
``*_serial`` twin for inference from a second thread; the python drivers
(``conv2d_forward`` ...) pick it when ``parallel.use_serial()`` is true.

The drivers' signatures are stable; faster paths sit behind them, chosen once per
layer by ``conv.planner`` (see the docstring of ``kernels.conv``). Optional extra a caller
can opt into: ``maxpool2d_backward(dy, argmax, dx, relu_out=y)``: the pool also applies
the relu derivative of the layer before it (y = the pool's own output), so that Conv2D
can skip its activation backward (``skip_activation=True``): one full memory pass less.
"""

from visualcnn.engine import parallel
from visualcnn.engine.kernels import blas, conv, depthwise, padding, pooling
from visualcnn.engine.kernels._common import NO_BIAS
from visualcnn.engine.kernels.conv import *
from visualcnn.engine.kernels.depthwise import *
from visualcnn.engine.kernels.padding import *
from visualcnn.engine.kernels.pooling import *
from visualcnn.engine.kernels.workspace import Workspace

# One list per module (its ``__all__``), re-exported here unchanged.
__all__ = ["NO_BIAS", "Workspace", "blas", "parallel"]
__all__ += padding.__all__
__all__ += conv.__all__
__all__ += depthwise.__all__
__all__ += pooling.__all__
