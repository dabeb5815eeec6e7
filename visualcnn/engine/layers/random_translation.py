"""RandomTranslation: shift training images by a random fraction of their size."""

from __future__ import annotations

from .arguments import Arg
from .random_affine import FILL_ARGS, RandomAffineLayer, affine_rows, keras_factor


class RandomTranslation(RandomAffineLayer):
    """While training, each image moves down by dy = u*height and right by dx = v*width
    pixels, u and v uniform in the factor ranges (a number f means [-f, f]; output pixel
    (i, j) reads input (i - dy, j - dx): keras/src/layers/preprocessing/image_preprocessing/
    random_translation.py). Never writes into x or dy."""

    class_name = "RandomTranslation"
    ARGS = (Arg("height_factor", "factor", minimum=-1.0, maximum=1.0,
                doc="vertical shift as a fraction of the height: f or [lower, upper]"),
            Arg("width_factor", "factor", minimum=-1.0, maximum=1.0,
                doc="horizontal shift as a fraction of the width: f or [lower, upper]"),
            *FILL_ARGS)
    POSITIONAL = 2
    explanation = ("While training, shifts each image up/down and left/right by a random amount, so "
                   "the network does not depend on where the object sits; does nothing when predicting.")
    starter_config = {"height_factor": 0.1, "width_factor": 0.1}

    @property
    def training_line(self) -> str:
        (hl, hu), (wl, wu) = (keras_factor(self.config[k]) for k in ("height_factor", "width_factor"))
        return (f"each image is shifted by {hl:g} to {hu:g} of its height and {wl:g} to {wu:g} of its width; "
                + self._fill_line())

    def _params(self, n, height, width, rng):
        hl, hu = keras_factor(self.config["height_factor"])
        wl, wu = keras_factor(self.config["width_factor"])
        # Keras draws the heights first, then the widths
        dy = rng.uniform(hl, hu, n) * height
        dx = rng.uniform(wl, wu, n) * width
        return affine_rows(n, 1.0, 0.0, -dx, 0.0, 1.0, -dy)

    def describe(self):
        return f"shift {_fmt(self.config['height_factor'])} x {_fmt(self.config['width_factor'])}"


def _fmt(factor) -> str:
    return f"±{factor:g}" if not isinstance(factor, tuple) else f"[{factor[0]:g}, {factor[1]:g}]"
