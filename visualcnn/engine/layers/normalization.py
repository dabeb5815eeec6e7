"""BatchNormalization."""

from __future__ import annotations

import numpy as np

from ..shapes import format_shape
from .arguments import Arg, ConfigError
from .base import Inference, Layer, WeightSpec, fmt_count


class BatchNormalization(Layer):
    class_name = "BatchNormalization"
    family = "regularisation"
    ARGS = (Arg("axis", "axis", -1, doc="the channel axis that is normalised"),
            Arg("momentum", "float", 0.99, minimum=0.0, maximum=1.0, doc="how slowly the moving statistics follow the batches"),
            Arg("epsilon", "float", 1e-3, minimum=0.0, doc="added to the variance to avoid dividing by zero"),
            Arg("center", "bool", True, doc="learn an offset beta"),
            Arg("scale", "bool", True, doc="learn a scale gamma"),
            Arg("beta_initializer", "initializer", "zeros"),
            Arg("gamma_initializer", "initializer", "ones"),
            Arg("moving_mean_initializer", "initializer", "zeros"),
            Arg("moving_variance_initializer", "initializer", "ones"))
    explanation = ("Rescales each channel to zero mean and unit variance over the batch, then "
                   "applies a learned scale and offset: training becomes faster and steadier.")

    def _infer(self, input_shape, field):
        axis = self.config["axis"]
        rank = len(input_shape)
        if not -rank <= axis < rank or axis % rank == 0:
            raise ConfigError(f"{self.where}: axis {axis} is not a feature axis of the input {format_shape(input_shape)}")
        ch = input_shape[axis]
        weights = []
        if self.config["scale"]:
            weights.append(WeightSpec("gamma", (ch,)))
        if self.config["center"]:
            weights.append(WeightSpec("beta", (ch,)))
        weights += [WeightSpec("moving_mean", (ch,), False), WeightSpec("moving_variance", (ch,), False)]
        n = len(weights)
        trainable = ch * (n - 2)
        lines = (f"params = {n}*{ch} = {fmt_count(n * ch)} "
                 f"(trainable {fmt_count(trainable)}: gamma and beta; non-trainable {fmt_count(2 * ch)}: "
                 "moving mean and variance)",
                 f"output shape = {format_shape(input_shape)}")
        return Inference(input_shape, tuple(weights), lines, field)

    def _setup(self, rng) -> None:
        rank = len(self.built_input_shape)
        axis = self.config["axis"] % rank
        self._reduce = tuple(a for a in range(rank) if a != axis)
        self._bshape = tuple(self.built_input_shape[axis] if a == axis else 1 for a in range(rank))

    def _params(self):
        ch = self._bshape
        gamma = self.weight("gamma")
        beta = self.weight("beta")
        return (gamma.reshape(ch) if gamma is not None else None,
                beta.reshape(ch) if beta is not None else None)

    def forward(self, x, ctx, training=False):
        c = self.config
        gamma, beta = self._params()
        mean_m = self.weight("moving_mean").reshape(self._bshape)
        var_m = self.weight("moving_variance").reshape(self._bshape)
        # Keras: a frozen BatchNormalization runs in inference mode even while training.
        training = training and self.trainable
        if training:
            mean = x.mean(axis=self._reduce, keepdims=True, dtype=np.float32)
            var = x.var(axis=self._reduce, keepdims=True, dtype=np.float32)  # biased, as Keras
            if ctx.update_stats:
                m = np.float32(c["momentum"])
                mean_m *= m
                mean_m += (np.float32(1.0) - m) * mean
                var_m *= m
                var_m += (np.float32(1.0) - m) * var
        else:
            mean, var = mean_m, var_m
        inv_std = np.float32(1.0) / np.sqrt(var + np.float32(c["epsilon"]))
        xhat = ctx.buf("xhat", x.shape)
        np.subtract(x, mean, out=xhat)
        xhat *= inv_std
        y = ctx.buf("y", x.shape)
        np.multiply(xhat, gamma, out=y) if gamma is not None else np.copyto(y, xhat)
        if beta is not None:
            y += beta
        ctx.saved.update(xhat=xhat, inv_std=inv_std, batch_stats=training)
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        gamma, _ = self._params()
        xhat, inv_std = ctx.saved["xhat"], ctx.saved["inv_std"]
        if self.weight("gamma") is not None:
            g = ctx.grad("gamma", self.weight("gamma").shape)
            g[...] = (dy * xhat).sum(axis=self._reduce, dtype=np.float32).reshape(g.shape)
        if self.weight("beta") is not None:
            b = ctx.grad("beta", self.weight("beta").shape)
            b[...] = dy.sum(axis=self._reduce, dtype=np.float32).reshape(b.shape)
        if not need_dx:
            return None
        dxhat = dy * gamma if gamma is not None else dy
        dx = ctx.buf("dx", dy.shape)
        if ctx.saved["batch_stats"]:
            mean_dxhat = dxhat.mean(axis=self._reduce, keepdims=True, dtype=np.float32)
            mean_dxhat_xhat = (dxhat * xhat).mean(axis=self._reduce, keepdims=True, dtype=np.float32)
            np.multiply(xhat, mean_dxhat_xhat, out=dx)
            np.subtract(dxhat, dx, out=dx)
            dx -= mean_dxhat
            dx *= inv_std
        else:
            np.multiply(dxhat, inv_std, out=dx)
        return dx

    def describe(self):
        return f"momentum {self.config['momentum']:g}"
