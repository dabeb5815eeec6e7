"""Compile, before it is needed, every numba kernel a model will call.

With an empty compile cache (a fresh install) the first training step of the seed CNN
used to spend 15-20 s compiling kernels while the window showed "Starting..." at 0 %.
``warm_up(model)`` does that work ahead of time (the window runs it in a background
thread as soon as it opens or a model is loaded) and reports progress per kernel.

How the kernels are found, without a list to keep in step with the layers: a *dry run*.
One training step, a batch-1 predict, the feature maps and the saliency of a throw-away
copy of the model run in the calling thread while numba's "compile for these
arguments" hook (``Dispatcher._compile_for_args``, called only when no compiled version
matches) is intercepted for that thread alone: instead of compiling, it records the
(kernel, argument types) pair and skips the call. Kernels write into preallocated
outputs, so skipping them only leaves garbage in arrays the copy throws away. The
recorded pairs, in the order the step needs them (training first), are what
``kernels_needed`` returns; ``warm_up`` then compiles each one with
``dispatcher.compile(signature)``, which loads it from the on-disk cache when it is
there (fast) and compiles it otherwise.

Other threads are unaffected: the hook does its normal work unless the calling thread
is inside a dry run. Numba's compiler lock serialises compiling, so a training thread
that needs a kernel the warm-up is compiling simply waits for it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["KernelUse", "kernels_needed", "warm_up", "compiled", "WarmUpCancelled"]

_tls = threading.local()
_lock = threading.Lock()
_DRY_ROUNDS = 4
_installed = [False]


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

    def __str__(self) -> str:
        return f"{self.name}({', '.join(str(t) for t in self.signature)})"


def _skip(*args, **kwargs):
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


def _dry_batch(model, n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *model.input_shape), dtype=np.float32)
    out = model.output_shape
    if model.loss is not None and model.loss.sparse:
        y = rng.integers(0, out[-1], size=(n, *out[1:-1]))
    else:
        y = rng.random((n, *out[1:]), dtype=np.float32)
    return x, y


def _training_batch_size(model) -> int:
    try:
        config = model.training_config() if model.optimizer is not None and model.loss is not None else None
    except Exception:
        config = None
    return int(getattr(config, "batch_size", None) or 64)


def _session(model, batch_size: int | None):
    """What a session does with a model, as separate steps: a training step, then the
    window's inference calls (batch-1 predict, serial predict, feature maps, saliency)
    and a test-set batch. Runs on a copy: the dry run leaves garbage in its arrays."""
    from .benchmark import clone_for_benchmark
    from .training import train

    copy = clone_for_benchmark(model)
    n = batch_size or _training_batch_size(model)
    x, y = _dry_batch(copy, n, 0)
    return [
        lambda: _one_step(train, copy, x, y, n),
        lambda: copy.predict(x[:1], batch_size=1),
        lambda: copy.predict(x[:1], batch_size=1, serial=True),
        lambda: copy.activations(x[:1]),
        lambda: copy.input_gradients(x[:1], 0),
        lambda: copy.predict(x, batch_size=n),
    ]


def _one_step(train, model, x, y, n):
    run = train(model, x, y, batch_size=n, epochs=1, shuffle=False)
    try:
        for _ in run:
            pass
    finally:
        run.close()


def kernels_needed(model, batch_size: int | None = None, cancelled: Callable[[], bool] | None = None) -> list:
    """The kernels (``KernelUse``) a training session of ``model`` needs that are not yet
    compiled in this process, in the order training meets them.

    ``model`` is not touched (the dry run works on a fresh copy). Kernels already
    compiled in this process are not listed, except the few the dry run itself had to
    compile because python code reads their result (they are listed as compiled).
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

    steps = _session(model, batch_size)
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
                    with np.errstate(all="ignore"):  # garbage in the skipped kernels' outputs
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


def warm_up(model, progress: Callable[[int, int], None] | None = None,
            cancelled: Callable[[], bool] | None = None, batch_size: int | None = None) -> None:
    """Compile (or load from the on-disk cache) every kernel ``model`` will use.

    ``progress(done, total)`` is called once with (0, total) and after every kernel;
    ``cancelled()`` is checked between kernels, and stops the work when it returns True.
    Safe to run in a background thread while other threads train or predict.
    """
    cancelled = cancelled or (lambda: False)
    try:
        uses = kernels_needed(model, batch_size, cancelled)
    except WarmUpCancelled:
        return
    total = len(uses)
    if progress:
        progress(0, total)
    for done, use in enumerate(uses, 1):
        if cancelled():
            return
        if not use.is_compiled():
            use.compile()
        if progress:
            progress(done, total)


def compiled(model, batch_size: int | None = None) -> bool:
    """True when every kernel ``model`` needs is compiled in this process."""
    return not kernels_needed(model, batch_size)
