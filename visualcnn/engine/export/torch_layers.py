"""One layer as PyTorch source: the module it becomes, the line(s) of forward it runs, and
how its Keras weights become that module's state_dict entries.

The layout contract: a 4-axis tensor is channels-first (N, C, H, W) in PyTorch; a tensor
of any other rank keeps Keras's layout. Every Keras axis a layer names is mapped through
`torch_dim`, and the few layers whose meaning is tied to Keras's element order (Flatten,
Reshape, Permute, a Dense on an image) move to channels-last for that one step.

Numerics follow Keras, not PyTorch's defaults: "same" padding puts the odd pixel at the
END (bottom/right), BatchNormalization's momentum is 1 - Keras's, epsilons are Keras's,
average pooling with "same" padding divides by the pixels inside the image only, and the
kernels are transposed from Keras's (kh, kw, cin, cout) to PyTorch's (cout, cin, kh, kw).

pytorch_folder.py writes these pieces into model.py; `problems` says which layers (and
settings) cannot be written, naming the layer and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# Keras activation name -> a PyTorch expression around "{}" on an (N, C, ...) tensor whose
# last Keras axis is torch dim `{dim}` (softmax and log_softmax act along it).
ACTIVATIONS = {
    "linear": "{}", "relu": "F.relu({})", "relu6": "F.relu6({})",
    "leaky_relu": "F.leaky_relu({}, 0.2)",  # Keras 3's default slope for the activation name
    "elu": "F.elu({})", "selu": "F.selu({})", "gelu": "F.gelu({})",  # Keras's gelu: exact (erf)
    "sigmoid": "torch.sigmoid({})", "hard_sigmoid": "F.hardsigmoid({})",  # Keras 3: relu6(x + 3) / 6
    "tanh": "torch.tanh({})", "softmax": "torch.softmax({}, dim={dim})",
    "log_softmax": "torch.log_softmax({}, dim={dim})", "softplus": "F.softplus({})",
    "softsign": "F.softsign({})", "silu": "F.silu({})", "swish": "F.silu({})", "exponential": "torch.exp({})",
}

_NCHW = {1: 2, 2: 3, 3: 1}  # Keras axis of a 4-axis (N, H, W, C) tensor -> PyTorch dim of (N, C, H, W)


def torch_dim(axis: int, rank: int) -> int:
    """The PyTorch dim of Keras axis `axis` (any sign) of a tensor with `rank` axes."""
    axis %= rank
    return _NCHW[axis] if rank == 4 else axis


def torch_shape(keras_shape) -> tuple:
    """(None, H, W, C) -> (None, C, H, W); other ranks unchanged."""
    shape = tuple(keras_shape)
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras/TensorFlow "same" padding of one axis as (before, after): the odd pixel after."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


@dataclass
class Piece:
    """What one layer contributes to model.py.

    init: __init__'s lines: the first is the module (assigned to self.<attr>), the others
    statements about it ("{m}" = self.<attr>);
    forward: source lines; "{x}" is the input variable (merges: "{xs}" the list, "{x0}",
    "{x1}"... each), "{y}" the output variable, "{m}" the layer's attribute (self.<attr>);
    helpers: names of the helper classes (HELPERS) the lines use;
    weights: Keras weights {name: array} -> {state_dict key below the attribute: array};
    comment: why the forward lines differ from a naive translation (written above them).
    """

    init: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    helpers: set[str] = field(default_factory=set)
    weights: Callable[[dict], dict] | None = None
    comment: str = ""


def problem(layer, ins, outs) -> str | None:
    """Why this layer (with these Keras input/output shapes) cannot be written, or None."""
    kind = layer.class_name
    if kind not in TRANSLATORS:
        return f"PyTorch export has no translation for {kind}; remove it or replace it with a layer it supports"
    if layer.merge and len(outs) > 4 and any(len(s) == 4 for s in ins):
        return (f"it joins an image (channels first in PyTorch) with a tensor of {len(outs)} axes; "
                "reshape the image to the other input's rank first")
    act = layer.config.get("activation")
    if act is not None and act not in ACTIVATIONS:
        return f"activation {act!r} has no PyTorch translation"
    check = CHECKS.get(kind)
    return check(layer, ins, outs) if check else None


def translate(layer, ins, outs) -> Piece:
    """The Piece of one layer; ins: its Keras input shape (a list of them for a merge)."""
    return TRANSLATORS[layer.class_name](layer, ins, outs)


def activation(name: str | None, rank: int) -> str:
    """The expression template ("{}" = the value) of Keras activation `name` on a tensor of `rank`."""
    return ACTIVATIONS[name or "linear"].replace("{dim}", str(torch_dim(-1, rank)))


def _args(*pairs) -> str:
    """"a, b=1" from (value, None) positional and (value, name) keyword pairs (None values dropped)."""
    out = []
    for value, name in pairs:
        if value is None:
            continue
        out.append(repr(value) if name is None else f"{name}={value!r}")
    return ", ".join(out)


def _pair(v) -> tuple:
    return tuple(int(a) for a in v)


# --- convolutions -----------------------------------------------------------------------

def _conv_padding(c, ins, kernel, strides, dilation):
    """(torch padding pair, extra end pixels (w, h) for F.pad or None) for a conv's padding."""
    if c["padding"] != "same":
        return (0, 0), None
    (top, bottom), (left, right) = (same_padding(ins[1], kernel[0], strides[0], dilation[0]),
                                    same_padding(ins[2], kernel[1], strides[1], dilation[1]))
    extra = (right - left, bottom - top)
    return (top, left), (extra if any(extra) else None)


