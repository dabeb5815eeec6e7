"""ONNX export: one .onnx file (opset 17) that onnxruntime, Netron and other tools read.

The file takes the model's own input, named "input", in Keras's layout (N, H, W, C)
float32 with a dynamic batch "N", and gives the model's own output, named "output"
(probabilities when the last layer has a softmax). Inside, image tensors are computed
channels-first (NCHW), the layout ONNX's Conv, pooling and Resize are defined in: every
tensor carries the permutation it is stored in (`Value.perm`, Keras axes in stored
order), and a Transpose is emitted only where an operation needs another order (once per
tensor and order), e.g. once after the input and once before a Flatten, whose order must
stay Keras's (H, W, C) for the Dense after it.

Each layer becomes nodes named after it (a helper node: "layer/what"), weights become
initializers named "layer/kernel", so Netron shows the student's network. Training-only
layers (Dropout, noise, Random*) are Identity nodes: the file is for inference. The
training recipe is not part of an ONNX model and is not written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..shapes import same_padding
from .files import write_bytes_atomic
from . import model_problems

OPSET = 17
# onnxruntime 1.17 reads IR versions up to 9; IR 8 is the version opset 17 was released with.
IR_VERSION = 8
# protobuf refuses messages of 2 GiB or more; keep room for the graph itself
MAX_WEIGHT_BYTES = 2**31 - 2**24
NCHW = (0, 3, 1, 2)  # stored axis i holds Keras axis NCHW[i]


@dataclass(frozen=True)
class Value:
    """A tensor in the graph: its name, and the Keras axes in the order it is stored in
    (identity: Keras's own layout; (0, 3, 1, 2): NCHW for an image)."""

    name: str
    perm: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.perm)

    def at(self, keras_axis: int) -> int:
        """Where Keras axis `keras_axis` (may be negative) is stored."""
        return self.perm.index(keras_axis % self.rank)


def keras_layout(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def channels_first(rank: int, axis: int) -> tuple[int, ...]:
    """The layout with Keras axis `axis` right after the batch, the others in Keras order:
    NCHW for an image and the last axis; what BatchNormalization and GroupNorm need."""
    axis %= rank
    return (0, axis, *(a for a in range(1, rank) if a != axis))


class GraphBuilder:
    """Collects nodes and initializers with unique tensor names."""

    def __init__(self):
        from onnx import helper

        self.helper = helper
        self.nodes: list = []
        self.initializers: list = []
        self._taken: set[str] = {"input", "output"}
        self._node_names: set[str] = set()
        self._moved: dict[tuple[str, tuple], Value] = {}

    def fresh(self, stem: str) -> str:
        name, k = stem, 1
        while name in self._taken:
            name, k = f"{stem}_{k}", k + 1
        self._taken.add(name)
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        """Add one node named `name` (made unique); returns its output tensor's name."""
        node_name, k = name, 1
        while node_name in self._node_names:
            node_name, k = f"{name}_{k}", k + 1
        self._node_names.add(node_name)
        out = self.fresh(node_name)
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=node_name, **attrs))
        return out

    def const(self, name: str, array) -> str:
        from onnx import numpy_helper

        tensor_name = self.fresh(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), tensor_name))
        return tensor_name

    def scalar(self, name: str, value: float) -> str:
        return self.const(name, np.asarray(value, np.float32))

    def ints(self, name: str, values) -> str:
        return self.const(name, np.asarray(list(values), np.int64))

    def to(self, value: Value, perm: tuple[int, ...], name: str) -> Value:
        """`value` stored as `perm`: one Transpose, made once per tensor and layout."""
        perm = tuple(perm)
        if value.perm == perm:
            return value
        key = (value.name, perm)
        if key not in self._moved:
            out = self.node("Transpose", [value.name], name, perm=[value.perm.index(a) for a in perm])
            self._moved[key] = Value(out, perm)
        return self._moved[key]

    def keras(self, value: Value, name: str) -> Value:
        return self.to(value, keras_layout(value.rank), name)

    def nchw(self, value: Value, name: str) -> Value:
        return self.to(value, NCHW, name)


# --- activations (the `activation` argument, and the Activation layer) ------------------

