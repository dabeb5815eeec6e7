"""Compile, before it is needed, every numba kernel a model will call.

With an empty compile cache (a fresh install) the first training step of the seed CNN
used to spend 15-20 s compiling two dozen kernels while the window showed "Starting..."
at 0 %. ``warm_up(model)`` does that work ahead of time (the window runs it in a
background thread as soon as it opens or a model is loaded; ``visualcnn train`` before
its first step), reports progress per kernel, loads what numba's on-disk cache already
has, and compiles the rest in parallel processes (``_shared_compile``).

How the kernels are found, without a list to keep in step with the layers: a *dry run*.
One training step, a batch-1 predict, the feature maps and the saliency of a throw-away
copy of the model run in the calling thread while numba's "compile for these
arguments" hook (``Dispatcher._compile_for_args``, called only when no compiled version
matches) is intercepted for that thread alone: instead of compiling, it records the
(kernel, argument types) pair and, instead of running it, fills its arrays with zeros.
Kernels write into preallocated outputs, so the copy then runs on with zeros (finite
loss, zero gradients, every python-side check passing) and meets every kernel. The
recorded pairs, in the order the step needs them (training first), are what
``kernels_needed`` returns; ``warm_up`` then compiles each one with
``dispatcher.compile(signature)``, which loads it from the on-disk cache when it is
there (fast) and compiles it otherwise.

Other threads are unaffected: the hook does its normal work unless the calling thread
is inside a dry run. Numba's compiler lock serialises compiling within a process, so a
training thread that needs a kernel the warm-up is compiling simply waits for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["KernelUse", "kernels_needed", "warm_up", "compiled", "default_jobs", "preparing_line", "WarmUpCancelled"]

_tls = threading.local()
_lock = threading.Lock()
_DRY_ROUNDS = 4
_installed = [False]
# One warm-up at a time in a process: a second one (the window re-warms after an edit)
# waits for the first to see its cancellation at the next kernel, so two dry runs never
# interleave their hooks and compiles.
_run_lock = threading.Lock()


class WarmUpCancelled(Exception):
    """Raised inside the dry run when ``cancelled()`` turns true (caught by warm_up)."""


@dataclass(frozen=True)
class KernelUse:
    """One compiled specialisation: a numba dispatcher and the argument types it is called with."""

    dispatcher: object
    signature: tuple

    @property
    def name(self) -> str:
        return getattr(self.dispatcher, "__name__", repr(self.dispatcher))

    def is_compiled(self) -> bool:
        return self.signature in self.dispatcher.overloads

    def compile(self) -> None:
        self.dispatcher.compile(self.signature)

    def load_cached(self) -> bool:
        """Load this specialisation from numba's on-disk cache only (never compile);
        True when it is now compiled. The same steps as Dispatcher.compile's cache hit."""
        from numba.core.compiler_lock import global_compiler_lock

        d = self.dispatcher
        cache = getattr(d, "_cache", None)
        if cache is None:
            return self.is_compiled()
        with global_compiler_lock:
            if self.is_compiled():
                return True
            try:
                cres = cache.load_overload(self.signature, d.targetctx)
            except Exception:
                return False
            if cres is None:
                return False
            if not cres.objectmode:
                d.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
            d.add_overload(cres)
        return self.is_compiled()

    def __str__(self) -> str:
        return f"{self.name}({', '.join(str(t) for t in self.signature)})"


def _skip(*args, **kwargs):
    """Stands in for a kernel in the dry run: its arrays become zeros instead of what the
    kernel would write, so the copy's loss and gradients stay finite (a NaN from an
    uninitialised buffer would stop the step at the divergence check, before backward)."""
    for a in args:
        if isinstance(a, np.ndarray) and a.size and a.flags.writeable:
            a.fill(0)
    return None


def _install_hook() -> None:
    """Wrap Dispatcher._compile_for_args once; a no-op wrapper outside dry runs."""
    with _lock:
        if _installed[0]:
            return
        from numba.core.dispatcher import Dispatcher

        original = Dispatcher._compile_for_args

        def _compile_for_args(self, *args, **kws):
            record = getattr(_tls, "record", None)
            if record is None:
                return original(self, *args, **kws)
            signature = tuple(self.typeof_pyval(a) for a in args)
            record(self, signature)
            return _skip  # numba calls the returned function with the arguments

        Dispatcher._compile_for_args = _compile_for_args
        _installed[0] = True


