"""Compile options and small helpers shared by the kernel modules."""

import types

import numba
import numpy as np
from numba import njit

from visualcnn.engine import parallel as _parallel  # noqa: F401  (layer chosen first)

# fastmath without nnan/ninf: reductions may be re-associated (needed to vectorise
# them), but NaN/inf still propagate so a diverging model shows NaN loss honestly.
FAST = {"reassoc", "contract", "nsz", "arcp"}

NO_BIAS = np.zeros(0, dtype=np.float32)

# A computed flat index, written ``a[U(base + j)]`` where it is known to be >= 0: numba
# wraps a negative signed index around (a[-1] is the last element), and that check on
# every access stops LLVM from vectorising the loop; an unsigned index has none.
U = np.uint64


# Work splits that change rounding (partial sums, sgemm block sizes) are fixed for the
# process, never the live thread count (the ThreadGovernor changes that during a run),
# so a gradient is bit-identical whatever the number of threads running it:
# FIXED_TASKS blocks (numba's configured workers) where each block is one sgemm, and
# partial sums in at most REDUCTION_GROUPS groups, each summed in a fixed order (at
# least 8, so two to eight workers share the groups evenly).
FIXED_TASKS = numba.config.NUMBA_NUM_THREADS
REDUCTION_GROUPS = max(8, FIXED_TASKS)


def reduction_groups(n_items):
    """Partial-sum groups for ``n_items`` work items (chunks, images, rows): fixed by
    the work alone (see REDUCTION_GROUPS)."""
    return max(1, min(int(n_items), REDUCTION_GROUPS))


def num_chunks(n_items, threads):
    """How many per-thread partial-sum slots to use for ``n_items`` work items."""
    return max(1, min(n_items, threads))


def check_f32c(name, a):
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        raise TypeError(f"{name} must be a C-contiguous float32 array, got {a.dtype}"
                        f"{'' if a.flags.c_contiguous else ' (not C-contiguous)'}")


def _renamed(func, name, doc):
    code = func.__code__.replace(co_name=name, co_qualname=name)
    out = types.FunctionType(code, func.__globals__, name, func.__defaults__,
                             func.__closure__)
    out.__doc__ = doc
    return out


def twins(body, **options):
    """Compile ``body`` (a plain function whose outer loop is a ``prange``) twice.

    Returns ``(name, name_serial)`` with name = ``body.__name__``: the first is
    njit(parallel=True), its prange loop spread over the numba workers; the second is
    njit(parallel=False), where prange runs as a plain range on the calling thread and the
    threading layer is never touched (inference from a second thread). Both get
    nogil=True, cache=True and ``options`` (e.g. fastmath=FAST).

    Each twin is compiled from its own renamed copy of the function: numba's on-disk
    cache is keyed by qualname and line, not by the parallel flag, so two dispatchers of
    ONE function object would load each other's cached machine code.
    """
    name = body.__name__
    par = _renamed(body, name, body.__doc__)
    ser = _renamed(body, name + "_serial",
                   f"Serial twin of ``{name}`` (same loops, run on the calling thread).")
    return (njit(parallel=True, nogil=True, cache=True, **options)(par),
            njit(parallel=False, nogil=True, cache=True, **options)(ser))


@njit(nogil=True, cache=True, inline="always")
def gather_index(i, pad, k, d, s, n_out):
    """The output index o with o*s - pad + k*d == i (input i fed tap k of output o), or
    -1 when there is none in [0, n_out): the index step of every gather-form backward."""
    t = i + pad - k * d
    if t < 0 or t % s != 0:
        return -1
    o = t // s
    return o if o < n_out else -1


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def fill_bias(rows, bias):
    """rows (P, CO): every row = bias (CO,), or zeros when bias is empty."""
    if bias.shape[0] > 0:
        for p in range(rows.shape[0]):
            for co in range(rows.shape[1]):
                rows[p, co] = bias[co]
    else:
        rows[:, :] = 0.0


@njit(nogil=True, cache=True, fastmath=FAST, inline="always")
def relu_inplace(rows):
    """rows (P, CO) = max(rows, 0) in place."""
    for p in range(rows.shape[0]):
        for co in range(rows.shape[1]):
            if rows[p, co] < 0.0:
                rows[p, co] = 0.0
