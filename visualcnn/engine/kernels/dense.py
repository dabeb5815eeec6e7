"""Dense (fully connected) layer: the three matrix products split across numba workers.

Why: ``np.matmul`` runs with OpenBLAS pinned to one thread (the engine parallelises above
BLAS, see ``blas.py``), so a Dense layer used half the machine (2.96 ms against PyTorch's
1.49 ms on the MLP). Here ONE parallel region splits the work into ``tasks`` disjoint
blocks and every worker calls single-threaded sgemm on its own block, as the conv path
does, with the bias and a relu applied to the block while it is still in cache.

Shapes: x2d (N, K) input rows, kernel (K, U), bias (U,) or empty, z2d (N, U).

* forward  z = [relu](x @ kernel + bias): blocks of rows of z when there are enough rows
  (each block reads all of kernel), otherwise blocks of columns (a single image).
* backward, blocks of the K axis: grad_kernel[k0:k1] = x[:, k0:k1].T @ dz and
  dx[:, k0:k1] = dz @ kernel[k0:k1].T: no partial sums, nothing reduced afterwards; the
  bias gradient (column sums of dz) is split by columns over the same tasks.

Without a usable sgemm (``blas.SGEMM`` is None), on the calling thread only (serial
inference beside a training thread) and for products too small to split, the drivers
use ``np.matmul`` (OpenBLAS is single-threaded: the same sgemm). A forward pass of at most
``_FEW_ROWS`` rows (the single drawn digit) through at least ``_FEW_ROWS_MIN_UNITS`` units
is ``dense_forward_few_rows``.
"""

import numba
import numpy as np
from numba import prange

from visualcnn.engine import parallel
from visualcnn.engine.kernels import blas
from visualcnn.engine.kernels._common import FAST, FIXED_TASKS, NO_BIAS

__all__ = ["dense_forward", "dense_backward", "dense_forward_few_rows", "dense_forward_tasks",
           "dense_backward_tasks"]

# Below this many multiply-adds a product is done on the calling thread: waking the
# workers costs more than it saves (a single drawn digit through Dense(512): 0.4 M).
_PARALLEL_MIN_MACS = 1 << 21
_FEW_ROWS = 4  # up to this many rows: dense_forward_few_rows (matrix-vector products)
# ... when each kernel row is long enough to vectorise; narrower layers (the 10 class
# scores) take OpenBLAS's sgemv: 6 against 20 us for 6272x10.
_FEW_ROWS_MIN_UNITS = 128


@numba.njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def _bias_relu_block(zb, bias, relu):
    """zb (rows, cols) block of z: += bias (cols,) or empty, then max(., 0) when relu.
    Loops index the block from 0 (an offset index kept numba's negative-index check in
    the loop and stopped it from vectorising)."""
    for r in range(zb.shape[0]):
        for c in range(zb.shape[1]):
            v = zb[r, c]
            if bias.shape[0] > 0:
                v += bias[c]
            if relu and v < 0.0:
                v = np.float32(0.0)
            zb[r, c] = v


def _dense_forward_tasks(gemm, x2d, kernel, bias, z2d, relu, tasks, by_rows):
    """z2d = [relu](x2d @ kernel + bias). prange over ``tasks`` blocks of rows (by_rows) or
    of columns of z2d; each block: one single-threaded sgemm, then bias / relu on it."""
    N, K = x2d.shape
    U = kernel.shape[1]
    for t in prange(tasks):
        if by_rows:
            r0 = t * N // tasks
            r1 = (t + 1) * N // tasks
            c0 = 0
            c1 = U
        else:
            r0 = 0
            r1 = N
            c0 = t * U // tasks
            c1 = (t + 1) * U // tasks
        if r1 > r0 and c1 > c0:
            gemm(101, 111, 111, r1 - r0, c1 - c0, K, np.float32(1.0), x2d[r0:].ctypes.data, K,
                 kernel[:, c0:].ctypes.data, U, np.float32(0.0), z2d[r0:, c0:].ctypes.data, U)
            if relu or bias.shape[0] > 0:
                _bias_relu_block(z2d[r0:r1, c0:c1], bias[c0:c1] if bias.shape[0] > 0 else bias, relu)


dense_forward_tasks = numba.njit(parallel=True, nogil=True, cache=True, fastmath=FAST)(_dense_forward_tasks)


