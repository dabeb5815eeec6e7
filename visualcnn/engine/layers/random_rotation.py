"""RandomRotation: rotate training images by a random angle."""

from __future__ import annotations

import numpy as np

from .arguments import Arg
from .random_affine import FILL_ARGS, RandomAffineLayer, affine_rows, keras_factor


class RandomRotation(RandomAffineLayer):
    """While training, each image turns about its centre by an angle uniform in
    [lower, upper] * 360 degrees: the factor is a fraction of a full turn (2*pi), a number
    f means [-f, f] (keras/src/layers/preprocessing/image_preprocessing/random_rotation.py;
    Keras stores the pair, so get_config writes [-f, f] as Keras's does). Never writes
    into x or dy."""

    class_name = "RandomRotation"
    ARGS = (Arg("factor", "factor", minimum=-1.0, maximum=1.0,
                doc="the angle as a fraction of a full turn: f or [lower, upper] (0.1 = up to 36 degrees)"),
            *FILL_ARGS)
    POSITIONAL = 1
    explanation = ("While training, turns each image by a small random angle, so the network copes "
                   "with tilted objects; does nothing when predicting.")
    starter_config = {"factor": 0.1}

    def _check_config(self) -> None:
        self.config["factor"] = keras_factor(self.config["factor"])

    @property
    def training_line(self) -> str:
        lower, upper = self.config["factor"]
        return f"each image is rotated by {lower * 360:g} to {upper * 360:g} degrees; " + self._fill_line()

    def _params(self, n, height, width, rng):
        lower, upper = self.config["factor"]
        angle = np.deg2rad(rng.uniform(lower * 360.0, upper * 360.0, n)).astype(np.float32)
        # Keras's _compute_affine_matrix with scale 1, no shear or shift, centre ((w-1)/2, (h-1)/2)
        cx, cy = np.float32(0.5 * (width - 1)), np.float32(0.5 * (height - 1))
        cos, sin = np.cos(angle), np.sin(angle)
        a0, a1, b0, b1 = cos, -sin, sin, cos
        return affine_rows(n, a0, a1, cx - cx * a0 - cy * a1, b0, b1, cy - cx * b0 - cy * b1)

    def describe(self):
        lower, upper = self.config["factor"]
        return f"{lower * 360:g} to {upper * 360:g} degrees"