ODD_PIXEL = "'same' padding's odd pixel goes at the bottom/right, as in Keras"


def _conv_forward(call: str, extra, act: str) -> list[str]:
    x = "{x}"
    if extra:
        # Keras puts the odd padding pixel at the end (bottom/right); PyTorch's padding is symmetric
        x = f"F.pad({{x}}, (0, {extra[0]}, 0, {extra[1]}))"
    return ["{y} = " + act.format(f"{call}({x})")]


def _conv_piece(init, extra, act, helpers, weights) -> Piece:
    return Piece(init, _conv_forward("{m}", extra, act), helpers, weights, ODD_PIXEL if extra else "")


def _conv_kwargs(strides, padding, dilation, bias, groups=None):
    return _args((strides if strides != (1, 1) else None, "stride"),
                 (padding if padding != (0, 0) else None, "padding"),
                 (dilation if dilation != (1, 1) else None, "dilation"),
                 (groups, "groups"), (None if bias else False, "bias"))


def _conv2d(layer, ins, outs):
    c = layer.config
    k, s, d = _pair(c["kernel_size"]), _pair(c["strides"]), _pair(c["dilation_rate"])
    padding, extra = _conv_padding(c, ins, k, s, d)
    kind = layer.class_name
    cin = int(ins[3])
    act = activation(c.get("activation"), 4)
    if kind == "Conv2D":
        module = f"nn.Conv2d({cin}, {c['filters']}, {_args((k, 'kernel_size'))}"
        module += (", " + _conv_kwargs(s, padding, d, c["use_bias"])).rstrip(", ") + ")"

        def weights(w):
            out = {"weight": w["kernel"].transpose(3, 2, 0, 1)}  # (kh, kw, cin, cout) -> (cout, cin, kh, kw)
            if "bias" in w:
                out["bias"] = w["bias"]
            return out
        return _conv_piece([module], extra, act, set(), weights)
    m = int(c.get("depth_multiplier", 1))
    if kind == "DepthwiseConv2D":
        module = (f"nn.Conv2d({cin}, {cin * m}, {_args((k, 'kernel_size'))}, "
                  + _conv_kwargs(s, padding, d, c["use_bias"], groups=cin) + ")")

        def weights(w):
            out = {"weight": _depthwise(w["depthwise_kernel"])}
            if "bias" in w:
                out["bias"] = w["bias"]
            return out
        return _conv_piece([module], extra, act, set(), weights)
    # SeparableConv2D
    module = (f"SeparableConv2d({cin}, {c['filters']}, {_args((k, 'kernel_size'))}"
              + "".join(f", {a}" for a in [_args((s if s != (1, 1) else None, "stride"),
                                                 (padding if padding != (0, 0) else None, "padding"),
                                                 (d if d != (1, 1) else None, "dilation"),
                                                 (m if m != 1 else None, "depth_multiplier"),
                                                 (None if c["use_bias"] else False, "bias"))] if a) + ")")

    def weights(w):
        out = {"depthwise.weight": _depthwise(w["depthwise_kernel"]),
               "pointwise.weight": w["pointwise_kernel"].transpose(3, 2, 0, 1)}
        if "bias" in w:
            out["pointwise.bias"] = w["bias"]
        return out
    return _conv_piece([module], extra, act, {"SeparableConv2d"}, weights)


def _depthwise(kernel):
    """Keras (kh, kw, cin, multiplier) -> PyTorch grouped (cin*multiplier, 1, kh, kw); Keras's
    output channel c*multiplier + j is input channel c's j-th filter, as in PyTorch."""
    kh, kw, cin, m = kernel.shape
    return kernel.reshape(kh, kw, cin * m).transpose(2, 0, 1)[:, None]


