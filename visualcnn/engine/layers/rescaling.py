"""Rescaling: y = x * scale + offset, e.g. pixel values 0..255 -> 0..1 inside the model."""

from __future__ import annotations

import numpy as np

from .arguments import Arg
from .elementwise_base import FLOAT32_MAX, ElementwiseLayer, activation_kernels, flat, number


class Rescaling(ElementwiseLayer):
    """keras.layers.Rescaling with a number for scale and offset (Keras also takes one per
    channel; such a file is refused by the argument check, naming 'scale').
    Never writes into its input x or the dy it is given."""

    class_name = "Rescaling"
    family = "reshaping"
    ARGS = (Arg("scale", "float", minimum=-FLOAT32_MAX, maximum=FLOAT32_MAX,
                doc="every value is multiplied by it (1/255 maps 0..255 to 0..1)"),
            Arg("offset", "float", 0.0, minimum=-FLOAT32_MAX, maximum=FLOAT32_MAX,
                doc="added after scaling (-1 with scale 1/127.5 maps to -1..1)"))
    POSITIONAL = 2
    explanation = ("Multiplies every value by a number and adds another: puts pixel values "
                   "into the range the network expects, such as 0..1.")
    starter_config = {"scale": 1 / 255}

    def rule(self) -> str:
        return f"y = {self._formula()}"

    def _formula(self) -> str:
        """'x/255', 'x/127.5 - 1', 'x*0.3 + 2': a scale of 1/n reads as a division by n."""
        c = self.config
        scale, offset = c["scale"], c["offset"]
        divisor = 1 / scale if scale else 0
        if divisor and abs(divisor - round(divisor, 1)) < 1e-9 * abs(divisor):
            text = f"x/{number(round(divisor, 1))}"
        else:
            text = f"x*{number(scale)}"
        if offset:
            text += f" + {number(offset)}" if offset > 0 else f" - {number(-offset)}"
        return text

    def _setup(self, rng) -> None:
        # float32 scalars: Keras casts scale and offset to the compute dtype before x*scale + offset
        self._scale, self._offset = np.float32(self.config["scale"]), np.float32(self.config["offset"])

    def forward(self, x, ctx, training=False):
        y = ctx.buf("y", x.shape)
        activation_kernels().scale_offset(flat(x), flat(y), self._scale, self._offset)
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        dx = ctx.buf("dx", dy.shape)
        activation_kernels().scale_offset(flat(dy), flat(dx), self._scale, np.float32(0.0))
        return dx

    def describe(self):
        return self._formula()
