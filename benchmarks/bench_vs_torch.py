"""VisualCNN vs PyTorch (CPU) on the same model, measured alternately in one run.

    python benchmarks/bench_vs_torch.py [--rounds 3] [--threads 2] [--steps 30]
        [--configs seed_cnn:64,seed_cnn:32,seed_cnn:128,lenet5:64] [--full-epoch] [--json]

For every MODEL:BATCH config and round, two fresh processes run one after the other
(the order flips every round): ``python -m visualcnn bench MODEL --json`` (exactly the
command users run) and this script's PyTorch worker on the same architecture (built from
the same model file), both with the same thread count, batch size and number of timed
steps after warm-up. Each reports training images/s (forward, loss, backward, Adam step,
per-batch copy, loss and accuracy read back as Keras's fit does), batch-1000 predict
images/s, single-image latency and its own peak RSS. Printed: the median of each side
and ratio = ours / torch for throughput (> 1: VisualCNN faster), torch / ours for
latency, plus every round's ratio. --full-epoch also trains one real MNIST epoch on
each side (60,000 images) and reports both wall times. VisualCNN's training threads
flush denormals (see visualcnn.engine.parallel); PyTorch's defaults do not, unless
--torch-flush-denormal.

PyTorch is only a reference: it is never imported by visualcnn/ or tests/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIGS = "seed_cnn:64,seed_cnn:32,seed_cnn:128,lenet5:64"


# ------------------------------------------------------------------ the torch side

def _torch_model(model_path):
    """nn.Sequential equivalent of a VisualCNN model file (NCHW), plus its training recipe."""
    from torch import nn

    sys.path.insert(0, ROOT)
    from visualcnn.engine import load_model_file

    mf = load_model_file(model_path)
    model = mf.model
    report = model.checked_report()
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "linear": None, None: None}
    mods = []
    last = len(model.layers) - 1
    for i, (layer, row) in enumerate(zip(model.layers, report.rows)):
        c = layer.config
        kind = layer.class_name
        in_shape = row.input_shape
        if kind == "Conv2D":
            if tuple(c.get("dilation_rate", (1, 1))) != (1, 1) and c["padding"] == "same":
                raise SystemExit("torch worker: dilated 'same' conv not mapped")
            mods.append(nn.Conv2d(in_shape[-1], c["filters"], tuple(c["kernel_size"]), tuple(c["strides"]),
                                  padding=c["padding"] if tuple(c["strides"]) == (1, 1) else 0,
                                  dilation=tuple(c.get("dilation_rate", (1, 1))), bias=c.get("use_bias", True)))
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            pool = tuple(c["pool_size"])
            strides = tuple(c["strides"]) if c.get("strides") else pool
            if c.get("padding", "valid") != "valid":
                raise SystemExit(f"torch worker: {kind} padding {c['padding']} not mapped")
            mods.append((nn.MaxPool2d if kind == "MaxPooling2D" else nn.AvgPool2d)(pool, strides))
        elif kind == "Flatten":
            mods.append(nn.Flatten())
        elif kind == "Dense":
            mods.append(nn.Linear(int(in_shape[-1]), c["units"], bias=c.get("use_bias", True)))
        elif kind == "Dropout":
            mods.append(nn.Dropout(c["rate"]))
        elif kind == "Activation":
            pass
        else:
            raise SystemExit(f"torch worker: layer {kind} not mapped")
        act = c.get("activation")
        if act == "softmax" and i == last:
            act = None  # CrossEntropyLoss takes the logits (VisualCNN fuses softmax + CE too)
        if act not in acts:
            raise SystemExit(f"torch worker: activation {act} not mapped")
        if acts[act] is not None:
            mods.append(acts[act]())
    lr = mf.training.learning_rate if mf.training is not None else 1e-3
    return nn.Sequential(*mods), tuple(model.input_shape), lr


def torch_worker(args) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    if args.torch_flush_denormal:
        torch.set_flush_denormal(True)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    net, in_shape, lr = _torch_model(_model_path(args.model))
    h, w, c = in_shape
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    bs = args.batch_size
    n = bs * max(args.steps, 3)
    gen = torch.Generator().manual_seed(0)
    x_all = torch.rand(n, c, h, w, generator=gen)
    y_all = torch.randint(0, 10, (n,), generator=gen)

    def epoch(x, y):
        """One pass like Keras fit: shuffled batches copied out, loss/accuracy read back."""
        net.train()
        order = torch.randperm(x.shape[0])
        times = []
        last = time.perf_counter()
        for b in range(0, x.shape[0], bs):
            idx = order[b:b + bs]
            xb = x.index_select(0, idx)
            yb = y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            out = net(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            float(loss.item())
            float((out.argmax(1) == yb).float().mean().item())
            now = time.perf_counter()
            times.append(now - last)
            last = now
        return times

    epoch(x_all[:bs * 3], y_all[:bs * 3])  # warm-up
    times = epoch(x_all, y_all)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {"train_images_per_second": bs * len(times) / sum(times),
              "train_step_ms": statistics.median(times) * 1e3, "peak_rss_mb": rss}
    net.eval()
    with torch.inference_mode():
        xp = torch.rand(args.predict_batch_size, c, h, w, generator=gen)
        net(xp)
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            net(xp)
            ts.append(time.perf_counter() - t0)
        result["predict_images_per_second"] = args.predict_batch_size / statistics.median(ts)
        x1 = xp[:1]
        for _ in range(20):
            net(x1)
        ts = []
        for _ in range(200):
            t0 = time.perf_counter()
            net(x1)
            ts.append(time.perf_counter() - t0)
        result["predict_latency_ms"] = statistics.median(ts) * 1e3
    if args.full_epoch:
        sys.path.insert(0, ROOT)
        from visualcnn.engine.datasets import load_mnist

        (xt, yt), _ = load_mnist()
        x = torch.from_numpy((xt.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28))
        y = torch.from_numpy(yt.astype(np.int64))
        t0 = time.perf_counter()
        epoch(x, y)
        result["epoch_seconds_measured"] = time.perf_counter() - t0
    return result


def _model_path(name):
    sys.path.insert(0, ROOT)
    from visualcnn.commands.bench import resolve_model_path

    return resolve_model_path(name)


# ------------------------------------------------------------------ the driver

def _run_json(cmd):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_ours(model, bs, args):
    cmd = [sys.executable, "-m", "visualcnn", "bench", model, "--batch-size", str(bs), "--steps", str(args.steps),
           "--threads", str(args.threads), "--predict-batch-size", str(args.predict_batch_size), "--json"]
    if args.full_epoch:
        cmd.append("--full-epoch")
    return _run_json(cmd)


def run_torch(model, bs, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--torch-worker", "--model", model, "--batch-size", str(bs),
           "--steps", str(args.steps), "--threads", str(args.threads),
           "--predict-batch-size", str(args.predict_batch_size)]
    if args.full_epoch:
        cmd.append("--full-epoch")
    if args.torch_flush_denormal:
        cmd.append("--torch-flush-denormal")
    return _run_json(cmd)


METRICS = (  # key, label, higher is better
    ("train_images_per_second", "train images/s", True),
    ("predict_images_per_second", "predict images/s (batch {pb})", True),
    ("predict_latency_ms", "single-image latency ms", False),
    ("peak_rss_mb", "peak RSS MiB (training)", False),
    ("epoch_seconds_measured", "one MNIST epoch, s (measured)", False),
)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help="MODEL:BATCH,... (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--predict-batch-size", type=int, default=1000)
    ap.add_argument("--full-epoch", action="store_true", help="also train one real MNIST epoch on each side")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of all results")
    ap.add_argument("--torch-flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True) on the PyTorch side too (VisualCNN's training "
                         "threads flush denormals by default; PyTorch's do not)")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="seed_cnn", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=64, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        print(json.dumps(torch_worker(args)))
        return 0
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: nothing to compare with. Run `visualcnn bench` alone.")
        return 0
    print(f"torch {torch.__version__}, threads {args.threads}, rounds {args.rounds}, steps {args.steps}, "
          f"python {sys.version.split()[0]}, cpus {os.cpu_count()}", flush=True)
    summary = []
    for spec in args.configs.split(","):
        model, _, bs = spec.partition(":")
        bs = int(bs or 64)
        ours, theirs = [], []
        for r in range(args.rounds):
            first_ours = r % 2 == 0
            pair = {}
            for side in (("ours", "torch") if first_ours else ("torch", "ours")):
                pair[side] = run_ours(model, bs, args) if side == "ours" else run_torch(model, bs, args)
            ours.append(pair["ours"])
            theirs.append(pair["torch"])
            print(f"  {model} batch {bs} round {r + 1}: train ours {pair['ours']['train_images_per_second']:.0f} "
                  f"vs torch {pair['torch']['train_images_per_second']:.0f} img/s "
                  f"(ratio {pair['ours']['train_images_per_second'] / pair['torch']['train_images_per_second']:.2f}), "
                  f"predict ratio "
                  f"{pair['ours']['predict_images_per_second'] / pair['torch']['predict_images_per_second']:.2f}",
                  flush=True)
        entry = {"model": model, "batch_size": bs, "rounds": args.rounds, "metrics": {}}
        print(f"\n{model}, batch {bs}, {args.threads} threads ({args.rounds} rounds, medians)")
        print(f"  {'metric':34s} {'VisualCNN':>10s} {'PyTorch':>10s} {'ratio':>7s}  per-round ratios")
        for key, label, higher in METRICS:
            a = [o.get(key) for o in ours]
            b = [t.get(key) for t in theirs]
            if any(v is None for v in a + b):
                continue
            ma, mb = statistics.median(a), statistics.median(b)
            ratio = ma / mb if higher else mb / ma
            rounds = [(x / y if higher else y / x) for x, y in zip(a, b)]
            entry["metrics"][key] = {"visualcnn": ma, "torch": mb, "ratio": ratio,
                                     "round_ratios": rounds, "median_of_round_ratios": statistics.median(rounds)}
            print(f"  {label.format(pb=args.predict_batch_size):34s} {ma:10.3f} {mb:10.3f} {ratio:7.2f}  "
                  + " ".join(f"{x:.2f}" for x in rounds))
        layers = ours[len(ours) // 2].get("layers", [])
        if layers:
            print("  VisualCNN per layer (ms fwd / bwd): " + ", ".join(
                f"{c['name']} {c['forward_ms']:.2f}/{c['backward_ms']:.2f}" for c in layers))
        summary.append(entry)
        print(flush=True)
    print("ratio: > 1 means VisualCNN is faster (or, for latency and memory, smaller).")
    if args.json:
        print(json.dumps({"threads": args.threads, "results": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