def _transpose_geometry(c, ins, outs):
    """(torch padding, torch output_padding, end crop) per axis reproducing Keras's
    Conv2DTranspose: the full transposed conv, `pad` pixels dropped at the start (the
    engine's / TensorFlow's rule), cut or zero-extended at the end to Keras's size."""
    pads, extras, crops = [], [], []
    for a in (0, 1):
        k, s, d = c["kernel_size"][a], c["strides"][a], c["dilation_rate"][a]
        size_in, size_out = ins[1 + a], outs[1 + a]
        full = (size_in - 1) * s + (k - 1) * d + 1
        pad = max(full - size_out, 0) // 2 if c["padding"] == "same" else 0
        torch_out = full - 2 * pad
        pads.append(pad)
        extras.append(max(size_out - torch_out, 0))
        crops.append(size_out if torch_out > size_out else None)
    return tuple(pads), tuple(extras), crops


def _conv_transpose(layer, ins, outs):
    c = layer.config
    k, s, d = _pair(c["kernel_size"]), _pair(c["strides"]), _pair(c["dilation_rate"])
    pads, extras, crops = _transpose_geometry(c, ins, outs)
    kw = _args((s if s != (1, 1) else None, "stride"), (pads if pads != (0, 0) else None, "padding"),
               (extras if extras != (0, 0) else None, "output_padding"),
               (d if d != (1, 1) else None, "dilation"), (None if c["use_bias"] else False, "bias"))
    module = f"nn.ConvTranspose2d({int(ins[3])}, {c['filters']}, {_args((k, 'kernel_size'))}" + (f", {kw}" if kw else "") + ")"
    call = "{m}({x})"
    comment = ""
    if any(crops):
        # Keras keeps the first out_h x out_w pixels after its start padding: drop the rest
        call += f"[:, :, :{crops[0] or outs[1]}, :{crops[1] or outs[2]}]"
        comment = "Keras's 'same' output keeps the first rows/columns: the extra one at the end is cut"
    act = activation(c.get("activation"), 4)

    def weights(w):
        out = {"weight": w["kernel"].transpose(3, 2, 0, 1)}  # (kh, kw, out, in) -> (in, out, kh, kw)
        if "bias" in w:
            out["bias"] = w["bias"]
        return out
    return Piece([module], ["{y} = " + act.format(call)], set(), weights, comment)


_BATCH_NORMS = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}


def _check_batch_norm(layer, ins, outs):
    if len(ins) not in _BATCH_NORMS:
        return f"PyTorch's BatchNorm takes tensors of 2 to 5 axes (batch included), this input has {len(ins)}"
    return None


def _check_conv_transpose(layer, ins, outs):
    _, extras, _ = _transpose_geometry(layer.config, ins, outs)
    for a, e in enumerate(extras):
        limit = max(layer.config["strides"][a], layer.config["dilation_rate"][a])
        if e >= limit:
            return (f"its output needs {e} extra rows/columns at the end, more than PyTorch's "
                    f"output_padding allows (< {limit})")
    return None


# --- pooling ----------------------------------------------------------------------------

def _pooling(layer, ins, outs):
    c = layer.config
    pool = _pair(c["pool_size"])
    strides = _pair(c["strides"]) if c.get("strides") else pool
    is_max = layer.class_name == "MaxPooling2D"
    module = f"nn.{'MaxPool2d' if is_max else 'AvgPool2d'}({_args((pool, 'kernel_size'))}" + (
        f", stride={strides!r})" if strides != pool else ")")
    if c.get("padding", "valid") != "same":
        return Piece([module], ["{y} = {m}({x})"])
    (top, bottom), (left, right) = same_padding(ins[1], pool[0], strides[0]), same_padding(ins[2], pool[1], strides[1])
    pad = (left, right, top, bottom)
    if pad == (0, 0, 0, 0):
        return Piece([module], ["{y} = {m}({x})"])
    if is_max:
        # "same": Keras pads with -inf (never chosen), the odd pixel at the end
        return Piece([module], [f"{{y}} = {{m}}(F.pad({{x}}, {pad!r}, value=-math.inf))"],
                     comment="'same': padded with -inf (never the maximum), the odd pixel at the bottom/right")
    # Keras averages over the pixels inside the image only: divide by the share of real pixels
    return Piece([module], [f"{{y}} = {{m}}(F.pad({{x}}, {pad!r})) / {{m}}(F.pad(torch.ones_like({{x}}[:1, :1]), {pad!r}))"],
                 comment="'same': the average of the pixels inside the image only, as Keras")


