"""RandomContrast: stretch or squeeze each training image's contrast at random."""

from __future__ import annotations

import numpy as np

from .arguments import Arg, ConfigError
from .training_only import TrainingOnlyLayer, kernel_module, pick


class RandomContrast(TrainingOnlyLayer):
    """While training, each image's channels become clip((x - mean)*f + mean, low, high),
    mean per channel over the image, f uniform in [1 - lower, 1 + upper], [low, high] =
    value_range (keras/src/layers/preprocessing/image_preprocessing/random_contrast.py).

    `factor`, as Keras stores it: a number f in [0, 1] means (lower, upper) = (0, f)
    (Keras's base-layer rule max(-f, 0), so contrast only grows), a pair is sorted. The
    backward is the exact gradient (the channel mean depends on every pixel; clipped
    values pass none). Never writes into x or dy."""

    class_name = "RandomContrast"
    family = "augmentation"
    image_input = True
    ARGS = (Arg("factor", "factor", minimum=0.0, maximum=1.0,
                doc="how much the contrast may change: f or [lower, upper], factor in [1 - lower, 1 + upper]"),
            Arg("value_range", "factor", (0, 255), doc="[low, high] the output is clipped to"),
            Arg("seed", "seed", None, doc="random seed for the contrast factors"))
    POSITIONAL = 2
    explanation = ("While training, changes the contrast of each image by a random amount, so the "
                   "network copes with faint and strong strokes; does nothing when predicting.")
    starter_config = {"factor": 0.2}

    def _check_config(self) -> None:
        factor = self.config["factor"]
        # Keras stores the processed pair (get_config writes [0, 0.2] for 0.2)
        self.config["factor"] = tuple(sorted(factor)) if isinstance(factor, tuple) else (0.0, abs(factor))
        value_range = self.config["value_range"]
        if not isinstance(value_range, tuple):
            raise ConfigError(f"{self.where}: argument 'value_range' expected a pair [low, high] such as "
                              f"[0, 255], received {value_range!r}")

    @property
    def _bounds(self) -> tuple[float, float]:
        lower, upper = self.config["factor"]
        return 1.0 - lower, 1.0 + upper

    @property
    def training_line(self) -> str:
        low, high = self._bounds
        lo, hi = self.config["value_range"]
        return (f"each image's contrast is multiplied by a random factor from {low:g} to {high:g} "
                f"(values kept within [{lo:g}, {hi:g}])")

    def forward(self, x, ctx, training=False):
        if not training:
            ctx.saved["factor"] = None
            return x
        n, c = x.shape[0], x.shape[-1]
        low, high = self._bounds
        factor = self.random(ctx).uniform(low, high, n).astype(np.float32)
        lo, hi = (np.float32(v) for v in self.config["value_range"])
        y = ctx.buf("y", x.shape)
        mean = ctx.buf("mean", (n, c))
        pick(kernel_module("augmentation"), "contrast_forward")(x.reshape(n, -1, c), factor, lo, hi,
                                                                y.reshape(n, -1, c), mean)
        ctx.saved.update(x=x, factor=factor, mean=mean, range=(lo, hi))
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        factor = ctx.saved.get("factor")
        if factor is None:
            return dy
        x = ctx.saved["x"]
        n, c = x.shape[0], x.shape[-1]
        dx = ctx.buf("dx", dy.shape)
        pick(kernel_module("augmentation"), "contrast_backward")(
            x.reshape(n, -1, c), dy.reshape(n, -1, c), factor, *ctx.saved["range"], ctx.saved["mean"],
            dx.reshape(n, -1, c))
        return dx

    def describe(self):
        low, high = self._bounds
        return f"contrast x{low:g} to x{high:g}"
