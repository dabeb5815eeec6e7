"""The Layer base class: stored config, pure shape inference, weight layout.

Follows Keras's layer anatomy (keras/src/layers/layer.py, convolutional/base_conv.py):
__init__ validates and stores the config; `infer` is pure arithmetic on shapes; the
engine builds weights from `infer(...).weights`, so the shape the builder window shows
and the arrays the engine allocates come from one function and cannot disagree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ..shapes import Field, format_hw, format_shape
from .arguments import Arg, ConfigError, check_extra_key, normalise, to_json
from .registry import register


@dataclass(frozen=True)
class WeightSpec:
    """One weight array: its Keras name, shape and whether the optimizer updates it."""

    name: str
    shape: tuple[int, ...]
    trainable: bool = True

    @property
    def size(self) -> int:
        return math.prod(self.shape)


BYTES_PER_VALUE = 4  # float32


@dataclass(frozen=True)
class Inference:
    """What one layer does to a shape: output shape, weights, and the worked derivation.

    Costs per image (issue 13): `macs` and its worked line `macs_line`, set by Layer.infer
    from the layer's `_macs` (see there for what is counted); the activation memory is
    the output's values at 4 bytes (float32) each.
    """

    output_shape: tuple
    weights: tuple[WeightSpec, ...]
    derivation: tuple[str, ...]
    field: Field
    macs: int = 0
    macs_line: str = ""

    @property
    def params(self) -> int:
        return sum(w.size for w in self.weights)

    @property
    def activation_values(self) -> int:
        return math.prod(self.output_shape[1:])

    @property
    def activation_bytes(self) -> int:
        """Memory of this layer's output for one image (float32)."""
        return self.activation_values * BYTES_PER_VALUE

    @property
    def activation_line(self) -> str:
        """'activations = 26*26*32 * 4 B = 86,528 B'."""
        dims = "*".join(str(d) for d in self.output_shape[1:])
        return f"activations = {dims} * {BYTES_PER_VALUE} B = {fmt_count(self.activation_bytes)} B"

    @property
    def trainable_params(self) -> int:
        return sum(w.size for w in self.weights if w.trainable)


