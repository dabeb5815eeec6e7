"""LayerNormalization: each example normalised over its own values."""

from __future__ import annotations

import math

import numpy as np

from ..shapes import format_shape
from .arguments import Arg, ConfigError
from .base import Inference, Layer, WeightSpec, fmt_count, per_value_macs
from .norm_layout import AxesLast
from .training_only import kernel_module, pick

_EMPTY = np.zeros(0, np.float32)  # "no gamma / beta" for the kernels


class LayerNormalization(Layer):
    """y = (x - mean)/sqrt(var + epsilon)*gamma + beta, mean and (biased) variance over
    `axis` of each example on its own, the same in training and prediction
    (keras/src/layers/normalization/layer_normalization.py). gamma and beta have the
    shape of the normalised axes. Never writes into its input x or the dy it is given."""

    class_name = "LayerNormalization"
    family = "normalization"
    ARGS = (Arg("axis", "axis_list", -1, doc="the axis (or axes) each example is normalised over"),
            Arg("epsilon", "float", 1e-3, minimum=0.0, doc="added to the variance to avoid dividing by zero"),
            Arg("center", "bool", True, doc="learn an offset beta"),
            Arg("scale", "bool", True, doc="learn a scale gamma"),
            Arg("beta_initializer", "initializer", "zeros"),
            Arg("gamma_initializer", "initializer", "ones"))
    POSITIONAL = 6
    explanation = ("Rescales the values of each example to zero mean and unit variance (over the "
                   "channels by default), then applies a learned scale and offset; no batch statistics.")
    starter_config = {}

    def __init__(self, *args, rms_scaling=False, **kwargs):
        # Keras still writes rms_scaling (deprecated, false by default); true is refused.
        super().__init__(*args, **kwargs)
        if rms_scaling is not False:
            raise ConfigError(f"{self.where}: 'rms_scaling' = {rms_scaling!r} is not supported "
                              "(deprecated in Keras; use false)")

    def axes(self, rank: int) -> tuple[int, ...]:
        """The normalised axes as positive indices, in Keras's gamma order (sorted as given)."""
        axis = self.config["axis"]
        given = sorted(axis) if isinstance(axis, tuple) else [axis]
        for a in given:
            if not -rank <= a < rank:
                raise ConfigError(f"{self.where}: axis {a} is out of bounds for the input of rank {rank}; "
                                  f"use an axis from 1 to {rank - 1} (or -1 for the last)")
            if a % rank == 0:
                raise ConfigError(f"{self.where}: axis {a} is the batch axis; normalise over the "
                                  "features of each example (e.g. axis -1)")
        positive = [a % rank for a in given]
        if len(set(positive)) != len(positive):
            raise ConfigError(f"{self.where}: axis {list(given)} names an axis twice; list each axis once")
        return tuple(positive)

    def _infer(self, input_shape, field):
        rank = len(input_shape)
        axes = self.axes(rank)
        wshape = tuple(input_shape[a] for a in axes)
        size = math.prod(wshape)
        weights = []
        if self.config["scale"]:
            weights.append(WeightSpec("gamma", wshape))
        if self.config["center"]:
            weights.append(WeightSpec("beta", wshape))
        names = " and ".join(w.name for w in weights)
        count = f"{len(weights)}*{'*'.join(str(d) for d in wshape)}"
        axis = self.config["axis"]
        over = f"axes {list(axis)}" if isinstance(axis, tuple) else f"axis {axis}"
        rest = " and position" if len(axes) < rank - 1 else ""
        lines = [f"mean and variance over {over} ({fmt_count(size)} values), for each example{rest} on its own",
                 (f"params = {count} = {fmt_count(len(weights) * size)} ({names})" if weights
                  else "params = 0 (center and scale are off)"),
                 f"output shape = {format_shape(input_shape)}"]
        if rank == 4 and any(a in (1, 2) for a in axes):
            # The window each value is computed from stays the same (field unchanged, as for
            # BatchNormalization); the shared statistics are a global, said in words. (A
            # "whole image" Field grows again at every later Flatten or pooling: not a window.)
            lines.insert(1, "receptive field unchanged; the mean and variance mix in every position of the example")
        return Inference(input_shape, tuple(weights), tuple(lines), field)

    def _macs(self, input_shape, output_shape):
        return per_value_macs(output_shape, "per value: one add for the mean, one multiply-add for the variance, "
                              "one multiply-add to normalise, scale and shift", per=3)

    def _setup(self, rng) -> None:
        rank = len(self.built_input_shape)
        axes = tuple(sorted(self.axes(rank)))
        self._layout = AxesLast(rank, axes)
        self._width = math.prod(self.built_input_shape[a] for a in axes)

    def _flat(self, name):
        w = self.weight(name)
        return _EMPTY if w is None else w.reshape(-1)

    def forward(self, x, ctx, training=False):
        k = kernel_module("layer_norm")
        xt = self._layout.to_last(x, ctx, "xt")
        x2d = xt.reshape(-1, self._width)
        rows = x2d.shape[0]
        yt = ctx.buf("yt" if not self._layout.identity else "y", xt.shape)
        mean, inv_std = ctx.buf("mean", (rows,)), ctx.buf("inv_std", (rows,))
        pick(k, "ln_forward", None if training else x.size)(
            x2d, self._flat("gamma"), self._flat("beta"), np.float64(self.config["epsilon"]),
            yt.reshape(rows, -1), mean, inv_std)
        ctx.saved.update(xt=xt, mean=mean, inv_std=inv_std)
        return self._layout.back(yt, ctx, "y")

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        k = kernel_module("layer_norm")
        xt = ctx.saved["xt"]
        dyt = self._layout.to_last(dy, ctx, "dyt")
        rows = xt.size // self._width
        t = k.num_chunks(rows)
        pgamma = ctx.buf("pgamma", (t, self._width), np.float64)
        pbeta = ctx.buf("pbeta", (t, self._width), np.float64)
        dxt = ctx.buf("dxt" if not self._layout.identity else "dx", xt.shape)
        pick(k, "ln_backward")(xt.reshape(rows, -1), dyt.reshape(rows, -1), self._flat("gamma"),
                               ctx.saved["mean"], ctx.saved["inv_std"], need_dx, dxt.reshape(rows, -1),
                               pgamma, pbeta)
        for name, partials in (("gamma", pgamma), ("beta", pbeta)):
            w = self.weight(name)
            if w is not None:
                ctx.grad(name, w.shape).reshape(-1)[...] = partials.sum(axis=0)
        return self._layout.back(dxt, ctx, "dx") if need_dx else None

    def describe(self):
        axis = self.config["axis"]
        return f"axis {list(axis) if isinstance(axis, tuple) else axis}"
