"""Numba threading-layer policy for the engine.

Imported (via ``visualcnn.engine.kernels``) before any parallel kernel is compiled or
launched. Training runs parallel kernels in a worker thread while the GUI thread may
call ``predict``; numba's default ``workqueue`` layer aborts the whole process when two
threads launch parallel regions concurrently. So, at import time:

1. pick the first thread-safe layer that loads here: ``tbb``, then ``omp``; the pip
   ``tbb`` wheel's libtbb.so.12 lives in <venv>/lib, outside the loader's search path, so
   it is preloaded from there first (``preload_tbb``), or numba would silently use omp;
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
    "OMP_ENV",
    "THREADING_LAYER",
    "preload_tbb",
    "PARALLEL_IS_THREADSAFE",
    "set_num_threads",
    "get_num_threads",
    "ThreadGovernor",
    "governor_active",
    "last_governor_choice",
    "apply_thread_settings",
    "use_serial",
    "serial_inference",
    "force_serial",
    "set_flush_denormals",
    "flush_denormals",
    "denormals_flushed",
]

_THREADSAFE_LAYERS = ("tbb", "omp")

# When OpenMP is the fallback: its idle workers spin for a while after every parallel
# region (GNU: GOMP_SPINCOUNT, Intel: KMP_BLOCKTIME 200 ms) waiting for the next one; on
# a 2-core machine shared with another busy process that spinning takes the CPU the
# other worker needs. Passive waiting costs a futex wake per region (microseconds
# against a step of milliseconds). An explicit setting in the environment wins.
OMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def _tbb_library_candidates():
    """Where pip's ``tbb`` wheel puts libtbb.so.12: <prefix>/lib of the environment
    (a venv's, and the base interpreter's). The dynamic loader does not look there, so
    numba's tbbpool extension fails to load and numba silently falls back to OpenMP."""
    import sys

    names = {"linux": ("libtbb.so.12",), "darwin": ("libtbb.12.dylib",)}.get(sys.platform, ())
    if sys.platform == "win32":
        names = ("tbb12.dll",)
    dirs = []
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        for sub in ("lib", "Library/bin", "Library/lib"):
            d = os.path.join(prefix, sub)
            if d not in dirs:
                dirs.append(d)
    return [os.path.join(d, n) for d in dirs for n in names]


_tbb_preloaded = []  # keeps the handle alive: unloading it would pull tbb from under numba


def preload_tbb():
    """Load the pip-installed libtbb with RTLD_GLOBAL, so that numba's tbbpool (which
    asks for it by soname) finds it already in the process. Returns the path loaded, or
    None when there is none or it does not load (numba then reports why itself)."""
    if _tbb_preloaded:
        return _tbb_preloaded[0][0]
    import ctypes

    for path in _tbb_library_candidates():
        if not os.path.isfile(path):
            continue
        try:
            handle = ctypes.CDLL(path, mode=getattr(os, "RTLD_GLOBAL", 0) | getattr(os, "RTLD_NOW", 0))
        except OSError:
            continue
        _tbb_preloaded.append((path, handle))
        return path
    return None


def _layer_loads(name):
    """True when numba could load threading layer ``name`` in this process."""
    try:
        if name == "tbb":
            preload_tbb()
            from numba.np.ufunc import parallel as _npp

            _npp._check_tbb_version_compatible()
            from numba.np.ufunc import tbbpool  # noqa: F401
        elif name == "omp":
            for key, value in OMP_ENV.items():  # read once, when the OpenMP runtime loads
                os.environ.setdefault(key, value)
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


_threads_chosen = [False]  # set_num_threads was called: the thread governor stands aside


def set_num_threads(n):
    """Use ``n`` threads for parallel kernels launched from the calling thread.

    Also becomes the default applied by ``apply_thread_settings()`` in other threads, and
    turns the adaptive choice during training (``ThreadGovernor``) off: an explicit
    number is used as given.
    """
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"set_num_threads: n must be in 1..{numba.config.NUMBA_NUM_THREADS}, got {n}"
        )
    _default_num_threads[0] = n
    _threads_chosen[0] = True
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


# --- thread count on a shared machine ------------------------------------------------

from .machine_load import other_programs  # noqa: E402

other_programs()  # the first load reading starts now, so the first run can already ask


def governor_active(max_threads: int | None = None) -> bool:
    """True when a ThreadGovernor made now chooses thread counts: no explicit
    ``set_num_threads``, more than one thread, VISUALCNN_ADAPTIVE_THREADS not 0."""
    return (not _threads_chosen[0] and int(max_threads or _default_num_threads[0]) > 1
            and os.environ.get("VISUALCNN_ADAPTIVE_THREADS", "1").strip() not in ("0", "false", "no"))