def _training_batch_size(model) -> int:
    try:
        config = model.training_config() if model.optimizer is not None and model.loss is not None else None
    except Exception:
        config = None
    return int(getattr(config, "batch_size", None) or 64)


def _session(model, batch_size: int | None, window: bool = True):
    """What a session does with a model, as separate steps: a training step and a
    test-set batch, then (``window``) the window's inference calls: batch-1 predict,
    serial predict (the Draw tab while training runs), feature maps, saliency. Runs on
    a copy: the dry run overwrites its arrays with zeros."""
    from .benchmark import _synthetic, clone_for_benchmark
    from .training import train

    copy = clone_for_benchmark(model)
    n = batch_size or _training_batch_size(model)
    x, y = _synthetic(copy, n)
    steps = [
        lambda: _one_step(train, copy, x, y, n),
        lambda: copy.predict(x, batch_size=n),
    ]
    if window:
        steps += [
            lambda: copy.predict(x[:1], batch_size=1),
            lambda: copy.predict(x[:1], batch_size=1, serial=True),
            lambda: copy.activations(x[:1]),
            lambda: copy.input_gradients(x[:1], 0),
        ]
    return steps


def _one_step(train, model, x, y, n):
    run = train(model, x, y, batch_size=n, epochs=1, shuffle=False)
    try:
        for _ in run:
            pass
    finally:
        run.close()


def kernels_needed(model, batch_size: int | None = None, cancelled: Callable[[], bool] | None = None,
                   window: bool = True) -> list:
    """The kernels (``KernelUse``) a training session of ``model`` needs that are not yet
    compiled in this process, in the order training meets them.

    ``model`` is not touched (the dry run works on a fresh copy). Kernels already
    compiled in this process are not listed, except the few the dry run itself had to
    compile because python code reads their result (they are listed as compiled).
    ``window=False``: only what training and evaluating need (the command line), not
    the window's single-image, serial and saliency calls.
    """
    _install_hook()
    cancelled = cancelled or (lambda: False)
    found: dict = {}
    order: list = []

    def record(dispatcher, signature):
        key = (id(dispatcher), signature)
        if key not in found:
            found[key] = KernelUse(dispatcher, signature)
            order.append(found[key])

    steps = _session(model, batch_size, window)
    try:
        for step in steps:
            # A kernel whose result the python side reads (e.g. the MXCSR reader behind
            # the denormal setting) makes a step fail on the skipped call's None: compile
            # the kernel met last for real and run the step again. A step that still
            # fails is left to the real run to report (its kernels so far are listed).
            for _ in range(_DRY_ROUNDS):
                if cancelled():
                    raise WarmUpCancelled()
                seen = len(order)
                _tls.record = record
                try:
                    with np.errstate(all="ignore"):
                        step()
                    break
                except Exception:
                    _tls.record = None
                    if len(order) == seen or order[-1].is_compiled():
                        break
                    order[-1].compile()
                finally:
                    _tls.record = None
    finally:
        _tls.record = None
    return order


# The dry run trains one step of a copy at the training batch size. A model that needs a
# large share of the machine would have that copy beside the real run (the window re-warms
# after every edit); such a model trains far longer than it compiles, so it compiles as it
# goes instead.
DRY_RUN_SHARE = 0.25


def dry_run_too_big(model, batch_size: int | None = None) -> bool:
    """True when the dry run's copy would take more than DRY_RUN_SHARE of the free memory."""
    from .memory import available_memory_bytes, estimate_memory

    try:
        n = batch_size or _training_batch_size(model)
        need = estimate_memory(model.checked_report(), n).training_peak_bytes
    except Exception:
        return False  # a model the engine cannot run: the dry run finds nothing to compile either
    return need > DRY_RUN_SHARE * available_memory_bytes()


def preparing_line(done: int, total: int) -> str:
    """The one line shown while a first run waits for kernels (CLI and window alike)."""
    return f"Preparing the engine, first run only: {done} of {total} kernels"


def warm_up(model, progress: Callable[[int, int], None] | None = None,
            cancelled: Callable[[], bool] | None = None, batch_size: int | None = None,
            jobs: int | None = None, window: bool = True) -> None:
    """Compile (or load from the on-disk cache) every kernel ``model`` will use.

    ``progress(done, total)`` is called once with (0, total) and after every kernel;
    ``cancelled()`` is checked between kernels, and stops the work when it returns True.
    Safe to run in a background thread while other threads train or predict.

    ``jobs``: processes compiling at once (default: the cores this process may use, at
    most 4). Numba compiles one kernel at a time per process, so the others are compiled
    by helper processes (``python -m visualcnn.engine.warmup``) into the on-disk cache,
    from which this process then loads them (``_shared_compile``). ``jobs=1``: all here.
    """
    cancelled = cancelled or (lambda: False)
    with _run_lock:
        _warm_up_locked(model, progress, cancelled, batch_size, jobs, window)