def activation(b: GraphBuilder, name: str, act: str | None, x: Value, node_name: str | None = None) -> Value:
    """x through Keras activation `act`; softmax and log_softmax act on the last Keras axis.
    node_name: the name of the (main) node, default "name/act"."""
    from .. import activations as acts

    act = act or "linear"
    label = node_name or f"{name}/{act}"
    v = x.name
    if act == "linear":
        return x if node_name is None else Value(b.node("Identity", [v], label), x.perm)
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus",
              "softsign": "Softsign", "exponential": "Exp"}
    if act in simple:
        return Value(b.node(simple[act], [v], label), x.perm)
    if act == "relu6":
        out = b.node("Clip", [v, b.scalar(f"{label}/min", 0.0), b.scalar(f"{label}/max", 6.0)], label)
    elif act == "leaky_relu":
        out = b.node("LeakyRelu", [v], label, alpha=float(acts.LEAKY_RELU_SLOPE))
    elif act == "elu":
        out = b.node("Elu", [v], label, alpha=1.0)
    elif act == "selu":
        out = b.node("Selu", [v], label, alpha=acts.SELU_ALPHA, gamma=acts.SELU_SCALE)
    elif act == "hard_sigmoid":
        out = b.node("HardSigmoid", [v], label, alpha=1.0 / 6.0, beta=0.5)
    elif act in ("softmax", "log_softmax"):
        op = "Softmax" if act == "softmax" else "LogSoftmax"
        out = b.node(op, [v], label, axis=x.at(-1))
    elif act == "silu":
        gate = b.node("Sigmoid", [v], f"{label}/sigmoid")
        out = b.node("Mul", [v, gate], label)
    elif act == "gelu":
        # Keras's default gelu is the exact erf form: x/2 * (1 + erf(x / sqrt(2)))
        scaled = b.node("Mul", [v, b.scalar(f"{label}/inv_sqrt2", 1.0 / math.sqrt(2.0))], f"{label}/scale")
        erf = b.node("Erf", [scaled], f"{label}/erf")
        one = b.node("Add", [erf, b.scalar(f"{label}/one", 1.0)], f"{label}/plus_one")
        half = b.node("Mul", [v, b.scalar(f"{label}/half", 0.5)], f"{label}/half_x")
        out = b.node("Mul", [half, one], label)
    else:
        raise ValueError(f"no ONNX translation for activation {act!r}")
    return Value(out, x.perm)


# --- layers -------------------------------------------------------------------------
#
# Each translation takes (builder, layer, its input values, its analysis row) and returns
# its output value. Keras weights come from layer.weight(name) in Keras's layout.

def _weight(layer, name: str) -> np.ndarray | None:
    w = layer.weight(name)
    return None if w is None else np.asarray(w, np.float32)


def _conv_pads(layer, in_hw: tuple[int, int], window, strides, dilation=(1, 1)) -> list[int]:
    """ONNX pads [top, left, bottom, right]: Keras's "same" puts the odd pixel at the end."""
    if layer.config["padding"] != "same":
        return [0, 0, 0, 0]
    (t, bo), (le, r) = (same_padding(in_hw[a], window[a], strides[a], dilation[a]) for a in (0, 1))
    return [t, le, bo, r]


def _conv(b, layer, inputs, row):
    c, name = layer.config, layer.name
    x = b.nchw(inputs[0], f"{name}/to_nchw")
    kernel, bias = _weight(layer, "kernel"), _weight(layer, "bias")
    ins = [x.name, b.const(f"{name}/kernel", kernel.transpose(3, 2, 0, 1))]  # (out, in, kh, kw)
    if bias is not None:
        ins.append(b.const(f"{name}/bias", bias))
    out = b.node("Conv", ins, name, kernel_shape=list(c["kernel_size"]), strides=list(c["strides"]),
                 dilations=list(c["dilation_rate"]),
                 pads=_conv_pads(layer, row.input_shape[1:3], c["kernel_size"], c["strides"], c["dilation_rate"]))
    return activation(b, name, c["activation"], Value(out, NCHW))


