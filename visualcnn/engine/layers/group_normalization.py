"""GroupNormalization: each example normalised per group of neighbouring channels."""

from __future__ import annotations

import math

import numpy as np

from ..shapes import format_shape
from .arguments import Arg, ConfigError
from .base import Inference, Layer, WeightSpec, fmt_count, per_value_macs
from .norm_layout import AxesLast
from .training_only import kernel_module, pick

_EMPTY = np.zeros(0, np.float32)  # "no gamma / beta" for the kernels


class GroupNormalization(Layer):
    """The channels of `axis` split into `groups` groups of neighbours; each example and
    group is normalised over all its positions and channels, then scaled and shifted per
    channel (keras/src/layers/normalization/group_normalization.py). groups=-1 puts each
    channel in its own group (instance normalization). The same in training and
    prediction. Never writes into its input x or the dy it is given."""

    class_name = "GroupNormalization"
    family = "normalization"
    ARGS = (Arg("groups", "int", 32, minimum=-1,
                doc="how many groups the channels are split into (-1: one per channel)"),
            Arg("axis", "axis", -1, doc="the channel axis that is split into groups"),
            Arg("epsilon", "float", 1e-3, minimum=0.0, doc="added to the variance to avoid dividing by zero"),
            Arg("center", "bool", True, doc="learn an offset beta per channel"),
            Arg("scale", "bool", True, doc="learn a scale gamma per channel"),
            Arg("beta_initializer", "initializer", "zeros"),
            Arg("gamma_initializer", "initializer", "ones"))
    POSITIONAL = 7
    explanation = ("Normalises each example on its own, per group of neighbouring channels, then "
                   "applies a learned scale and offset per channel; works with any batch size.")
    starter_config = {"groups": 4}

    def _check_config(self) -> None:
        if self.config["groups"] == 0:
            raise ConfigError(f"{self.where}: argument 'groups' expected a positive integer "
                              "(or -1 for one group per channel), received 0")

    def _axis(self, rank: int) -> int:
        axis = self.config["axis"]
        if not -rank <= axis < rank or axis % rank == 0:
            raise ConfigError(f"{self.where}: axis {axis} is not a feature axis of an input of rank {rank}; "
                              "use -1 for the channels")
        return axis % rank

    def _groups(self, channels: int) -> int:
        groups = self.config["groups"]
        groups = channels if groups == -1 else groups
        if groups > channels:
            raise ConfigError(f"{self.where}: {groups} groups for only {channels} channels of axis "
                              f"{self.config['axis']}; use at most {channels} groups (or -1: one per channel)")
        if channels % groups:
            fits = [g for g in range(1, channels + 1) if channels % g == 0]
            raise ConfigError(
                f"{self.where}: groups = {groups} does not divide the {channels} channels of axis "
                f"{self.config['axis']} into equal groups; choose groups from {', '.join(map(str, fits))}")
        return groups

    def _infer(self, input_shape, field):
        axis = self._axis(len(input_shape))
        ch = input_shape[axis]
        groups = self._groups(ch)
        weights = []
        if self.config["scale"]:
            weights.append(WeightSpec("gamma", (ch,)))
        if self.config["center"]:
            weights.append(WeightSpec("beta", (ch,)))
        names = " and ".join(w.name for w in weights)
        per = math.prod(d for i, d in enumerate(input_shape[1:], 1) if i != axis) * (ch // groups)
        lines = [f"{ch} channels in {groups} groups of {ch // groups}: each example and group is normalised "
                 f"over {fmt_count(per)} values",
                 (f"params = {len(weights)}*{ch} = {fmt_count(len(weights) * ch)} ({names}, one per channel)"
                  if weights else "params = 0 (center and scale are off)"),
                 f"output shape = {format_shape(input_shape)}"]
        if len(input_shape) == 4:
            # The window each value is computed from stays the same (field unchanged, as for
            # BatchNormalization); the shared statistics are a global, said in words. (A
            # "whole image" Field grows again at every later Flatten or pooling: not a window.)
            lines.insert(1, "receptive field unchanged; the group's mean and variance mix in every position")
        return Inference(input_shape, tuple(weights), tuple(lines), field)

    def _macs(self, input_shape, output_shape):
        return per_value_macs(output_shape, "per value: one add for the mean, one multiply-add for the variance, "
                              "one multiply-add to normalise, scale and shift", per=3)

    def _setup(self, rng) -> None:
        rank = len(self.built_input_shape)
        axis = self._axis(rank)
        self._layout = AxesLast(rank, (axis,))
        self._channels = self.built_input_shape[axis]
        self._groups_n = self._groups(self._channels)

    def _or_empty(self, name):
        w = self.weight(name)
        return _EMPTY if w is None else w

    def forward(self, x, ctx, training=False):
        k = kernel_module("group_norm")
        xt = self._layout.to_last(x, ctx, "xt")
        n, c, g = x.shape[0], self._channels, self._groups_n
        yt = ctx.buf("yt" if not self._layout.identity else "y", xt.shape)
        mean, inv_std = ctx.buf("mean", (n, g)), ctx.buf("inv_std", (n, g))
        pick(k, "gn_forward", None if training else x.size)(
            xt.reshape(n, -1, c), g, self._or_empty("gamma"), self._or_empty("beta"),
            np.float64(self.config["epsilon"]), yt.reshape(n, -1, c), mean, inv_std)
        ctx.saved.update(xt=xt, mean=mean, inv_std=inv_std)
        return self._layout.back(yt, ctx, "y")

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        k = kernel_module("group_norm")
        xt = ctx.saved["xt"]
        dyt = self._layout.to_last(dy, ctx, "dyt")
        n, c = xt.shape[0], self._channels
        pgamma = ctx.buf("pgamma", (n, c), np.float64)
        pbeta = ctx.buf("pbeta", (n, c), np.float64)
        dxt = ctx.buf("dxt" if not self._layout.identity else "dx", xt.shape)
        pick(k, "gn_backward")(xt.reshape(n, -1, c), dyt.reshape(n, -1, c), self._groups_n, self._or_empty("gamma"),
                               ctx.saved["mean"], ctx.saved["inv_std"], need_dx, dxt.reshape(n, -1, c),
                               pgamma, pbeta)
        for name, partials in (("gamma", pgamma), ("beta", pbeta)):
            if self.weight(name) is not None:
                ctx.grad(name, (c,))[...] = partials.sum(axis=0)
        return self._layout.back(dxt, ctx, "dx") if need_dx else None

    def describe(self):
        groups = self.config["groups"]
        return "one group per channel" if groups == -1 else f"{groups} groups"
