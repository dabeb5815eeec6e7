"""The PyTorch side of `visualcnn bench --compare-torch` and benchmarks/compare_all.py.

Builds the same architecture as a VisualCNN model file (from the file itself, layer by
layer, NCHW; a graph model as a module that runs the layers in topological order, each fed
by its inbound layers and merged as Add/Concatenate/... do) and measures it the way `visualcnn bench` measures ours: training images/s
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


_ACTS = {  # Keras activation name -> torch module factory (None: identity)
    "relu": "ReLU", "relu6": "ReLU6", "tanh": "Tanh", "sigmoid": "Sigmoid", "elu": "ELU", "selu": "SELU",
    "gelu": "GELU", "softplus": "Softplus", "softsign": "Softsign", "silu": "SiLU", "hard_sigmoid": "Hardsigmoid",
    "leaky_relu": "LeakyReLU", "softmax": "Softmax", "log_softmax": "LogSoftmax", "linear": None, None: None}

# NHWC (Keras) axis of a 4-D tensor -> NCHW (torch) dim; other ranks keep Keras's layout.
_NCHW_AXIS = {1: 2, 2: 3, 3: 1}


def _activation(name):
    from torch import nn

    if name not in _ACTS:
        raise SystemExit(f"torch twin: activation {name} is not mapped")
    kind = _ACTS[name]
    if kind is None:
        return None
    if kind == "LeakyReLU":
        return nn.LeakyReLU(0.2)
    if kind in ("Softmax", "LogSoftmax"):
        return getattr(nn, kind)(dim=1)
    return getattr(nn, kind)()


def _layer_modules(layer, ins, outs, is_output):
    """The torch modules (applied in order) of one non-merge engine layer whose Keras input
    shape is ``ins`` and output shape ``outs`` (4-D tensors are NCHW on the torch side)."""
    import torch
    from torch import nn

    class Lambda(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    def keras_layout(fn):
        """fn on the Keras (channels-last) layout of x; the result back in the torch layout."""
        def run(x):
            if x.dim() == 4:
                x = x.permute(0, 2, 3, 1)
            y = fn(x)
            return y.permute(0, 3, 1, 2) if y.dim() == 4 else y
        return Lambda(run)

    c, kind = layer.config, layer.class_name
    mods = []
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
            t, l, h, w = (full[0] - outs[1]) // 2, (full[1] - outs[2]) // 2, outs[1], outs[2]
            mods.append(Lambda(lambda x: x[:, :, t:t + h, l:l + w]))
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
    elif kind == "SpatialDropout2D":
        mods.append(nn.Dropout2d(c["rate"]))
    elif kind == "BatchNormalization":
        bn = nn.BatchNorm2d if len(ins) == 4 else nn.BatchNorm1d
        mods.append(bn(ins[-1], eps=c.get("epsilon", 1e-3), momentum=1.0 - c.get("momentum", 0.99),
                       affine=c.get("center", True) or c.get("scale", True)))
    elif kind == "LayerNormalization" and c.get("axis", -1) in (-1, len(ins) - 1):
        ch, eps = ins[-1], c.get("epsilon", 1e-3)
        if len(ins) == 4:  # channels are dim 1 in NCHW: normalise there, per position
            gamma, beta = nn.Parameter(torch.ones(ch, 1, 1)), nn.Parameter(torch.zeros(ch, 1, 1))
            norm = Lambda(lambda x: (x - x.mean(1, keepdim=True))
                          * torch.rsqrt(x.var(1, unbiased=False, keepdim=True) + eps) * gamma + beta)
            norm.gamma, norm.beta = gamma, beta
            mods.append(norm)
        else:
            mods.append(nn.LayerNorm(ch, eps=eps))
    elif kind == "GroupNormalization" and c.get("axis", -1) in (-1, len(ins) - 1) and len(ins) in (2, 4):
        mods.append(nn.GroupNorm(c["groups"], ins[-1], eps=c.get("epsilon", 1e-3)))
    elif kind == "ReLU":
        top, slope, threshold = c.get("max_value"), c.get("negative_slope", 0.0), c.get("threshold", 0.0)
        if slope == 0.0 and threshold == 0.0:
            mods.append(nn.ReLU() if top is None else nn.Hardtanh(0.0, float(top)))
        else:
            def relu(x, top=top, slope=slope, threshold=threshold):
                y = torch.where(x >= threshold, x, slope * (x - threshold))
                return y if top is None else y.clamp(max=top)
            mods.append(Lambda(relu))
    elif kind == "LeakyReLU":
        mods.append(nn.LeakyReLU(c.get("negative_slope", 0.3)))
    elif kind == "ELU":
        mods.append(nn.ELU(c.get("alpha", 1.0)))
    elif kind == "PReLU":
        # Keras: one alpha per element of the example, 1 along shared_axes.
        shape = [1 if shared and a + 1 in shared else ins[a + 1]
                 for a, shared in ((a, tuple(c.get("shared_axes") or ())) for a in range(len(ins) - 1))]
        alpha = nn.Parameter(torch.zeros(*shape))
        if len(ins) == 4:
            prelu = Lambda(lambda x: torch.where(x >= 0, x, x * alpha.permute(2, 0, 1)))
        else:
            prelu = Lambda(lambda x: torch.where(x >= 0, x, x * alpha))
        prelu.alpha = alpha
        mods.append(prelu)
    elif kind == "Softmax":
        if not is_output:  # the output's softmax is CrossEntropyLoss's
            axis = c.get("axis", -1)
            axis = axis if isinstance(axis, int) else axis[0]
            axis = axis % len(ins)
            mods.append(nn.Softmax(dim=_NCHW_AXIS[axis] if len(ins) == 4 else axis))
    elif kind == "Rescaling":
        scale, offset = c.get("scale", 1.0), c.get("offset", 0.0)
        mods.append(Lambda(lambda x: x * scale + offset))
    elif kind == "GaussianNoise":
        stddev = c["stddev"]
        noise = Lambda(lambda x: x + stddev * torch.randn_like(x) if noise.training else x)
        mods.append(noise)
    elif kind == "ZeroPadding2D":
        (t, b), (l, r) = c["padding"]
        mods.append(nn.ZeroPad2d((l, r, t, b)))
    elif kind == "Cropping2D":
        (t, b), (l, r) = c["cropping"]
        h, w = ins[1] - t - b, ins[2] - l - r
        mods.append(Lambda(lambda x: x[:, :, t:t + h, l:l + w]))
    elif kind == "UpSampling2D":
        mode = c.get("interpolation", "nearest")
        if mode not in ("nearest", "bilinear"):
            raise SystemExit(f"torch twin: UpSampling2D interpolation {mode} is not mapped")
        mods.append(nn.Upsample(scale_factor=tuple(c["size"]), mode=mode))
    elif kind == "Reshape":
        target = tuple(outs[1:])
        mods.append(keras_layout(lambda x: x.reshape(x.shape[0], *target)))
    elif kind == "Permute":
        dims = (0,) + tuple(c["dims"])
        mods.append(keras_layout(lambda x: x.permute(*dims)))
    elif kind in ("Activation", "InputLayer", "Input"):
        pass
    else:
        raise SystemExit(f"torch twin: layer {kind} is not mapped")
    act = c.get("activation") if kind not in ("ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax") else None
    if act == "softmax" and is_output:
        act = None
    module = _activation(act)
    if module is not None:
        mods.append(module)
    return mods


def _merge_function(layer, rank):
    """How a merge layer joins its inputs (torch tensors, 4-D ones NCHW)."""
    import functools

    import torch

    kind = layer.class_name
    if kind == "Concatenate":
        axis = layer.config.get("axis", -1) % rank
        dim = _NCHW_AXIS[axis] if rank == 4 else axis
        return lambda xs: torch.cat(xs, dim=dim)
    join = {"Add": lambda xs: functools.reduce(torch.add, xs),
            "Subtract": lambda xs: xs[0] - xs[1],
            "Multiply": lambda xs: functools.reduce(torch.mul, xs),
            "Average": lambda xs: functools.reduce(torch.add, xs) / len(xs),
            "Maximum": lambda xs: functools.reduce(torch.maximum, xs),
            "Minimum": lambda xs: functools.reduce(torch.minimum, xs)}.get(kind)
    if join is None:
        raise SystemExit(f"torch twin: merge layer {kind} is not mapped")

    def broadcast(xs):
        # Keras aligns the last axes: a (N, C) input beside NCHW ones is (N, C, 1, 1).
        return join([x.reshape(*x.shape, 1, 1) if rank == 4 and x.dim() == 2 else x for x in xs])
    return broadcast


def build_torch_model(model):
    """The torch twin of an engine model (input NCHW): nn.Sequential for a linear model, else
    a module that walks the layers in topological order, each fed by its inbound layers (so
    any graph of the mapped layers works, branches and merges included). A softmax at the
    output is left to CrossEntropyLoss (the engine fuses softmax + cross-entropy too)."""
    import torch
    from torch import nn

    report = model.checked_report()
    inbound = tuple(getattr(model, "inbound", None) or ((i - 1,) for i in range(len(model.layers))))
    last = len(model.layers) - 1
    stages, joins = [], []
    for i, (layer, row) in enumerate(zip(model.layers, report.rows)):
        outs = row.inference.output_shape
        if getattr(layer, "merge", False):
            stages.append(nn.Sequential(*(m for m in [_activation(layer.config.get("activation"))] if m)))
            joins.append(_merge_function(layer, len(outs)))
        else:
            stages.append(nn.Sequential(*_layer_modules(layer, row.input_shape, outs, i == last)))
            joins.append(None)
    linear = all(ins == (i - 1,) for i, ins in enumerate(inbound))
    if linear:
        net = nn.Sequential(*(m for stage in stages for m in stage))
    else:
        net = GraphNet(stages, joins, inbound)
    h, w, ch = model.input_shape
    with torch.no_grad():
        got = tuple(net(torch.zeros(2, ch, h, w)).shape[1:])
    want = tuple(report.rows[-1].inference.output_shape[1:])
    if int(torch.tensor(got).prod()) != int(torch.tensor(want).prod()):
        raise SystemExit(f"torch twin: output {got} does not match the model's {want}")
    return net


def GraphNet(stages, joins, inbound):
    """A torch module running ``stages`` in topological order; stage i is fed by the
    outputs listed in inbound[i] (-1: the model input), merged by joins[i] when it has one.
    Each output is dropped after its last consumer, as a framework would."""
    from torch import nn

    last_use = {}
    for i, sources in enumerate(inbound):
        for j in sources:
            last_use[j] = i

    class _GraphNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = nn.ModuleList(stages)

        def forward(self, x):
            outputs = {-1: x}
            for i, (stage, join, sources) in enumerate(zip(self.stages, joins, inbound)):
                xs = [outputs[j] for j in sources]
                for j in sources:
                    if last_use[j] == i:
                        outputs.pop(j, None)
                outputs[i] = stage(join(xs) if join is not None else xs[0])
            return outputs[len(joins) - 1]

    return _GraphNet()


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