def _depthwise(b, name, layer, x: Value, bias, in_hw) -> str:
    """The depthwise step: a grouped Conv, one group per input channel. Keras's output
    channel c*depth_multiplier + m is ONNX's group c, output m."""
    c = layer.config
    kernel = _weight(layer, "depthwise_kernel")  # (kh, kw, cin, dm)
    kh, kw, cin, dm = kernel.shape
    ins = [x.name, b.const(f"{layer.name}/depthwise_kernel", kernel.transpose(2, 3, 0, 1).reshape(cin * dm, 1, kh, kw))]
    if bias is not None:
        ins.append(b.const(f"{layer.name}/bias", bias))
    return b.node("Conv", ins, name, kernel_shape=[kh, kw], strides=list(c["strides"]),
                  dilations=list(c["dilation_rate"]), group=cin,
                  pads=_conv_pads(layer, in_hw, c["kernel_size"], c["strides"], c["dilation_rate"]))


def _depthwise_conv(b, layer, inputs, row):
    x = b.nchw(inputs[0], f"{layer.name}/to_nchw")
    out = _depthwise(b, layer.name, layer, x, _weight(layer, "bias"), row.input_shape[1:3])
    return activation(b, layer.name, layer.config["activation"], Value(out, NCHW))


def _separable_conv(b, layer, inputs, row):
    name = layer.name
    x = b.nchw(inputs[0], f"{name}/to_nchw")
    mid = _depthwise(b, f"{name}/depthwise", layer, x, None, row.input_shape[1:3])
    pointwise = _weight(layer, "pointwise_kernel")  # (1, 1, cin*dm, filters)
    ins = [mid, b.const(f"{name}/pointwise_kernel", pointwise.transpose(3, 2, 0, 1))]
    bias = _weight(layer, "bias")
    if bias is not None:
        ins.append(b.const(f"{name}/bias", bias))
    out = b.node("Conv", ins, name, kernel_shape=[1, 1])
    return activation(b, name, layer.config["activation"], Value(out, NCHW))


def _conv_transpose(b, layer, inputs, row):
    """ConvTranspose with Keras's output size: the full transposed conv is cropped by the
    engine's (TensorFlow's) padding, odd pixel at the end; an output larger than the full
    one (valid with stride > kernel, or output_padding) grows at the end."""
    c, name = layer.config, layer.name
    x = b.nchw(inputs[0], f"{name}/to_nchw")
    kernel, bias = _weight(layer, "kernel"), _weight(layer, "bias")  # kernel (kh, kw, filters, cin)
    begin, end, extra = [], [], []
    for axis in (0, 1):
        size_in, size_out = row.input_shape[1 + axis], row.output_shape[1 + axis]
        k_eff = (c["kernel_size"][axis] - 1) * c["dilation_rate"][axis] + 1
        full = (size_in - 1) * c["strides"][axis] + k_eff
        total = max(full - size_out, 0) if c["padding"] == "same" else 0
        first = total // 2
        last = full - size_out - first
        begin.append(first)
        end.append(max(last, 0))
        extra.append(max(-last, 0))
    ins = [x.name, b.const(f"{name}/kernel", kernel.transpose(3, 2, 0, 1))]  # (cin, filters, kh, kw)
    if bias is not None:
        ins.append(b.const(f"{name}/bias", bias))
    out = b.node("ConvTranspose", ins, name, kernel_shape=list(c["kernel_size"]), strides=list(c["strides"]),
                 dilations=list(c["dilation_rate"]), pads=begin + end, output_padding=extra)
    return activation(b, name, c["activation"], Value(out, NCHW))


def _pool(op: str):
    def translate(b, layer, inputs, row):
        c, name = layer.config, layer.name
        x = b.nchw(inputs[0], f"{name}/to_nchw")
        strides = c["strides"] or c["pool_size"]
        attrs = dict(kernel_shape=list(c["pool_size"]), strides=list(strides),
                     pads=_conv_pads(layer, row.input_shape[1:3], c["pool_size"], strides))
        if op == "AveragePool":
            attrs["count_include_pad"] = 0  # Keras's "same" averages only the real pixels
        return Value(b.node(op, [x.name], name, **attrs), NCHW)
    return translate


def _global_pool(op: str):
    def translate(b, layer, inputs, row):
        name = layer.name
        x = b.nchw(inputs[0], f"{name}/to_nchw")
        if layer.config["keepdims"]:
            return Value(b.node(op, [x.name], name), NCHW)
        pooled = b.node(op, [x.name], f"{name}/pool")
        return Value(b.node("Flatten", [pooled], name, axis=1), (0, 1))
    return translate


