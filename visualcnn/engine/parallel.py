"""Numba threading-layer policy for the engine.

Imported (via ``visualcnn.engine.kernels``) before any parallel kernel is compiled or
launched. Training runs parallel kernels in a worker thread while the GUI thread may
call ``predict``; numba's default ``workqueue`` layer aborts the whole process when two
threads launch parallel regions concurrently. So, at import time:

1. pick the first thread-safe layer that loads here: ``tbb``, then ``omp``;
2. only if neither loads, accept ``workqueue`` and set ``PARALLEL_IS_THREADSAFE = False``
   so that callers route inference through the serial kernels (``use_serial()``).

An explicit ``NUMBA_THREADING_LAYER`` of tbb / omp in the environment is respected;
``VISUALCNN_THREADING_LAYER`` (tbb / omp / workqueue) overrides everything, so the
workqueue fallback can be tested.

Convention for callers of the python drivers in ``kernels``: training passes
``serial=False``; inference passes ``serial=None`` (auto), which means "serial when
``use_serial()``": always under workqueue, inside ``serial_inference()``, or after
``force_serial(True)``.

``set_num_threads`` mirrors numba's: the setting is *per calling thread* (numba keeps it
thread-local), so a training worker must call it itself; the value is also remembered
as the default that ``apply_thread_settings()`` applies in a new thread.
"""

import contextlib
import os
import sys
import threading

# The OpenBLAS thread timeout is set in visualcnn/__init__.py, which always runs first.
from .. import OPENBLAS_ENV  # noqa: E402,F401  (re-exported for the benchmarks)

import numba  # noqa: E402
from numba.core import config as _config  # noqa: E402

__all__ = [
    "OPENBLAS_ENV",
    "THREADING_LAYER",
    "PARALLEL_IS_THREADSAFE",
    "set_num_threads",
    "get_num_threads",
    "apply_thread_settings",
    "use_serial",
    "serial_inference",
    "force_serial",
]

_THREADSAFE_LAYERS = ("tbb", "omp")


def _layer_loads(name):
    """True when numba could load threading layer ``name`` in this process."""
    try:
        if name == "tbb":
            from numba.np.ufunc import parallel as _npp

            _npp._check_tbb_version_compatible()
            from numba.np.ufunc import tbbpool  # noqa: F401
        elif name == "omp":
            from numba.np.ufunc import omppool  # noqa: F401
        else:
            return False
    except Exception:  # ImportError, OSError from a missing shared library, ...
        return False
    return True


def _choose_layer():
    forced = os.environ.get("VISUALCNN_THREADING_LAYER", "").strip().lower()
    if forced == "workqueue" or (forced in _THREADSAFE_LAYERS and _layer_loads(forced)):
        return forced
    requested = os.environ.get("NUMBA_THREADING_LAYER", "").strip().lower()
    if requested in _THREADSAFE_LAYERS and _layer_loads(requested):
        return requested
    for name in _THREADSAFE_LAYERS:
        if _layer_loads(name):
            return name
    return "workqueue"


def _configure():
    from numba.np.ufunc import parallel as _npp

    if getattr(_npp, "_is_initialized", False):
        # Someone launched a parallel region before us: the layer is fixed already.
        return numba.threading_layer()
    _config.THREADING_LAYER = _choose_layer()
    try:
        # Launch now so the decision is final and visible (numba otherwise decides
        # lazily, at the first parallel kernel call).
        _npp._launch_threads()
        return numba.threading_layer()
    except Exception:
        return _config.THREADING_LAYER


THREADING_LAYER = _configure()
PARALLEL_IS_THREADSAFE = THREADING_LAYER in _THREADSAFE_LAYERS

_state = threading.local()
_default_num_threads = [numba.config.NUMBA_NUM_THREADS]
_force_serial = [not PARALLEL_IS_THREADSAFE]


def set_num_threads(n):
    """Use ``n`` threads for parallel kernels launched from the calling thread.

    Also becomes the default applied by ``apply_thread_settings()`` in other threads.
    """
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"set_num_threads: n must be in 1..{numba.config.NUMBA_NUM_THREADS}, got {n}"
        )
    _default_num_threads[0] = n
    numba.set_num_threads(n)


def get_num_threads():
    """Number of threads parallel kernels launched from the calling thread will use."""
    return numba.get_num_threads()


def apply_thread_settings():
    """Call at the start of a worker thread to apply the last ``set_num_threads``."""
    numba.set_num_threads(_default_num_threads[0])


def force_serial(flag=True):
    """Globally route inference through the serial kernels (always on under workqueue)."""
    _force_serial[0] = bool(flag) or not PARALLEL_IS_THREADSAFE


def use_serial():
    """True when the calling thread should use the serial (parallel=False) kernels."""
    return _force_serial[0] or getattr(_state, "serial", 0) > 0


@contextlib.contextmanager
def serial_inference():
    """Context manager: kernels dispatched by the calling thread run serially.

    Meant for a single-image predict from the GUI thread while training runs: the
    serial kernels never touch the threading layer, so this is safe under any layer
    and avoids oversubscribing the cores the training thread is using.
    """
    _state.serial = getattr(_state, "serial", 0) + 1
    try:
        yield
    finally:
        _state.serial -= 1