def _global_pooling(layer, ins, outs):
    op = "mean" if layer.class_name == "GlobalAveragePooling2D" else "amax"
    keep = ", keepdim=True" if layer.config.get("keepdims") else ""
    return Piece([], [f"{{y}} = {{x}}.{op}(dim=(2, 3){keep})"])


# --- core -------------------------------------------------------------------------------

def _flatten(layer, ins, outs):
    if len(ins) == 4:
        # Keras flattens (H, W, C): the Dense after it was trained on that order
        return Piece([], ["{y} = torch.flatten({x}.permute(0, 2, 3, 1), 1)"],
                     comment="Keras flattens in (H, W, C) order")
    return Piece([], ["{y} = torch.flatten({x}, 1)"])


def _dense(layer, ins, outs):
    c = layer.config
    module = f"nn.Linear({int(ins[-1])}, {c['units']}" + ("" if c["use_bias"] else ", bias=False") + ")"
    act = activation(c.get("activation"), len(outs))
    call = "{m}({x})"
    comment = ""
    if len(ins) == 4:  # Keras's Dense acts on the last (channel) axis of an image
        call = "{m}({x}.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)"
        comment = "Keras's Dense acts on the channels of each pixel"

    def weights(w):
        out = {"weight": w["kernel"].T}  # (in, out) -> (out, in)
        if "bias" in w:
            out["bias"] = w["bias"]
        return out
    return Piece([module], ["{y} = " + act.format(call)], set(), weights, comment)


def _activation_layer(layer, ins, outs):
    return Piece([], ["{y} = " + activation(layer.config["activation"], len(ins)).format("{x}")])


def _dropout(layer, ins, outs):
    # training-only: nn.Dropout is the identity in eval mode, as Keras's is when predicting
    return Piece([f"nn.Dropout({layer.config['rate']!r})"], ["{y} = {m}({x})"])


def _spatial_dropout(layer, ins, outs):
    # Dropout2d zeroes whole channels of (N, C, H, W), as SpatialDropout2D does
    return Piece([f"nn.Dropout2d({layer.config['rate']!r})"], ["{y} = {m}({x})"])


def _gaussian_noise(layer, ins, outs):
    return Piece([f"GaussianNoise({layer.config['stddev']!r})"], ["{y} = {m}({x})"], {"GaussianNoise"})


# --- activation layers ------------------------------------------------------------------

def _relu(layer, ins, outs):
    c = layer.config
    top, slope, threshold = c.get("max_value"), float(c.get("negative_slope", 0.0)), float(c.get("threshold", 0.0))
    if slope == 0.0 and threshold == 0.0:
        if top is None:
            return Piece(["nn.ReLU()"], ["{y} = {m}({x})"])
        return Piece([f"nn.Hardtanh(0.0, {float(top)!r})"], ["{y} = {m}({x})"])
    # Keras: x above threshold (capped at max_value), else negative_slope * (x - threshold)
    line = f"{{y}} = torch.where({{x}} > {threshold!r}, {{x}}, {slope!r} * ({{x}} - {threshold!r}))"
    lines = [line] + ([f"{{y}} = {{y}}.clamp(max={float(top)!r})"] if top is not None else [])
    return Piece([], lines)


def _leaky_relu(layer, ins, outs):
    return Piece([f"nn.LeakyReLU({float(layer.config['negative_slope'])!r})"], ["{y} = {m}({x})"])


def _elu(layer, ins, outs):
    return Piece([f"nn.ELU({float(layer.config['alpha'])!r})"], ["{y} = {m}({x})"])


def _keras_to_torch_broadcast(w, axes, ins):
    """A weight over Keras axes `axes` (positive, sorted; w's dims in that order) as the
    (C, H, W)-style broadcast shape of one example in PyTorch's layout."""
    rank = len(ins)
    shape = [int(ins[a]) if a in axes else 1 for a in range(1, rank)]
    full = np.asarray(w).reshape(shape)
    return full.transpose(2, 0, 1) if rank == 4 else full


def _prelu(layer, ins, outs):
    shared = tuple(layer.config.get("shared_axes") or ())
    shape = tuple(1 if a in shared else int(ins[a]) for a in range(1, len(ins)))
    if len(ins) == 4:
        shape = (shape[2], shape[0], shape[1])

    def weights(w):
        alpha = w["alpha"]  # Keras: shape of one example with 1 along shared_axes
        return {"alpha": np.ascontiguousarray(alpha.transpose(2, 0, 1) if len(ins) == 4 else alpha)}
    return Piece([f"PReLU({shape!r})"], ["{y} = {m}({x})"], {"PReLU"}, weights)


