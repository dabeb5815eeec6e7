"""The engine's own OpenBLAS ``cblas_sgemm``, callable from inside numba kernels.

Why sgemm inside the kernels: a training step of the seed CNN spends most of its FLOPs in
three GEMMs per conv layer. Calling ``np.matmul`` from python runs either OpenBLAS's thread
pool (which fights numba's workers for the 2 cores) or one thread (half the machine idle).
Instead the conv kernels open ONE numba parallel region, and every worker calls
single-threaded sgemm on its own chunk of images, between its own im2col / col2im / bias /
relu work, so the data a worker produces is consumed by the same core while it is still in
its cache. The ctypes function is passed to the njit kernels as an ordinary argument (numba
calls it through the pointer it receives at run time), so the kernels stay ``cache=True``.

Why our own copy of OpenBLAS (the ``scipy-openblas32`` package, made for handing OpenBLAS to
Python packages) rather than numpy's: numpy's library is shared with the whole process and
follows ``OPENBLAS_CORETYPE``, which some systems set to work around older OpenBLAS builds
that do not know a newer processor. With ``OPENBLAS_CORETYPE=Haswell`` on this AVX-512
machine numpy's sgemm runs its AVX2 kernels, and its peak falls from ~480 to ~260 GFLOP/s;
the wide network's training step went from 26 to 35-41 ms on it (PyTorch, with its own BLAS,
is unaffected). Our copy is loaded on its own with that variable hidden, so OpenBLAS detects
the processor itself (it checks that the operating system saves the AVX-512 registers before
it picks an AVX-512 kernel). ``VISUALCNN_BLAS_CORETYPE`` forces a core for our copy, as ``OPENBLAS_CORETYPE`` does
for numpy's; numpy keeps the setting it was given. The copy is loaded with one thread: the
engine parallelises above BLAS, so it never starts a thread pool of its own.

``SGEMM`` is None when no sgemm symbol is found (another BLAS, another numpy build) or
``VISUALCNN_NO_KERNEL_BLAS`` is set; the drivers then fall back to ``np.matmul``. Without our
copy (an install without ``scipy-openblas32``) numpy's OpenBLAS is used, as before.
``CORE`` names the OpenBLAS core the kernels run on, for ``visualcnn bench``.
"""

import contextlib
import ctypes
import glob
import importlib.util
import os

import numpy as np

__all__ = ["SGEMM", "CORE", "SOURCE", "ROW_MAJOR", "NO_TRANS", "TRANS", "ensure_single_threaded",
           "available", "describe", "set_shared_blas_threads"]

ROW_MAJOR = 101
NO_TRANS = 111
TRANS = 112

_SYMBOLS = (  # (sgemm, set_num_threads, get_corename, 64-bit integers?)
    ("scipy_cblas_sgemm64_", "scipy_openblas_set_num_threads64_", "scipy_openblas_get_corename64_", True),
    ("cblas_sgemm64_", "openblas_set_num_threads64_", "openblas_get_corename64_", True),
    ("scipy_cblas_sgemm", "scipy_openblas_set_num_threads", "scipy_openblas_get_corename", False),
    ("cblas_sgemm", "openblas_set_num_threads", "openblas_get_corename", False),
)
_THREAD_SETTERS = tuple(names[1] for names in _SYMBOLS)


def _own_library_path():
    """scipy-openblas32's library, found without importing the package: its ``__init__``
    may load the library, and it must be loaded under ``_own_environment``."""
    try:
        spec = importlib.util.find_spec("scipy_openblas32")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for pattern in ("libscipy_openblas*.so*", "libscipy_openblas*.dylib", "*scipy_openblas*.dll"):
            found = sorted(glob.glob(os.path.join(folder, "lib", pattern)))
            if found:
                return found[0]
    return None


@contextlib.contextmanager
def _own_environment():
    """OpenBLAS reads these once, when it is loaded: hide numpy's core pin (or put ours in
    its place) and start with one thread. Only what differs is changed (usually nothing
    under ``visualcnn train``, which starts with one BLAS thread), and every change is
    undone on the way out: the process environment is shared with every other thread."""
    wanted = {"OPENBLAS_CORETYPE": os.environ.get("VISUALCNN_BLAS_CORETYPE") or None,
              "OPENBLAS_NUM_THREADS": "1"}
    saved = {key: os.environ.get(key) for key in wanted if os.environ.get(key) != wanted[key]}
    try:
        for key in saved:
            _set_variable(key, wanted[key])
        yield
    finally:
        for key, value in saved.items():
            _set_variable(key, value)