class ThreadGovernor:
    """Picks, while training runs, how many threads the calling thread's kernels use.

    Why: the parallel kernels split each step into one static chunk per thread and wait
    for the slowest at the end of every parallel region. When another busy process shares
    the cores, the operating system deschedules one worker for a whole time slice, the
    other waits, and 2 threads ran the seed CNN slower than 1 (measured 2,191 against
    3,825 images/s on 2 cores).

    First it asks how many cores other programs are using (``machine_load``, Linux's
    /proc/stat, a reading every 0.1 s or more): a thread count that does not fit in the
    cores left, with half a core to spare (``ROOM_SLACK``), is not run at all. Under one
    busy program on 2 cores that leaves one thread, chosen before the first step when the
    engine was imported a moment before, and no probe is paid; when the program stops,
    the larger counts come back and are measured.

    Among the counts that fit, it measures: every candidate (all threads, one fewer,
    half, one) runs ``probe_steps`` steps, interleaved, and the fastest per image (mean)
    is kept, with ties going to fewer threads (``_settle``); the probe ends after two
    steps each when one candidate is already 30 % faster than every other
    (``_decisive``). The choice is re-measured every ``recheck_every`` steps, twice as
    long after each re-check that confirmed it (up to ``MAX_BACKOFF`` times), and at once
    when steps become 30 % slower or faster than when it was made (load came or went).
    Without a load reading (macOS, Windows, a container showing the host's CPUs) the
    measuring alone decides; under one busy process its probe steps on two threads cost
    0.18 s of a 2.96 s run.

    Results do not depend on the choice: the kernels' per-thread partial sums are sized
    by the workspace (all cores), not by the live thread count.

    Inactive (always all threads, or the explicit setting) when ``set_num_threads`` was
    called (``--threads``), with one core, or with VISUALCNN_ADAPTIVE_THREADS=0.
    """

    def __init__(self, max_threads: int | None = None, probe_steps: int = 5, recheck_every: int = 300,
                 skip_steps: int = 3, enabled: bool | None = None, load=None):
        self.max_threads = int(max_threads or _default_num_threads[0])
        self.enabled = bool(governor_active(self.max_threads) if enabled is None else enabled)
        self.candidates = sorted({self.max_threads, self.max_threads - 1, self.max_threads // 2, 1} - {0},
                                 reverse=True)
        self.probe_steps = int(probe_steps)
        self.recheck_every = int(recheck_every)
        self.skip = int(skip_steps)  # first steps: page faults, caches, stray compiling
        self.threads = self.max_threads
        self.choices = []  # (step, threads) each time a choice was made, for tests/diagnostics
        self._steps = 0
        self._probe = None  # list of candidates still to measure, or None when settled
        self._samples = {}
        self._since_choice = 0
        self._settled_rate = None  # mean seconds per image of the choice when it was made
        self._recent = []
        self._interval = self.recheck_every  # steps until the next periodic re-check
        self._periodic = False  # the probe under way is a periodic re-check
        # The cores other programs use (machine_load.OtherPrograms, or a stand-in with its
        # cores_in_use() and cpus); the counts that fit beside them.
        self._load = load if load is not None else (other_programs() if self.enabled else None)
        self._fitting = tuple(self.candidates)
        if self.enabled:
            self._start_probe()
            self._check_room()

    def settle_steps(self) -> int:
        """Steps from the start of a run until the first choice is made, at most (a
        decisive probe ends sooner)."""
        return self.skip + self.probe_steps * len(self.candidates)

    def _start_probe(self):
        if len(self._fitting) == 1:  # nothing to compare: the one count that fits
            self._choose(self._fitting[0], None)
            return
        # Interleaved (2, 1, 2, 1, ...), not in blocks: a load that changes during the
        # probe then weighs on every candidate alike.
        self._probe = [t for _ in range(self.probe_steps) for t in self._fitting]
        self._samples = {t: [] for t in self._fitting}
        self._use(self._probe[0])

    # A count fits when it is at most the cores other programs leave plus this much:
    # under one busy program on 2 cores (a reading of 0.7-1.1) two threads do not fit,
    # on a quiet machine (-0.2-0.1) or beside a light one they do.
    ROOM_SLACK = 0.5
    # A count that did not fit must fit by this much more to come back, so a reading
    # near the line does not switch back and forth.
    ROOM_HYSTERESIS = 0.2

    def _check_room(self) -> None:
        """Read the other programs' load (at most every 0.1 s); when it changes which
        counts fit, choose again among those that do."""
        others = self._load.cores_in_use() if self._load is not None else None
        if others is None:
            return
        room = self._load.cpus - others
        fitting = tuple(t for t in self.candidates
                        if t <= room + self.ROOM_SLACK - (0 if t in self._fitting else self.ROOM_HYSTERESIS))
        fitting = fitting or (self.candidates[-1],)
        if fitting != self._fitting:
            self._fitting = fitting
            self._periodic = False
            self._start_probe()

    def _use(self, n: int):
        self.threads = n
        numba.set_num_threads(n)

    def step_done(self, seconds: float, images: int) -> None:
        """Report one training step (wall seconds, images in it); may switch threads
        for the next step."""
        if not self.enabled or images <= 0 or seconds <= 0:
            return
        self._steps += 1
        if self._steps > self.skip:
            self._measured(seconds / images)
        # After the step is booked under the count it ran on: a change here starts anew.
        self._check_room()

    def _measured(self, per_image: float) -> None:
        if self._probe is not None:
            self._samples[self._probe.pop(0)].append(per_image)
            if self._probe and not self._decisive():
                self._use(self._probe[0])
            else:
                self._settle()
            return
        self._since_choice += 1
        self._recent.append(per_image)
        if len(self._recent) > 2 * self.probe_steps:
            self._recent.pop(0)
        changed = False
        if len(self._recent) >= 2 * self.probe_steps:
            now = _median(self._recent)
            if self._settled_rate is None:  # chosen by the load alone: its speed is now known
                self._settled_rate = now
            changed = now > self.CHANGE * self._settled_rate or now * self.CHANGE < self._settled_rate
        if changed or self._since_choice >= self._interval:
            self._periodic = not changed
            self._start_probe()

    # More threads must be this much faster per image to be chosen over fewer.
    MORE_THREADS_GAIN = 0.05
    # A probe ends early when one candidate is this many times faster than every other...
    DECISIVE = 1.3
    # ... after this many steps each.
    DECISIVE_AFTER = 2
    # Steps this many times slower or faster than the choice's mean: the load changed.
    CHANGE = 1.3
    # The periodic re-check's interval grows to at most this many times recheck_every.
    MAX_BACKOFF = 8

    def _decisive(self) -> bool:
        """Every candidate has DECISIVE_AFTER steps and the fastest (mean per image) is
        DECISIVE times faster than each of the others."""
        if any(len(v) < self.DECISIVE_AFTER for v in self._samples.values()):
            return False
        means = sorted(sum(v) / len(v) for v in self._samples.values())
        return all(m >= self.DECISIVE * means[0] for m in means[1:])

    def _settle(self):
        # The mean, not the median: under load the occasional step in which the system
        # took a worker away for a time slice is what makes more threads slow. Measured
        # with one busy process: 2 threads' steps had a median of 6.78 ms against 1
        # thread's 6.97, and a mean of 7.35; a median-based choice kept 2 threads for 300
        # steps in one of two traced runs (7,871 images/s, against 8,477 in the run that
        # chose 1).
        means = {t: sum(v) / len(v) for t, v in self._samples.items() if v}
        # Ties go to FEWER threads: more only when clearly (5 %) faster per image. Under
        # one competing busy process, 2 threads ran the seed CNN at the speed of 1 (6,496
        # against 6,429-6,542 images/s: the second worker's share of the cores is lost
        # waiting at the end of each parallel region), so a tie that went to 2 threads
        # gave 0.96-1.01x the 1-thread speed, and took a core the other program could
        # use. On a quiet machine 2 threads are 1.6-1.8x faster and always win.
        ordered = sorted(means)
        best = ordered[0]
        for t in ordered[1:]:
            if means[t] < (1.0 - self.MORE_THREADS_GAIN) * means[best]:
                best = t
        self._choose(best, means[best])

    def _choose(self, best: int, rate: float | None) -> None:
        confirmed = self._periodic and self.choices and self.choices[-1][1] == best
        self._interval = (min(2 * self._interval, self.MAX_BACKOFF * self.recheck_every) if confirmed
                          else self.recheck_every)
        self._periodic = False
        self._use(best)
        self.choices.append((self._steps, best))
        _last_choice[0] = best
        self._settled_rate = rate
        self._since_choice = 0
        self._recent = []
        self._probe = None

    def close(self) -> None:
        """Give the calling thread its default thread count back."""
        if self.enabled:
            numba.set_num_threads(_default_num_threads[0])


_last_choice = [None]


def last_governor_choice():
    """The thread count the last ThreadGovernor chose in this process (None: none yet)."""
    return _last_choice[0]


def _median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