def _softmax_layer(layer, ins, outs):
    axis = layer.config["axis"]
    axes = sorted({torch_dim(a, len(ins)) for a in (axis if isinstance(axis, tuple) else (axis,))})
    if len(axes) == 1:
        return Piece([f"nn.Softmax(dim={axes[0]})"], ["{y} = {m}({x})"])
    dims = tuple(axes)
    return Piece([], [f"{{y}} = torch.exp({{x}} - {{x}}.amax(dim={dims!r}, keepdim=True))",
                      f"{{y}} = {{y}} / {{y}}.sum(dim={dims!r}, keepdim=True)  # softmax over several axes"])


# --- normalization ----------------------------------------------------------------------

def _frozen(center: bool, scale: bool) -> list[str]:
    """init lines keeping an affine part Keras does not have at its neutral value."""
    lines = []
    if not scale:
        lines.append("{m}.weight.requires_grad_(False)  # Keras scale=False: no learned scale (kept at 1)")
    if not center:
        lines.append("{m}.bias.requires_grad_(False)  # Keras center=False: no learned offset (kept at 0)")
    return lines


def _moved(dim: int, rank: int, call: str) -> str:
    """call on x with dim moved to 1 (PyTorch's channel dim) and back."""
    if dim == 1:
        return call.format("{x}")
    return call.format(f"{{x}}.movedim({dim}, 1)") + f".movedim(1, {dim})"


def _batch_norm(layer, ins, outs):
    c = layer.config
    rank = len(ins)
    dim = torch_dim(c["axis"], rank)
    channels = int(ins[c["axis"] % rank])
    cls = _BATCH_NORMS[rank]
    center, scale = c.get("center", True), c.get("scale", True)
    affine = center or scale
    # PyTorch's running average keeps (1 - momentum) of the old value; Keras's keeps momentum
    module = f"nn.{cls}({channels}, eps={c['epsilon']!r}, momentum={1.0 - c['momentum']:.10g}" + (
        "" if affine else ", affine=False") + ")"
    init = [module] + (_frozen(center, scale) if affine else [])
    call = "{{m}}({})"
    lines = ["{y} = " + _moved(dim, rank, call)]

    def weights(w):
        out = {}
        if affine:
            out["weight"] = w.get("gamma", np.ones(channels, np.float32))
            out["bias"] = w.get("beta", np.zeros(channels, np.float32))
        out["running_mean"] = w["moving_mean"]
        out["running_var"] = w["moving_variance"]
        out["num_batches_tracked"] = np.zeros((), np.int64)
        return out
    return Piece(init, lines, set(), weights)


def _layer_norm(layer, ins, outs):
    c = layer.config
    rank = len(ins)
    axes = tuple(sorted(a % rank for a in (c["axis"] if isinstance(c["axis"], tuple) else (c["axis"],))))
    dims = tuple(sorted(torch_dim(a, rank) for a in axes))
    shape = tuple(int(ins[a]) if a in axes else 1 for a in range(1, rank))
    if rank == 4:
        shape = (shape[2], shape[0], shape[1])
    module = (f"LayerNorm(dims={dims!r}, shape={shape!r}, epsilon={c['epsilon']!r}"
              + ("" if c["center"] else ", center=False") + ("" if c["scale"] else ", scale=False") + ")")

    def weights(w):
        return {name: np.ascontiguousarray(_keras_to_torch_broadcast(w[name], axes, ins))
                for name in ("gamma", "beta") if name in w}
    return Piece([module], ["{y} = {m}({x})"], {"LayerNorm"}, weights)


def _group_norm(layer, ins, outs):
    c = layer.config
    rank = len(ins)
    axis = c["axis"] % rank
    dim = torch_dim(axis, rank)
    channels = int(ins[axis])
    groups = channels if c["groups"] == -1 else int(c["groups"])
    center, scale = c["center"], c["scale"]
    affine = center or scale
    module = f"nn.GroupNorm({groups}, {channels}, eps={c['epsilon']!r}" + ("" if affine else ", affine=False") + ")"
    init = [module] + (_frozen(center, scale) if affine else [])

    def weights(w):
        if not affine:
            return {}
        return {"weight": w.get("gamma", np.ones(channels, np.float32)),
                "bias": w.get("beta", np.zeros(channels, np.float32))}
    # nn.GroupNorm wants the channels at dim 1 followed by anything
    return Piece(init, ["{y} = " + _moved(dim, rank, "{{m}}({})")], set(), weights)


# --- merges -----------------------------------------------------------------------------