def _flatten(b, layer, inputs, row):
    x = b.keras(inputs[0], f"{layer.name}/to_nhwc")  # Keras flattens (H, W, C) order
    return Value(b.node("Flatten", [x.name], layer.name, axis=1), (0, 1))


def _dense(b, layer, inputs, row):
    name = layer.name
    x = b.keras(inputs[0], f"{name}/to_nhwc")  # Dense acts on the last Keras axis
    out = b.node("MatMul", [x.name, b.const(f"{name}/kernel", _weight(layer, "kernel"))],
                 name if not layer.config["use_bias"] else f"{name}/matmul")
    if layer.config["use_bias"]:
        out = b.node("Add", [out, b.const(f"{name}/bias", _weight(layer, "bias"))], name)
    return activation(b, name, layer.config["activation"], Value(out, x.perm))


def _activation_layer(b, layer, inputs, row):
    return activation(b, layer.name, layer.config["activation"], inputs[0], node_name=layer.name)


def _relu_layer(b, layer, inputs, row):
    """ReLU and LeakyReLU: Keras's relu(x, negative_slope, max_value, threshold), i.e.
    x > threshold: min(x, max_value); otherwise negative_slope * (x - threshold)."""
    cap, slope, threshold = layer.relu_params()
    x, name = inputs[0], layer.name
    if threshold == 0.0 and cap is None:
        if slope == 0.0:
            return Value(b.node("Relu", [x.name], name), x.perm)
        return Value(b.node("LeakyRelu", [x.name], name, alpha=float(slope)), x.perm)
    t = b.scalar(f"{name}/threshold", threshold)
    above = x.name
    if cap is not None:
        above = b.node("Min", [x.name, b.scalar(f"{name}/max_value", cap)], f"{name}/cap")
    below = b.node("Mul", [b.node("Sub", [x.name, t], f"{name}/shift"), b.scalar(f"{name}/negative_slope", slope)],
                   f"{name}/slope")
    keep = b.node("Greater", [x.name, t], f"{name}/above")
    return Value(b.node("Where", [keep, above, below], name), x.perm)


def _prelu(b, layer, inputs, row):
    x = inputs[0]
    alpha = _weight(layer, "alpha")  # the input's shape without the batch, 1 on shared axes
    alpha = alpha.reshape(1, *alpha.shape).transpose(x.perm)
    return Value(b.node("PRelu", [x.name, b.const(f"{layer.name}/alpha", alpha)], layer.name), x.perm)


def _elu(b, layer, inputs, row):
    return Value(b.node("Elu", [inputs[0].name], layer.name, alpha=float(layer.config["alpha"])), inputs[0].perm)


def _softmax(b, layer, inputs, row):
    x, name = inputs[0], layer.name
    axes = sorted(x.at(a) for a in layer._axes(x.rank))
    if len(axes) == 1:
        return Value(b.node("Softmax", [x.name], name, axis=axes[0]), x.perm)
    # over several axes: exp(x - max) / sum(exp(x - max)), max and sum over all of them
    axes_name = b.ints(f"{name}/axes", axes)
    top = b.node("ReduceMax", [x.name], f"{name}/max", axes=axes, keepdims=1)
    e = b.node("Exp", [b.node("Sub", [x.name, top], f"{name}/shift")], f"{name}/exp")
    total = b.node("ReduceSum", [e, axes_name], f"{name}/sum", keepdims=1)
    return Value(b.node("Div", [e, total], name), x.perm)


def _batch_norm(b, layer, inputs, row):
    """Inference: the moving statistics, Keras's epsilon; the channel axis moved to 1."""
    name, rank = layer.name, inputs[0].rank
    x = b.to(inputs[0], channels_first(rank, layer.config["axis"]), f"{name}/to_channels_first")
    mean = _weight(layer, "moving_mean")
    gamma = _weight(layer, "gamma")
    beta = _weight(layer, "beta")
    ins = [x.name,
           b.const(f"{name}/gamma", gamma if gamma is not None else np.ones_like(mean)),
           b.const(f"{name}/beta", beta if beta is not None else np.zeros_like(mean)),
           b.const(f"{name}/moving_mean", mean),
           b.const(f"{name}/moving_variance", _weight(layer, "moving_variance"))]
    out = b.node("BatchNormalization", ins, name, epsilon=float(layer.config["epsilon"]))
    return Value(out, x.perm)