def _set_variable(key, value):
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _shared_blas_paths():
    """The OpenBLAS libraries loaded in the process other than ours (from its memory map:
    numpy's, scipy's), then numpy's wheel copy."""
    import numpy.linalg  # noqa: F401  (makes sure numpy's BLAS is loaded)

    own = os.path.realpath(_OWN_PATH) if _OWN_PATH else None
    paths = []
    try:
        with open("/proc/self/maps", encoding="utf-8") as handle:
            for line in handle:
                path = line.split()[-1]
                if ("blas" in path.lower() and path.startswith("/") and path not in paths
                        and os.path.realpath(path) != own):
                    paths.append(path)
    except OSError:
        pass
    libs_dir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs_dir, "*openblas*"))):
        if path not in paths:
            paths.append(path)
    return paths


def _open(path):
    try:
        return ctypes.CDLL(path)
    except OSError:
        return None


def _bind(lib):
    """(sgemm, set_num_threads, core name) from an OpenBLAS library, or None."""
    for gemm_name, threads_name, core_name, ilp64 in _SYMBOLS:
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
        corename = getattr(lib, core_name, None)
        core = None
        if corename is not None:
            corename.restype = ctypes.c_char_p
            core = (corename() or b"").decode("ascii", "replace") or None
        return fn, setter, core
    return None


def _find():
    """(sgemm, set_num_threads, core, where it comes from): ours first, then numpy's."""
    if os.environ.get("VISUALCNN_NO_KERNEL_BLAS"):
        return None, None, None, None
    if _OWN_PATH is not None:
        with _own_environment():
            lib = _open(_OWN_PATH)
        bound = None if lib is None else _bind(lib)
        if bound is not None:
            return (*bound, "scipy-openblas32")
    for path in _shared_blas_paths():
        lib = _open(path)
        bound = None if lib is None else _bind(lib)
        if bound is not None:
            return (*bound, "numpy's OpenBLAS")
    return None, None, None, None


_OWN_PATH = _own_library_path()  # looked up once: every training start lists the others
SGEMM, _SET_THREADS, CORE, SOURCE = _find()


def _check_requested_core():
    """OpenBLAS ignores a core name it does not know (or one this processor cannot run) and
    picks its own without a word: say so once, naming what it chose."""
    wanted = os.environ.get("VISUALCNN_BLAS_CORETYPE")
    if wanted and SOURCE == "scipy-openblas32" and CORE and CORE.lower() != wanted.strip().lower():
        import warnings

        warnings.warn(f"VISUALCNN_BLAS_CORETYPE={wanted!r} was not used: OpenBLAS does not know that core "
                      f"or this processor cannot run it, and it chose {CORE}. Use a name such as Haswell or "
                      "SkylakeX, or unset the variable.", RuntimeWarning, stacklevel=2)


_check_requested_core()
_single = [False]


def available():
    return SGEMM is not None


def describe() -> str:
    """Which sgemm the kernels call, e.g. "OpenBLAS SkylakeX (scipy-openblas32)"."""
    if SGEMM is None:
        return "np.matmul (no sgemm symbol)"
    return f"OpenBLAS {CORE or 'core unknown'} ({SOURCE})"


def ensure_single_threaded():
    """Once per process, before the kernels first run: our OpenBLAS, and every other one
    loaded in the process (``set_shared_blas_threads``), on one thread. Our parallel
    regions call sgemm from several numba workers at the same time, each on its own
    chunk; numpy's pool, left on two threads, woke for each small ``np.matmul`` outside
    the kernels and kept a thread spinning beside the workers (the seed CNN predicted
    21,800 instead of 49,900 images/s before its first training step)."""
    if not _single[0]:
        if _SET_THREADS is not None:
            _SET_THREADS(1)
        set_shared_blas_threads(1)
        _single[0] = True


def set_shared_blas_threads(n: int) -> bool:
    """Set the thread count of every other OpenBLAS loaded in the process (numpy's, and
    scipy's when it is loaded), for the ``np.matmul`` calls outside the kernels; False when
    there is none. The engine's copy is always single-threaded. All of them, not the first
    found: a small product on numpy's pool in every training step kept its thread spinning
    beside the numba workers (the wide network's step 26 -> 44 ms) when only scipy's was set."""
    found = False
    for path in _shared_blas_paths():
        lib = _open(path)
        setter = None if lib is None else next(
            (getattr(lib, name) for name in _THREAD_SETTERS if hasattr(lib, name)), None)
        if setter is not None:
            setter.argtypes = [ctypes.c_int]
            setter.restype = None
            setter(int(n))
            found = True
    return found
