"""Losses by Keras name: value and gradient side by side.

Keras reduction: each loss is reduced over the last axis (sum for crossentropies, mean
for binary crossentropy and squared error), then averaged over everything else (the
batch). Probabilities are clipped to [EPSILON, 1 - EPSILON] as Keras does.

When the model's last layer ends in the matching activation (softmax for the
categorical losses, sigmoid for binary crossentropy) the model asks for the *fused*
gradient with respect to the pre-activation ``logits``: softmax(z) - y, which is exact
and stable, instead of pushing 1/p through the softmax.
"""

from __future__ import annotations

import numpy as np

EPSILON = 1e-7  # keras.config.epsilon()
# log p is clipped to these for the loss, as Keras clips p to [EPSILON, 1 - EPSILON]
_LOG_LO, _LOG_HI = float(np.log(EPSILON)), float(np.log1p(-EPSILON))


def _softmax_crossentropy(logits, labels, targets, grad_out, name) -> float:
    """The fused loss and gradient of a softmax crossentropy (``kernels.softmax_loss``):
    labels (sparse) or targets (one row per output row) given."""
    from .kernels import softmax_loss

    k = logits.shape[-1]
    z = np.ascontiguousarray(logits.reshape(-1, k), dtype=np.float32)
    direct = grad_out.dtype == np.float32 and grad_out.flags.c_contiguous  # then reshape gives a view
    grad = grad_out.reshape(-1, k)
    g = grad if direct else np.empty(z.shape, np.float32)
    if labels is not None:
        labels = labels.astype(np.int64, copy=False)
        targets = softmax_loss.NO_TARGETS
    else:
        targets = np.ascontiguousarray(targets, dtype=np.float64)
        labels = softmax_loss.NO_LABELS
    rows = labels.shape[0] if targets.size == 0 else targets.shape[0]
    if rows != z.shape[0]:
        raise ValueError(f"{name}: {rows} labels for {z.shape[0]} predictions; give one label per image")
    out = np.zeros(2)
    softmax_loss.softmax_crossentropy(z, labels, targets, _LOG_LO, _LOG_HI, g, out)
    if out[1]:
        bad = labels[(labels < 0) | (labels >= k)][0]
        raise ValueError(f"{name}: label {bad} is not a class number: the labels must be whole numbers from "
                         f"0 to {k - 1}, one per output of the last layer")
    if not direct:
        grad[...] = g
    return float(out[0])


class Loss:
    """Base: ``compute(y_pred, y_true, grad_out, logits=None) -> mean loss`` writes
    d(loss)/d(y_pred) into grad_out, or d(loss)/d(logits) when logits are given (fused)."""

    name = "loss"
    fuses_with: str | None = None  # activation whose pre-activation gives the fused gradient
    sparse = False  # integer class labels instead of one target per output

    def compute(self, y_pred, y_true, grad_out, logits=None) -> float:
        raise NotImplementedError

    def __call__(self, y_true, y_pred) -> float:
        """keras.losses style: loss(y_true, y_pred) -> mean loss (no gradient)."""
        y_pred = np.ascontiguousarray(y_pred, dtype=np.float32)
        return self.compute(y_pred, np.asarray(y_true), np.empty_like(y_pred))

    def __repr__(self) -> str:
        return f"<loss {self.name}>"


class SparseCategoricalCrossentropy(Loss):
    name = "sparse_categorical_crossentropy"
    fuses_with = "softmax"
    sparse = True

    def compute(self, y_pred, y_true, grad_out, logits=None):
        if logits is not None:
            return _softmax_crossentropy(logits, np.asarray(y_true).reshape(-1), None, grad_out, self.name)
        k = y_pred.shape[-1]
        labels = np.asarray(y_true).reshape(-1).astype(np.intp)
        rows = np.arange(labels.size)
        m = labels.size
        p = y_pred.reshape(-1, k).astype(np.float64)
        total = p.sum(axis=-1)
        q = p[rows, labels] / total
        clipped = np.clip(q, EPSILON, 1.0 - EPSILON)
        inside = (q > EPSILON) & (q < 1.0 - EPSILON)
        # d(-log(p_y / S))/dp_j = 1/S - [j = y]/p_y; zero where the clip is active.
        g = np.repeat((1.0 / total)[:, None], k, axis=1)
        g[rows, labels] -= 1.0 / np.where(inside, p[rows, labels], 1.0)
        g[~inside] = 0.0
        grad_out.reshape(-1, k)[...] = g / m
        return float(-np.log(clipped).mean())


