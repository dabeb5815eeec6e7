"""The PyTorch side of `visualcnn bench --compare-torch` and benchmarks/compare_all.py.

Builds the same architecture as a VisualCNN model file (from the file itself, layer by
layer, NCHW) and measures it the way `visualcnn bench` measures ours: training images/s
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


def _same_pad(size, k, s, d):
    """Keras 'same' padding (total, before) for one axis."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total, total // 2


def build_torch_model(model):
    """nn.Sequential equivalent of an engine model (input NCHW); softmax at the end is left
    to CrossEntropyLoss (the engine fuses softmax + cross-entropy too)."""
    import torch
    from torch import nn

    acts = {"relu": nn.ReLU, "relu6": nn.ReLU6, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU,
            "selu": nn.SELU, "gelu": nn.GELU, "softplus": nn.Softplus, "softsign": nn.Softsign, "silu": nn.SiLU,
            "hard_sigmoid": nn.Hardsigmoid, "leaky_relu": lambda: nn.LeakyReLU(0.2),
            "softmax": lambda: nn.Softmax(dim=1), "log_softmax": lambda: nn.LogSoftmax(dim=1),
            "linear": None, None: None}

    class Crop(nn.Module):
        def __init__(self, top, left, h, w):
            super().__init__()
            self.box = (top, left, h, w)

        def forward(self, x):
            t, l, h, w = self.box
            return x[:, :, t:t + h, l:l + w]

    report = model.checked_report()
    mods = []
    last = len(model.layers) - 1
    for i, (layer, row) in enumerate(zip(model.layers, report.rows)):
        c, kind = layer.config, layer.class_name
        ins, outs = row.input_shape, row.inference.output_shape
        if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            k, s = tuple(c["kernel_size"]), tuple(c["strides"])
            d = tuple(c.get("dilation_rate", (1, 1)))
            if c["padding"] == "same":
                (th, bh), (tw, bw) = (_same_pad(ins[1], k[0], s[0], d[0]), _same_pad(ins[2], k[1], s[1], d[1]))
                mods.append(nn.ZeroPad2d((bw, tw - bw, bh, th - bh)))
            ci = ins[-1]
            if kind == "Conv2D":
                mods.append(nn.Conv2d(ci, c["filters"], k, s, dilation=d, bias=c.get("use_bias", True)))
            elif kind == "DepthwiseConv2D":
                m = c.get("depth_multiplier", 1)
                mods.append(nn.Conv2d(ci, ci * m, k, s, dilation=d, groups=ci, bias=c.get("use_bias", True)))
            else:
                m = c.get("depth_multiplier", 1)
                mods.append(nn.Conv2d(ci, ci * m, k, s, dilation=d, groups=ci, bias=False))
                mods.append(nn.Conv2d(ci * m, c["filters"], 1, bias=c.get("use_bias", True)))
        elif kind == "Conv2DTranspose":
            k, s = tuple(c["kernel_size"]), tuple(c["strides"])
            d = tuple(c.get("dilation_rate", (1, 1)))
            mods.append(nn.ConvTranspose2d(ins[-1], c["filters"], k, s, dilation=d, bias=c.get("use_bias", True)))
            full = [(ins[1 + a] - 1) * s[a] + (k[a] - 1) * d[a] + 1 for a in range(2)]
            if (full[0], full[1]) != (outs[1], outs[2]):
                mods.append(Crop((full[0] - outs[1]) // 2, (full[1] - outs[2]) // 2, outs[1], outs[2]))
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            pool = tuple(c["pool_size"])
            strides = tuple(c["strides"]) if c.get("strides") else pool
            if c.get("padding", "valid") == "same":
                (th, bh), (tw, bw) = (_same_pad(ins[1], pool[0], strides[0], 1), _same_pad(ins[2], pool[1], strides[1], 1))
                fill = float("-inf") if kind == "MaxPooling2D" else 0.0
                mods.append(nn.ConstantPad2d((bw, tw - bw, bh, th - bh), fill))
            mods.append((nn.MaxPool2d if kind == "MaxPooling2D" else nn.AvgPool2d)(pool, strides))
        elif kind == "GlobalAveragePooling2D":
            mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif kind == "GlobalMaxPooling2D":
            mods += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
        elif kind == "Flatten":
            mods.append(nn.Flatten())
        elif kind == "Dense":
            if len(ins) != 2:
                raise SystemExit(f"torch twin: Dense on a {len(ins) - 1}-D input is not mapped")
            mods.append(nn.Linear(int(ins[-1]), c["units"], bias=c.get("use_bias", True)))
        elif kind == "Dropout":
            mods.append(nn.Dropout(c["rate"]))
        elif kind == "BatchNormalization":
            bn = nn.BatchNorm2d if len(ins) == 4 else nn.BatchNorm1d
            mods.append(bn(ins[-1], eps=c.get("epsilon", 1e-3), momentum=1.0 - c.get("momentum", 0.99),
                           affine=c.get("center", True) or c.get("scale", True)))
        elif kind in ("Activation", "InputLayer", "Input"):
            pass
        else:
            raise SystemExit(f"torch twin: layer {kind} is not mapped")
        act = c.get("activation")
        if act == "softmax" and i == last:
            act = None
        if act not in acts:
            raise SystemExit(f"torch twin: activation {act} is not mapped")
        if acts[act] is not None:
            mods.append(acts[act]())
    net = nn.Sequential(*mods)
    h, w, ch = model.input_shape
    with torch.no_grad():
        got = tuple(net(torch.zeros(2, ch, h, w)).shape[1:])
    want = tuple(report.rows[-1].inference.output_shape[1:])
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
