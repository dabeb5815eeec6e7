"""Rescaling: y = x * scale + offset, e.g. pixel values 0..255 -> 0..1 inside the model."""

from __future__ import annotations

import numpy as np

from .arguments import Arg
from .elementwise_base import ElementwiseLayer, activation_kernels, flat, number


class Rescaling(ElementwiseLayer):
    """keras.layers.Rescaling with a number for scale and offset (Keras also takes one per
    channel; such a file is refused by the argument check, naming 'scale').
    Never writes into its input x or the dy it is given."""

    class_name = "Rescaling"
    family = "reshaping"
    ARGS = (Arg("scale", "float", doc="every value is multiplied by it (1/255 maps 0..255 to 0..1)"),
            Arg("offset", "float", 0.0, doc="added after scaling (-1 with scale 1/127.5 maps to -1..1)"))
    POSITIONAL = 2
    explanation = ("Multiplies every value by a number and adds another: puts pixel values "
                   "into the range the network expects, such as 0..1.")
    starter_config = {"scale": 1 / 255}

    def rule(self) -> str:
        c = self.config
        offset = f" + {number(c['offset'])}" if c["offset"] > 0 else (f" - {number(-c['offset'])}" if c["offset"] else "")
        return f"y = x*{number(c['scale'])}{offset}"

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
        return self.rule()[4:]
