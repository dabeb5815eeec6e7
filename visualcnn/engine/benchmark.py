"""How fast a model trains and predicts here: the measurement behind `visualcnn bench`.

Pure engine (no Qt). Everything is measured on a private copy of the model (same layers,
same compile settings, freshly initialised weights), so benchmarking the model open in
the builder window never touches its weights, optimizer state or training thread.

* ``layer_costs(model)``: per-layer forward / backward milliseconds of a training step
  (what the builder window shows next to each block);
* ``benchmark(model)``: the full report of ``visualcnn bench``: training images/s (the
  same code path as ``fit``: ``training.train``'s generator, i.e. forward, loss,
  backward, optimizer update and the per-batch copy), batch-1000 prediction images/s,
  single-image predict latency, an MNIST epoch extrapolated, peak RSS, the per-layer
  table, and the share of this machine's peak the training step reaches;
* ``measure_sgemm_peak()``: the machine's float32 matrix-multiply peak, single-thread and
  with every thread (measured once per process);
* ``model_flops(model, batch_size)``: multiply-add FLOPs of a forward pass and of a
  training step (the convolutions and Dense layers; elementwise work is not counted, as
  is usual for "model FLOPs").

JIT compilation is excluded: every phase runs warm-up steps before it is timed. The
inputs are random images in [0, 1) and random labels (speed does not depend on them).
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .kernels import blas

__all__ = ["LayerCost", "BenchmarkResult", "clone_for_benchmark", "layer_costs", "benchmark",
           "measure_training", "measure_predict", "measure_latency", "peak_rss_mb",
           "measure_sgemm_peak", "model_flops", "predict_memory", "MNIST_TRAIN_IMAGES"]

MNIST_TRAIN_IMAGES = 60000


@dataclass
class LayerCost:
    """Median milliseconds one layer spends in a training step (backward includes the
    layer's activation derivative; it is 0 for the first layer's skipped input grad)."""

    name: str
    class_name: str
    forward_ms: float
    backward_ms: float
    # the layer whose backward pass also did this one's (a max pool after a first conv:
    # ``Conv2D.backward_from_pool``); backward_ms is then 0 and counted there
    backward_in: str = ""
    # the same for the forward (a 2x2 max pool after it: ``Conv2D.forward_into_pool``)
    forward_in: str = ""

    @property
    def total_ms(self) -> float:
        return self.forward_ms + self.backward_ms


@dataclass
class BenchmarkResult:
    model: str
    batch_size: int
    threads: int
    steps: int
    train_images_per_second: float
    train_step_ms: float
    predict_images_per_second: float
    predict_batch_size: int
    predict_latency_ms: float
    epoch_seconds_estimated: float
    peak_rss_mb: float
    layers: list = field(default_factory=list)
    step_other_ms: float = 0.0
    threading_layer: str = ""
    gemm: str = ""  # which sgemm the kernels call (kernels/blas.py)
    epoch_seconds_measured: float | None = None
    adaptive_threads: int | None = None  # the thread governor's last choice (None: threads were given)
    train_flops_per_step: float = 0.0  # multiply-adds x 2 of forward + backward (model_flops)
    train_gflops: float = 0.0  # train_flops_per_step / median step time
    peak_gflops: float | None = None  # sgemm peak with this run's thread count
    peak_single_gflops: float | None = None
    peak_all_gflops: float | None = None
    peak_share: float | None = None  # train_gflops / peak_gflops

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = [asdict(c) for c in self.layers]
        return d


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (getrusage ru_maxrss)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0


# --- machine peak and model FLOPs --------------------------------------------------------

_PEAK_CACHE: dict = {}


def _blas_threads(n: int) -> None:
    from .training import limit_blas_threads

    limit_blas_threads(n)


def measure_sgemm_peak(threads: int | None = None, n: int = 1024, calls: int = 4, repeats: int = 7) -> dict:
    """This machine's float32 GEMM peak in GFLOP/s: {"single": one thread, "all": ``threads``
    threads at once, "threads", "n"}. Measured once per process (cached).

    "all" runs ``threads`` Python threads, each multiplying its own n x n matrices with
    the single-threaded sgemm the kernels call (``kernels/blas.py``): the way the engine
    itself uses the cores, one GEMM per numba worker. The best of ``repeats`` rounds is
    kept: a round is ~40 ms, and with 3 rounds one benchmark run read the 2-thread peak
    as a 1-thread one (232 instead of ~430 GFLOP/s) when another process was still exiting.
    """
    import os
    import threading

    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            threads = os.cpu_count() or 1
    key = (threads, n, calls)
    if key in _PEAK_CACHE:
        return _PEAK_CACHE[key]
    _blas_threads(1)
    blas.ensure_single_threaded()
    rng = np.random.default_rng(0)
    mats = [(rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32),
             np.empty((n, n), np.float32)) for _ in range(threads)]
    flops = 2.0 * n ** 3 * calls

    def work(i):
        a, b, c = mats[i]
        for _ in range(calls):
            if blas.SGEMM is None:
                np.matmul(a, b, out=c)
            else:  # the sgemm the kernels call (ctypes releases the GIL, as numpy does)
                blas.SGEMM(blas.ROW_MAJOR, blas.NO_TRANS, blas.NO_TRANS, n, n, n, 1.0,
                           a.ctypes.data, n, b.ctypes.data, n, 0.0, c.ctypes.data, n)

    def timed(count):
        best = float("inf")
        for _ in range(repeats):
            workers = [threading.Thread(target=work, args=(i,)) for i in range(count)]
            t0 = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            best = min(best, time.perf_counter() - t0)
        return flops * count / best / 1e9

    work(0)  # page in, warm the caches
    result = {"single": timed(1), "all": timed(threads) if threads > 1 else None, "threads": threads, "n": n}
    if result["all"] is None:
        result["all"] = result["single"]
    _PEAK_CACHE[key] = result
    return result


def model_flops(model, batch_size: int) -> tuple[float, float]:
    """(forward FLOPs, training-step FLOPs) for ``batch_size`` images: 2 x multiply-adds.

    The multiply-adds are the layers' own count (Inference.macs, the figure the summary's
    cost view and the cards show), taken for the layers with a kernel (Conv2D,
    DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, Dense): the GEMM work the share of
    the machine's peak is about. A training step is forward + weight gradient + input
    gradient (the first layer's input gradient is skipped, as the engine does).
    """
    report = model.checked_report()
    forward = backward = 0.0
    first = True
    for row in report.rows:
        specs = row.inference.weights if row.inference is not None else ()
        if not any(s.name.endswith("kernel") for s in specs):
            continue
        macs = float(batch_size) * row.macs
        forward += 2.0 * macs
        backward += 2.0 * macs * (1 if first else 2)
        first = False
    return forward, forward + backward


def predict_memory(model, batch_size: int = 1000) -> dict:
    """Peak RSS (MiB) of predicting one batch of ``batch_size`` on ``model`` (built if
    needed). Meaningful in a fresh process that does nothing else first: ru_maxrss is a
    high-water mark."""
    if not model.built:
        model.build()
    x, _ = _synthetic(model, batch_size, seed=1)
    before = peak_rss_mb()
    model.predict(x, batch_size=batch_size)
    return {"predict_peak_rss_mb": peak_rss_mb(), "rss_before_predict_mb": before}


def _compile_like(copy, model) -> None:
    from . import optimizers

    config = model.training_config() if model.optimizer is not None and model.loss is not None else None
    if config is not None:
        from .model_io import compile_from_config

        compile_from_config(copy, config)
        return
    units = copy.output_shape[-1]
    last = copy.layers[-1] if copy.layers else None
    act = last.config.get("activation") if last is not None else None
    loss = "sparse_categorical_crossentropy" if (act == "softmax" and units > 1) else "mean_squared_error"
    copy.compile(optimizer=optimizers.get("adam"), loss=loss, metrics=["accuracy"])


def clone_for_benchmark(model, seed: int = 0):
    """A compiled copy of ``model`` (same layers and compile settings, new weights).

    An uncompiled model is compiled with Adam and sparse categorical cross-entropy when
    it ends in softmax, mean squared error otherwise. Raises ValueError (ConfigError) for
    a model whose shapes do not work out.
    """
    from .layers import layer_from_config
    from .model import Sequential, model_from_graph

    model.checked_report()
    # the layers' own configs, not the file form: a graph model copies as it is
    layers = [layer_from_config(layer.class_name, layer.get_config()) for layer in model.layers]
    copy = model_from_graph(model.name, model.input_shape, layers, model.inbound, model.input_name,
                            sequential=isinstance(model, Sequential))
    copy.build(seed=seed)
    _compile_like(copy, model)
    return copy


def _synthetic(model, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, *model.input_shape), dtype=np.float32)
    out = model.output_shape
    if model.loss is not None and model.loss.sparse:
        y = rng.integers(0, out[-1], size=(n, *out[1:-1]))
    else:
        y = rng.random((n, *out[1:]), dtype=np.float32)
    return x, y


def _train_steps(model, x, y, batch_size: int):
    """Run training.train over (x, y) once; returns the wall time of each step (s)."""
    from .training import StepReport, train

    times = []
    run = train(model, x, y, batch_size=batch_size, epochs=1, shuffle=True)
    try:
        last = time.perf_counter()
        for report in run:
            now = time.perf_counter()
            if isinstance(report, StepReport):
                times.append(now - last)
            last = time.perf_counter()
    finally:
        run.close()
    return times


def measure_training(model, batch_size: int = 64, steps: int = 30, warmup: int = 3):
    """(images per second, median step ms) of training steps on a compiled model.

    Throughput is total images / total time over the timed steps (not the best step).
    The warm-up steps run first in the same training run, so that with the default
    thread count the thread governor (``parallel.ThreadGovernor``) has measured and
    chosen before the timing starts: the steady state a long run sees.
    """
    from . import parallel

    if parallel.governor_active():
        warmup = max(warmup, parallel.ThreadGovernor(enabled=False).settle_steps() + 2)
    x, y = _synthetic(model, batch_size * (steps + warmup))
    times = _train_steps(model, x, y, batch_size)[warmup:]
    total = float(np.sum(times))
    return batch_size * len(times) / total, float(np.median(times)) * 1e3


def measure_predict(model, batch_size: int = 1000, repeats: int = 5, warmup: int = 1) -> float:
    """Images per second of ``model.predict`` on ``batch_size`` images (one batch)."""
    x, _ = _synthetic(model, batch_size, seed=1)
    for _ in range(warmup):
        model.predict(x, batch_size=batch_size)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(x, batch_size=batch_size)
        times.append(time.perf_counter() - t0)
    return batch_size / float(np.median(times))


def measure_latency(model, repeats: int = 200, warmup: int = 20, serial: bool | None = None) -> float:
    """Median milliseconds of ``model.predict`` on one image (the draw-a-digit path)."""
    x, _ = _synthetic(model, 1, seed=2)
    for _ in range(warmup):
        model.predict(x, batch_size=1, serial=serial)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.predict(x, batch_size=1, serial=serial)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


class _LayerTimer:
    """Wraps every layer's forward/backward (instance attributes, removed afterwards).

    A first conv that takes its weight gradient from the max pool after it
    (``Conv2D.backward_from_pool``) does the pool's backward and its own in one call:
    that call counts as the conv's backward, and the pool's backward is then 0. The same
    for the forward of a 2x2 pool (``Conv2D.forward_into_pool``)."""

    FORWARD = ("forward", "forward_into_pool")
    BACKWARD = ("backward", "backward_from_pool")

    def __init__(self, model):
        self.model = model
        self.fwd = [[] for _ in model.layers]
        self.bwd = [[] for _ in model.layers]
        self.pooled_fwd = [[] for _ in model.layers]  # forward_into_pool calls (also in fwd)
        self.pooled = [[] for _ in model.layers]  # backward_from_pool calls (also in bwd)
        self.active = False

    def __enter__(self):
        for i, layer in enumerate(self.model.layers):
            for names, sink, fused in ((self.FORWARD, self.fwd[i], self.pooled_fwd[i]),
                                       (self.BACKWARD, self.bwd[i], self.pooled[i])):
                own, with_pool = names
                setattr(layer, own, self._wrap(getattr(layer, own), sink))
                if hasattr(layer, with_pool):
                    setattr(layer, with_pool, self._wrap(getattr(layer, with_pool), sink, fused))
        return self

    def backward_in(self, i: int) -> str:
        """The layer that did layer i's backward: the conv just before a pool whose
        gradient it took."""
        return self._done_by(i, self.pooled, self.bwd)

    def forward_in(self, i: int) -> str:
        """The layer that did layer i's forward (the conv just before a 2x2 pool)."""
        return self._done_by(i, self.pooled_fwd, self.fwd)

    def _done_by(self, i, fused, own):
        plan = getattr(self.model, "_plan", None)
        for j, calls in enumerate(fused):
            # the pool a conv ran: the next layer (Sequential), or the graph plan's pair
            pool = (plan.pooled or {}).get(j) if plan is not None else j + 1
            if calls and pool == i and not own[i]:
                return self.model.layers[j].name
        return ""

    def __exit__(self, *exc):
        for layer in self.model.layers:
            for name in (*self.FORWARD, *self.BACKWARD):
                layer.__dict__.pop(name, None)

    def _wrap(self, fn, sink, also=None):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            if self.active:
                sink.append(time.perf_counter() - t0)
                if also is not None:
                    also.append(sink[-1])
            return out
        return timed


def _median_ms(samples) -> float:
    return float(np.median(samples)) * 1e3 if samples else 0.0


def layer_costs(model, batch_size: int = 64, steps: int = 10, warmup: int = 2,
                threads: int | None = None, clone: bool = True) -> list[LayerCost]:
    """Per-layer median forward / backward milliseconds of a training step.

    Runs on a copy of ``model`` unless ``clone=False`` (then ``model`` must be compiled,
    and its weights change). ``threads``: numba threads for the run (default: current).
    """
    costs, _ = _layer_costs(model, batch_size, steps, warmup, threads, clone)
    return costs


def _layer_costs(model, batch_size, steps, warmup, threads, clone):
    from . import parallel

    if threads is not None:
        parallel.set_num_threads(threads)
    m = clone_for_benchmark(model) if clone else model
    x, y = _synthetic(m, batch_size * max(steps, warmup, 1))
    with _LayerTimer(m) as timer:
        _train_steps(m, x[:batch_size * warmup], y[:batch_size * warmup], batch_size)
        timer.active = True
        step_times = _train_steps(m, x, y, batch_size)
        timer.active = False
    costs = [LayerCost(layer.name, layer.class_name, _median_ms(f), _median_ms(b), timer.backward_in(i),
                       timer.forward_in(i))
             for i, (layer, f, b) in enumerate(zip(m.layers, timer.fwd, timer.bwd))]
    other = _median_ms(step_times) - sum(c.total_ms for c in costs)
    return costs, max(other, 0.0)


def _check_positive(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, received {value!r}")


def benchmark(model, batch_size: int = 64, steps: int = 30, threads: int | None = None,
              predict_batch_size: int = 1000, latency_repeats: int = 200, layer_steps: int | None = None,
              full_epoch: bool = False, name: str | None = None, peak: bool = True) -> BenchmarkResult:
    """The `visualcnn bench` report for ``model`` (measured on a copy).

    steps: timed training steps (after 3 warm-up steps). full_epoch: also train one real
    epoch on the bundled MNIST training set (60,000 images; the model must take 28x28x1
    images and output 10 classes) and report its wall time.
    """
    from . import parallel

    for value, what in ((batch_size, "batch_size"), (steps, "steps"), (predict_batch_size, "predict batch size"),
                        (latency_repeats, "latency repeats")):
        _check_positive(value, what)
    if threads is not None:
        _check_positive(threads, "threads")
        parallel.set_num_threads(threads)
    m = clone_for_benchmark(model)
    train_ips, step_ms = measure_training(m, batch_size, steps)
    rss = peak_rss_mb()  # training is what should fit on a student laptop
    costs, other = _layer_costs(m, batch_size, layer_steps or max(5, min(steps, 20)), 1, None, False)
    predict_ips = measure_predict(m, predict_batch_size)
    latency = measure_latency(m, latency_repeats)
    epoch_measured = _full_epoch(m, batch_size) if full_epoch else None
    used_threads = parallel.get_num_threads()
    adaptive = parallel.last_governor_choice() if threads is None and parallel.governor_active() else None
    _, step_flops = model_flops(m, batch_size)
    # GFLOP/s from the throughput (total time over all timed steps), not the best step
    train_gflops = step_flops * train_ips / batch_size / 1e9
    peaks = measure_sgemm_peak(max(used_threads, 1)) if peak else None
    peak_here = None if peaks is None else (peaks["all"] if used_threads > 1 else peaks["single"])
    return BenchmarkResult(
        model=name or model.name, batch_size=batch_size, threads=used_threads, steps=steps,
        train_images_per_second=train_ips, train_step_ms=step_ms,
        predict_images_per_second=predict_ips, predict_batch_size=predict_batch_size,
        predict_latency_ms=latency, epoch_seconds_estimated=MNIST_TRAIN_IMAGES / train_ips,
        peak_rss_mb=rss, layers=costs, step_other_ms=other, threading_layer=parallel.THREADING_LAYER,
        gemm=blas.describe(),
        epoch_seconds_measured=epoch_measured, train_flops_per_step=step_flops, train_gflops=train_gflops,
        peak_gflops=peak_here, peak_single_gflops=None if peaks is None else peaks["single"],
        peak_all_gflops=None if peaks is None else peaks["all"],
        peak_share=None if not peak_here else train_gflops / peak_here, adaptive_threads=adaptive)


def _full_epoch(model, batch_size: int) -> float:
    from .datasets import load_mnist
    from .training import EpochReport, train

    if tuple(model.input_shape) != (28, 28, 1) or model.output_shape[-1] != 10:
        raise ValueError("a full MNIST epoch needs a model with input (28, 28, 1) and 10 outputs")
    (x_train, y_train), _ = load_mnist()
    x = (x_train.astype(np.float32) / np.float32(255.0)).reshape(-1, 28, 28, 1)
    y = y_train
    if not model.loss.sparse:
        y = np.eye(10, dtype=np.float32)[y_train]
    seconds = None
    run = train(model, x, y, batch_size=batch_size, epochs=1, shuffle=True)
    try:
        for report in run:
            if isinstance(report, EpochReport):
                seconds = report.seconds
    finally:
        run.close()
    return seconds
