"""VisualCNN against PyTorch (CPU) on the benchmark networks, in one command.

    python benchmarks/compare_all.py [--rounds 3] [--threads 2] [--steps 30]
        [--networks benchmarks/networks/*.json] [--json]

The networks are model files in benchmarks/networks/: issue 10's nine (seed CNN, LeNet-5,
Conv-BN-ReLU x2 + pool, depthwise/separable, dilated convs, Conv2DTranspose, wide 32-64-128
x2 "same", MLP 512-256-10, 32x32x3 input) and issue 11's graphs (the small ResNet and the
Inception block presets). --networks takes files or their names (`--networks resnet` picks
10_resnet_mnist.json). The PyTorch side is built from the same file
(visualcnn/commands/bench_torch.py; graphs are walked layer by layer with their inbound), so
both run the same architecture.

For every network and round, fresh processes run one after the other, the order flipping
every round: `python -m visualcnn bench FILE --json` (the command users run) and the
PyTorch twin, both with the same threads, batch size and timed steps; then, for memory,
one fresh process per side that only predicts a batch of 1000 (peak RSS is a high-water
mark, so nothing else may run before it). Reported per network: medians of training
images/s, batch-1000 predict images/s, single-image latency and predict peak RSS, with
ratio = ours / torch for throughput and torch / ours for latency and memory (> 1 means
VisualCNN is better), plus every round's ratio. The machine's sgemm peak is measured once
at the start, and each network's training GFLOP/s is given as a share of it; each round's
`visualcnn bench` also measures the peak right after its training, and the share of that
one (same minute) is given per round: this machine's speed drifts over minutes, the peak's
with it (384 to 465 GFLOP/s within an hour).

Numbers from a machine shared with other work are noisy: alternate and repeat (--rounds).
PyTorch is a reference only: never imported by visualcnn's engine or app.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORKS = os.path.join(ROOT, "benchmarks", "networks")

METRICS = (  # key, label, higher is better
    ("train_images_per_second", "train images/s", True),
    ("predict_images_per_second", "predict images/s (batch {pb})", True),
    ("predict_latency_ms", "single-image latency ms", False),
    ("predict_peak_rss_mb", "peak RSS MiB predicting {pb}", False),
)


def _run_json(cmd):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ours(path, args):
    result = _run_json([sys.executable, "-m", "visualcnn", "bench", path, "--json",
                        "--batch-size", str(args.batch_size), "--steps", str(args.steps),
                        "--threads", str(args.threads), "--predict-batch-size", str(args.predict_batch_size)])
    memory = _run_json([sys.executable, "-m", "visualcnn", "bench", path, "--predict-memory-only",
                        "--threads", str(args.threads), "--predict-batch-size", str(args.predict_batch_size)])
    result.update(memory)
    return result


def theirs(path, args):
    base = [sys.executable, "-m", "visualcnn.commands.bench_torch", path, "--json", "--threads", str(args.threads),
            "--predict-batch-size", str(args.predict_batch_size)]
    result = _run_json(base + ["--batch-size", str(args.batch_size), "--steps", str(args.steps)])
    result.update(_run_json(base + ["--predict-memory-only"]))
    return result


def network_files():
    """benchmarks/networks/*.json in their numbered order (1_..., 2_..., 10_...)."""
    def number(path):
        head = os.path.basename(path).split("_", 1)[0]
        return (int(head) if head.isdigit() else 10 ** 6, path)
    return sorted(glob.glob(os.path.join(NETWORKS, "*.json")), key=number)


def network_path(name):
    """A model file as given, else the one benchmark network whose file name contains name."""
    if os.path.isfile(name):
        return name
    found = [p for p in network_files() if name in os.path.basename(p)]
    if len(found) != 1:
        known = ", ".join(os.path.basename(p) for p in network_files())
        raise SystemExit(f"--networks {name}: {'no' if not found else 'more than one'} benchmark network "
                         f"matches; give a file or one of: {known}")
    return found[0]


def machine_peak(threads):
    code = ("import json; from visualcnn.engine.benchmark import measure_sgemm_peak; "
            f"print(json.dumps(measure_sgemm_peak({threads})))")
    return _run_json([sys.executable, "-c", code])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--networks", nargs="*", default=None, help="model files or parts of their names, e.g. resnet (default: benchmarks/networks/*.json)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--predict-batch-size", type=int, default=1000)
    ap.add_argument("--json", action="store_true", help="end with one JSON line of all results")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: nothing to compare with (pip install torch; it is never a "
              "dependency of visualcnn).")
        return 1
    paths = [network_path(n) for n in args.networks] if args.networks else network_files()
    peak = machine_peak(args.threads)
    print(f"torch {torch.__version__}, threads {args.threads}, rounds {args.rounds}, steps {args.steps}, "
          f"batch {args.batch_size}, cpus {os.cpu_count()}; sgemm peak {peak['all']:.1f} GFLOP/s "
          f"({args.threads} threads), {peak['single']:.1f} (one)", flush=True)
    summary = []
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        mine, refs = [], []
        for r in range(args.rounds):
            order = ("ours", "torch") if r % 2 == 0 else ("torch", "ours")
            pair = {side: (ours(path, args) if side == "ours" else theirs(path, args)) for side in order}
            mine.append(pair["ours"])
            refs.append(pair["torch"])
        entry = {"network": name, "file": os.path.relpath(path, ROOT), "metrics": {}}
        for key, label, higher in METRICS:
            a = [o[key] for o in mine]
            b = [t[key] for t in refs]
            ma, mb = statistics.median(a), statistics.median(b)
            rounds = [(x / y if higher else y / x) for x, y in zip(a, b)]
            entry["metrics"][key] = {"visualcnn": ma, "torch": mb, "ratio": (ma / mb if higher else mb / ma),
                                     "round_ratios": rounds}
        gflops = statistics.median(o["train_gflops"] for o in mine)
        entry["train_gflops"] = gflops
        entry["peak_share"] = gflops / (peak["all"] if args.threads > 1 else peak["single"])
        # each round's own process measures the peak right after its training: the same
        # minute, where the peak of the start can be minutes and a machine phase away
        entry["peak_share_each_round"] = [o["peak_share"] for o in mine]
        entry["peak_share_same_minute"] = statistics.median(entry["peak_share_each_round"])
        summary.append(entry)
        m = entry["metrics"]
        print(f"{name:24s} train {m['train_images_per_second']['ratio']:5.2f}  "
              f"predict {m['predict_images_per_second']['ratio']:5.2f}  "
              f"latency {m['predict_latency_ms']['visualcnn']:.3f}/{m['predict_latency_ms']['torch']:.3f} ms  "
              f"RSS {m['predict_peak_rss_mb']['visualcnn']:.0f}/{m['predict_peak_rss_mb']['torch']:.0f} MiB  "
              f"peak share {100 * entry['peak_share']:.0f}% (same minute "
              f"{', '.join(f'{100 * v:.0f}' for v in entry['peak_share_each_round'])}%)", flush=True)
    print()
    print(f"{'network':24s} " + " ".join(f"{label.format(pb=args.predict_batch_size)[:24]:>26s}"
                                        for _, label, _ in METRICS))
    for entry in summary:
        cells = []
        for key, _, _ in METRICS:
            v = entry["metrics"][key]
            cells.append(f"{v['visualcnn']:9.2f}/{v['torch']:9.2f} {v['ratio']:5.2f}")
        print(f"{entry['network']:24s} " + " ".join(f"{c:>26s}" for c in cells))
    print("cells: VisualCNN / PyTorch medians, then the ratio (> 1: VisualCNN faster or smaller).")
    if args.json:
        print(json.dumps({"threads": args.threads, "rounds": args.rounds, "peak": peak, "results": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
