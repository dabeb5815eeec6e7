"""The shared part of RandomTranslation, RandomRotation and RandomZoom: each training
image resampled through its own random affine map (the kernels in
kernels/augmentation.py), the gradient scattered back through the same map."""

from __future__ import annotations

import numpy as np

from .arguments import Arg
from .training_only import TrainingOnlyLayer, kernel_module, pick

FILL_ARGS = (
    Arg("fill_mode", "choice", "reflect", choices=("reflect", "wrap", "constant", "nearest"),
        doc="what fills the pixels that come from outside the image"),
    Arg("interpolation", "choice", "bilinear", choices=("nearest", "bilinear"),
        doc="how a pixel between input pixels is read"),
    Arg("seed", "seed", None, doc="random seed for the transforms"),
    Arg("fill_value", "float", 0.0, doc="the value outside the image when fill_mode is 'constant'"),
)

def keras_factor(value) -> tuple[float, float]:
    """(lower, upper) from a Keras factor: a number f means (-|f|, |f|), a pair is sorted."""
    if isinstance(value, tuple):
        return tuple(sorted(value))
    return (-abs(value), abs(value))


class RandomAffineLayer(TrainingOnlyLayer):
    """Subclasses implement `_params(n, height, width, rng)`: (n, 6) float32 rows a0, a1, a2,
    b0, b1, b2 (output pixel (i, j) reads input column a0*j + a1*i + a2, row b0*j + b1*i +
    b2), drawn from the generator rng."""

    family = "augmentation"
    image_input = True

    def _params(self, n: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _fill_line(self) -> str:
        c = self.config
        fill = f"{c['fill_value']:g}" if c["fill_mode"] == "constant" else c["fill_mode"]
        return f"{c['interpolation']} interpolation, outside pixels: {fill}"

    def forward(self, x, ctx, training=False):
        if not training:
            ctx.saved["params"] = None
            return x
        params = self._params(x.shape[0], x.shape[1], x.shape[2], self.random(ctx))
        k = kernel_module("augmentation")
        order = 1 if self.config["interpolation"] == "bilinear" else 0
        mode = k.FILL_MODES.index(self.config["fill_mode"])  # the kernels' fill-mode code
        y = ctx.buf("y", x.shape)
        pick(k, "affine_sample")(x, params, order, mode, np.float32(self.config["fill_value"]), y)
        ctx.saved.update(params=params, order=order, mode=mode)
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        params = ctx.saved.get("params")
        if params is None:
            return dy
        dx = ctx.buf("dx", dy.shape)
        pick(kernel_module("augmentation"), "affine_adjoint")(dy, params, ctx.saved["order"],
                                                              ctx.saved["mode"], dx)
        return dx


def affine_rows(n: int, a0, a1, a2, b0, b1, b2) -> np.ndarray:
    """The (n, 6) float32 parameter rows from per-image (n,) arrays or scalars."""
    rows = np.empty((n, 6), np.float32)
    for i, v in enumerate((a0, a1, a2, b0, b1, b2)):
        rows[:, i] = v
    return rows
