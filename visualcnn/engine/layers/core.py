"""Core layers: InputLayer, Flatten, Dense, Dropout, Activation."""

from __future__ import annotations

import math

from ..shapes import format_shape
from .arguments import Arg
import numpy as np

from .base import Inference, Layer, WeightSpec, fmt_count, inference_serial, per_value_macs, weight_line


class InputLayer(Layer):
    """The shape of one example, without the batch axis: (28, 28, 1) for MNIST."""

    class_name = "InputLayer"
    family = "input"
    in_palette = False  # the model input is the pipeline's first card, not a block to add
    ARGS = (Arg("shape", "shape", doc="height, width, channels of one image"),)
    POSITIONAL = 1
    explanation = "The image that enters the network: height x width x channels (1 for grey)."

    @property
    def batch_shape(self) -> tuple:
        return (None, *self.config["shape"])

    def _infer(self, input_shape, field):
        return Inference(self.batch_shape, (), (f"output shape = {format_shape(self.batch_shape)}",), field)

    def describe(self):
        return "x".join(str(d) for d in self.config["shape"])


def Input(shape, name=None):  # noqa: N802 - Keras spells it this way
    """keras.Input: a symbolic tensor (engine/graph.py) to call layers on, or the first
    entry of a Sequential, giving the input shape."""
    from ..graph import input_tensor

    return input_tensor(shape, name)


class Flatten(Layer):
    class_name = "Flatten"
    explanation = ("Unrolls the feature maps into one long vector (row by row, channels last) "
                   "so that Dense layers can use them.")

    def _infer(self, input_shape, field):
        rest = input_shape[1:]
        units = math.prod(rest)
        shape = (None, units)
        lines = (f"units = {'*'.join(str(d) for d in rest)} = {fmt_count(units)}" if len(rest) > 1
                 else f"units unchanged = {units}",
                 "params = 0 (only rearranges values)", f"output shape = {format_shape(shape)}")
        new_field = field.whole(rest[:2]) if len(rest) == 3 else field
        return Inference(shape, (), lines, new_field)

    def buffer_values(self, input_shape, output_shape, training):
        return 0  # forward and backward are reshaped views


    def forward(self, x, ctx, training=False):
        ctx.saved["x_shape"] = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        return dy.reshape(ctx.saved["x_shape"]) if need_dx else None


class Dense(Layer):
    class_name = "Dense"
    starter_config = {"units": 64, "activation": "relu"}
    ARGS = (Arg("units", "int", minimum=1, doc="number of output neurons"),
            Arg("activation", "activation", "linear", doc="function applied to every output"),
            Arg("use_bias", "bool", True, doc="add one learned offset per unit"),
            Arg("kernel_initializer", "initializer", "glorot_uniform"),
            Arg("bias_initializer", "initializer", "zeros"))
    POSITIONAL = 2
    explanation = ("Every output neuron looks at every input value with its own weight: "
                   "combines all the features into new ones (or class scores at the end).")

    def _infer(self, input_shape, field):
        c = self.config
        n_in, units = input_shape[-1], c["units"]
        shape = (*input_shape[:-1], units)
        weights = [WeightSpec("kernel", (n_in, units))]
        terms = [(f"{n_in}*{units}", n_in * units)]
        if c["use_bias"]:
            weights.append(WeightSpec("bias", (units,)))
            terms.append((f"{units}", units))
        total = sum(w.size for w in weights)
        lines = []
        if len(input_shape) > 2:
            lines.append(f"Dense acts on the last axis only: each of the "
                         f"{'x'.join(str(d) for d in input_shape[1:-1])} positions gets its own {units} outputs")
        lines += [f"units = {units}", weight_line(terms, total), f"output shape = {format_shape(shape)}"]
        return Inference(shape, tuple(weights), tuple(lines), field)

    def _macs(self, input_shape, output_shape):
        n_in, units = input_shape[-1], self.config["units"]
        positions = math.prod(input_shape[1:-1])
        macs = positions * n_in * units
        where = f"{'*'.join(str(d) for d in input_shape[1:-1])} * " if positions != 1 or len(input_shape) > 2 else ""
        return macs, f"MACs = {where}{n_in}*{units} = {fmt_count(macs)}"

    def _setup(self, rng) -> None:
        from .. import activations

        self._act = activations.get(self.config["activation"])
        self._fused_relu = self._act.name == "relu"  # applied inside the matmul kernel

    @property
    def absorbs_relu(self) -> bool:
        """Without its own activation, the model may fold a following Activation('relu') in."""
        return self.config["activation"] == "linear"

    def forward(self, x, ctx, training=False):
        kernel = self.weights[0]
        n_in, units = kernel.shape
        z = ctx.buf("z", (*x.shape[:-1], units))
        next_relu = getattr(ctx, "fuse_relu", False)
        _dense_kernels().dense_forward(x.reshape(-1, n_in), kernel, self.weights[1] if self.config["use_bias"] else None,
                                       z.reshape(-1, units), relu=self._fused_relu or next_relu,
                                       serial=inference_serial(training))
        ctx.saved["x"] = x
        ctx.saved["next_relu"] = next_relu
        if next_relu:
            ctx.saved["y"] = z
            return z
        return self._activate(z, ctx)

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        from .. import activations
        from ..parallel import use_serial

        dz = self._activation_backward(dy, ctx, skip_activation)
        if ctx.saved["next_relu"]:
            dz = activations.get("relu").backward(None, ctx.saved["y"], dy, ctx.buf("dz", dy.shape))
        x, kernel = ctx.saved["x"], self.weights[0]
        n_in, units = kernel.shape
        dx = ctx.buf("dx", x.shape) if need_dx else None
        _dense_kernels().dense_backward(
            x.reshape(-1, n_in), dz.reshape(-1, units), kernel, ctx.grad("kernel", kernel.shape),
            ctx.grad("bias", (units,)) if self.config["use_bias"] else None,
            dx.reshape(-1, n_in) if need_dx else None, serial=use_serial())
        return dx

    def describe(self):
        return f"{self.config['units']} units, {self.config['activation']}"