class CategoricalCrossentropy(Loss):
    name = "categorical_crossentropy"
    fuses_with = "softmax"

    def compute(self, y_pred, y_true, grad_out, logits=None):
        k = y_pred.shape[-1]
        t = np.asarray(y_true, dtype=np.float64).reshape(-1, k)
        m = t.shape[0]
        if logits is not None:
            return _softmax_crossentropy(logits, None, t, grad_out, self.name)
        p = y_pred.reshape(-1, k).astype(np.float64)
        total = p.sum(axis=-1, keepdims=True)
        q = p / total
        clipped = np.clip(q, EPSILON, 1.0 - EPSILON)
        inside = (q > EPSILON) & (q < 1.0 - EPSILON)
        # loss = -sum_k t_k log(p_k / S): d/dp_j = -t_j/p_j [unclipped] + sum_k t_k [unclipped] / S
        tin = np.where(inside, t, 0.0)
        g = -tin / np.where(inside, p, 1.0) + tin.sum(axis=-1, keepdims=True) / total
        grad_out.reshape(-1, k)[...] = g / m
        return float(-(t * np.log(clipped)).sum(axis=-1).mean())


class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"
    fuses_with = "sigmoid"

    def compute(self, y_pred, y_true, grad_out, logits=None):
        k = y_pred.shape[-1]
        t = np.asarray(y_true, dtype=np.float64).reshape(-1, k)
        n = t.size
        if logits is not None:
            z = logits.reshape(-1, k).astype(np.float64)
            per = np.maximum(z, 0.0) - z * t + np.log1p(np.exp(-np.abs(z)))
            sig = np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))
            grad_out.reshape(-1, k)[...] = (sig - t) / n
            return float(per.mean())
        p = y_pred.reshape(-1, k).astype(np.float64)
        inside = (p > EPSILON) & (p < 1.0 - EPSILON)
        pc = np.clip(p, EPSILON, 1.0 - EPSILON)
        per = -(t * np.log(pc) + (1.0 - t) * np.log(1.0 - pc))
        g = np.where(inside, -(t / pc) + (1.0 - t) / (1.0 - pc), 0.0)
        grad_out.reshape(-1, k)[...] = g / n
        return float(per.mean())


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def compute(self, y_pred, y_true, grad_out, logits=None):
        k = y_pred.shape[-1]
        p = y_pred.reshape(-1, k).astype(np.float64)
        t = np.asarray(y_true, dtype=np.float64).reshape(p.shape)
        diff = p - t
        grad_out.reshape(-1, k)[...] = 2.0 * diff / diff.size
        return float((diff * diff).mean())


_LOSSES = {cls.name: cls for cls in (SparseCategoricalCrossentropy, CategoricalCrossentropy,
                                     BinaryCrossentropy, MeanSquaredError)}
_ALIASES = {"mse": "mean_squared_error", "MeanSquaredError": "mean_squared_error",
            "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy",
            "CategoricalCrossentropy": "categorical_crossentropy",
            "BinaryCrossentropy": "binary_crossentropy"}


def get(identifier) -> Loss:
    """A Loss from a Keras name ("sparse_categorical_crossentropy", "mse") or a Loss."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        key = _ALIASES.get(identifier, identifier)
        if key in _LOSSES:
            return _LOSSES[key]()
    raise ValueError(f"unknown loss {identifier!r}; VisualCNN knows {', '.join(_LOSSES)}")


def accuracy_kind(output_shape: tuple, label_shape: tuple) -> str:
    """Keras's resolution of metrics=["accuracy"] (keras/src/trainers/compile_utils.py):
    binary when the output has one unit, sparse when the labels lack the class axis (or
    have a trailing 1), categorical otherwise."""
    if output_shape[-1] == 1:
        return "binary"
    if len(label_shape) == len(output_shape) - 1 or (len(label_shape) == len(output_shape) and label_shape[-1] == 1):
        return "sparse"
    return "categorical"


def correct_fraction(kind: str, y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """Mean accuracy of one batch for an accuracy kind: the class with the largest output
    (the first of equal ones, as np.argmax) against the label or the largest target."""
    k = y_pred.shape[-1]
    if kind == "binary":
        return float(((y_pred > 0.5) == (np.asarray(y_true).reshape(y_pred.shape) > 0.5)).mean())
    from .kernels import softmax_loss

    pred = y_pred.reshape(-1, k)
    if kind == "sparse":
        labels, targets = np.asarray(y_true).reshape(-1).astype(np.int64, copy=False), softmax_loss.NO_TARGETS
        rows = labels.shape[0]
    else:
        labels, targets = softmax_loss.NO_LABELS, np.ascontiguousarray(np.asarray(y_true).reshape(-1, k), np.float64)
        rows = targets.shape[0]
    if rows != pred.shape[0]:
        raise ValueError(f"accuracy: {rows} labels for {pred.shape[0]} predictions; give one label per image")
    out = np.zeros(1, np.int64)
    softmax_loss.count_correct(np.ascontiguousarray(pred, dtype=np.float32), labels, targets, out)
    return float(out[0]) / rows


NAMES = tuple(_LOSSES)

__all__ = ["Loss", "SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy",
           "MeanSquaredError", "get", "accuracy_kind", "correct_fraction", "NAMES", "EPSILON"]