def _warm_up_locked(model, progress, cancelled, batch_size, jobs, window) -> None:
    if cancelled() or dry_run_too_big(model, batch_size):
        return
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    # On a fresh install the helpers start now, so their start-up (importing numba and the
    # engine, their own dry run: about 2 s) overlaps this process's dry run instead of
    # following it. Measured, `visualcnn train seed_cnn` with an empty cache, 2 cores,
    # runs alternated: 7.1-7.7 s over a warm cache against 7.4-8.6 s before.
    if jobs > 1 and _cache_enabled() and _cache_looks_cold():
        with _helper_processes(model, batch_size, jobs, window) as early:
            _warm_up_with(model, progress, cancelled, batch_size, jobs, window, early)
    else:
        _warm_up_with(model, progress, cancelled, batch_size, jobs, window, None)


def _warm_up_with(model, progress, cancelled, batch_size, jobs, window, early) -> None:
    try:
        uses = kernels_needed(model, batch_size, cancelled, window)
    except WarmUpCancelled:
        return
    total = len(uses)
    if progress:
        progress(0, total)
    # What the on-disk cache has is loaded first (milliseconds each): only kernels that
    # really need compiling are worth helper processes.
    done = 0
    for use in uses:
        if cancelled():
            return
        if not use.is_compiled() and not use.load_cached():
            continue
        done += 1
        if progress:
            progress(done, total)
    todo = [u for u in uses if not u.is_compiled()]
    if jobs > 1 and len(todo) >= _MIN_SHARED and _cache_enabled():
        _shared_compile(model, todo, batch_size, jobs, progress, cancelled, done, total, window, early)
        return
    for use in todo:
        if cancelled():
            return
        if not use.is_compiled():
            use.compile()
        done += 1
        if progress:
            progress(done, total)


_MIN_SHARED = 4  # fewer kernels than this: a helper's start-up (~1 s) is not worth it


def default_jobs() -> int:
    """Processes for compiling: VISUALCNN_WARMUP_JOBS when set, else the cores this
    process may run on (at most 4)."""
    forced = os.environ.get("VISUALCNN_WARMUP_JOBS", "").strip()
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def _cache_looks_cold() -> bool:
    """True when numba's on-disk cache has not been written yet (a fresh install, or an
    empty NUMBA_CACHE_DIR): told by the index file of a kernel every training run
    compiles first (the denormal switch). False when it cannot be told."""
    try:
        from . import parallel

        return not os.path.exists(parallel._get_mxcsr._cache._cache_file._index_path)
    except Exception:  # noqa: BLE001 - numba internals: then start helpers as before
        return False


def _cache_enabled() -> bool:
    from numba.core import config

    return not getattr(config, "DISABLE_JIT", False)


def kernel_key(use: KernelUse) -> str:
    """Same in every process: the kernel's module and qualified name (one owner per
    function, so two processes never write one function's cache index at once)."""
    func = getattr(use.dispatcher, "py_func", None)
    name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', use.name)}"
    return hashlib.sha1(name.encode()).hexdigest()[:16]


