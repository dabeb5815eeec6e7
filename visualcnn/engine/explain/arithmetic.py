"""The textbook arithmetic of one output value, per kind of layer, in float64 numpy.

Each function takes the layer (built: its weights are the model's), its input(s) for
one example (no batch axis) and the output index, and returns the Trace fields (see
trace.py). The geometry is Keras's, written out here on purpose rather than borrowed
from the kernels: 'same' padding puts the odd extra pixel at the end (shapes.same_padding),
a pooling window averages only the values inside the image, a depthwise output channel
c*depth_multiplier + m reads input channel c. The tests compare every result with the
engine's own output, so the two explanations cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from .. import activations
from ..shapes import same_padding
from .text import factor, n
from .trace import Term

TOP_TERMS = 10  # contributions listed one by one; the rest are summed


def compute(layer, inputs: list, names: tuple, index: tuple) -> dict:
    kind = _KINDS.get(layer.class_name)
    if kind is None:
        return _by_layer(layer, inputs, index)
    return kind(layer, inputs, names, index)


# --- shared helpers --------------------------------------------------------------------

def _pads(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    return same_padding(size, kernel, stride, dilation)[0] if padding == "same" else 0


def _positions(out_index: int, stride: int, pad: int, taps: int, dilation: int = 1) -> list[int]:
    """The input positions a window reads along one axis (outside 0..size-1: padding)."""
    return [out_index * stride - pad + a * dilation for a in range(taps)]


def _gather(x: np.ndarray, rows: list[int], cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """x[rows][:, cols] (h, w, channels) with zeros where the window leaves the input, and
    the (h, w) mask of those padding places."""
    h, w = x.shape[:2]
    patch = np.zeros((len(rows), len(cols), x.shape[2]))
    pad = np.ones((len(rows), len(cols)), bool)
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            if 0 <= r < h and 0 <= c < w:
                patch[a, b] = x[r, c]
                pad[a, b] = False
    return patch, pad


def _activate(name: str, z_all: np.ndarray, k: int, z: float) -> float:
    """activation(z) for entry k of a vector of pre-activations (softmax needs them all;
    every other activation reads only z)."""
    fn = activations.get(name)
    if fn.rowwise:
        vector = np.array(z_all, np.float64)
        vector[k] = z
        return float(fn(vector.astype(np.float32))[k])
    return float(fn(np.array([z], np.float32))[0])


def _weight(layer, name: str) -> np.ndarray:
    return np.asarray(layer.weight(name), np.float64)


def _bias(layer, k: int) -> float | None:
    return float(layer.weight("bias")[k]) if layer.config.get("use_bias") else None


def _top_terms(labels, values, weights) -> tuple[tuple[Term, ...], float, int]:
    """The TOP_TERMS largest |value*weight| one by one, and the sum of the others."""
    products = values * weights
    order = np.argsort(-np.abs(products), kind="stable")
    top = order[:TOP_TERMS]
    rest = order[TOP_TERMS:]
    terms = tuple(Term(labels(i), float(values[i]), float(weights[i]), float(products[i])) for i in top)
    return terms, float(products[rest].sum()), len(rest)


def _finish(layer, kind: str, formula: str, z_all: np.ndarray, k: int, total: float, bias: float | None,
            **parts) -> dict:
    z = total + (bias or 0.0)
    act = layer.config.get("activation", "linear")
    return dict(kind=kind, formula=formula, total=total, bias=bias, pre_activation=z, activation=act,
                computed=_activate(act, z_all, k, z), **parts)


# --- convolutions ----------------------------------------------------------------------

def _conv_window(layer, x, i: int, j: int):
    c = layer.config
    (kh, kw), (sh, sw), (dh, dw) = c["kernel_size"], c["strides"], c["dilation_rate"]
    rows = _positions(i, sh, _pads(x.shape[0], kh, sh, dh, c["padding"]), kh, dh)
    cols = _positions(j, sw, _pads(x.shape[1], kw, sw, dw, c["padding"]), kw, dw)
    patch, pad = _gather(x, rows, cols)
    return rows, cols, patch, pad


def _conv2d(layer, inputs, names, index):
    (x,), (i, j, f) = inputs, index
    rows, cols, patch, pad = _conv_window(layer, x, i, j)
    kernel = _weight(layer, "kernel")
    products = patch * kernel[:, :, :, f]
    z_all = np.einsum("abc,abcf->f", patch, kernel)
    if layer.config["use_bias"]:
        z_all = z_all + _weight(layer, "bias")
    return _finish(layer, "conv", "y = activation(sum over the window and channels of input*kernel + bias)",
                   z_all, f, float(products.sum()), _bias(layer, f), window_rows=tuple(rows), window_cols=tuple(cols),
                   patch=patch, padding=pad, kernel=kernel[:, :, :, f], products=products,
                   channel_sums=products.sum(axis=(0, 1)))


def _depthwise(layer, inputs, names, index):
    (x,), (i, j, o) = inputs, index
    dm = layer.config["depth_multiplier"]
    ch, m = divmod(o, dm)
    rows, cols, patch, pad = _conv_window(layer, x, i, j)
    kernel = _weight(layer, "depthwise_kernel")[:, :, ch, m]
    products = patch[:, :, ch] * kernel
    z_all = np.einsum("abc,abcm->cm", patch, _weight(layer, "depthwise_kernel")).reshape(-1)
    if layer.config["use_bias"]:
        z_all = z_all + _weight(layer, "bias")
    note = (f"output channel {o} = input channel {ch} * depth_multiplier {dm} + {m}: it reads input channel {ch} only",)
    return _finish(layer, "depthwise", "y = activation(sum over the window of input*kernel, one channel + bias)",
                   z_all, o, float(products.sum()), _bias(layer, o), window_rows=tuple(rows),
                   window_cols=tuple(cols), patch=patch[:, :, ch:ch + 1], padding=pad, kernel=kernel[:, :, None],
                   products=products[:, :, None], channel_sums=np.array([products.sum()]), notes=note)


def _separable(layer, inputs, names, index):
    (x,), (i, j, f) = inputs, index
    rows, cols, patch, pad = _conv_window(layer, x, i, j)
    depthwise = _weight(layer, "depthwise_kernel")  # (kh, kw, cin, dm)
    pointwise = _weight(layer, "pointwise_kernel")[0, 0]  # (cin*dm, filters)
    mid = np.einsum("abc,abcm->cm", patch, depthwise).reshape(-1)  # channel c*dm + m
    dm = depthwise.shape[3]
    terms, rest, rest_count = _top_terms(lambda k: f"depthwise[{k // dm}, x{k % dm}]", mid, pointwise[:, f])
    z_all = mid @ pointwise
    if layer.config["use_bias"]:
        z_all = z_all + _weight(layer, "bias")
    note = ("first each input channel is filtered on its own (the depthwise results), then a 1x1 "
            "convolution mixes them with the pointwise weights",)
    return _finish(layer, "separable", "y = activation(sum of depthwise results*pointwise weights + bias)",
                   z_all, f, float(mid @ pointwise[:, f]), _bias(layer, f), window_rows=tuple(rows),
                   window_cols=tuple(cols), patch=patch, padding=pad, kernel=depthwise, channel_sums=mid,
                   terms=terms, rest=rest, rest_count=rest_count, notes=note)


def _transpose(layer, inputs, names, index):
    """out[i, j, f] = sum of x[p, q, c] * kernel[a, b, f, c] over p*stride - pad + a*dilation = i
    (and the same for columns): the gradient of the Conv2D mapping the output back to the
    input (TensorFlow's conv2d_transpose, whose 'same' pads that conv with the odd pixel at
    the end)."""
    (x,), (i, j, f) = inputs, index
    c = layer.config
    (kh, kw), (sh, sw), (dh, dw) = c["kernel_size"], c["strides"], c["dilation_rate"]
    pads = _transpose_pads(layer, x.shape[:2])
    kernel = _weight(layer, "kernel")  # (kh, kw, filters, cin)

    def pairs(out, taps, stride, dilation, pad, size):
        found = []
        for a in range(taps):
            p, r = divmod(out + pad - a * dilation, stride)
            if r == 0 and 0 <= p < size:
                found.append((p, a))
        return found

    row_pairs = sorted(pairs(i, kh, sh, dh, pads[0], x.shape[0]))
    col_pairs = sorted(pairs(j, kw, sw, dw, pads[1], x.shape[1]))
    labels, values, weights = [], [], []
    channel_sums = np.zeros(x.shape[2])
    z_all = np.zeros(kernel.shape[2])  # every filter's sum (a softmax activation needs them all)
    for p, a in row_pairs:
        for q, b in col_pairs:
            z_all += kernel[a, b] @ x[p, q]
            for ch in range(x.shape[2]):
                labels.append(f"input[{p}, {q}, {ch}] * kernel[{a}, {b}, {f}, {ch}]")
                values.append(x[p, q, ch])
                weights.append(kernel[a, b, f, ch])
                channel_sums[ch] += x[p, q, ch] * kernel[a, b, f, ch]
    values, weights = np.array(values), np.array(weights)
    terms, rest, rest_count = _top_terms(lambda k: labels[k], values, weights)
    total = float((values * weights).sum())
    if c["use_bias"]:
        z_all = z_all + _weight(layer, "bias")
    note = (f"{len(row_pairs) * len(col_pairs)} input position(s) reach this output through the kernel "
            f"(each input value is spread over a {kh}x{kw} block, {sh}x{sw} apart)",)
    return _finish(layer, "transpose", "y = activation(sum of every input*kernel tap landing here + bias)",
                   z_all, f, total, _bias(layer, f), window_rows=tuple(p for p, _ in row_pairs),
                   window_cols=tuple(q for q, _ in col_pairs), channel_sums=channel_sums, terms=terms, rest=rest,
                   rest_count=rest_count, notes=note)


def _transpose_pads(layer, in_size) -> tuple[int, int]:
    c = layer.config
    pads = []
    for axis in (0, 1):
        if c["padding"] != "same":
            pads.append(0)
            continue
        k_eff = (c["kernel_size"][axis] - 1) * c["dilation_rate"][axis] + 1
        out = layer.built_output_shape[1 + axis]
        pads.append(max((in_size[axis] - 1) * c["strides"][axis] + k_eff - out, 0) // 2)
    return tuple(pads)


# --- pooling ---------------------------------------------------------------------------

def _pool(layer, inputs, names, index):
    (x,), (i, j, ch) = inputs, index
    c = layer.config
    (ph, pw) = c["pool_size"]
    (sh, sw) = c["strides"] or c["pool_size"]
    rows = _positions(i, sh, _pads(x.shape[0], ph, sh, 1, c["padding"]), ph)
    cols = _positions(j, sw, _pads(x.shape[1], pw, sw, 1, c["padding"]), pw)
    patch, pad = _gather(x, rows, cols)
    return _window_result(layer.class_name == "MaxPooling2D", patch[:, :, ch], pad, rows, cols)


def _window_result(is_max: bool, values: np.ndarray, pad: np.ndarray, rows, cols) -> dict:
    inside = ~pad
    if is_max:
        masked = np.where(inside, values, -np.inf)
        a, b = np.unravel_index(int(np.argmax(masked)), masked.shape)  # the first maximum, as TensorFlow
        return dict(kind="max_pool", formula="y = the largest value in the window (padding is never chosen)",
                    computed=float(values[a, b]), window_rows=tuple(rows), window_cols=tuple(cols),
                    patch=values[:, :, None], padding=pad, chosen=(rows[a], cols[b]))
    count = int(inside.sum())
    total = float(values[inside].sum())
    return dict(kind="average_pool",
                formula=f"y = sum of the {count} values inside the image / {count} (padding is not counted)",
                computed=total / count, total=total, window_rows=tuple(rows), window_cols=tuple(cols),
                patch=values[:, :, None], padding=pad)


def _global_pool(layer, inputs, names, index):
    (x,) = inputs
    ch = index[-1]
    h, w = x.shape[:2]
    return _window_result(layer.class_name == "GlobalMaxPooling2D", x[:, :, ch], np.zeros((h, w), bool),
                          list(range(h)), list(range(w)))


# --- dense -----------------------------------------------------------------------------

def _dense(layer, inputs, names, index):
    (x,) = inputs
    u = index[-1]
    vector = x[index[:-1]] if x.ndim > 1 else x
    kernel = _weight(layer, "kernel")
    where = f"{list(index[:-1])} " if x.ndim > 1 else ""
    terms, rest, rest_count = _top_terms(lambda k: f"input{where}[{k}]", vector, kernel[:, u])
    z_all = vector @ kernel
    if layer.config["use_bias"]:
        z_all = z_all + _weight(layer, "bias")
    return _finish(layer, "dense", f"y = activation(sum of the {len(vector)} inputs*weights + bias)",
                   z_all, u, float(vector @ kernel[:, u]), _bias(layer, u), terms=terms, rest=rest,
                   rest_count=rest_count, inputs=())


# --- merges ----------------------------------------------------------------------------

_MERGE_OPS = {
    "Add": ("y = the sum of the inputs", lambda v: float(np.sum(v))),
    "Subtract": ("y = first input - second input", lambda v: float(v[0] - v[1])),
    "Multiply": ("y = the product of the inputs", lambda v: float(np.prod(v))),
    "Average": ("y = the mean of the inputs", lambda v: float(np.mean(v))),
    "Maximum": ("y = the largest of the inputs", lambda v: float(np.max(v))),
    "Minimum": ("y = the smallest of the inputs", lambda v: float(np.min(v))),
}


def _merge(layer, inputs, names, index):
    rank = len(index)
    values = []
    for x in inputs:
        expanded = x.reshape((1,) * (rank - x.ndim) + x.shape)  # a lower rank broadcasts from the front
        values.append(float(expanded[tuple(0 if n == 1 else k for n, k in zip(expanded.shape, index))]))
    formula, op = _MERGE_OPS[layer.class_name]
    result = op(values)
    terms = tuple(Term(name, v, None, v) for name, v in zip(names, values))
    return dict(kind="merge", formula=formula, computed=result, terms=terms, inputs=tuple(values))


def _concatenate(layer, inputs, names, index):
    rank = len(index)
    axis = layer.config["axis"]
    axis = (axis + rank + 1 if axis < 0 else axis) - 1  # without the batch axis
    offset = index[axis]
    for name, x in zip(names, inputs):
        if offset < x.shape[axis]:
            source = tuple(offset if a == axis else k for a, k in enumerate(index))
            value = float(x[source])
            return dict(kind="moves", formula=f"y = {name}{list(source)} (the inputs side by side)",
                        computed=value, inputs=(value,), terms=(Term(name, value, None, value),))
        offset -= x.shape[axis]
    raise AssertionError("index beyond the concatenated inputs")  # _check_index ruled this out


# --- one value in, one value out --------------------------------------------------------

def _activation_layer(layer, inputs, names, index):
    (x,) = inputs
    act = layer.config["activation"]
    z = float(x[index])
    return dict(kind="elementwise", formula=f"y = {act}(x)", inputs=(z,), pre_activation=z, activation=act,
                computed=_activate(act, x[index[:-1]], index[-1], z))


def _relu_layer(layer, inputs, names, index):
    (x,) = inputs
    cap, slope, threshold = layer.relu_params()
    v = float(x[index])
    y = min(v, cap) if cap is not None and v > threshold else v if v > threshold else slope * (v - threshold)
    return dict(kind="elementwise", formula=layer.rule(), inputs=(v,), computed=float(np.float32(y)))


def _rescaling(layer, inputs, names, index):
    (x,) = inputs
    v = float(x[index])
    scale, offset = np.float32(layer.config["scale"]), np.float32(layer.config["offset"])
    return dict(kind="elementwise", formula=layer.rule(), inputs=(v,),
                computed=float(np.float32(v) * scale + offset))


def _batch_norm(layer, inputs, names, index):
    (x,) = inputs
    axis = layer.config["axis"] % (x.ndim + 1) - 1
    k = index[axis]
    mean, var = float(layer.weight("moving_mean")[k]), float(layer.weight("moving_variance")[k])
    gamma = float(layer.weight("gamma")[k]) if layer.config["scale"] else 1.0
    beta = float(layer.weight("beta")[k]) if layer.config["center"] else 0.0
    eps = layer.config["epsilon"]
    v = float(x[index])
    y = (v - mean) / np.sqrt(var + eps) * gamma + beta
    return dict(kind="normalization", inputs=(v,), computed=float(y),
                formula=(f"y = (x - moving_mean) / sqrt(moving_variance + {eps:g}) * gamma + beta = "
                         f"({n(v)} - {factor(mean)}) / sqrt({n(var)} + {eps:g}) * {factor(gamma)} + {factor(beta)}"))


def _identity(layer, inputs, names, index):
    (x,) = inputs
    v = float(x[index])
    return dict(kind="moves", formula="y = x (when predicting this layer passes its input through)",
                inputs=(v,), computed=v)


def _flat_move(layer, inputs, names, index):
    """Flatten and Reshape: the same values in the same (row-major) order."""
    (x,) = inputs
    out_shape = layer.built_output_shape[1:]
    source = np.unravel_index(np.ravel_multi_index(index, out_shape), x.shape)
    v = float(x[source])
    return dict(kind="moves", formula=f"y = input{[int(s) for s in source]} (same values, row by row)",
                inputs=(v,), computed=v)


def _permute(layer, inputs, names, index):
    (x,) = inputs
    source = [0] * len(index)
    for out_axis, d in enumerate(layer.config["dims"]):
        source[d - 1] = index[out_axis]
    v = float(x[tuple(source)])
    return dict(kind="moves", formula=f"y = input{source} (axes reordered)", inputs=(v,), computed=v)


def _shifted(layer, inputs, names, index, sign: int, key: str):
    (x,) = inputs
    (top, _), (left, _) = layer.config[key]
    r, c = index[0] + sign * top, index[1] + sign * left
    if 0 <= r < x.shape[0] and 0 <= c < x.shape[1]:
        v = float(x[r, c, index[2]])
        return dict(kind="moves", formula=f"y = input[{r}, {c}, {index[2]}]", inputs=(v,), computed=v,
                    window_rows=(r,), window_cols=(c,))
    return dict(kind="moves", formula="y = 0 (a padding zero)", computed=0.0)


def _upsample(layer, inputs, names, index):
    if layer.config["interpolation"] != "nearest":
        return _by_layer(layer, inputs, index)
    (x,) = inputs
    sh, sw = layer.config["size"]
    r, c = index[0] // sh, index[1] // sw
    v = float(x[r, c, index[2]])
    return dict(kind="moves", formula=f"y = input[{r}, {c}, {index[2]}] (each value repeated {sh}x{sw})",
                inputs=(v,), computed=v, window_rows=(r,), window_cols=(c,))


def _by_layer(layer, inputs, index) -> dict:
    """A layer whose value mixes many inputs (Softmax, LayerNormalization, GroupNormalization,
    PReLU, ELU, bilinear UpSampling2D): recomputed by the layer's own forward on this one
    example; the values it reads at the same position are listed."""
    from ..layers.base import Context

    batch = [np.ascontiguousarray(x[None], np.float32) for x in inputs]
    y = layer.forward(batch if layer.merge else batch[0], Context(), training=False)
    rule = layer.rule() if hasattr(layer, "rule") else layer.explanation
    same = tuple(float(x[index]) for x in inputs if x.shape == tuple(layer.built_output_shape[1:]))
    return dict(kind="layer", formula=rule, computed=float(np.asarray(y)[(0, *index)]), inputs=same,
                notes=("computed by the layer's own forward pass on this image (it mixes several input values)",))


_KINDS = {
    "Conv2D": _conv2d, "DepthwiseConv2D": _depthwise, "SeparableConv2D": _separable, "Conv2DTranspose": _transpose,
    "MaxPooling2D": _pool, "AveragePooling2D": _pool,
    "GlobalMaxPooling2D": _global_pool, "GlobalAveragePooling2D": _global_pool,
    "Dense": _dense, "Concatenate": _concatenate,
    **{name: _merge for name in _MERGE_OPS},
    "Activation": _activation_layer, "ReLU": _relu_layer, "LeakyReLU": _relu_layer, "Rescaling": _rescaling,
    "BatchNormalization": _batch_norm,
    "Dropout": _identity, "SpatialDropout2D": _identity, "GaussianNoise": _identity, "RandomFlip": _identity,
    "RandomTranslation": _identity, "RandomRotation": _identity, "RandomZoom": _identity,
    "RandomContrast": _identity,
    "Flatten": _flat_move, "Reshape": _flat_move, "Permute": _permute,
    "ZeroPadding2D": lambda layer, inputs, names, index: _shifted(layer, inputs, names, index, -1, "padding"),
    "Cropping2D": lambda layer, inputs, names, index: _shifted(layer, inputs, names, index, +1, "cropping"),
    "UpSampling2D": _upsample,
}