def snake_case(class_name: str) -> str:
    """Keras's default layer name stem: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def fmt_count(n: int) -> str:
    return f"{n:,}"


class Layer:
    """Base of every layer. Subclasses declare ARGS and implement `_infer`."""

    class_name: ClassVar[str] = "Layer"
    family: ClassVar[str] = "core"  # one of registry.FAMILIES (another works: listed last, neutral colour)
    ARGS: ClassVar[tuple[Arg, ...]] = ()
    POSITIONAL: ClassVar[int] = 0  # how many ARGS Keras lets you pass positionally
    explanation: ClassVar[str] = ""  # one line for students, shown in the inspector
    image_input: ClassVar[bool] = False  # needs (batch, height, width, channels)
    # A merge layer (layers/merging.py) joins several inputs: infer(input_shapes, fields),
    # forward(xs, ctx, training), backward(...) -> one gradient per input. Every other
    # layer has one input and must never write into its input array nor into the dy its
    # backward is given: in a graph both can be shared with other layers.
    merge: ClassVar[bool] = False
    # What a block freshly dropped from the palette holds: a working config (the required
    # arguments filled with values from the Keras MNIST examples).
    starter_config: ClassVar[dict] = {}
    in_palette: ClassVar[bool] = True  # listed in the builder's palette

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        # A class naming itself is a layer users can build: importing its module registers it.
        if "class_name" in cls.__dict__:
            register(cls)

    def __init__(self, *args: Any, name: str | None = None, trainable: bool = True, **kwargs: Any):
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError(f"{self.class_name}: argument 'name' expected a non-empty string, received {name!r}")
        self.name = name
        if not isinstance(trainable, bool):
            raise ConfigError(f"{self.where}: argument 'trainable' expected true or false, received {trainable!r}")
        self.trainable = trainable
        if len(args) > self.POSITIONAL:
            raise TypeError(f"{self.class_name} takes at most {self.POSITIONAL} positional arguments")
        given = dict(zip((a.name for a in self.ARGS), args))
        for key in kwargs:
            if key in given:
                raise TypeError(f"{self.class_name} got two values for argument '{key}'")
        given.update(kwargs)
        self.config = self._normalise_all(given)
        self._check_config()

    # --- configuration -----------------------------------------------------------

    @property
    def where(self) -> str:
        """How messages name this layer: Conv2D 'conv2d_1'."""
        return f"{self.class_name} '{self.name}'" if self.name else self.class_name

    def _normalise_all(self, given: dict) -> dict:
        known = [a.name for a in self.ARGS]
        config = {}
        for arg in self.ARGS:
            if arg.name in given:
                config[arg.name] = normalise(arg, given[arg.name], self.where)
            elif arg.required:
                raise ConfigError(f"{self.where}: argument '{arg.name}' is required ({arg.doc or arg.kind})")
            else:
                config[arg.name] = normalise(arg, arg.default, self.where) if arg.default is not None else None
        for key, value in given.items():
            if key not in known:
                check_extra_key(key, value, self.where, known)
        return config

    def _check_config(self) -> None:
        """Cross-argument checks (Keras raises these in __init__)."""

    def get_config(self, compact: bool = False) -> dict:
        """Keras-style config. compact=True drops arguments that hold their default."""
        config: dict[str, Any] = {"name": self.name}
        if not compact or not self.trainable:
            config["trainable"] = self.trainable
        for arg in self.ARGS:
            value = self.config[arg.name]
            if compact and not arg.required and value == _default_normal(arg):
                continue
            config[arg.name] = to_json(value)
        if compact and config["name"] is None:
            del config["name"]
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        if not isinstance(config, dict):
            raise ConfigError(f"{cls.class_name}: config must be a JSON object, received {type(config).__name__}")
        config = dict(config)
        name = config.pop("name", None)
        trainable = config.pop("trainable", True)
        return cls(name=name, trainable=trainable, **config)

    def __call__(self, inputs):
        """Keras's call syntax on symbolic tensors: x = layers.Conv2D(32, 3)(inputs) (engine/graph.py)."""
        from ..graph import call_layer

        return call_layer(self, inputs)

    def with_name(self, name: str) -> "Layer":
        self.name = name
        return self

    # --- shapes --------------------------------------------------------------------

    def infer(self, input_shape: tuple, field: Field = Field()) -> Inference:
        """Output shape, weights and derivation for a batch shape (None, ...). Pure."""
        if self.image_input and len(input_shape) != 4:
            raise ConfigError(
                f"{self.where}: needs an image-shaped input (height, width, channels), received "
                f"{format_shape(input_shape)}; image layers must come before Flatten or Dense"
            )
        inference = self._infer(tuple(input_shape), field)
        if not self.trainable:
            frozen = tuple(WeightSpec(w.name, w.shape, False) for w in inference.weights)
            inference = replace(inference, weights=frozen)
        return with_macs(inference, *self._macs(tuple(input_shape), inference.output_shape))

    def _infer(self, input_shape: tuple, field: Field) -> Inference:
        raise NotImplementedError

    # --- costs per image (issue 13): the layer's own arithmetic, like its params ----------
    #
    # MACs count the multiply-accumulates of one image's forward pass when predicting.
    # A layer with weights (Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose,
    # Dense) counts one per weight it applies for each output value; bias additions and a
    # built-in activation are not counted (as torchinfo, ptflops and papers count). A layer
    # without such weights counts its arithmetic as it is, one operation per value it
    # combines: a pooling window's values (a comparison or an addition each), one per value
    # for an activation function, a scale such as BatchNormalization or Rescaling, and each
    # extra input of a merge. Layers that only move values (Flatten, Reshape, Permute,
    # padding, cropping, Concatenate) and the layers that act only while training count 0.

    def _macs(self, input_shape: tuple, output_shape: tuple) -> tuple[int, str]:
        """(MACs per image, the worked line). Default: a layer that only moves values."""
        return 0, "MACs = 0 (only moves values)"

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return self.infer(input_shape).output_shape

    def describe(self) -> str:
        """The block's key settings in a few words: '32 filters, 3x3, relu, valid'."""
        return ""

    def __repr__(self) -> str:
        return f"<{self.class_name} {self.name or '(unnamed)'} {self.describe()}>"

    # --- memory: pure arithmetic on shapes (engine/memory.py sums it) -------------------
    #
    # Counts of float32-sized values, so a model of any size is priced without allocating.
    # Subclasses whose forward/backward keep other buffers than the default override these.

    def buffer_values(self, input_shape: tuple, output_shape: tuple, training: bool) -> int:
        """Values per example this layer's buffers hold after forward (and backward when
        training): by default the output (pre- and post-activation for an activation other
        than relu, which the kernels apply in place), and when training the input gradient
        dx and, with an activation, dz."""
        out, inp = math.prod(output_shape[1:]), math.prod(input_shape[1:])
        activation = self.config.get("activation")
        nonlinear = activation not in (None, "linear")
        values = out * (2 if nonlinear and activation != "relu" else 1)
        if training:
            values += inp + (out if nonlinear else 0)
        return values

    def workspace_values(self, input_shape: tuple, output_shape: tuple, batch_size: int, threads: int) -> int:
        """Values of the kernels' scratch (im2col and per-thread partial sums) at this batch size."""
        return 0

    # --- engine: weights, forward and backward ---------------------------------------
    #
    # build(input_shape, rng) calls infer() first, so the shapes the builder window shows
    # and the arrays allocated here come from one function. forward/backward keep their
    # per-call state (saved inputs, scratch buffers, weight gradients) in a Context, one
    # per layer and per thread, so an inference call in the GUI thread never touches the
    # buffers of the training thread.

    weights: list
    built: bool = False
    _fused_relu: bool = False

    def build(self, input_shape: tuple, rng) -> Inference:
        """Allocate and initialise the weights for a batch shape (None, ...)."""
        from ..initializers import initialize

        inference = self.infer(tuple(input_shape))
        self.built_input_shape = tuple(input_shape)
        self.built_output_shape = tuple(inference.output_shape)
        self.weight_specs = inference.weights
        self.weights = [initialize(self.config.get(initializer_arg(spec.name)), spec.shape, rng)
                        for spec in inference.weights]
        self._setup(rng)
        self.built = True
        return inference

    def _setup(self, rng) -> None:
        """Precompute geometry (paddings, activation) once the shapes are known."""

    def weight(self, name: str):
        """The live weight array called `name` (Keras name: kernel, bias, gamma, ...)."""
        for spec, value in zip(self.weight_specs, self.weights):
            if spec.name == name:
                return value
        return None

    def forward(self, x, ctx: "Context", training: bool = False):
        """y = layer(x). x (N, ...) float32 C-contiguous; y lives in ctx's buffers."""
        raise NotImplementedError(f"{self.class_name} has no forward pass")

    def backward(self, dy, ctx: "Context", need_dx: bool = True, skip_activation: bool = False):
        """dx from dy = d(loss)/d(y) of the last forward on ctx; weight gradients go to ctx.grads.

        skip_activation=True: dy is already the gradient of the pre-activation (the fused
        softmax + crossentropy gradient). Returns None when need_dx is False.
        """
        raise NotImplementedError(f"{self.class_name} has no backward pass")

    # helpers for layers with an `activation` argument

    def _activate(self, z, ctx: "Context"):
        act = self._act
        if act.name == "linear" or self._fused_relu:
            ctx.saved["y"] = z
            return z
        y = ctx.buf("y", z.shape)
        act.forward(z, y)
        ctx.saved["z"] = z
        ctx.saved["y"] = y
        return y

    def _activation_backward(self, dy, ctx: "Context", skip: bool):
        act = self._act
        if skip or act.name == "linear":
            return dy
        dz = ctx.buf("dz", dy.shape)
        act.backward(ctx.saved.get("z") if act.needs_input else None, ctx.saved["y"], dy, dz)
        return dz


