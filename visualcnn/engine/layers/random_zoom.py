"""RandomZoom: zoom training images in or out at random."""

from __future__ import annotations

from .arguments import Arg, ConfigError
from .random_affine import FILL_ARGS, RandomAffineLayer, affine_rows, keras_factor


class RandomZoom(RandomAffineLayer):
    """While training, each image is scaled about its centre: output pixel (i, j) reads
    the input at centre + z*(offset), z = 1 + u, u uniform in the factor range (a number
    f means [-f, f]; positive zooms out, negative in). width_factor null keeps the
    aspect ratio (the width uses the height's draw): keras/src/layers/preprocessing/
    image_preprocessing/random_zoom.py. Never writes into x or dy."""

    class_name = "RandomZoom"
    ARGS = (Arg("height_factor", "factor", minimum=-1.0, maximum=1.0,
                doc="vertical zoom: f or [lower, upper], as a fraction (positive zooms out)"),
            Arg("width_factor", "factor", None, minimum=-1.0, maximum=1.0,
                doc="horizontal zoom (empty: the same as the height, keeping the aspect ratio)"),
            *FILL_ARGS)
    POSITIONAL = 2
    explanation = ("While training, zooms each image in or out by a random amount, so the network "
                   "copes with bigger and smaller objects; does nothing when predicting.")
    starter_config = {"height_factor": 0.1}

    def _check_config(self) -> None:
        for name in ("height_factor", "width_factor"):
            value = self.config[name]
            low = min(value) if isinstance(value, tuple) else -abs(value) if value is not None else 0.0
            if low <= -1.0:
                raise ConfigError(f"{self.where}: argument '{name}' expected values in (-1, 1] (a zoom of "
                                  f"-1 or less leaves nothing of the image), received {value!r}")

    @property
    def training_line(self) -> str:
        hl, hu = keras_factor(self.config["height_factor"])
        width = self.config["width_factor"]
        text = f"each image is zoomed by a factor from {1 + hl:g} to {1 + hu:g} (above 1 zooms out)"
        if width is not None:
            wl, wu = keras_factor(width)
            text = (f"each image's height is zoomed by {1 + hl:g} to {1 + hu:g} and its width by "
                    f"{1 + wl:g} to {1 + wu:g} (above 1 zooms out)")
        return text + "; " + self._fill_line()

    def _params(self, n, height, width, rng):
        hl, hu = keras_factor(self.config["height_factor"])
        zy = rng.uniform(1.0 + hl, 1.0 + hu, n)
        if self.config["width_factor"] is None:
            zx = zy
        else:
            wl, wu = keras_factor(self.config["width_factor"])
            zx = rng.uniform(1.0 + wl, 1.0 + wu, n)
        zx, zy = zx.astype("float32"), zy.astype("float32")
        return affine_rows(n, zx, 0.0, (width - 1.0) / 2.0 * (1.0 - zx),
                           0.0, zy, (height - 1.0) / 2.0 * (1.0 - zy))

    def describe(self):
        f = self.config["height_factor"]
        return f"zoom ±{f:g}" if not isinstance(f, tuple) else f"zoom [{f[0]:g}, {f[1]:g}]"
