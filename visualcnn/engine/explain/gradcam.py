"""Grad-CAM (Selvaraju et al. 2017): where in the image a conv layer found the evidence
for a class (issue 13 item 3).

For the feature maps A (h, w, channels) of one conv layer and the class score y (the
logit before softmax, as the paper uses, when the model ends in softmax or sigmoid):
    weight[c] = mean over (i, j) of dy/dA[i, j, c]      (global average of the gradients)
    cam       = ReLU(sum over c of weight[c] * A[:, :, c])
then enlarged to the input's size by bilinear interpolation (explain/resize.py: half-pixel
centres, as tf.image.resize and skimage's resize compute) and divided by its maximum, so
the map is in [0, 1] (all zeros when nothing speaks for the class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gradients import Passes, class_indices, find_layer, images, run, score_is_logit
from .resize import resize_bilinear


@dataclass(frozen=True)
class GradCam:
    """Grad-CAM of N images for one layer.

    heatmap: (N, H, W) at the input's size in [0, 1]; cam: (N, h, w) the raw ReLU'd
    weighted sum at the layer's size; weights: (N, channels) the averaged gradients;
    classes: (N,) the class explained per image; scores: (N,) that class's score;
    probabilities: (N,) the model's output for that class; logit: whether the score is
    the pre-softmax (or pre-sigmoid) value.
    """

    layer_name: str
    heatmap: np.ndarray
    cam: np.ndarray
    weights: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray
    logit: bool


def conv_layers(model) -> list[str]:
    """The layers Grad-CAM can use: those whose output is a feature map (N, h, w, channels)."""
    report = model.analyse()
    return [row.layer.name for row in report.rows
            if row.inference is not None and len(row.inference.output_shape) == 4]


def gradcam(model, x, layer_name: str, class_index=None, serial: bool | None = None) -> GradCam:
    """Grad-CAM of x (one image or a batch) at layer `layer_name` for class_index (None:
    each image's predicted class; an int; or one class per image). Raises ValueError
    naming the problem (no such layer, not a feature map, a class out of range)."""
    x = images(model, x, "gradcam")
    layer, position = find_layer(model, layer_name, "gradcam")
    if layer_name not in conv_layers(model):
        raise ValueError(f"gradcam: layer {layer_name!r} ({layer.class_name}) does not output feature maps "
                         f"(height, width, channels); choose one of {', '.join(conv_layers(model)) or 'none'}")
    logit = score_is_logit(model)
    if len(x) > 1:  # every layer's output and its gradient for the whole batch at once
        model.check_memory(len(x), training=True)

    def compute():
        passes = Passes(model)
        outs = passes.forward(x)
        classes = class_indices(model, class_index, len(x), outs[-1], "gradcam")
        seed = passes.class_seed(classes)
        grads = passes.backward(len(model.layers) - 1, seed, position, skip_activation=logit)
        scores = _scores(passes, classes, logit)
        return outs, classes, grads, scores

    outs, classes, grads, scores = run(model, compute, serial, len(x))
    maps = outs[position].astype(np.float64)
    weights = grads.astype(np.float64).mean(axis=(1, 2))
    cam = np.maximum(np.einsum("nijc,nc->nij", maps, weights), 0.0)
    heat = resize_bilinear(cam, tuple(model.input_shape[:2]))
    top = heat.max(axis=(1, 2), keepdims=True)
    heat = np.where(top > 0, heat / np.where(top > 0, top, 1.0), 0.0)
    probabilities = outs[-1].reshape(len(x), -1)[np.arange(len(x)), classes]
    return GradCam(layer_name=layer.name, heatmap=heat, cam=cam, weights=weights, classes=classes,
                   scores=scores, probabilities=probabilities.astype(np.float64), logit=logit)


def _scores(passes: Passes, classes: np.ndarray, logit: bool) -> np.ndarray:
    """Each image's class score: the last layer's saved pre-activation when it is the logit."""
    out = passes.outs[-1]
    if logit:
        z = passes.ctxs[-1].saved.get("z")
        if z is not None:
            out = z
    return np.asarray(out, np.float64).reshape(len(classes), -1)[np.arange(len(classes)), classes]


__all__ = ["GradCam", "gradcam", "conv_layers"]
