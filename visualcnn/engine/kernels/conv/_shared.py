"""Pieces every conv strategy uses: partial-sum reduction, bias + relu rows, bias gradient,
relu backward, and the per-call scratch getter.

Serial/parallel is decided one way for all conv kernels: every kernel whose outer loop
is a ``prange`` is compiled twice by ``twins`` (``name`` and ``name_serial``), and the plan
picks one with ``pick(pair, serial)``. A serial twin runs its prange as a plain loop on
the calling thread (``numba.get_thread_id()`` is 0 there, so per-thread scratch slot 0).
"""

import numba
import numpy as np
from numba import njit, prange

from visualcnn.engine import parallel as _par
from visualcnn.engine.kernels._common import FAST, twins

__all__ = ["reduce_partials", "bias_act_rows", "bias_act_rows_serial", "bias_grad", "relu_backward"]


def resolve(serial):
    """serial=None means ``parallel.use_serial()`` (inference from a second thread while
    training runs, or the workqueue layer); True / False are kept."""
    return _par.use_serial() if serial is None else bool(serial)


def pick(pair, serial):
    """The serial or the parallel twin of a ``twins`` pair (serial as in ``resolve``)."""
    return pair[1] if resolve(serial) else pair[0]


def scratch_slots():
    """Per-thread scratch slots: one per numba worker, indexed by numba.get_thread_id()."""
    return numba.config.NUMBA_NUM_THREADS


def getter(ws):
    """ws.get, or a fresh allocation per call when the caller keeps no Workspace."""
    if ws is not None:
        return ws.get
    return lambda name, shape, dtype=np.float32: np.empty(shape, dtype)


def threads_of(ws):
    return ws.threads if ws is not None else _par.get_num_threads()


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def reduce_partials(partial, out):
    """out[j] = sum_t partial[t, j]; partial (T, J), out (J,). prange over j (training
    only, so no serial twin)."""
    T = partial.shape[0]
    J = partial.shape[1]
    for j in prange(J):
        s = np.float32(0.0)
        for t in range(T):
            s += partial[t, j]
        out[j] = s


@njit(nogil=True, cache=True, fastmath=FAST)
def bias_act_row(y, bias, relu, i):
    CO = y.shape[1]
    row = y[i]
    if bias.shape[0] > 0:
        for co in range(CO):
            row[co] += bias[co]
    if relu:
        for co in range(CO):
            if row[co] < 0.0:
                row[co] = 0.0


def bias_act_rows(y, bias, relu):
    """In place: y (M, CO) += bias (CO,) (skipped if bias is empty), then relu if asked.
    prange over 256-row blocks."""
    M = y.shape[0]
    nb = (M + 255) // 256
    for b in prange(nb):
        for i in range(b * 256, min(M, b * 256 + 256)):
            bias_act_row(y, bias, relu, i)


BIAS_ACT_ROWS = twins(bias_act_rows, fastmath=FAST)
bias_act_rows, bias_act_rows_serial = BIAS_ACT_ROWS


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def _bias_grad_partials(dy2d, partial):
    T = partial.shape[0]
    M = dy2d.shape[0]
    CO = dy2d.shape[1]
    for t in prange(T):
        p = partial[t]
        p[:] = 0.0
        for i in range((M * t) // T, (M * (t + 1)) // T):
            for co in range(CO):
                p[co] += dy2d[i, co]


def bias_grad(dy2d, grad_bias, partial):
    """grad_bias (CO,) = dy2d (M, CO) summed over rows; partial (T, CO) scratch
    (prange over T row chunks, then a reduction)."""
    _bias_grad_partials(dy2d, partial)
    reduce_partials(partial, grad_bias)


BIAS_GRAD_KERNELS = (_bias_grad_partials, reduce_partials)


@njit(parallel=True, nogil=True, cache=True, fastmath=FAST)
def relu_backward(y, dy, dx):
    """dx = dy * (y > 0) elementwise on flat arrays (dx may alias dy). prange over
    4096-element blocks."""
    M = y.shape[0]
    nb = (M + 4095) // 4096
    for b in prange(nb):
        for i in range(b * 4096, min(M, b * 4096 + 4096)):
            dx[i] = dy[i] if y[i] > 0.0 else np.float32(0.0)