def _layer_norm(b, layer, inputs, row):
    """The normalised axes moved last (in the order Keras's gamma has them, sorted), one
    LayerNormalization over them; the result stays in that layout."""
    x, name = inputs[0], layer.name
    axes = layer.axes(x.rank)  # sorted Keras axes: gamma's order
    perm = tuple(a for a in x.perm if a not in axes) + tuple(axes)
    x = b.to(x, perm, f"{name}/axes_last")
    wshape = tuple(row.input_shape[a] for a in axes)
    gamma, beta = _weight(layer, "gamma"), _weight(layer, "beta")
    ins = [x.name, b.const(f"{name}/gamma", gamma if gamma is not None else np.ones(wshape, np.float32))]
    if beta is not None:
        ins.append(b.const(f"{name}/beta", beta))
    out = b.node("LayerNormalization", ins, name, axis=-len(axes), epsilon=float(layer.config["epsilon"]))
    return Value(out, perm)


def _group_norm(b, layer, inputs, row):
    """(N, C, rest) -> (N, groups, C/groups * rest): each example and group normalised by
    InstanceNormalization (scale 1, offset 0), back to (N, C, rest), then gamma and beta
    per channel."""
    name, rank = layer.name, inputs[0].rank
    axis = layer._axis(rank)
    x = b.to(inputs[0], channels_first(rank, axis), f"{name}/to_channels_first")
    channels = row.input_shape[axis]
    groups = layer._groups(channels)
    grouped = b.node("Reshape", [x.name, b.ints(f"{name}/group_shape", [0, groups, -1])], f"{name}/group")
    normal = b.node("InstanceNormalization",
                    [grouped, b.const(f"{name}/ones", np.ones(groups, np.float32)),
                     b.const(f"{name}/zeros", np.zeros(groups, np.float32))],
                    f"{name}/normalise", epsilon=float(layer.config["epsilon"]))
    stored = [row.input_shape[a] for a in x.perm]
    out = b.node("Reshape", [normal, b.ints(f"{name}/shape", [0, *stored[1:]])], f"{name}/ungroup")
    per_channel = (channels,) + (1,) * (rank - 2)
    gamma, beta = _weight(layer, "gamma"), _weight(layer, "beta")
    last = None if beta is not None else name
    if gamma is not None:
        out = b.node("Mul", [out, b.const(f"{name}/gamma", gamma.reshape(per_channel))], last or f"{name}/scale")
    if beta is not None:
        out = b.node("Add", [out, b.const(f"{name}/beta", beta.reshape(per_channel))], name)
    if gamma is None and beta is None:
        out = b.node("Identity", [out], name)
    return Value(out, x.perm)


def _identity(b, layer, inputs, row):
    """Training-only layers pass the input through when predicting."""
    return Value(b.node("Identity", [inputs[0].name], layer.name), inputs[0].perm)


def _merge(op: str):
    def translate(b, layer, inputs, row):
        name = layer.name
        values = _aligned(b, layer, inputs)
        names = [v.name for v in values]
        if op == "Mul":  # binary in ONNX: a chain
            out = names[0]
            for k, other in enumerate(names[1:], 1):
                out = b.node("Mul", [out, other], name if k == len(names) - 1 else f"{name}/mul_{k}")
            if len(names) == 1:
                out = b.node("Identity", names, name)
        else:
            out = b.node(op, names, name)
        return Value(out, values[0].perm)
    return translate


def _aligned(b, layer, inputs: list[Value]) -> list[Value]:
    """The inputs of a merge in one layout: a lower rank expanded after the batch axis
    (Keras's expand_dims(x, 1)), then all stored as the first highest-rank input is."""
    rank = max(v.rank for v in inputs)
    out = []
    for k, v in enumerate(inputs):
        if v.rank < rank:
            v = b.keras(v, f"{layer.name}/to_nhwc_{k}")
            expand = b.ints(f"{layer.name}/expand_axes_{k}", range(1, rank - v.rank + 1))
            v = Value(b.node("Unsqueeze", [v.name, expand], f"{layer.name}/expand_{k}"), keras_layout(rank))
        out.append(v)
    target = next(v.perm for v in inputs if v.rank == rank)
    return [b.to(v, target, f"{layer.name}/align_{k}") for k, v in enumerate(out)]


