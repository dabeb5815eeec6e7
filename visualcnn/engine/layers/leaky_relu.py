"""LeakyReLU: relu with a small slope for negative values (Keras 3 default 0.3)."""

from __future__ import annotations

from .arguments import Arg, ConfigError
from .elementwise_base import FLOAT32_MAX, number
from .relu import ReluKernelLayer


class LeakyReLU(ReluKernelLayer):
    """keras.layers.LeakyReLU. Never writes into its input x or the dy it is given."""

    class_name = "LeakyReLU"
    ARGS = (Arg("negative_slope", "float", 0.3, minimum=0.0, maximum=FLOAT32_MAX, doc="slope for negative values"),)
    POSITIONAL = 1
    explanation = ("Like relu, but negative values are multiplied by a small slope instead of "
                   "set to zero, so a unit never goes completely silent.")

    def __init__(self, *args, **kwargs):
        # Keras 2 files (and Keras 3, with a deprecation warning) call the slope `alpha`.
        if "alpha" in kwargs:
            if args or "negative_slope" in kwargs:
                name = kwargs.get("name")
                where = f"{self.class_name} '{name}'" if isinstance(name, str) and name else self.class_name
                raise ConfigError(f"{where}: give the slope once, as 'negative_slope' (Keras 2 called it 'alpha')")
            kwargs["negative_slope"] = kwargs.pop("alpha")
        super().__init__(*args, **kwargs)

    def rule(self) -> str:
        return f"y = x if x > 0 else {number(self.config['negative_slope'])}*x"

    def relu_params(self) -> tuple:
        return None, self.config["negative_slope"], 0.0  # no cap, threshold 0

    def describe(self):
        return f"slope {number(self.config['negative_slope'])}"
