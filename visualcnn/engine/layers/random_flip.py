"""RandomFlip: mirror training images at random."""

from __future__ import annotations

import numpy as np

from .arguments import Arg
from .training_only import TrainingOnlyLayer, kernel_module, pick

_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


class RandomFlip(TrainingOnlyLayer):
    """While training, each image is flipped with probability 1/2 (Keras draws one uniform
    per image and flips where it is <= 0.5; in "horizontal_and_vertical" mode that one
    draw flips both axes, keras/src/layers/preprocessing/image_preprocessing/random_flip.py).
    The backward flips dy back (a flip is its own adjoint). Never writes into x or dy."""

    class_name = "RandomFlip"
    family = "augmentation"
    image_input = True
    ARGS = (Arg("mode", "choice", "horizontal_and_vertical", choices=_MODES,
                doc="which way images are mirrored"),
            Arg("seed", "seed", None, doc="random seed for the flips"))
    POSITIONAL = 1
    explanation = ("While training, mirrors each image at random (left-right and/or upside down) "
                   "so the network sees more varied examples; does nothing when predicting.")
    starter_config = {"mode": "horizontal"}

    @property
    def training_line(self) -> str:
        what = {"horizontal": "left-right", "vertical": "upside down",
                "horizontal_and_vertical": "both left-right and upside down"}[self.config["mode"]]
        return f"each image is mirrored {what} with probability 1/2"

    def forward(self, x, ctx, training=False):
        if not training:
            ctx.saved["flips"] = None
            return x
        flips = (self.random(ctx).random(x.shape[0]) <= 0.5).astype(np.uint8)
        mode = self.config["mode"]
        rows = flips if mode != "horizontal" else np.zeros_like(flips)
        cols = flips if mode != "vertical" else np.zeros_like(flips)
        y = ctx.buf("y", x.shape)
        pick(kernel_module("augmentation"), "flip_images")(x, rows, cols, y)
        ctx.saved["flips"] = (rows, cols)
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        flips = ctx.saved.get("flips")
        if flips is None:
            return dy
        dx = ctx.buf("dx", dy.shape)
        pick(kernel_module("augmentation"), "flip_images")(dy, *flips, dx)
        return dx

    def describe(self):
        return self.config["mode"].replace("_", " ")