def _merge(layer, ins, outs):
    kind = layer.class_name
    rank = len(outs)
    names = [_expanded(f"{{x{i}}}", s, rank) for i, s in enumerate(ins)]
    if kind == "Concatenate":
        dim = torch_dim(layer.config.get("axis", -1), rank)
        return Piece([], [f"{{y}} = torch.cat([{', '.join(names)}], dim={dim})"])
    if kind == "Add":
        expr = " + ".join(names)
    elif kind == "Subtract":
        expr = f"{names[0]} - {names[1]}"
    elif kind == "Multiply":
        expr = " * ".join(names)
    elif kind == "Average":
        expr = f"({' + '.join(names)}) / {len(names)}"
    else:
        fn = "torch.maximum" if kind == "Maximum" else "torch.minimum"
        expr = names[0]
        for n in names[1:]:
            expr = f"{fn}({expr}, {n})"
    return Piece([], [f"{{y}} = {expr}"])


def _expanded(name: str, shape, rank: int) -> str:
    """An input of lower rank than the merge's output, as Keras expands it (new axes after
    the batch axis), in PyTorch's layout."""
    if len(shape) == rank:
        return name
    if len(shape) == 2 and rank == 4:  # (N, C) as (N, 1, 1, C) in Keras: (N, C, 1, 1) here
        return f"{name}[:, :, None, None]"
    keras = f"{name}[:, {', '.join(['None'] * (rank - len(shape)))}]"
    return f"{keras}.permute(0, 3, 1, 2)" if rank == 4 else keras


# --- reshaping --------------------------------------------------------------------------

def _zero_padding(layer, ins, outs):
    (t, b), (l, r) = layer.config["padding"]
    return Piece([f"nn.ZeroPad2d({(int(l), int(r), int(t), int(b))!r})"], ["{y} = {m}({x})"])


def _cropping(layer, ins, outs):
    (t, b), (l, r) = layer.config["cropping"]
    h, w = ins[1], ins[2]
    return Piece([], [f"{{y}} = {{x}}[:, :, {t}:{h - b}, {l}:{w - r}]"])


def _up_sampling(layer, ins, outs):
    size = _pair(layer.config["size"])
    mode = layer.config["interpolation"]
    extra = "" if mode == "nearest" else ", align_corners=False"  # Keras: half-pixel centres
    return Piece([f"nn.Upsample(scale_factor={tuple(float(s) for s in size)!r}, mode={mode!r}{extra})"],
                 ["{y} = {m}({x})"])


def _keras_layout_op(ins, outs, op: str) -> list[str]:
    """op (a method call such as ".reshape(...)") on the Keras (channels-last) element
    order, the result back in PyTorch's layout."""
    y = ("{x}.permute(0, 2, 3, 1)" if len(ins) == 4 else "{x}") + op
    if len(outs) == 4:
        y = f"{y}.permute(0, 3, 1, 2)"
    return ["{y} = " + y]


KERAS_ORDER = "in Keras's (H, W, C) element order"


def _reshape(layer, ins, outs):
    target = tuple(int(d) for d in outs[1:])
    return Piece([], _keras_layout_op(ins, outs, f".reshape(-1, {', '.join(map(str, target))})"),
                 comment=KERAS_ORDER if len(ins) == 4 or len(outs) == 4 else "")


def _permute(layer, ins, outs):
    dims = (0,) + tuple(int(d) for d in layer.config["dims"])
    if len(ins) == 4:
        # NCHW -> NHWC, Keras's permutation, NHWC -> NCHW: composed into one permute
        steps = [(0, 2, 3, 1), dims, (0, 3, 1, 2)]
        order = list(range(4))
        for step in steps:
            order = [order[i] for i in step]
        return Piece([], [f"{{y}} = {{x}}.permute{tuple(order)!r}"],
                     comment=f"Keras's Permute({tuple(dims[1:])!r}) of (H, W, C), channels first")
    return Piece([], _keras_layout_op(ins, outs, f".permute{dims!r}"))


def _rescaling(layer, ins, outs):
    c = layer.config
    offset = float(c.get("offset", 0.0))
    sign = "-" if offset < 0 else "+"
    return Piece([], [f"{{y}} = {{x}} * {float(c['scale'])!r}" + (f" {sign} {abs(offset)!r}" if offset else "")])


# --- augmentation (training only) -------------------------------------------------------

def _random_flip(layer, ins, outs):
    return Piece([f"RandomFlip({layer.config['mode']!r})"], ["{y} = {m}({x})"], {"RandomFlip"})


def _random_contrast(layer, ins, outs):
    c = layer.config
    lower, upper = c["factor"]
    return Piece([f"RandomContrast(({1.0 - lower!r}, {1.0 + upper!r}), value_range={tuple(map(float, c['value_range']))!r})"],
                 ["{y} = {m}({x})"], {"RandomContrast"})


def _factor(value):
    if isinstance(value, tuple):
        return tuple(sorted(float(v) for v in value))
    return (-abs(float(value)), abs(float(value)))


