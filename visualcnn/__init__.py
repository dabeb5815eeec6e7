"""VisualCNN: build a convolutional neural network by hand and watch it learn."""

import os
import sys

__version__ = "0.1.0"

# OpenBLAS (numpy's BLAS, used by the im2col + GEMM convolution path) keeps its pool
# threads spinning after every call; on a 2-core laptop they steal the CPU from the numba
# kernel that runs next (measured: seed conv stack ~19 ms -> ~12 ms per batch of 64).
# OpenBLAS reads this when numpy first loads it, so it is set here, before any import
# of numpy through this package.
OPENBLAS_ENV = {"OPENBLAS_THREAD_TIMEOUT": "4"}
if "numpy" not in sys.modules:
    for _key, _value in OPENBLAS_ENV.items():
        os.environ.setdefault(_key, _value)
