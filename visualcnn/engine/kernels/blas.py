"""numpy's own OpenBLAS ``cblas_sgemm``, callable from inside numba kernels.

Why: a training step of the seed CNN spends most of its FLOPs in three GEMMs per conv
layer. Calling ``np.matmul`` from python runs either OpenBLAS's thread pool (which fights
numba's workers for the 2 cores) or one thread (half the machine idle). Instead the conv
kernels open ONE numba parallel region, and every worker calls single-threaded sgemm on
its own chunk of images, between its own im2col / col2im / bias / relu work, so the data
a worker produces is consumed by the same core while it is still in its cache.

The ctypes function is passed to the njit kernels as an ordinary argument (numba calls it
through the pointer it receives at run time), so the kernels stay ``cache=True``.

``SGEMM`` is None when the symbol cannot be found (another BLAS, another numpy build);
the drivers then fall back to ``np.matmul``. OpenBLAS is switched to one thread the first
time the kernels use it (``ensure_single_threaded``): the engine parallelises above BLAS.
"""

import ctypes
import glob
import os

import numpy as np

__all__ = ["SGEMM", "ROW_MAJOR", "NO_TRANS", "TRANS", "ensure_single_threaded", "available"]

ROW_MAJOR = 101
NO_TRANS = 111
TRANS = 112

_SYMBOLS = (  # (sgemm, set_num_threads, 64-bit integers?)
    ("scipy_cblas_sgemm64_", "scipy_openblas_set_num_threads64_", True),
    ("cblas_sgemm64_", "openblas_set_num_threads64_", True),
    ("scipy_cblas_sgemm", "scipy_openblas_set_num_threads", False),
    ("cblas_sgemm", "openblas_set_num_threads", False),
)


def _candidate_libraries():
    paths = []
    try:  # the BLAS numpy has actually loaded
        with open("/proc/self/maps", encoding="utf-8") as handle:
            for line in handle:
                path = line.split()[-1]
                if "blas" in path.lower() and path.startswith("/") and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    libs_dir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs_dir, "*openblas*"))):
        if path not in paths:
            paths.append(path)
    return paths


def _find():
    if os.environ.get("VISUALCNN_NO_KERNEL_BLAS"):
        return None, None
    import numpy.linalg  # noqa: F401  (makes sure numpy's BLAS is loaded)

    for path in _candidate_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for gemm_name, threads_name, ilp64 in _SYMBOLS:
            fn = getattr(lib, gemm_name, None)
            if fn is None:
                continue
            i = ctypes.c_int64 if ilp64 else ctypes.c_int
            e, p, f = ctypes.c_int, ctypes.c_void_p, ctypes.c_float
            fn.argtypes = [e, e, e, i, i, i, f, p, i, p, i, f, p, i]
            fn.restype = None
            setter = getattr(lib, threads_name, None)
            if setter is not None:
                setter.argtypes = [ctypes.c_int]
                setter.restype = None
            return fn, setter
    return None, None


SGEMM, _SET_THREADS = _find()
_single = [False]


def available():
    return SGEMM is not None


def ensure_single_threaded():
    """Put OpenBLAS in single-thread mode (once): our parallel regions call sgemm from
    several numba workers at the same time, each on its own chunk."""
    if not _single[0]:
        if _SET_THREADS is not None:
            _SET_THREADS(1)
        _single[0] = True
