"""`visualcnn bench [MODEL]`: how fast this machine trains and runs a model.

MODEL is a model file or a preset name (default: the seed CNN preset). Prints training
images/s (forward, backward and optimizer update, JIT warm-up excluded), batch-1000
prediction images/s, single-image latency, one MNIST epoch extrapolated, peak memory and
a per-layer table, and the share of this machine's peak the training step reaches (a
large single-precision matrix multiply is measured once, on one thread and on all).
With --json the last stdout line is one JSON object.

--compare-torch (when PyTorch is installed; it is never a dependency): the same
architecture built in PyTorch from the same model file is measured the same way in a
fresh process, and the ratios are printed (> 1: VisualCNN faster or smaller).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DEFAULT_MODEL = "seed_cnn"


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", nargs="?", default=DEFAULT_MODEL,
                        help="a model file, or a preset name such as seed_cnn or lenet5 (default: seed_cnn)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per training step (default: 64)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps (default: 30)")
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    parser.add_argument("--predict-batch-size", type=int, default=1000,
                        help="images per prediction batch (default: 1000)")
    parser.add_argument("--full-epoch", action="store_true",
                        help="also train one real epoch on the bundled MNIST and report its wall time")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument("--compare-torch", action="store_true",
                        help="also measure the same network in PyTorch (if installed) and print the ratios")
    parser.add_argument("--no-peak", action="store_true", help="skip measuring the machine's matrix-multiply peak")
    parser.add_argument("--predict-memory-only", action="store_true",
                        help="only predict one batch (--predict-batch-size) and report the peak memory")


def resolve_model_path(name: str) -> Path:
    """A path to a model file: ``name`` itself if it exists, else the preset of that name."""
    path = Path(name)
    if path.is_file():
        return path
    from ..resources import preset_dir

    stem = path.name.removesuffix(".json")
    preset = preset_dir() / f"{stem}.json"
    if path.parent == Path(".") and preset.is_file():
        return preset
    presets = sorted(p.stem for p in preset_dir().glob("*.json"))
    raise ValueError(f"{name}: no such model file or preset (presets: {', '.join(presets)})")


def load_benchmark_model(name: str):
    """The model of a file or preset, compiled with the file's training settings."""
    from ..engine import load_model_file
    from ..engine.model_io import compile_from_config

    model_file = load_model_file(resolve_model_path(name))
    model = model_file.model
    model.checked_report()
    if model_file.training is not None:
        compile_from_config(model, model_file.training)
    return model


def format_report(result) -> str:
    lines = [
        f"model {result.model}: batch {result.batch_size}, {result.threads} thread"
        f"{'s' if result.threads != 1 else ''} ({result.threading_layer}), {result.steps} timed steps"
        + (f", sgemm: {result.gemm}" if result.gemm else "")
        + (f"; training chose {result.adaptive_threads} thread{'s' if result.adaptive_threads != 1 else ''} "
           f"from measured steps" if result.adaptive_threads is not None else ""),
        f"train:   {result.train_images_per_second:10.0f} images/s  ({result.train_step_ms:.2f} ms per step, "
        f"median)",
        f"predict: {result.predict_images_per_second:10.0f} images/s  (batch {result.predict_batch_size})",
        f"latency: {result.predict_latency_ms:10.3f} ms per single image",
        f"epoch:   {result.epoch_seconds_estimated:10.1f} s per MNIST epoch (60,000 images, extrapolated)",
    ]
    if result.epoch_seconds_measured is not None:
        lines.append(f"epoch:   {result.epoch_seconds_measured:10.1f} s measured (one full epoch)")
    lines.append(f"memory:  {result.peak_rss_mb:10.0f} MiB peak RSS (while training)")
    if result.peak_share is not None:
        lines.append(f"peak:    {100 * result.peak_share:10.0f} % of this machine's float32 matrix-multiply peak "
                     f"({result.train_gflops:.1f} of {result.peak_gflops:.1f} GFLOP/s on {result.threads} "
                     f"thread{'s' if result.threads != 1 else ''}; one thread: {result.peak_single_gflops:.1f})")
    width = max([len("layer")] + [len(c.name) for c in result.layers])
    lines.append("")
    lines.append(f"{'layer':{width}s}  {'type':18s} {'forward ms':>10s} {'backward ms':>11s}")
    for c in result.layers:
        forward = f"in {c.forward_in}" if c.forward_in else f"{c.forward_ms:.3f}"
        backward = f"in {c.backward_in}" if c.backward_in else f"{c.backward_ms:.3f}"
        lines.append(f"{c.name:{width}s}  {c.class_name:18s} {forward:>10s} {backward:>11s}")
    total_f = sum(c.forward_ms for c in result.layers)
    total_b = sum(c.backward_ms for c in result.layers)
    lines.append(f"{'all layers':{width}s}  {'':18s} {total_f:10.3f} {total_b:11.3f}")
    lines.append(f"{'loss, optimizer, rest':{width}s}  {'':18s} {result.step_other_ms:10.3f}")
    return "\n".join(lines)