def _random_affine(layer, ins, outs):
    c = layer.config
    kind = layer.class_name
    if kind == "RandomTranslation":
        what = f"translation={(_factor(c['height_factor']), _factor(c['width_factor']))!r}"
    elif kind == "RandomRotation":
        what = f"rotation={_factor(c['factor'])!r}"
    else:
        width = None if c["width_factor"] is None else _factor(c["width_factor"])
        what = f"zoom={(_factor(c['height_factor']), width)!r}"
    fill = f", fill_value={float(c['fill_value'])!r}" if c["fill_mode"] == "constant" and c["fill_value"] else ""
    return Piece([f"RandomAffine({what}, fill_mode={c['fill_mode']!r}, interpolation={c['interpolation']!r}{fill})"],
                 ["{y} = {m}({x})"], {"RandomAffine"})


TRANSLATORS = {
    "Conv2D": _conv2d, "DepthwiseConv2D": _conv2d, "SeparableConv2D": _conv2d,
    "Conv2DTranspose": _conv_transpose,
    "MaxPooling2D": _pooling, "AveragePooling2D": _pooling,
    "GlobalAveragePooling2D": _global_pooling, "GlobalMaxPooling2D": _global_pooling,
    "Flatten": _flatten, "Dense": _dense, "Activation": _activation_layer,
    "ReLU": _relu, "LeakyReLU": _leaky_relu, "PReLU": _prelu, "ELU": _elu, "Softmax": _softmax_layer,
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm, "GroupNormalization": _group_norm,
    "Dropout": _dropout, "SpatialDropout2D": _spatial_dropout, "GaussianNoise": _gaussian_noise,
    "Add": _merge, "Subtract": _merge, "Multiply": _merge, "Average": _merge, "Maximum": _merge,
    "Minimum": _merge, "Concatenate": _merge,
    "ZeroPadding2D": _zero_padding, "Cropping2D": _cropping, "UpSampling2D": _up_sampling,
    "Reshape": _reshape, "Permute": _permute, "Rescaling": _rescaling,
    "RandomFlip": _random_flip, "RandomContrast": _random_contrast, "RandomTranslation": _random_affine,
    "RandomRotation": _random_affine, "RandomZoom": _random_affine,
}

CHECKS = {"Conv2DTranspose": _check_conv_transpose, "BatchNormalization": _check_batch_norm}


# --- helper classes written into model.py when used ---------------------------------------