class Dropout(Layer):
    class_name = "Dropout"
    starter_config = {"rate": 0.25}
    family = "regularisation"
    ARGS = (Arg("rate", "float", minimum=0.0, maximum=1.0, maximum_exclusive=True,
                doc="fraction of values set to zero while training"),
            Arg("seed", "seed", None, doc="random seed for the dropped positions"))
    POSITIONAL = 1
    explanation = ("While training, randomly silences a fraction of the values so the network "
                   "cannot rely on any single one; does nothing when predicting.")

    def _infer(self, input_shape, field):
        return Inference(input_shape, (), ("shape unchanged", "params = 0 (nothing to learn)",
                                           f"output shape = {format_shape(input_shape)}"), field)

    def _macs(self, input_shape, output_shape):
        return 0, "MACs = 0 when predicting (passes the input through)"

    def _setup(self, rng) -> None:
        seed = self.config["seed"]
        self._rng = np.random.default_rng(int(rng.integers(2**63)) if seed is None else seed)

    def reseed(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def forward(self, x, ctx, training=False):
        rate = self.config["rate"]
        if not training or rate == 0.0:
            ctx.saved["key"] = None
            return x
        # Inverted dropout: keep where uniform >= rate (tf.nn.dropout), scale kept by
        # 1/(1-rate). The mask is a hash of (key, position): one key per call from the
        # seeded generator, recomputed in backward instead of stored.
        k = _elementwise_kernels()
        key = np.uint64(self._rng.integers(2**63))
        y = ctx.buf("y", x.shape)
        k.dropout_forward(x.reshape(-1), y.reshape(-1), key, k.dropout_threshold(rate),
                          np.float32(1.0 / (1.0 - rate)))
        ctx.saved["key"] = key
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        key = ctx.saved.get("key")
        if key is None:
            return dy
        k = _elementwise_kernels()
        rate = self.config["rate"]
        dx = ctx.buf("dx", dy.shape)
        k.dropout_backward(dy.reshape(-1), dx.reshape(-1), key, k.dropout_threshold(rate),
                           np.float32(1.0 / (1.0 - rate)))
        return dx

    def describe(self):
        return f"rate {self.config['rate']:g}"

    def buffer_values(self, input_shape, output_shape, training):
        # training: y and dx (the mask is recomputed from a counter hash, never stored);
        # predict: passes its input through
        return math.prod(output_shape[1:]) + math.prod(input_shape[1:]) if training else 0


class Activation(Layer):
    class_name = "Activation"
    starter_config = {"activation": "relu"}
    ARGS = (Arg("activation", "activation", doc="function applied to every value"),)
    POSITIONAL = 1
    explanation = "Applies a function (such as relu) to every value; the shape does not change."

    def _infer(self, input_shape, field):
        return Inference(input_shape, (), ("shape unchanged", "params = 0 (nothing to learn)",
                                           f"output shape = {format_shape(input_shape)}"), field)

    def _macs(self, input_shape, output_shape):
        if self.config["activation"] == "linear":
            return 0, "MACs = 0 (linear: passes values through)"
        return per_value_macs(output_shape, f"one {self.config['activation']} per value")

    def _setup(self, rng) -> None:
        from .. import activations

        self._act = activations.get(self.config["activation"])

    @property
    def is_relu(self) -> bool:
        """A relu the layer before may apply in its own pass (see model._forward)."""
        return self.config["activation"] == "relu"

    def forward(self, x, ctx, training=False):
        if self._act.name == "linear" or getattr(ctx, "fuse_relu", False):
            # Fused: the layer before already applied this relu; its backward applies
            # the relu's derivative too, so ours passes dy through unchanged.
            ctx.saved["y"] = x
            ctx.saved["passthrough"] = True
            return x
        ctx.saved["passthrough"] = False
        y = ctx.buf("y", x.shape)
        self._act.forward(x, y)
        ctx.saved["z"], ctx.saved["y"] = x, y
        return y

    def backward(self, dy, ctx, need_dx=True, skip_activation=False):
        if not need_dx:
            return None
        return self._activation_backward(dy, ctx, skip_activation or ctx.saved["passthrough"])

    def describe(self):
        return self.config["activation"]

    def buffer_values(self, input_shape, output_shape, training):
        # y, and dz when training (none for linear); a relu fused into the layer before costs
        # nothing, but that is decided at run time, so the estimate keeps the larger figure.
        if self.config["activation"] == "linear":
            return 0
        return math.prod(output_shape[1:]) * (2 if training else 1)


_loaded: dict = {}


def _dense_kernels():
    """The Dense kernels, imported on first use (numba loads lazily); cached because a
    single-image predict is a few microseconds per layer."""
    module = _loaded.get("dense")
    if module is None:
        from ..kernels import dense as module

        _loaded["dense"] = module
    return module


def _elementwise_kernels():
    module = _loaded.get("elementwise")
    if module is None:
        from ..kernels import elementwise as module

        _loaded["elementwise"] = module
    return module
