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

Denormals: ``apply_thread_settings()`` (which the model calls when a thread starts
training) also switches the calling thread's x86 MXCSR to flush-to-zero /
denormals-are-zero, as TensorFlow does for its CPU threads. Without it, Adam's first
moments of units that stop receiving gradient (relu + dropout) decay by 0.9 per step
into the subnormal range, and every numpy operation on them takes a microcode assist:
measured on the seed CNN, the last 30 % of an MNIST epoch ran 15-20 % slower per step.
Values below 1.2e-38 become 0; nothing else changes. ``set_flush_denormals(False)`` (or
VISUALCNN_FLUSH_DENORMALS=0) turns it off; ``flush_denormals(flag)`` applies it to the
calling thread now.
"""

import contextlib
import os
import platform
import threading

import numba  # noqa: E402
from numba.core import config as _config  # noqa: E402
from numba.core import types as _types  # noqa: E402
from numba.extending import intrinsic as _intrinsic  # noqa: E402

# The OpenBLAS thread timeout is set in visualcnn/__init__.py, which always runs first.
from .. import OPENBLAS_ENV  # noqa: E402,F401  (re-exported for the benchmarks)

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
    "set_flush_denormals",
    "flush_denormals",
    "denormals_flushed",
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
    """Call at the start of a worker thread to apply the last ``set_num_threads`` and
    the denormal policy (``set_flush_denormals``) to it."""
    numba.set_num_threads(_default_num_threads[0])
    if _flush_default[0]:
        flush_denormals(True)


# --- denormals (x86 MXCSR: bit 15 flush-to-zero, bit 6 denormals-are-zero) -------------

_MXCSR_FTZ_DAZ = 0x8040
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
_flush_default = [os.environ.get("VISUALCNN_FLUSH_DENORMALS", "1").strip() not in ("0", "false", "no")]
def _ir_call(builder, name, ptr):
    from llvmlite import ir
    from numba.core import cgutils

    fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer()])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(ptr, ir.IntType(8).as_pointer())])


@_intrinsic
def _stmxcsr(typingctx):
    def codegen(context, builder, signature, args):
        from llvmlite import ir
        from numba.core import cgutils

        ptr = cgutils.alloca_once(builder, ir.IntType(32))
        _ir_call(builder, "llvm.x86.sse.stmxcsr", ptr)
        return builder.load(ptr)
    return _types.uint32(), codegen


@_intrinsic
def _ldmxcsr(typingctx, value):
    def codegen(context, builder, signature, args):
        from llvmlite import ir
        from numba.core import cgutils

        ptr = cgutils.alloca_once(builder, ir.IntType(32))
        builder.store(args[0], ptr)
        _ir_call(builder, "llvm.x86.sse.ldmxcsr", ptr)
        return context.get_dummy_value()
    return _types.void(_types.uint32), codegen


@numba.njit(nogil=True, cache=True)
def _get_mxcsr():
    return _stmxcsr()


@numba.njit(nogil=True, cache=True)
def _set_mxcsr(value):
    _ldmxcsr(value)


def _mxcsr_functions():
    """(get, set) of the calling thread's MXCSR (x86 only; compiled on first use)."""
    return _get_mxcsr, _set_mxcsr


def set_flush_denormals(flag=True):
    """Whether ``apply_thread_settings()`` flushes denormals in the threads it sets up."""
    _flush_default[0] = bool(flag)


def flush_denormals(flag=True):
    """Flush-to-zero / denormals-are-zero on (or off) in the calling thread now.

    Returns False where it is not supported (not x86), True otherwise."""
    if not _X86:
        return False
    get, put = _mxcsr_functions()
    import numpy as np

    csr = int(get())
    csr = (csr | _MXCSR_FTZ_DAZ) if flag else (csr & ~_MXCSR_FTZ_DAZ)
    put(np.uint32(csr & 0xFFFFFFFF))
    return True


def denormals_flushed():
    """True when the calling thread flushes denormals (FTZ and DAZ both set)."""
    if not _X86:
        return False
    return (int(_mxcsr_functions()[0]()) & _MXCSR_FTZ_DAZ) == _MXCSR_FTZ_DAZ


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
