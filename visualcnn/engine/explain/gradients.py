"""The gradient passes the heat maps and the filter pictures share (issue 13 items 3, 4).

model.input_gradients gives d(class score)/d(input) only; Grad-CAM needs the gradient
with respect to a layer's own output, and activation maximisation the gradient of one
filter's mean activation. Both are the layers' own forward and backward passes, run
here over the model's graph (model.inbound) in inference mode (dropout off,
BatchNormalization's moving statistics), so no engine entry point had to change.

Every array is copied between layers, as explain/backward.py does: the engine hands a
fused relu from a conv to the next layer by array identity (layers/relu_handoff.py), and
a gradient taken at a layer's output must be the gradient of that output itself.

The class score is the last layer's pre-activation when it ends in softmax or sigmoid
(the logit: what the Grad-CAM paper differentiates, and what model.input_gradients
uses), its output otherwise.
"""

from __future__ import annotations

import numpy as np


def find_layer(model, name: str, what: str):
    """(layer, position in model.layers) or ValueError naming the layers there are."""
    for position, layer in enumerate(model.layers):
        if layer.name == name:
            return layer, position
    known = ", ".join(layer.name for layer in model.layers)
    raise ValueError(f"{what}: no layer named {name!r}; the layers are {known}")


def images(model, x, what: str) -> np.ndarray:
    """x as a float32 batch (N, *input_shape): one image without its batch axis is accepted."""
    model._require_layers(what)
    if not model.built:
        model.build()
    x = np.asarray(x, np.float32)
    shape = tuple(model.input_shape)
    if x.shape == shape:
        x = x[None]
    if x.shape[1:] != shape or x.shape[0] < 1:
        raise ValueError(f"{what}: x must be images shaped {shape}, or a batch (N, {', '.join(map(str, shape))}); "
                         f"received {x.shape}")
    return np.ascontiguousarray(x)


def score_is_logit(model) -> bool:
    """True when the class score is the last layer's pre-activation (it ends in softmax or sigmoid)."""
    last = model.layers[-1]
    return "activation" in last.config and last.config["activation"] in ("softmax", "sigmoid")


def class_indices(model, classes, n: int, outputs: np.ndarray, what: str) -> np.ndarray:
    """One class per image: None = the predicted one, an int for all, or one per image."""
    units = model.output_shape[-1]
    if classes is None:
        return outputs.reshape(n, -1, units)[:, 0].argmax(axis=-1) if outputs.ndim > 2 else outputs.argmax(axis=-1)
    values = np.atleast_1d(np.asarray(classes))
    if values.dtype.kind not in "iu" or values.ndim != 1 or len(values) not in (1, n) \
            or np.any(values < 0) or np.any(values >= units):
        raise ValueError(f"{what}: class_index must be None (the predicted class), a class from 0 to {units - 1}, "
                         f"or one such class per image ({n}); received {classes!r}")
    return np.broadcast_to(values, (n,)).astype(np.int64)


def cancelled(cancel) -> bool:
    """A cancel flag: None (never), a threading.Event, or a function returning True to stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


class Passes:
    """Forward and backward over one model with this object's own contexts (so a call
    from the window's thread never shares buffers with training or with the Draw tab)."""

    def __init__(self, model):
        from ..layers.base import Context

        self.model = model
        self.layers = model.layers
        self.inbound = model.inbound
        self.ctxs = [Context() for _ in self.layers]
        self.outs: list = []

    def forward(self, x: np.ndarray, upto: int | None = None) -> list:
        """Every layer's output up to layer `upto` (default the last), copies."""
        last = len(self.layers) - 1 if upto is None else upto
        outs: list = []
        for i in range(last + 1):
            layer = self.layers[i]
            ins = [np.array(x if j == -1 else outs[j]) for j in self.inbound[i]]
            outs.append(np.array(layer.forward(ins if layer.merge else ins[0], self.ctxs[i], training=False)))
        self.outs = outs
        return outs

    def backward(self, top: int, dy: np.ndarray, down_to: int, skip_activation: bool = False) -> np.ndarray:
        """d(score)/d(output of layer down_to) (down_to = -1: the model input) for
        dy = d(score)/d(output of layer top), through the layers between (last forward)."""
        grads: list = [None] * len(self.layers)
        grads[top] = np.array(dy, np.float32)
        found = None
        for i in range(top, down_to, -1):
            g = grads[i]
            if g is None:
                continue
            ins = self.inbound[i]
            layer = self.layers[i]
            back = layer.backward(g, self.ctxs[i], need_dx=True, skip_activation=skip_activation and i == top)
            for j, dx in zip(ins, back if layer.merge else (back,)):
                if dx is None or j < down_to:
                    continue
                dx = np.array(dx)
                if j == down_to == -1:
                    found = dx if found is None else found + dx
                else:
                    grads[j] = dx if grads[j] is None else grads[j] + dx
        if down_to >= 0:
            found = grads[down_to]
        if found is None:  # the score does not depend on it
            shape = self.outs[down_to].shape if down_to >= 0 else self.outs_input_shape()
            found = np.zeros(shape, np.float32)
        return found

    def outs_input_shape(self) -> tuple:
        n = self.outs[0].shape[0] if self.outs else 1
        return (n, *self.model.input_shape)

    def class_seed(self, classes: np.ndarray) -> np.ndarray:
        """d(sum over images of each image's class score)/d(last output): images are
        independent in inference mode, so one backward gives every image's gradient."""
        out = self.outs[-1]
        seed = np.zeros(out.shape, np.float32)
        seed.reshape(out.shape[0], -1, out.shape[-1])[np.arange(out.shape[0]), :, classes] = 1.0
        return seed


def run(model, fn, serial: bool | None = None, images: int | None = None):
    """fn() with the kernels model.predict would use (serial for one image or while this
    model trains in another thread)."""
    return model._run_inference(fn, serial, images)


__all__ = ["Passes", "find_layer", "images", "score_is_logit", "class_indices", "run", "cancelled"]
