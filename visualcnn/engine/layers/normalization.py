"""BatchNormalization."""

from __future__ import annotations

import numpy as np

from ..shapes import format_shape
from .arguments import Arg, ConfigError
from .base import Inference, Layer, WeightSpec, fmt_count, per_value_macs


class BatchNormalization(Layer):
    class_name = "BatchNormalization"
    family = "normalization"
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
    absorbs_relu = True  # the model may fold a following Activation('relu') into this layer

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

    def _macs(self, input_shape, output_shape):
        # predicting: the moving statistics, gamma and beta fold into one scale and shift
        return per_value_macs(output_shape, "one multiply-add per value: x*scale + shift")

    def _setup(self, rng) -> None:
        rank = len(self.built_input_shape)
        axis = self.config["axis"] % rank
        self._reduce = tuple(a for a in range(rank) if a != axis)
        self._bshape = tuple(self.built_input_shape[axis] if a == axis else 1 for a in range(rank))
        # Channels last (the usual axis=-1): the numba kernels over the (positions, channels)
        # view. Any other axis takes the numpy path.
        self._channels_last = axis == rank - 1

    def _params(self):
        ch = self._bshape
        gamma = self.weight("gamma")
        beta = self.weight("beta")
        return (gamma.reshape(ch) if gamma is not None else None,
                beta.reshape(ch) if beta is not None else None)

    def folds_into(self, layer) -> bool:
        """True when inference may fold this layer into ``layer`` right before it (see
        ``fold_into``): a Conv2D without activation, channels last."""
        return (self.built and self._channels_last and getattr(layer, "class_name", None) == "Conv2D"
                and getattr(layer, "built", False) and layer.config["activation"] == "linear")

    def fold_into(self, kernel, bias, ctx):
        """Inference: (kernel', bias') with conv(x, kernel') + bias' == this layer applied to
        conv(x, kernel) + bias, from the moving statistics (y = z*scale + shift per channel,
        so kernel' = kernel*scale along the output channels, bias' = bias*scale + shift).
        Computed on every call into ctx's buffers, so there is nothing to invalidate when
        the weights change. kernel (..., CO); bias (CO,) or None."""
        ch = kernel.shape[-1]
        gamma, beta = self._flat_params()
        folded = ctx.buf("fold_kernel", kernel.shape)
        folded_bias = ctx.buf("fold_bias", (ch,))
        _kernels().bn_fold_moving(gamma, beta, np.float32(self.config["epsilon"]), self.weight("moving_mean"),
                                  self.weight("moving_variance"), kernel.reshape(-1, ch),
                                  _EMPTY if bias is None else bias, folded.reshape(-1, ch), folded_bias)
        return folded, folded_bias

    def forward(self, x, ctx, training=False):
        if getattr(ctx, "folded", False) and not training:
            return x  # the conv before applied this layer (Sequential._forward_streaming)
        # Keras: a frozen BatchNormalization runs in inference mode even while training.
        training = training and self.trainable
        relu = getattr(ctx, "fuse_relu", False)
        if not self._channels_last:
            y = self._forward_numpy(x, ctx, training)
            if relu:
                np.maximum(y, np.float32(0.0), out=y)
            ctx.saved.update(y=y, relu=relu)
            return y
        k = _kernels()
        c = self.config
        ch = x.shape[-1]
        x2d = x.reshape(-1, ch)
        rows = x2d.shape[0]
        stats = ctx.buf("stats", (4, ch))  # mean, inv_std, scale, shift: one lookup (single image)
        gamma, beta = self._flat_params()
        eps = np.float32(c["epsilon"])
        if training:
            t = k.num_stat_chunks(rows)
            psum = ctx.buf("psum", (t, ch), np.float64)
            psq = ctx.buf("psq", (t, ch), np.float64)
            k.bn_stat_partials(x2d, psum, psq)
            k.bn_finish_batch(psum, psq, rows, gamma, beta, eps, np.float32(c["momentum"]), ctx.update_stats,
                              self.weight("moving_mean"), self.weight("moving_variance"), *stats)
        else:
            k.bn_finish_moving(gamma, beta, eps, self.weight("moving_mean"), self.weight("moving_variance"),
                               *stats)
        y = ctx.buf("y", x.shape)
        apply = k.bn_apply_serial if (not training and _serial(k, x2d.size)) else k.bn_apply
        apply(x2d, stats[2], stats[3], y.reshape(-1, ch), relu)
        ctx.saved.update(x=x, mean=stats[0], inv_std=stats[1], scale=stats[2], shift=stats[3],
                         batch_stats=training, relu=relu)
        return y

    def _flat_params(self):
        gamma = self.weight("gamma")
        beta = self.weight("beta")
        return (_EMPTY if gamma is None else gamma), (_EMPTY if beta is None else beta)

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if ctx.saved.get("x") is None:
            return self._backward_numpy(dy, ctx, need_dx)
        k = _kernels()
        x = ctx.saved["x"]
        ch = x.shape[-1]
        x2d, dy2d = x.reshape(-1, ch), dy.reshape(-1, ch)
        scale, shift = ctx.saved["scale"], ctx.saved["shift"]
        rows = x2d.shape[0]
        t = k.num_stat_chunks(rows)
        pdy = ctx.buf("psum", (t, ch), np.float64)
        pdyx = ctx.buf("psq", (t, ch), np.float64)
        relu = ctx.saved["relu"]
        serial = _serial(k, x2d.size)  # input_gradients() from the GUI thread: serial
        partials = k.bn_grad_partials_serial if serial else k.bn_grad_partials
        partials(x2d, dy2d, scale, shift, ctx.saved["mean"], relu, pdy, pdyx)
        gamma, _ = self._flat_params()
        grad_gamma = (ctx.grad("gamma", (ch,)) if self.weight("gamma") is not None else _EMPTY)
        grad_beta = (ctx.grad("beta", (ch,)) if self.weight("beta") is not None else _EMPTY)
        coefs = ctx.buf("coefs", (3, ch))  # of dy, of x, constant
        k.bn_finish_grads(pdy, pdyx, rows, gamma, ctx.saved["mean"], ctx.saved["inv_std"],
                          ctx.saved["batch_stats"], grad_gamma, grad_beta, *coefs)
        if not need_dx:
            return None
        dx = ctx.buf("dx", x.shape)
        back = k.bn_backward_input_serial if serial else k.bn_backward_input
        back(x2d, dy2d, scale, shift, *coefs, relu, dx.reshape(-1, ch))
        return dx

    # --- the general-axis path (axis other than the last): numpy, also the reference --------

    def _forward_numpy(self, x, ctx, training):
        c = self.config
        gamma, beta = self._params()
        mean_m = self.weight("moving_mean").reshape(self._bshape)
        var_m = self.weight("moving_variance").reshape(self._bshape)
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
        ctx.saved.update(x=None, xhat=xhat, inv_std=inv_std, batch_stats=training)
        return y

    def _backward_numpy(self, dy, ctx, need_dx):
        if ctx.saved["relu"]:
            dy = dy * (ctx.saved["y"] > 0)
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


_EMPTY = np.zeros(0, np.float32)  # "no gamma / beta" for the kernels
_PARALLEL_MIN = 1 << 16  # values; below this one core finishes before the workers wake


def _serial(k, size: int) -> bool:
    """Serial kernels for inference from a second thread, and for maps too small to be
    worth waking the workers (a single drawn digit: 28*28*32 values)."""
    return k.parallel.use_serial() or size < _PARALLEL_MIN


_loaded: dict = {}


def _kernels():
    """The BatchNormalization kernels, imported on first use (numba loads lazily); cached
    because a single image spends microseconds per layer."""
    module = _loaded.get("k")
    if module is None:
        from ..kernels import normalization as module

        _loaded["k"] = module
    return module
