"""The sanity check of Adebayo et al. 2018 ("Sanity Checks for Saliency Maps"): repeat a
heat map on a copy of the network whose weights are randomly re-initialised, and compare
(issue 13 item 3). A map that stays the same once the network knows nothing explains the
image, not the network, and means nothing about what the network learned.

mode "all": every layer re-initialised at once. mode "cascade": the layers with weights
re-initialised one more at a time from the output down (the paper's cascading
randomisation), one map per step. Re-initialised = the layer's own initialisers
(glorot_uniform kernels, zero biases, ...) drawn from default_rng(init_seed), as build() does.
The class explained stays the trained model's (its prediction by default) on every copy.

Similarity: Spearman's rank correlation of the two maps' pixels (ties get their average
rank), per image: near 1 = the same ranking of pixels, near 0 = unrelated. It is NaN when a
map is flat (all pixels equal: e.g. a Grad-CAM with nothing for the class), which carries
no ranking at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gradients import class_indices, images

METHODS = ("gradcam", "saliency", "smoothgrad", "occlusion")


@dataclass(frozen=True)
class SanityStep:
    """One randomised copy: `randomised` names the layers re-initialised; maps (N, H, W);
    spearman (N,) against the trained model's maps."""

    randomised: tuple[str, ...]
    maps: np.ndarray
    spearman: np.ndarray


@dataclass(frozen=True)
class SanityCheck:
    method: str
    mode: str
    classes: np.ndarray
    maps: np.ndarray  # (N, H, W) the trained model's
    steps: tuple[SanityStep, ...]

    def lines(self) -> list[str]:
        """What a student reads: one line per randomised copy."""
        out = [f"{self.method} on the trained network vs. randomly re-initialised copies (Spearman rank correlation, "
               f"1 = same map, 0 = unrelated):"]
        for step in self.steps:
            rho = float(np.nanmean(step.spearman)) if np.any(np.isfinite(step.spearman)) else float("nan")
            what = "all layers" if self.mode == "all" else f"{step.randomised[-1]} and above"
            text = "flat map (no ranking)" if not np.isfinite(rho) else f"{rho:.2f}"
            out.append(f"  {what} re-initialised: {text}")
        return out


def heat_maps(model, x, method: str, classes: np.ndarray, options: dict) -> np.ndarray:
    """(N, H, W) maps in the [0, 1] display form of `method` for the given classes."""
    if method == "gradcam":
        from .gradcam import gradcam

        return gradcam(model, x, options["layer_name"], classes).heatmap
    if method == "saliency":
        from .smoothgrad import magnitude

        return magnitude(np.stack([model.input_gradients(image[None], int(c))[0] for image, c in zip(x, classes)]))
    if method == "smoothgrad":
        from .smoothgrad import smoothgrad

        return smoothgrad(model, x, classes, **options).smooth_map
    from .occlusion import occlusion

    return occlusion(model, x, classes, **options).heatmap


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two arrays' values (average ranks for ties); NaN for a flat array."""
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    for start, count in zip(first, counts):  # ties share their average rank
        if count > 1:
            ranks[order[start:start + count]] = start + (count - 1) / 2
    return ranks


def randomised_copy(model, layer_names, seed: int):
    """A copy of model whose layers named in layer_names are re-initialised (seeded); the
    others keep the model's weights. The model itself is not touched."""
    from ..layers import layer_from_config
    from ..model import Sequential, model_from_graph

    layers = [layer_from_config(layer.class_name, layer.get_config()) for layer in model.layers]
    copy = model_from_graph(model.name, model.input_shape, layers, model.inbound, model.input_name,
                            sequential=isinstance(model, Sequential))
    copy.build(seed=seed)
    weights = []
    for original, fresh in zip(model.layers, copy.layers):
        source = fresh if original.name in layer_names else original
        weights.extend(np.array(w) for w in source.weights)
    copy.set_weights(weights)
    return copy


def sanity_check(model, x, method: str = "gradcam", class_index=None, mode: str = "all", init_seed: int = 1,
                 **options) -> SanityCheck:
    """Repeat `method`'s map of x on randomised copies of model (see the module text).
    options go to the method (gradcam: layer_name, required; smoothgrad: n, noise, seed;
    occlusion: patch, stride, fill)."""
    if method not in METHODS:
        raise ValueError(f"sanity_check: method must be one of {', '.join(METHODS)}, received {method!r}")
    if mode not in ("all", "cascade"):
        raise ValueError(f"sanity_check: mode must be 'all' or 'cascade', received {mode!r}")
    if method == "gradcam" and "layer_name" not in options:
        raise ValueError("sanity_check: gradcam needs layer_name=... (a conv layer of the model)")
    x = images(model, x, "sanity_check")
    classes = class_indices(model, class_index, len(x), model.predict(x), "sanity_check")
    maps = heat_maps(model, x, method, classes, options)
    weighted = [layer.name for layer in model.layers if layer.weights]
    if mode == "all":
        sets = [tuple(weighted)]
    else:
        sets = [tuple(reversed(weighted[k:])) for k in range(len(weighted) - 1, -1, -1)]
    steps = []
    for names in sets:
        copy = randomised_copy(model, set(names), init_seed)
        other = heat_maps(copy, x, method, classes, options)
        rho = np.array([spearman(a, b) for a, b in zip(maps, other)])
        steps.append(SanityStep(randomised=names, maps=other, spearman=rho))
    return SanityCheck(method=method, mode=mode, classes=classes, maps=maps, steps=tuple(steps))


__all__ = ["SanityCheck", "SanityStep", "sanity_check", "spearman", "randomised_copy", "METHODS"]