def run(args) -> int:
    from ..engine import benchmark

    if args.threads is not None:
        import numba

        if not 1 <= args.threads <= numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"--threads must be from 1 to {numba.config.NUMBA_NUM_THREADS}, "
                             f"received {args.threads}")
    if args.compare_torch:
        from .bench_torch import torch_available

        if not torch_available():
            raise ValueError("--compare-torch: PyTorch is not installed here; install it (pip install torch) "
                             "or run without --compare-torch")
    model = load_benchmark_model(args.model)
    if args.predict_memory_only:
        if args.threads is not None:
            from ..engine import parallel

            parallel.set_num_threads(args.threads)
        print(json.dumps(benchmark.predict_memory(model, args.predict_batch_size)))
        sys.stdout.flush()
        return 0
    result = benchmark.benchmark(model, batch_size=args.batch_size, steps=args.steps, threads=args.threads,
                                 predict_batch_size=args.predict_batch_size, full_epoch=args.full_epoch,
                                 name=Path(args.model).stem, peak=not args.no_peak)
    data = result.to_dict()
    torch_result = None
    if args.compare_torch:
        torch_result = run_torch_twin(resolve_model_path(args.model), args)
        data["torch"] = torch_result
        data["ratios"] = torch_ratios(data, torch_result)
    if args.json:
        print(json.dumps(data))
    else:
        print(format_report(result))
        if torch_result is not None:
            print()
            print(format_comparison(data, torch_result))
    sys.stdout.flush()
    return 0


COMPARED = (  # key, label, higher is better
    ("train_images_per_second", "train images/s", True),
    ("predict_images_per_second", "predict images/s", True),
    ("predict_latency_ms", "single-image latency ms", False),
)


def torch_ratios(ours: dict, theirs: dict) -> dict:
    """ours / torch for throughput, torch / ours for latency: > 1 means VisualCNN is better."""
    out = {}
    for key, _, higher in COMPARED:
        a, b = ours.get(key), theirs.get(key)
        if a and b:
            out[key] = a / b if higher else b / a
    return out


def format_comparison(ours: dict, theirs: dict) -> str:
    ratios = torch_ratios(ours, theirs)
    lines = [f"{'against PyTorch (same network, same threads)':44s} {'VisualCNN':>10s} {'PyTorch':>10s} {'ratio':>7s}"]
    for key, label, _ in COMPARED:
        if key in ratios:
            lines.append(f"{label:44s} {ours[key]:10.3f} {theirs[key]:10.3f} {ratios[key]:7.2f}")
    lines.append("ratio > 1: VisualCNN is faster. One run each: use benchmarks/compare_all.py for rounds and medians.")
    return "\n".join(lines)


def run_torch_twin(path, args) -> dict:
    """The PyTorch measurement of the same model file, in a fresh process."""
    import subprocess

    from ..engine import parallel

    cmd = [sys.executable, "-m", "visualcnn.commands.bench_torch", str(path), "--json",
           "--batch-size", str(args.batch_size), "--steps", str(args.steps),
           "--threads", str(args.threads or parallel.get_num_threads()),
           "--predict-batch-size", str(args.predict_batch_size)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ValueError(f"--compare-torch: the PyTorch side failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if "numpy" not in sys.modules:  # pragma: no cover  (same policy as `visualcnn train`)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