def _claim(directory: str, key: str) -> bool:
    try:
        fd = os.open(os.path.join(directory, key + ".claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _mark(directory: str, key: str, state: str) -> None:
    with open(os.path.join(directory, f"{key}.{state}"), "w"):
        pass


def _state(directory: str, key: str) -> str | None:
    for state in ("done", "failed"):
        if os.path.exists(os.path.join(directory, f"{key}.{state}")):
            return state
    return None


def _model_spec(model, batch_size) -> dict:
    config = model.training_config() if model.optimizer is not None and model.loss is not None else None
    return {"model": model.to_json(), "training": config.to_dict() if config is not None else None,
            "batch_size": batch_size}


def _model_from_spec(spec: dict):
    from .model_io import compile_from_config, model_from_json
    from .training_config import TrainingConfig

    model = model_from_json(spec["model"])
    if spec.get("training"):
        compile_from_config(model, TrainingConfig.from_dict(spec["training"]))
    return model


@contextlib.contextmanager
def _helper_processes(model, batch_size, jobs, window):
    """(directory, helpers): ``jobs - 1`` helper processes compiling the kernels of
    ``model`` (written to directory/model.json for them) into the on-disk cache; killed,
    and the directory removed, on leaving the block, and at exit (a daemon thread, the
    window's warm-up, ends without reaching its finally blocks)."""
    import atexit
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    directory = tempfile.mkdtemp(prefix="visualcnn-warmup-")
    spec_path = os.path.join(directory, "model.json")
    with open(spec_path, "w") as f:
        json.dump({**_model_spec(model, batch_size), "window": window}, f)
    helpers = []

    def stop():
        for helper in helpers:
            if helper.poll() is None:
                helper.kill()
                helper.wait()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    try:
        for _ in range(jobs - 1):
            try:
                helpers.append(subprocess.Popen(
                    [sys.executable, "-m", "visualcnn.engine.warmup", "--helper", directory],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True))  # its own session: Ctrl-C in a terminal reaches the parent only
            except OSError:
                break
        yield directory, helpers
    finally:
        stop()
        atexit.unregister(stop)


def _shared_compile(model, uses, batch_size, jobs, progress, cancelled, done=0, total=None, window=True,
                    early=None) -> None:
    """Compile ``uses`` here and in ``jobs - 1`` helper processes at once (``early``: the
    (directory, helpers) of ``_helper_processes`` already running; else started here).

    Each process claims one function at a time (an O_EXCL file in a private temporary
    directory) and compiles all its specialisations; this process walks the list from
    the front (what the first training step needs), the helpers from the back. A kernel
    a helper compiled is then loaded here from numba's on-disk cache; one whose helper
    failed or died is compiled here. Helpers are killed when the work is cancelled or
    this process exits (they are started with their stdin/stdout/stderr closed, and
    ignore Ctrl-C: the parent decides)."""
    if early is None:
        with _helper_processes(model, batch_size, jobs, window) as started:
            _compile_shared(uses, started, progress, cancelled, done, total)
    else:
        _compile_shared(uses, early, progress, cancelled, done, total)


def _compile_shared(uses, helper_processes, progress, cancelled, done, total) -> None:
    import time

    directory, helpers = helper_processes
    total = len(uses) if total is None else total
    keys = [kernel_key(u) for u in uses]
    waiting = []
    for use, key in zip(uses, keys):
        if cancelled():
            return
        if use.is_compiled():
            pass
        elif _claim(directory, key):
            try:
                use.compile()
            finally:
                _mark(directory, key, "done")
        elif _state(directory, key) is None:
            waiting.append((use, key))
            continue
        elif not use.is_compiled():
            use.compile()  # from the disk cache the helper filled
        done += 1
        if progress:
            progress(done, total)
    for use, key in waiting:
        while _state(directory, key) is None and any(h.poll() is None for h in helpers):
            if cancelled():
                return
            time.sleep(0.02)
        if not use.is_compiled():
            use.compile()  # the helper's result from the disk cache, or compiled here
        done += 1
        if progress:
            progress(done, total)


def _helper_main(directory: str) -> int:
    """A helper process of ``_shared_compile``: claim functions from the back of the
    list and compile them into the on-disk cache."""
    import json

    with open(os.path.join(directory, "model.json")) as f:
        spec = json.load(f)
    model = _model_from_spec(spec)
    uses = kernels_needed(model, spec.get("batch_size"), window=spec.get("window", True))
    by_key: dict = {}
    for use in uses:
        by_key.setdefault(kernel_key(use), []).append(use)
    for key in reversed(list(by_key)):
        if not os.path.isdir(directory):
            return 0  # the parent finished and cleaned up
        if not _claim(directory, key):
            continue
        try:
            for use in by_key[key]:
                if not use.is_compiled():
                    use.compile()
            _mark(directory, key, "done")
        except Exception:
            _mark(directory, key, "failed")
    return 0


def compiled(model, batch_size: int | None = None) -> bool:
    """True when every kernel ``model`` needs is compiled in this process."""
    return not kernels_needed(model, batch_size)


if __name__ == "__main__":  # helper process of warm_up(jobs > 1)
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if len(sys.argv) == 3 and sys.argv[1] == "--helper":
        try:
            sys.exit(_helper_main(sys.argv[2]))
        except Exception:
            sys.exit(1)
    sys.exit("usage: python -m visualcnn.engine.warmup --helper DIRECTORY (started by warm_up)")
