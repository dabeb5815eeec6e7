"""`visualcnn bench [MODEL]`: how fast this machine trains and runs a model.

MODEL is a model file or a preset name (default: the seed CNN preset). Prints training
images/s (forward, backward and optimizer update, JIT warm-up excluded), batch-1000
prediction images/s, single-image latency, one MNIST epoch extrapolated, peak memory and
a per-layer table. With --json the last stdout line is one JSON object.
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
        f"{'s' if result.threads != 1 else ''} ({result.threading_layer}), {result.steps} timed steps",
        f"train:   {result.train_images_per_second:10.0f} images/s  ({result.train_step_ms:.2f} ms per step, "
        f"median)",
        f"predict: {result.predict_images_per_second:10.0f} images/s  (batch {result.predict_batch_size})",
        f"latency: {result.predict_latency_ms:10.3f} ms per single image",
        f"epoch:   {result.epoch_seconds_estimated:10.1f} s per MNIST epoch (60,000 images, extrapolated)",
    ]
    if result.epoch_seconds_measured is not None:
        lines.append(f"epoch:   {result.epoch_seconds_measured:10.1f} s measured (one full epoch)")
    lines.append(f"memory:  {result.peak_rss_mb:10.0f} MiB peak RSS (while training)")
    width = max([len("layer")] + [len(c.name) for c in result.layers])
    lines.append("")
    lines.append(f"{'layer':{width}s}  {'type':18s} {'forward ms':>10s} {'backward ms':>11s}")
    for c in result.layers:
        lines.append(f"{c.name:{width}s}  {c.class_name:18s} {c.forward_ms:10.3f} {c.backward_ms:11.3f}")
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
    model = load_benchmark_model(args.model)
    result = benchmark.benchmark(model, batch_size=args.batch_size, steps=args.steps, threads=args.threads,
                                 predict_batch_size=args.predict_batch_size, full_epoch=args.full_epoch,
                                 name=Path(args.model).stem)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_report(result))
    sys.stdout.flush()
    return 0


if "numpy" not in sys.modules:  # pragma: no cover  (same policy as `visualcnn train`)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