def _dense_backward_tasks(gemm, x2d, dz2d, kernel, grad_kernel, grad_bias, dx2d, need_dx, tasks):
    """grad_kernel = x2d.T @ dz2d, grad_bias = column sums of dz2d (if non-empty), and
    dx2d = dz2d @ kernel.T when need_dx. prange over ``tasks`` blocks [k0, k1) of the K
    axis (rows of grad_kernel, columns of dx2d) and [u0, u1) of the bias: disjoint writes."""
    N, K = x2d.shape
    U = dz2d.shape[1]
    for t in prange(tasks):
        k0 = t * K // tasks
        k1 = (t + 1) * K // tasks
        if k1 > k0:
            gemm(101, 112, 111, k1 - k0, U, N, np.float32(1.0), x2d[:, k0:].ctypes.data, K,
                 dz2d.ctypes.data, U, np.float32(0.0), grad_kernel[k0:].ctypes.data, U)
            if need_dx:
                gemm(101, 111, 112, N, k1 - k0, U, np.float32(1.0), dz2d.ctypes.data, U,
                     kernel[k0:].ctypes.data, U, np.float32(0.0), dx2d[:, k0:].ctypes.data, K)
        if grad_bias.shape[0] > 0:
            u0 = t * U // tasks
            u1 = (t + 1) * U // tasks
            gb = grad_bias[u0:u1]
            dzb = dz2d[:, u0:u1]
            gb[:] = 0.0
            for r in range(N):
                for u in range(u1 - u0):
                    gb[u] += dzb[r, u]


dense_backward_tasks = numba.njit(parallel=True, nogil=True, cache=True, fastmath=FAST)(_dense_backward_tasks)


@numba.njit(nogil=True, cache=True, fastmath=FAST)
def dense_forward_few_rows(x2d, kernel, bias, z2d, relu):
    """z2d = [relu](x2d @ kernel + bias) for a few rows, on the calling thread: per row,
    z = bias, then z += x[k] * kernel[k] for every NON-ZERO x[k] (kernel rows streamed,
    vectorised over the units), then the relu.

    Why: one row is a matrix-vector product; sgemm with M = 1 is 4x slower than this
    (70 vs 15 us for 784x512), and skipping zero inputs skips whole kernel rows (a drawn
    digit is ~80 % background, a relu output about half zeros). Skipping assumes finite
    weights (0 * inf would be NaN), which training and set_weights guarantee.
    """
    N, K = x2d.shape
    U = kernel.shape[1]
    for n in range(N):
        for u in range(U):
            z2d[n, u] = bias[u] if bias.shape[0] > 0 else np.float32(0.0)
        for k in range(K):
            xk = x2d[n, k]
            if xk != 0.0:
                for u in range(U):
                    z2d[n, u] += xk * kernel[k, u]
        if relu:
            for u in range(U):
                if z2d[n, u] < 0.0:
                    z2d[n, u] = np.float32(0.0)


def _tasks(macs, serial):
    # the split is fixed for the process (numba's configured workers), never the live
    # thread count the ThreadGovernor changes during a run: sgemm's rounding may depend
    # on the block sizes, and two runs of the same recipe must give the same weights
    if serial or macs < _PARALLEL_MIN_MACS:
        return 1
    return FIXED_TASKS


def dense_forward(x2d, kernel, bias, z2d, relu=False, serial=False):
    """z2d (N, U) = [relu](x2d (N, K) @ kernel (K, U) + bias (U,) or None).

    serial: True = on the calling thread only; None = ``parallel.use_serial()``.
    """
    if serial is None:
        serial = parallel.use_serial()
    bias = NO_BIAS if bias is None else bias
    N, K = x2d.shape
    U = kernel.shape[1]
    if N <= _FEW_ROWS and U >= _FEW_ROWS_MIN_UNITS:
        dense_forward_few_rows(x2d, kernel, bias, z2d, relu)
        return z2d
    tasks = 1 if N <= _FEW_ROWS else _tasks(N * K * U, serial)
    blas.ensure_single_threaded()
    if blas.SGEMM is None or tasks == 1:
        np.matmul(x2d, kernel, out=z2d)
        if bias.shape[0]:
            z2d += bias
        if relu:
            np.maximum(z2d, np.float32(0.0), out=z2d)
    else:
        dense_forward_tasks(blas.SGEMM, x2d, kernel, bias, z2d, relu, tasks, N >= 8 * tasks)
    return z2d


def dense_backward(x2d, dz2d, kernel, grad_kernel, grad_bias, dx2d, serial=False):
    """grad_kernel (K, U) = x2d.T @ dz2d; grad_bias (U,) = dz2d summed over rows (skipped
    when None); dx2d (N, K) = dz2d @ kernel.T unless dx2d is None."""
    if serial is None:
        serial = parallel.use_serial()
    N, K = x2d.shape
    U = dz2d.shape[1]
    tasks = _tasks(N * K * U * (2 if dx2d is not None else 1), serial)
    blas.ensure_single_threaded()
    if blas.SGEMM is None or tasks == 1:
        np.matmul(x2d.T, dz2d, out=grad_kernel)
        if grad_bias is not None:
            np.sum(dz2d, axis=0, out=grad_bias)
        if dx2d is not None:
            np.matmul(dz2d, kernel.T, out=dx2d)
        return
    need_dx = dx2d is not None
    dx = dx2d if need_dx else np.empty((0, K), np.float32)
    gb = NO_BIAS if grad_bias is None else grad_bias
    dense_backward_tasks(blas.SGEMM, x2d, dz2d, kernel, grad_kernel, gb, dx, need_dx, tasks)
