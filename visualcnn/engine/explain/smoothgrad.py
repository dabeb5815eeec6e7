"""SmoothGrad (Smilkov et al. 2017) beside the plain saliency (issue 13 item 3).

saliency   = d(class score)/d(x)                      (model.input_gradients: the Draw tab's map)
smoothgrad = mean over n copies of d(class score)/d(x + noise_k),  noise_k ~ N(0, sigma^2)
with sigma = noise * (max(x) - min(x)) (the paper's noise level as a fraction of the
image's range; a blank image uses the range 1). The noise comes from numpy's default_rng(seed)
in image order, so a seed gives the same map every time. The score is the logit when the
model ends in softmax or sigmoid (model.input_gradients says so).

The display map of either is the largest |gradient| over channels, scaled to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gradients import class_indices, images
from .resize import normalise


@dataclass(frozen=True)
class SmoothGrad:
    """saliency and smooth: (N, *input_shape) raw gradients; classes: (N,) explained
    class per image; n, noise, seed: the settings; sigmas: (N,) the noise's std per image."""

    saliency: np.ndarray
    smooth: np.ndarray
    classes: np.ndarray
    n: int
    noise: float
    seed: int
    sigmas: np.ndarray

    @property
    def saliency_map(self) -> np.ndarray:
        return magnitude(self.saliency)

    @property
    def smooth_map(self) -> np.ndarray:
        return magnitude(self.smooth)


def magnitude(gradients: np.ndarray) -> np.ndarray:
    """(N, H, W, C) gradients -> (N, H, W) largest |value| over channels, each map in [0, 1]."""
    return normalise(np.abs(np.asarray(gradients, np.float64)).max(axis=-1))


def smoothgrad(model, x, class_index=None, n: int = 25, noise: float = 0.15, seed: int = 0,
               batch_size: int = 32, serial: bool | None = None) -> SmoothGrad:
    """SmoothGrad of x (one image or a batch) for class_index (None: each image's predicted class)."""
    x = images(model, x, "smoothgrad")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"smoothgrad: n (the number of noisy copies) must be a positive integer, received {n!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"smoothgrad: noise must be a fraction of the input range >= 0 (e.g. 0.15), "
                         f"received {noise!r}")
    batch_size = max(1, int(batch_size))
    classes = class_indices(model, class_index, len(x), model.predict(x, serial=serial), "smoothgrad")
    rng = np.random.default_rng(seed)
    saliency = np.empty(x.shape, np.float64)
    smooth = np.empty(x.shape, np.float64)
    sigmas = np.empty(len(x))
    for i, image in enumerate(x):
        c = int(classes[i])
        saliency[i] = model.input_gradients(image[None], c, serial=serial)[0]
        span = float(image.max() - image.min())
        sigmas[i] = noise * (span if span > 0 else 1.0)
        total = np.zeros(image.shape, np.float64)
        for start in range(0, n, batch_size):
            k = min(batch_size, n - start)
            noisy = (image[None] + sigmas[i] * rng.standard_normal((k, *image.shape))).astype(np.float32)
            total += model.input_gradients(noisy, c, serial=serial).astype(np.float64).sum(axis=0)
        smooth[i] = total / n
    return SmoothGrad(saliency=saliency, smooth=smooth, classes=classes, n=int(n), noise=float(noise),
                      seed=seed, sigmas=sigmas)


__all__ = ["SmoothGrad", "smoothgrad", "magnitude"]