def _concatenate(b, layer, inputs, row):
    values = _aligned(b, layer, inputs)
    axis = values[0].at(layer.config["axis"])
    return Value(b.node("Concat", [v.name for v in values], layer.name, axis=axis), values[0].perm)


def _spatial_axes(x: Value) -> tuple[int, int]:
    return x.at(1), x.at(2)


def _zero_padding(b, layer, inputs, row):
    x, name = inputs[0], layer.name
    (top, bottom), (left, right) = layer.config["padding"]
    begin, end = [0] * x.rank, [0] * x.rank
    rows, cols = _spatial_axes(x)
    begin[rows], end[rows], begin[cols], end[cols] = top, bottom, left, right
    return Value(b.node("Pad", [x.name, b.ints(f"{name}/pads", begin + end)], name, mode="constant"), x.perm)


def _cropping(b, layer, inputs, row):
    x, name = inputs[0], layer.name
    (top, bottom), (left, right) = layer.config["cropping"]
    h, w = row.input_shape[1:3]
    rows, cols = _spatial_axes(x)
    ins = [x.name, b.ints(f"{name}/starts", [top, left]), b.ints(f"{name}/ends", [h - bottom, w - right]),
           b.ints(f"{name}/axes", [rows, cols])]
    return Value(b.node("Slice", ins, name), x.perm)


def _up_sampling(b, layer, inputs, row):
    """Resize on NCHW. nearest: output o reads input o // size (asymmetric, floor);
    bilinear / bicubic: half-pixel centres as the engine (Keras's torch backend), cubic
    coefficient -0.75 as PyTorch."""
    name = layer.name
    x = b.nchw(inputs[0], f"{name}/to_nchw")
    sh, sw = layer.config["size"]
    mode = layer.config["interpolation"]
    scales = b.const(f"{name}/scales", np.asarray([1, 1, sh, sw], np.float32))
    if mode == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif mode == "bilinear":
        attrs = dict(mode="linear", coordinate_transformation_mode="half_pixel")
    else:
        attrs = dict(mode="cubic", coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75)
    return Value(b.node("Resize", [x.name, "", scales], name, **attrs), NCHW)


def _reshape(b, layer, inputs, row):
    x = b.keras(inputs[0], f"{layer.name}/to_nhwc")  # Keras reshapes its own (H, W, C) order
    target = list(layer.config["target_shape"])
    out = b.node("Reshape", [x.name, b.ints(f"{layer.name}/shape", [0, *target])], layer.name)
    return Value(out, keras_layout(len(target) + 1))


def _permute(b, layer, inputs, row):
    """One Transpose from however the input is stored to the permuted Keras layout."""
    x = inputs[0]
    dims = (0, *layer.config["dims"])
    out = b.node("Transpose", [x.name], layer.name, perm=[x.perm.index(d) for d in dims])
    return Value(out, keras_layout(x.rank))


def _rescaling(b, layer, inputs, row):
    x, name = inputs[0], layer.name
    scaled = b.node("Mul", [x.name, b.scalar(f"{name}/scale", layer.config["scale"])],
                    f"{name}/scale" if layer.config["offset"] else name)
    if layer.config["offset"]:
        scaled = b.node("Add", [scaled, b.scalar(f"{name}/offset", layer.config["offset"])], name)
    return Value(scaled, x.perm)


Translation = Callable[[GraphBuilder, object, list, object], Value]