class Context:
    """Per-layer, per-thread state of forward/backward: grow-only scratch buffers
    (a kernels Workspace), the tensors saved for backward, and the weight gradients."""

    def __init__(self):
        from ..kernels import Workspace

        self.ws = Workspace()
        self.saved: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.update_stats = True  # BatchNormalization moving statistics in training mode

    def buf(self, name: str, shape: tuple, dtype=None):
        import numpy as np

        return self.ws.get("layer." + name, shape, np.float32 if dtype is None else dtype)

    def grad(self, name: str, shape: tuple):
        import numpy as np

        g = self.grads.get(name)
        if g is None or g.shape != tuple(shape):
            g = np.zeros(shape, np.float32)
            self.grads[name] = g
        return g


def initializer_arg(weight_name: str) -> str:
    """The config argument holding a weight's initializer (Keras naming)."""
    if weight_name in ("depthwise_kernel", "pointwise_kernel"):
        return weight_name.replace("_kernel", "_initializer")
    return f"{weight_name}_initializer"


def kernels():
    """The numba kernels, imported on first use (so `visualcnn summary` never loads numba)."""
    from .. import kernels as k

    return k


def inference_serial(training: bool):
    """serial argument for the kernel drivers: training is parallel; inference asks parallel.py."""
    return False if training else None


