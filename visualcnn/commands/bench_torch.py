"""The PyTorch side of `visualcnn bench --compare-torch` and benchmarks/compare_all.py.

Builds the same architecture as a VisualCNN model file (the nn.Module the PyTorch export
writes, NCHW, any graph: forward runs the layers in topological order, each fed by its
inbound layers) and measures it the way `visualcnn bench` measures ours: training images/s
(shuffled batches copied out, forward, loss, backward, Adam step, loss and accuracy read
back as Keras's fit does), batch-N predict images/s, single-image latency, and the peak
RSS of predicting one batch of N.

PyTorch is a reference only: it is imported here, in a separate process
(``python -m visualcnn.commands.bench_torch MODEL --json``), never by the engine or the
app, and it is not a dependency of the package.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

__all__ = ["torch_available", "build_torch_model", "measure"]


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def build_torch_model(model):
    """The torch twin of an engine model (input NCHW): the nn.Module the PyTorch export
    writes into model.py (engine/export/pytorch_folder.py, one translation of every layer
    for both), run up to its scores: a softmax at the output is left to CrossEntropyLoss
    (the engine fuses softmax + cross-entropy too). Its state_dict keys are the export's,
    so pytorch_folder.state_arrays(model) loads the engine's weights into it."""
    import torch

    from ..engine.export.pytorch_folder import module_source, problems

    found = problems(model)
    if found:
        raise SystemExit("torch twin: " + "; ".join(found))
    source = module_source(model)
    namespace = {"__name__": "visualcnn_torch_twin", "__file__": "torch_twin.py"}
    exec(compile(source.source, f"<torch twin of {model.name}>", "exec"), namespace)
    exported = namespace[source.class_name]

    class Twin(exported):
        def forward(self, x):
            return super().forward(x, logits=True)

    net = Twin()
    h, w, ch = model.input_shape
    with torch.no_grad():
        got = tuple(net.eval()(torch.zeros(2, ch, h, w)).shape[1:])
    net.train()
    want = tuple(model.checked_report().rows[-1].inference.output_shape[1:])
    if int(torch.tensor(got).prod()) != int(torch.tensor(want).prod()):
        raise SystemExit(f"torch twin: output {got} does not match the model's {want}")
    return net


def measure(model_path, batch_size=64, steps=30, threads=None, predict_batch_size=1000, latency_repeats=200):
    import numpy as np
    import torch

    from ..engine import load_model_file

    if threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    mf = load_model_file(model_path)
    model = mf.model
    net = build_torch_model(model)
    lr = mf.training.learning_rate if mf.training is not None else 1e-3
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    h, w, c = model.input_shape
    classes = int(np.prod(model.output_shape[1:]))
    bs = batch_size
    n = bs * max(steps, 3)
    gen = torch.Generator().manual_seed(0)
    x_all = torch.rand(n, c, h, w, generator=gen)
    y_all = torch.randint(0, classes, (n,), generator=gen)

    def epoch(x, y):
        net.train()
        order = torch.randperm(x.shape[0])
        times = []
        last = time.perf_counter()
        for b in range(0, x.shape[0], bs):
            idx = order[b:b + bs]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            out = net(xb).reshape(xb.shape[0], -1)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            float(loss.item())
            float((out.argmax(1) == yb).float().mean().item())
            now = time.perf_counter()
            times.append(now - last)
            last = now
        return times

    epoch(x_all[:bs * 3], y_all[:bs * 3])
    times = epoch(x_all, y_all)
    result = {"train_images_per_second": bs * len(times) / sum(times),
              "train_step_ms": statistics.median(times) * 1e3, "threads": torch.get_num_threads()}
    net.eval()
    with torch.inference_mode():
        x1 = torch.rand(1, c, h, w, generator=gen)
        for _ in range(20):
            net(x1)
        ts = []
        for _ in range(latency_repeats):
            t0 = time.perf_counter()
            net(x1)
            ts.append(time.perf_counter() - t0)
        result["predict_latency_ms"] = statistics.median(ts) * 1e3
        xp = torch.rand(predict_batch_size, c, h, w, generator=gen)
        net(xp)
        ts = []
        for _ in range(5):
            t0 = time.perf_counter()
            net(xp)
            ts.append(time.perf_counter() - t0)
        result["predict_images_per_second"] = predict_batch_size / statistics.median(ts)
    return result


def predict_memory(model_path, predict_batch_size=1000, threads=None) -> dict:
    """Peak RSS (MiB) of a fresh process that builds the twin and predicts one batch
    (run it alone in its process: ru_maxrss is a high-water mark)."""
    import torch

    from ..engine import load_model_file

    if threads:
        torch.set_num_threads(threads)
    model = load_model_file(model_path).model
    net = build_torch_model(model).eval()
    h, w, c = model.input_shape
    x = torch.rand(predict_batch_size, c, h, w)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    with torch.inference_mode():
        net(x)
    return {"predict_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "rss_before_predict_mb": before}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="PyTorch twin of a VisualCNN model file (benchmark reference)")
    ap.add_argument("model")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--predict-batch-size", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--predict-memory-only", action="store_true",
                    help="only predict one batch and report the process's peak RSS")
    args = ap.parse_args(argv)
    from .bench import resolve_model_path

    if args.predict_memory_only:
        result = predict_memory(resolve_model_path(args.model), args.predict_batch_size, args.threads)
        print(json.dumps(result) if args.json else result)
        return 0
    result = measure(resolve_model_path(args.model), args.batch_size, args.steps, args.threads,
                     args.predict_batch_size)
    print(json.dumps(result) if args.json else result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