TRANSLATIONS: dict[str, Translation] = {
    "Conv2D": _conv,
    "DepthwiseConv2D": _depthwise_conv,
    "SeparableConv2D": _separable_conv,
    "Conv2DTranspose": _conv_transpose,
    "MaxPooling2D": _pool("MaxPool"),
    "AveragePooling2D": _pool("AveragePool"),
    "GlobalAveragePooling2D": _global_pool("GlobalAveragePool"),
    "GlobalMaxPooling2D": _global_pool("GlobalMaxPool"),
    "Flatten": _flatten,
    "Dense": _dense,
    "Activation": _activation_layer,
    "ReLU": _relu_layer,
    "LeakyReLU": _relu_layer,
    "PReLU": _prelu,
    "ELU": _elu,
    "Softmax": _softmax,
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    "GroupNormalization": _group_norm,
    "Dropout": _identity,
    "SpatialDropout2D": _identity,
    "GaussianNoise": _identity,
    "RandomFlip": _identity,
    "RandomTranslation": _identity,
    "RandomRotation": _identity,
    "RandomZoom": _identity,
    "RandomContrast": _identity,
    "Add": _merge("Sum"),
    "Subtract": _merge("Sub"),
    "Multiply": _merge("Mul"),
    "Average": _merge("Mean"),
    "Maximum": _merge("Max"),
    "Minimum": _merge("Min"),
    "Concatenate": _concatenate,
    "ZeroPadding2D": _zero_padding,
    "Cropping2D": _cropping,
    "UpSampling2D": _up_sampling,
    "Reshape": _reshape,
    "Permute": _permute,
    "Rescaling": _rescaling,
}


# --- the format's two functions ---------------------------------------------------------

def problems(model) -> list[str]:
    """What stops `model` from being written as ONNX (empty: nothing)."""
    found = model_problems(model)
    if found:
        return found
    report = model.analyse()
    found = []
    for row in report.rows:
        layer = row.layer
        if layer.class_name not in TRANSLATIONS:
            found.append(f"layer '{layer.name}' ({layer.class_name}): ONNX export has no translation for "
                         f"{layer.class_name}; remove it or replace it with a layer ONNX export supports")
    weight_bytes = 4 * sum(row.params for row in report.rows)
    if weight_bytes > MAX_WEIGHT_BYTES:
        biggest = max(report.rows, key=lambda r: r.params)
        found.append(f"layer '{biggest.layer.name}' ({biggest.layer.class_name}): its {biggest.params:,} weights "
                     f"({4 * biggest.params / 2**30:.1f} GiB of the model's {weight_bytes / 2**30:.1f} GiB) do not fit "
                     "in one ONNX file (protobuf's 2 GiB limit); make the model smaller")
    return found


def to_onnx(model):
    """The onnx.ModelProto of `model` (built or not: an unbuilt model is exported with
    freshly initialised weights from a copy, the model itself is left as it is),
    checked by onnx.checker (full check) and with its shapes inferred."""
    import onnx
    from onnx import TensorProto, helper

    from ... import __version__
    from ..model_io import model_from_json

    if not model.built:
        copy = model_from_json(model.to_json())
        copy.build(seed=model.seed)
        model = copy
    report = model.checked_report()
    b = GraphBuilder()
    input_rank = len(report.input_shape) + 1  # the shape of one example, and the batch
    values: dict[int, Value] = {-1: Value("input", keras_layout(input_rank))}
    for i, row in enumerate(report.rows):
        first = len(b.nodes)
        values[i] = TRANSLATIONS[row.layer.class_name](b, row.layer, [values[j] for j in row.inbound], row)
        # Netron shows a node's doc string: the block as the builder window describes it
        settings = row.layer.describe()
        about = f"{row.layer.class_name} '{row.layer.name}'" + (f": {settings}" if settings else "")
        for node in b.nodes[first:]:
            node.doc_string = about
    last = len(report.rows) - 1
    result = b.keras(values[last], f"{report.rows[last].layer.name}/to_nhwc")
    if result.name == "input" or any(result.name in node.input for node in b.nodes):
        b.node("Identity", [result.name], "output_identity")
        b.nodes[-1].output[0] = "output"
    else:
        producer = next(node for node in b.nodes if result.name in node.output)
        producer.output[0] = "output"
    out_shape = report.rows[last].output_shape
    graph = helper.make_graph(
        b.nodes, model.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *report.input_shape])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", *out_shape[1:]])],
        initializer=b.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="VisualCNN", producer_version=__version__,
                              doc_string=f"VisualCNN model '{model.name}': input (N, H, W, C) float32, "
                                         "Keras's layout; output as the model's last layer gives it")
    proto.ir_version = IR_VERSION
    onnx.checker.check_model(proto, full_check=True)
    return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)


def write(model, path: Path, training=None) -> None:
    """Write `model` as an ONNX file at `path`, all at once (files.py)."""
    write_bytes_atomic(path, to_onnx(model).SerializeToString())


__all__ = ["OPSET", "IR_VERSION", "TRANSLATIONS", "problems", "to_onnx", "write"]
