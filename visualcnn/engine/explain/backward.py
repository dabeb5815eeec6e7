"""The backward side of one traced value (issue 13 item 1): for an image, its label and a
loss, dL/d(value), how the activation turns it into dL/dz, and what this one cell adds to
the kernel's, the bias's and the input's gradients (the seed formulas dL/dK and dL/dI:
dz * the input patch, dz * the kernel).

The gradients come from the layers' own backward passes, run here over the graph in
inference mode (dropout off, BatchNormalization's moving statistics), with every array
copied between layers so no fused shortcut (relu hand-off) changes what a layer receives:
dL/d(value) is the gradient of the layer's output itself. The whole kernel gradient the
engine computes is kept beside this cell's share, so a student sees the share is one
term of that sum (the tests add up every cell's share and compare).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import activations, losses
from .arithmetic import compute
from .text import factor, n
from .trace import _check_index, _find_layer, _one_image


@dataclass(frozen=True)
class BackwardTrace:
    """dL/d(value) at one output cell and where it flows. Shares are None for layers
    without a kernel (or not yet taken apart: depthwise, separable, transposed conv)."""

    layer_name: str
    class_name: str
    index: tuple[int, ...]
    loss_name: str
    label: int
    loss: float
    dvalue: float  # dL/d(value)
    dpre: float | None = None  # dL/dz = dL/d(value) * activation'(z) (softmax: through every unit)
    pre_activation: float | None = None
    activation: str | None = None
    kernel_share: np.ndarray | None = None  # this cell's term of dL/dkernel[..., filter or unit] = dz * input
    kernel_total: np.ndarray | None = None  # the whole dL/dkernel[..., filter or unit], as the engine sums it
    bias_share: float | None = None  # dz
    bias_total: float | None = None
    input_share: np.ndarray | None = None  # this cell's term of dL/d(input window) = dz * kernel
    window_rows: tuple[int, ...] = ()
    window_cols: tuple[int, ...] = ()

    def lines(self) -> list[str]:
        where = ", ".join(str(i) for i in self.index)
        lines = [f"{self.loss_name} for label {self.label} = {n(self.loss)}",
                 f"dL/d({self.layer_name}[{where}]) = {n(self.dvalue)}"]
        if self.dpre is None:
            return lines
        if self.activation and self.activation != "linear":
            lines.append(f"through {self.activation} at z = {n(self.pre_activation)}: dL/dz = {n(self.dpre)}")
        else:
            lines.append(f"dL/dz = {n(self.dpre)} (no activation)")
        if self.bias_share is not None:
            lines.append(f"dL/dbias: this cell adds dz = {n(self.bias_share)} (all cells together: {n(self.bias_total)})")
        if self.kernel_share is not None:
            biggest = np.unravel_index(int(np.argmax(np.abs(self.kernel_share))), self.kernel_share.shape)
            total = self.kernel_total[biggest]
            lines.append(f"dL/dkernel: this cell adds dz * the input it read, e.g. at {list(map(int, biggest))}: "
                         f"{n(self.dpre)}*{factor(self.kernel_share[biggest] / self.dpre if self.dpre else 0.0)} = "
                         f"{n(self.kernel_share[biggest])} (every cell together: {n(total)})")
        if self.input_share is not None:
            lines.append(f"dL/dinput: this cell sends dz * kernel back to the {self.input_share.size} input values "
                         f"it read (largest {n(float(np.max(np.abs(self.input_share))))})")
        return lines

    def explain_text(self) -> str:
        return "\n".join(self.lines())


def trace_backward(model, x, label: int, layer_name: str, index, loss=None) -> BackwardTrace:
    """The gradient side of trace(model, x, layer_name, index) for the true class `label`.

    loss: a Keras loss name or Loss; default the model's compiled loss, else
    sparse_categorical_crossentropy."""
    from ..layers.base import Context

    layer, position = _find_layer(model, layer_name)
    x = _one_image(model, x)
    model.activations(x)  # builds the model when it is not built yet
    loss_fn = losses.get(loss if loss is not None else (model.loss or "sparse_categorical_crossentropy"))
    units = model.output_shape[-1]
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < units:
        raise ValueError(f"trace_backward: label must be a class from 0 to {units - 1}, received {label!r}")
    y_true = np.array([label]) if loss_fn.sparse else np.eye(units, dtype=np.float32)[[label]]

    layers, inbound = model.layers, model.inbound
    ctxs = [Context() for _ in layers]
    outs = []
    for i, lay in enumerate(layers):
        ins = [np.array(x if j == -1 else outs[j]) for j in inbound[i]]  # copies: no hand-off by identity
        outs.append(np.array(lay.forward(ins if lay.merge else ins[0], ctxs[i], training=False)))
    out_index = _check_index(index, outs[position].shape[1:], layer)
    grads: list = [None] * len(layers)
    grads[-1] = np.zeros_like(outs[-1])
    loss_value = loss_fn.compute(outs[-1], y_true, grads[-1])
    for i in range(len(layers) - 1, position, -1):
        if grads[i] is None:
            continue
        back = layers[i].backward(np.array(grads[i]), ctxs[i], need_dx=True)
        for j, dx in zip(inbound[i], back if layers[i].merge else (back,)):
            if j < position or dx is None:
                continue
            grads[j] = np.array(dx) if grads[j] is None else grads[j] + dx
    g = grads[position] if grads[position] is not None else np.zeros_like(outs[position])
    dvalue = float(g[(0, *out_index)])
    common = dict(layer_name=layer.name, class_name=layer.class_name, index=out_index, loss_name=loss_fn.name,
                  label=int(label), loss=float(loss_value), dvalue=dvalue)
    if layer.class_name not in ("Conv2D", "Dense"):
        return BackwardTrace(**common)

    # the engine's own weight gradients for the whole layer (this cell's share is one term)
    layers[position].backward(np.array(g), ctxs[position], need_dx=False)
    kernel_grad = ctxs[position].grads["kernel"]
    bias_grad = ctxs[position].grads.get("bias")
    sources = inbound[position]
    inputs = [np.asarray(x[0] if j == -1 else outs[j][0], np.float64) for j in sources]
    parts = compute(layer, inputs, (), out_index)
    last = out_index[-1]
    act = layer.config["activation"]
    z_all = _pre_activations(layer, inputs[0], out_index)
    dz_all = _through_activation(act, z_all, g[(0, *out_index[:-1])])
    dz = float(dz_all[last])
    use_bias = layer.config["use_bias"]
    shared = dict(dpre=dz, pre_activation=parts["pre_activation"], activation=act,
                  bias_share=dz if use_bias else None,
                  bias_total=float(bias_grad[last]) if use_bias else None)
    if layer.class_name == "Dense":
        vector = inputs[0][out_index[:-1]] if inputs[0].ndim > 1 else inputs[0]
        return BackwardTrace(**common, **shared, kernel_share=dz * vector, kernel_total=kernel_grad[:, last].copy(),
                             input_share=dz * np.asarray(layer.weight("kernel"), np.float64)[:, last])
    patch, kernel, pad = parts["patch"], parts["kernel"], parts["padding"]
    return BackwardTrace(**common, **shared, kernel_share=dz * patch, kernel_total=kernel_grad[..., last].copy(),
                         input_share=(dz * kernel)[~pad], window_rows=parts["window_rows"],
                         window_cols=parts["window_cols"])


def _pre_activations(layer, x: np.ndarray, index: tuple) -> np.ndarray:
    """Every filter's (or unit's) pre-activation at the cell's position."""
    kernel = np.asarray(layer.weight("kernel"), np.float64)
    if layer.class_name == "Dense":
        z = (x[index[:-1]] if x.ndim > 1 else x) @ kernel
    else:
        patch = compute(layer, [x], (), (*index[:-1], 0))["patch"]
        z = np.einsum("abc,abcf->f", patch, kernel)
    if layer.config["use_bias"]:
        z = z + np.asarray(layer.weight("bias"), np.float64)
    return z


def _through_activation(name: str, z: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dL/dz for the vector of pre-activations z given dL/dy (the engine's activation backward)."""
    fn = activations.get(name)
    z32 = np.ascontiguousarray(z, np.float32)
    y32 = fn(z32)
    out = np.empty_like(z32)
    fn.backward(z32 if fn.needs_input else None, y32, np.ascontiguousarray(dy, np.float32), out)
    return out.astype(np.float64)
