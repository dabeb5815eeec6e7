"""SpatialDropout2D: Dropout of whole feature maps."""

from __future__ import annotations

import numpy as np

from .arguments import Arg
from .training_only import TrainingOnlyLayer, kernel_module, pick


class SpatialDropout2D(TrainingOnlyLayer):
    """While training, each example loses whole channels (probability `rate`), the kept
    ones scaled by 1/(1 - rate) (keras/src/layers/regularization/spatial_dropout.py: a
    dropout with noise shape (batch, 1, 1, channels)). Neither forward nor backward writes
    into its input x or the dy it is given."""

    class_name = "SpatialDropout2D"
    family = "regularisation"
    image_input = True
    ARGS = (Arg("rate", "float", minimum=0.0, maximum=1.0, maximum_exclusive=True,
                doc="fraction of feature maps set to zero while training"),
            Arg("seed", "seed", None, doc="random seed for the dropped feature maps"))
    POSITIONAL = 1
    explanation = ("While training, switches off whole feature maps at random, so the network "
                   "cannot rely on any one filter; does nothing when predicting.")
    starter_config = {"rate": 0.2}

    @property
    def training_line(self) -> str:
        return (f"each example keeps each feature map with probability 1 - {self.config['rate']:g}, "
                "the kept ones scaled by 1/(1 - rate)")

    def get_config(self, compact: bool = False) -> dict:
        # Keras's SpatialDropout2D takes no `trainable` argument (its from_config would
        # fail on it), and it has no weights to freeze anyway.
        config = super().get_config(compact)
        config.pop("trainable", None)
        return config

    def forward(self, x, ctx, training=False):
        rate = self.config["rate"]
        if not training or rate == 0.0:
            ctx.saved["scale"] = None
            return x
        n, c = x.shape[0], x.shape[-1]
        # keep where uniform >= rate, as Dropout (tf.nn.dropout); one draw per (example, channel)
        keep = self.random(ctx).random((n, c)) >= rate
        scale = keep.astype(np.float32) * np.float32(1.0 / (1.0 - rate))
        y = ctx.buf("y", x.shape)
        k = kernel_module("noise")
        pick(k, "scale_channels")(x.reshape(n, -1, c), scale, y.reshape(n, -1, c))
        ctx.saved["scale"] = scale
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        scale = ctx.saved.get("scale")
        if scale is None:
            return dy
        n, c = dy.shape[0], dy.shape[-1]
        dx = ctx.buf("dx", dy.shape)
        k = kernel_module("noise")
        pick(k, "scale_channels")(dy.reshape(n, -1, c), scale, dx.reshape(n, -1, c))
        return dx

    def describe(self):
        return f"rate {self.config['rate']:g}"