def _default_normal(arg: Arg) -> Any:
    return normalise(arg, arg.default, "default") if arg.default is not None else None


def spatial_window(layer: Layer, what: str, size: tuple[int, int], window: tuple[int, int],
                   output: tuple, formulas: tuple[str, str], padding: str,
                   dilation: tuple[int, int] = (1, 1), allow_zero: bool = False) -> None:
    """Raise the 'does not fit' error when a window leaves no output position.

    allow_zero: Keras's Conv2DTranspose accepts a zero-sized output (it only has no
    check); we follow Keras so shapes agree, and refuse only negative sizes there.
    """
    if min(output) > (-1 if allow_zero else 0):
        return
    if dilation != (1, 1):
        eff = tuple((k - 1) * d + 1 for k, d in zip(window, dilation))
        shown = f"{what} {format_hw(window)} dilated by {format_hw(dilation)} (spans {format_hw(eff)})"
    else:
        shown = f"{what} {format_hw(window)}"
    first_bad = 0 if output[0] == min(output) else 1
    axis = ("height", "width")[first_bad]
    formula = formulas[first_bad]
    raise ConfigError(
        f"{layer.where}: {shown} does not fit the {format_hw(size)} input with {padding} padding "
        f"(output {axis} = {formula}; Keras: computed output size would be zero or negative)"
    )


def with_macs(inference: Inference, macs: int, line: str) -> Inference:
    return replace(inference, macs=int(macs), macs_line=line)


def dims_text(shape: tuple) -> str:
    """'26*26*32' for the per-example shape (None, 26, 26, 32)."""
    return "*".join(str(d) for d in shape[1:])


def per_value_macs(output_shape: tuple, what: str, per: int = 1) -> tuple[int, str]:
    """An elementwise layer's count: `per` operations for every output value."""
    values = math.prod(output_shape[1:])
    factor = f"{per} * " if per != 1 else ""
    return per * values, f"MACs = {factor}{dims_text(output_shape)} = {fmt_count(per * values)} ({what})"


def weight_line(terms: list[tuple[str, int]], total: int) -> str:
    """'params = 3*3*1*32 + 32 = 320' from (formula, value) terms."""
    if not terms:
        return "params = 0 (nothing to learn)"
    return "params = " + " + ".join(t for t, _ in terms) + f" = {fmt_count(total)}"