HELPERS = {
    "SeparableConv2d": '''
class SeparableConv2d(nn.Module):
    """keras.layers.SeparableConv2D: a depthwise conv (depth_multiplier filters per input
    channel, no bias) followed by a 1x1 conv mixing the channels (with the bias)."""

    def __init__(self, in_channels, filters, kernel_size, stride=1, padding=0, dilation=1,
                 depth_multiplier=1, bias=True):
        super().__init__()
        mid = in_channels * depth_multiplier
        self.depthwise = nn.Conv2d(in_channels, mid, kernel_size, stride, padding, dilation,
                                   groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(mid, filters, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))
''',
    "PReLU": '''
class PReLU(nn.Module):
    """keras.layers.PReLU: x where x > 0, else alpha * x, with one alpha per value of an
    example (size 1 along Keras's shared_axes), stored channels-first like the tensors."""

    def __init__(self, shape):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(shape))

    def forward(self, x):
        return torch.where(x > 0, x, self.alpha * x)
''',
    "LayerNorm": '''
class LayerNorm(nn.Module):
    """keras.layers.LayerNormalization: each example normalised by the mean and (biased)
    variance over `dims`, then scaled by gamma and shifted by beta (shaped to broadcast)."""

    def __init__(self, dims, shape, epsilon=1e-3, center=True, scale=True):
        super().__init__()
        self.dims, self.epsilon = dims, epsilon
        self.gamma = nn.Parameter(torch.ones(shape)) if scale else None
        self.beta = nn.Parameter(torch.zeros(shape)) if center else None

    def forward(self, x):
        mean = x.mean(dim=self.dims, keepdim=True)
        var = x.var(dim=self.dims, unbiased=False, keepdim=True)
        y = (x - mean) * torch.rsqrt(var + self.epsilon)
        if self.gamma is not None:
            y = y * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y
''',
    "GaussianNoise": '''
class GaussianNoise(nn.Module):
    """keras.layers.GaussianNoise: adds N(0, stddev) noise while training; identity in eval mode."""

    def __init__(self, stddev):
        super().__init__()
        self.stddev = stddev

    def forward(self, x):
        return x + self.stddev * torch.randn_like(x) if self.training else x
''',
    "RandomFlip": '''
class RandomFlip(nn.Module):
    """keras.layers.RandomFlip while training (each image flipped with probability 1/2;
    "horizontal_and_vertical" flips both ways together); identity in eval mode."""

    def __init__(self, mode="horizontal_and_vertical"):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        if not self.training:
            return x
        flip = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) <= 0.5)
        if self.mode != "vertical":
            x = torch.where(flip, x.flip(3), x)
        if self.mode != "horizontal":
            x = torch.where(flip, x.flip(2), x)
        return x
''',
    "RandomContrast": '''
class RandomContrast(nn.Module):
    """keras.layers.RandomContrast while training: each image's values moved away from (or
    towards) its per-channel mean by a random factor in `bounds`, clipped to value_range;
    identity in eval mode."""

    def __init__(self, bounds, value_range=(0.0, 255.0)):
        super().__init__()
        self.bounds, self.value_range = bounds, value_range

    def forward(self, x):
        if not self.training:
            return x
        low, high = self.bounds
        factor = torch.empty(x.shape[0], 1, 1, 1, device=x.device).uniform_(low, high)
        mean = x.mean(dim=(2, 3), keepdim=True)
        return ((x - mean) * factor + mean).clamp(*self.value_range)
''',
    "RandomAffine": '''
class RandomAffine(nn.Module):
    """RandomTranslation / RandomRotation / RandomZoom while training: each image resampled
    through its own random map with grid_sample (fill modes: reflect, nearest, constant;
    wrap takes each source pixel modulo the image). A simple reimplementation of Keras's
    augmentation (same ranges and fill rules, PyTorch's random numbers and sampler);
    identity in eval mode."""

    def __init__(self, translation=None, rotation=None, zoom=None, fill_mode="reflect",
                 interpolation="bilinear", fill_value=0.0):
        super().__init__()
        self.translation, self.rotation, self.zoom = translation, rotation, zoom
        self.fill_mode, self.interpolation, self.fill_value = fill_mode, interpolation, fill_value

    def _uniform(self, bounds, n, device):
        return torch.empty(n, device=device).uniform_(*bounds)

    def forward(self, x):
        if not self.training:
            return x
        n, _, h, w = x.shape
        dev = x.device
        one, zero = torch.ones(n, device=dev), torch.zeros(n, device=dev)
        # output pixel (i, j) reads input column a0*j + a1*i + a2 and row b0*j + b1*i + b2
        a0, a1, a2, b0, b1, b2 = one, zero, zero, zero, one, zero
        if self.translation is not None:
            a2 = -self._uniform(self.translation[1], n, dev) * w
            b2 = -self._uniform(self.translation[0], n, dev) * h
        if self.rotation is not None:
            angle = self._uniform(self.rotation, n, dev) * 2 * math.pi
            cx, cy = 0.5 * (w - 1), 0.5 * (h - 1)
            a0, a1, b0, b1 = angle.cos(), -angle.sin(), angle.sin(), angle.cos()
            a2, b2 = cx - cx * a0 - cy * a1, cy - cx * b0 - cy * b1
        if self.zoom is not None:
            zy = 1 + self._uniform(self.zoom[0], n, dev)
            zx = zy if self.zoom[1] is None else 1 + self._uniform(self.zoom[1], n, dev)
            a0, a1, a2 = zx, zero, (w - 1) / 2 * (1 - zx)
            b0, b1, b2 = zero, zy, (h - 1) / 2 * (1 - zy)
        i = torch.arange(h, device=dev, dtype=x.dtype).view(1, h, 1)
        j = torch.arange(w, device=dev, dtype=x.dtype).view(1, 1, w)
        col = a0.view(n, 1, 1) * j + a1.view(n, 1, 1) * i + a2.view(n, 1, 1)
        row = b0.view(n, 1, 1) * j + b1.view(n, 1, 1) * i + b2.view(n, 1, 1)
        if self.fill_mode == "wrap":
            col, row = col.remainder(w), row.remainder(h)
        # pixel centres in grid_sample's [-1, 1] (align_corners=False: the image edges are -1, 1)
        grid = torch.stack([(2 * col + 1) / w - 1, (2 * row + 1) / h - 1], dim=-1)
        padding = {"reflect": "reflection", "nearest": "border", "wrap": "border"}.get(self.fill_mode, "zeros")
        y = F.grid_sample(x, grid, mode=self.interpolation, padding_mode=padding, align_corners=False)
        if self.fill_mode == "constant" and self.fill_value:
            inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode=self.interpolation,
                                   padding_mode="zeros", align_corners=False)
            y = y + self.fill_value * (1 - inside)
        return y
''',
}
