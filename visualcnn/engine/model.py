"""Model (Keras's Functional API) and Sequential, its linear case, with Keras's API.

A model is one input, its layers in topological order and, per layer, the indices of the
layers feeding it (`inbound`, -1 = the input); the last layer is the output. Sequential
is the plain stack (layer i fed by layer i - 1) that `add` grows. On top of the structure
(input shape, layer names, shape inference, summary, JSON) sits one training API for
both: compile / fit / evaluate / predict / train_on_batch, get_weights / set_weights,
compute_gradients, activations, input_gradients, save. Training itself is the generator
in training.py; fit() drives it. A linear model runs the loops below; any other graph
runs graph_run.py's (same layers, same contexts, gradients summed at forks).

Threads: the training thread uses the model's training contexts (buffers, gradients);
every other thread gets its own inference contexts, and a predict() made while a
training run is active in another thread runs the serial kernels.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Iterable

import numpy as np

from .analysis import PipelineReport, analyse_graph, check_input_shape, is_linear, linear_inbound
from .layers import ConfigError, InputLayer, Layer, snake_case
from . import graph_run
from .graph_run import make_plan
from .summary import render_summary

DEFAULT_INPUT_NAME = "input_layer"


class Model:
    """keras.Model (the Functional API): `Model(inputs, outputs, name="functional")`.

        inputs = Input(shape=(28, 28, 1))
        x = layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
        x = layers.Add()([x, layers.Conv2D(32, 3, padding="same")(x)])
        model = Model(inputs, layers.Dense(10, activation="softmax")(layers.Flatten()(x)))

    model.layers: the layers in Keras's order (topological; the Input is not in it);
    model.inbound: per layer, the indices of the layers feeding it (-1 = the input).
    """

    def __init__(self, inputs=None, outputs=None, name: str = "functional", seed: int | None = 0):
        from .graph import trace

        self._init_state(name, seed)
        if inputs is None or outputs is None:
            raise ConfigError("Model needs inputs and outputs: Model(inputs, outputs), where inputs = "
                              "Input(shape=...) and outputs is the last layer's output")
        shape, input_name, layers, inbound = trace(inputs, outputs)
        self._set_graph(shape, layers, inbound, input_name)

    def _init_state(self, name: str, seed: int | None) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"model name must be a non-empty string, received {name!r}")
        self.name = name
        self.input_shape: tuple | None = None
        self.input_name = DEFAULT_INPUT_NAME
        self.layers: list[Layer] = []
        self._inbound: tuple | None = None  # None: linear (Sequential)
        self.seed = seed
        self.built = False
        self.optimizer = None
        self.loss = None
        self.metrics: list[str] = []
        self.stop_training = False
        self._train_ctxs: list | None = None
        self._local = threading.local()
        self._training_thread: threading.Thread | None = None
        # One model trains in one thread at a time: both runs would write the same
        # buffers, gradients and weights. A lock, not a flag, so two threads cannot both
        # see "free" and start.
        self._training_lock = threading.Lock()
        self._weights_backup: list | None = None
        self._plan = None

    def _set_graph(self, input_shape, layers, inbound, input_name: str | None) -> None:
        """Take a graph: name unnamed layers as Keras does (conv2d, conv2d_1, ... unique
        within the model, the input's name included), refuse duplicate names."""
        self.input_shape = check_input_shape(tuple(input_shape))
        inbound = tuple(tuple(int(j) for j in ins) for ins in inbound)
        if len(inbound) != len(layers):
            raise ConfigError(f"model '{self.name}': {len(layers)} layers but {len(inbound)} inbound entries")
        taken = {layer.name for layer in layers if layer.name is not None}
        if input_name is None:
            input_name = unique_name(DEFAULT_INPUT_NAME, taken)
        elif input_name in taken:
            raise ConfigError(f"model '{self.name}': the name '{input_name}' is used by the input and by a layer; "
                              "names must be unique within a model")
        self.input_name = input_name
        used = taken | {input_name}  # only grows: unique_name's counters stay exact (linear, not quadratic)
        seen: set[str] = {input_name}
        counters: dict[str, int] = {}
        for layer in layers:
            if not isinstance(layer, Layer) or isinstance(layer, InputLayer):
                raise ConfigError(f"model '{self.name}': expected layers, received {type(layer).__name__}")
            if layer.name is None:
                layer.name = unique_name(snake_case(layer.class_name), used, counters)
                used.add(layer.name)
            elif layer.name in seen:
                raise ConfigError(f"{layer.where}: the name '{layer.name}' is already used by another layer; "
                                  "names must be unique within a model")
            seen.add(layer.name)
        self.layers = list(layers)
        self._inbound = None if is_linear(inbound) and type(self) is not Model else inbound
        self.built = False

    @property
    def inbound(self) -> tuple[tuple[int, ...], ...]:
        """Per layer, the indices of the layers feeding it (-1 = the model input)."""
        if self._inbound is None:
            return linear_inbound(len(self.layers))
        return self._inbound

    def _is_linear(self) -> bool:
        return self._inbound is None or is_linear(self._inbound)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """keras Model.get_layer: the layer called `name` (or at `index` of model.layers)."""
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int) or not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer: index {index!r} is out of range; the model has {len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        known = ", ".join(layer.name for layer in self.layers)
        raise ValueError(f"get_layer: no layer named {name!r}; the layers are {known}")


    def analyse(self) -> PipelineReport:
        """Shape inference for every layer (never raises for a bad layer; see report.error)."""
        if self.input_shape is None:
            raise ConfigError(f"model '{self.name}' has no input shape: start it with Input(shape=(28, 28, 1))")
        return analyse_graph(self.input_shape, self.layers, self.inbound, self.input_name)

    def checked_report(self) -> PipelineReport:
        report = self.analyse()
        report.raise_for_error()
        return report

    @property
    def output_shape(self) -> tuple:
        return self.checked_report().output_shape

    def count_params(self) -> int:
        return self.checked_report().total_params

    def summary(self, line_length: int | None = None, positions=None, print_fn=None, expand_nested: bool = False,
                show_trainable: bool = False, layer_range=None) -> None:
        """Print the Keras model.summary() table: as Keras 3, one string ending in a newline to
        print_fn (default: stdout), lines cut at the console's width as rich cuts them.
        expand_nested changes nothing (VisualCNN models hold no nested models)."""
        from .summary import console_width, optimizer_param_count

        report = self.checked_report()
        text = render_summary(self.name, report, line_length,
                              functional=not isinstance(self, Sequential), console_width=console_width(),
                              positions=positions, show_trainable=show_trainable, layer_range=layer_range,
                              optimizer_params=optimizer_param_count(self.optimizer, report.trainable_params))
        (print_fn or sys.stdout.write)(text + "\n")

    def to_json(self, **kwargs) -> str:
        from .model_io import model_to_json

        return model_to_json(self, **kwargs)

    # --- building --------------------------------------------------------------------

    def build(self, seed: int | None = None) -> None:
        """Allocate and initialise every layer's weights (glorot_uniform kernels, zero biases...).

        Runs the same shape inference as summary(), so a model the builder window shows
        as valid always builds. seed: default the model's seed (0).
        """
        from .layers.base import Context
        from .memory import check_memory, estimate_memory

        report = self.checked_report()
        self._refuse_if_training_elsewhere("build")
        # Priced before anything is allocated: a Dense(1_000_000) is refused here in
        # microseconds instead of swapping the machine to death.
        check_memory(estimate_memory(report, 1), training=False, already_allocated=self._allocated_bytes())
        if seed is not None:
            self.seed = seed
        rng = np.random.default_rng(self.seed)
        for row in report.rows:
            row.layer.build(row.input_shapes if getattr(row.layer, "merge", False) else row.input_shape, rng)
        # a chain runs the loops below; any other graph (or a chain holding a merge layer,
        # which takes a list of inputs) runs graph_run's
        linear = self._is_linear() and not any(getattr(layer, "merge", False) for layer in self.layers)
        self._plan = None if linear else make_plan(self.layers, self.inbound)
        self._train_ctxs = [Context() for _ in self.layers]
        self._local = threading.local()
        self._weights_backup = None
        self._memory_checked_batch = 1
        self.built = True
        if self.optimizer is not None:
            self.optimizer.build(self.trainable_weights)

    def _allocated_bytes(self) -> int:
        """Bytes this model holds now (weights, optimizer slots, the training buffers),
        which the machine's free memory no longer counts."""
        total = 0
        for layer in self.layers:
            if getattr(layer, "built", False):
                total += sum(w.nbytes for w in layer.weights)
        for ctx in self._train_ctxs or ():
            total += ctx.ws.nbytes()
        for slot in ("_m", "_v", "_mom"):
            total += sum(a.nbytes for a in getattr(self.optimizer, slot, None) or ())
        total += sum(a.nbytes for a in self._weights_backup or ())
        return total

    def check_memory(self, batch_size: int = 32, training: bool = True) -> None:
        """Raise MemoryLimitError (a ValueError) when training (or predicting) at this batch
        size would need more memory than the machine has; allocates nothing."""
        from .memory import check_memory, estimate_memory

        opt = self.optimizer
        estimate = estimate_memory(self.checked_report(), int(batch_size),
                                   optimizer=getattr(opt, "name", "adam"),
                                   momentum=float(getattr(opt, "momentum", 0.0) or 0.0))
        check_memory(estimate, training, already_allocated=self._allocated_bytes())

    def _check_inference_memory(self, batch_size: int) -> None:
        """check_memory for inference, once per batch size and build (it costs a shape pass)."""
        if batch_size > getattr(self, "_memory_checked_batch", 0):
            self.check_memory(batch_size, training=False)
            self._memory_checked_batch = batch_size

    def _require_layers(self, what: str) -> None:
        if not self.layers:
            raise ValueError(f"{what}: the model has only an Input and no layers; add layers after it, "
                             "e.g. Flatten() and Dense(10, activation='softmax')")

    def _refuse_if_training_elsewhere(self, what: str) -> None:
        owner = self._training_thread
        if owner is not None and owner is not threading.current_thread():
            raise ValueError(f"{what}: this model is being trained in another thread; "
                             "stop that run (or wait for it to finish) first")

    def _ensure_built(self) -> None:
        if not self.built or any(not getattr(layer, "built", False) for layer in self.layers):
            self.build()

    def _contexts(self, training_thread: bool) -> list:
        """The training thread's contexts, or this thread's own inference contexts."""
        from .layers.base import Context

        if training_thread:
            return self._train_ctxs
        ctxs = getattr(self._local, "ctxs", None)
        if ctxs is None or len(ctxs) != len(self.layers):
            ctxs = [Context() for _ in self.layers]
            self._local.ctxs = ctxs
        return ctxs

    # --- weights ---------------------------------------------------------------------

    @property
    def weights(self) -> list[np.ndarray]:
        """Every weight array (live), layer by layer in Keras order."""
        self._ensure_built()
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        """The arrays the optimizer updates (live), in Keras's order."""
        self._ensure_built()
        return [w for layer in self.layers for spec, w in zip(layer.weight_specs, layer.weights) if spec.trainable]

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        self._ensure_built()
        return [w for layer in self.layers for spec, w in zip(layer.weight_specs, layer.weights)
                if not spec.trainable]

    def _trainable_pairs(self) -> list[tuple]:
        """(layer index, weight spec, array) for every trainable weight, in order."""
        return [(i, spec, w) for i, layer in enumerate(self.layers)
                for spec, w in zip(layer.weight_specs, layer.weights) if spec.trainable]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every weight in Keras order and layout: conv kernel (kh, kw, in, out),
        dense kernel (in, out), bias; BatchNormalization gamma, beta, moving_mean, moving_variance."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: list) -> None:
        """Load arrays in get_weights() order; counts and shapes must match exactly."""
        self._refuse_if_training_elsewhere("set_weights")
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            raise ValueError(f"set_weights: the model has {len(own)} weight arrays, received {len(weights)}")
        names = [f"{layer.name}/{spec.name}" for layer in self.layers for spec in layer.weight_specs]
        converted = []
        for name, target, value in zip(names, own, weights):
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(f"set_weights: {name} expects shape {target.shape}, received {value.shape}")
            if not np.issubdtype(value.dtype, np.number) or not np.all(np.isfinite(value)):
                raise ValueError(f"set_weights: {name} must hold finite numbers")
            with np.errstate(over="ignore"):
                value = value.astype(np.float32)
            # Finite in float64 is not enough: 1e300 becomes inf in the float32 weights.
            if not np.all(np.isfinite(value)):
                raise ValueError(f"set_weights: {name} holds values too large for float32 "
                                 f"(largest allowed magnitude {float(np.finfo(np.float32).max):.3g})")
            converted.append(value)
        for target, value in zip(own, converted):
            target[...] = value

    # --- compile ---------------------------------------------------------------------

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: list | None = None) -> None:
        """optimizer: a name ("adam", "sgd", "rmsprop") or an optimizer object;
        loss: a name or a Loss; metrics: [] or ["accuracy"]."""
        from . import losses, optimizers

        if loss is None:
            raise ValueError("compile: a loss is required, e.g. loss='sparse_categorical_crossentropy'")
        self._refuse_if_training_elsewhere("compile")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        metrics = list(metrics or [])
        for metric in metrics:
            if metric not in ("accuracy", "acc"):
                raise ValueError(f"compile: unknown metric {metric!r}; VisualCNN supports 'accuracy'")
        self.metrics = ["accuracy"] if metrics else []
        if self.built:
            self.optimizer.build(self.trainable_weights)

    def _require_compiled(self, what: str) -> None:
        self._require_layers(what)
        if self.loss is None or self.optimizer is None:
            raise ValueError(f"{what}: compile the model first, e.g. "
                             "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', "
                             "metrics=['accuracy'])")

    # --- input checks ----------------------------------------------------------------

    def _prepare_x(self, x: Any, what: str = "x") -> np.ndarray:
        """x as a C-contiguous float32 (N, *input_shape) array, or a ValueError naming the problem."""
        if self.input_shape is None:
            raise ConfigError(f"model '{self.name}' has no input shape: start it with Input(shape=(28, 28, 1))")
        if (type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous and x.ndim > 1
                and x.shape[0] > 0 and x.shape[1:] == tuple(self.input_shape)):
            # already what the kernels take (the Draw tab's image): only the finiteness
            # check below; the general checks cost a third of a 0.1 ms single-image predict
            if not np.isfinite(x).all():
                raise ValueError(f"{what} contains NaN or infinite values")
            return x
        expected = "(N, " + ", ".join(str(d) for d in self.input_shape) + ")"
        try:
            arr = np.asarray(x)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{what} must be an array shaped {expected}: {exc}") from None
        if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValueError(f"{what} must hold real numbers (uint8 or float), received dtype {arr.dtype}")
        shape = tuple(self.input_shape)
        if arr.ndim == len(shape) and shape[-1] == 1 and arr.shape[1:] == shape[:-1]:
            arr = arr.reshape(*arr.shape, 1)  # (N, 28, 28) images for a (28, 28, 1) input
        if arr.ndim != len(shape) + 1 or arr.shape[1:] != shape:
            raise ValueError(f"{what} has shape {arr.shape}; the model expects {expected}")
        if arr.shape[0] == 0:
            raise ValueError(f"{what} is empty: it holds 0 examples")
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contains NaN or infinite values")
        return arr

    def _prepare_y(self, y: Any, n: int, what: str = "y") -> np.ndarray:
        """Targets checked against the loss and the output shape."""
        out_shape = self.output_shape
        arr = np.asarray(y)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"{what} must hold numbers, received dtype {arr.dtype}")
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(f"{what} has {arr.shape[0] if arr.ndim else 0} entries but x has {n} examples")
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contains NaN or infinite values")
        units = out_shape[-1]
        if self.loss is not None and self.loss.sparse:
            if arr.ndim == len(out_shape) and arr.shape[-1] == 1:
                arr = arr.reshape(arr.shape[:-1])
            if arr.shape[1:] != tuple(out_shape[1:-1]):
                raise ValueError(f"{what} has shape {arr.shape}; {self.loss.name} expects one integer class label "
                                 f"per example, shape ({n},)")
            if not np.all(np.equal(np.mod(arr, 1), 0)):
                raise ValueError(f"{what} must be integer class labels for {self.loss.name}")
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= units:
                raise ValueError(f"{what} holds label {hi if hi >= units else lo}, outside 0..{units - 1}: the model's "
                                 f"output has {units} units, so labels must be from 0 to {units - 1}")
            return np.ascontiguousarray(arr, dtype=np.int64)
        expected = (n, *out_shape[1:])
        if arr.shape != expected:
            loss_name = self.loss.name if self.loss is not None else "the loss"
            raise ValueError(f"{what} has shape {arr.shape}; {loss_name} expects targets shaped {expected} "
                             "(one value per output unit)")
        return np.ascontiguousarray(arr, dtype=np.float32)

    # --- forward and backward --------------------------------------------------------

    def _forward(self, x: np.ndarray, ctxs: list, training: bool, collect: list | None = None,
                 arenas: tuple | None = None) -> np.ndarray:
        # A layer that can (absorbs_relu) applies the Activation('relu') right after it in
        # its own pass; that Activation then passes values through. Not when every
        # layer's own output is wanted (activations()).
        plan = self._plan
        if plan is not None:
            if arenas is not None:
                return graph_run.forward_streaming(self.layers, plan, x, ctxs, arenas, _workspace)
            return graph_run.forward(self.layers, plan, x, ctxs, training, collect)
        fused = _relu_fusions(self.layers) if collect is None else ()
        if arenas is not None:
            return self._forward_streaming(x, ctxs, fused, arenas)
        # a training step's first conv -> max pool in one pass (the backward then takes the
        # pooled path too: _backward); not when every layer's own output is wanted
        first = _first_conv_pool(self.layers) if training and collect is None else None
        if first is not None and not self.layers[first].takes_pooled_forward(self.layers[first + 1]):
            first = None
        skip = -1
        for i, (layer, ctx) in enumerate(zip(self.layers, ctxs)):
            ctx.fuse_relu = i in fused
            if i == skip:
                continue
            if i == first:
                x = layer.forward_into_pool(x, ctx, self.layers[i + 1], ctxs[i + 1])
                skip = i + 1
                continue
            x = layer.forward(x, ctx, training)
            if collect is not None:
                collect.append(x)
        return x

    def _forward_streaming(self, x: np.ndarray, ctxs: list, fused, arenas: tuple) -> np.ndarray:
        """Inference where only two layers' buffers are alive at once (ping-pong).

        Each layer takes its buffers from whichever of the two arenas does NOT hold its
        input, so a layer overwrites the output of the layer two before it, which nothing
        needs any more: a batch of 1000 costs two feature maps instead of one per layer.
        A layer whose output is a view of its input (Flatten, a fused relu, inference
        Dropout) leaves the data where it was. Saved tensors are dropped first so no
        context keeps an old, since regrown, buffer alive.

        A BatchNormalization right after a Conv2D without activation is folded into the
        conv's kernel and bias (``BatchNormalization.fold_into``, recomputed per call) and
        passes its input through: one pass over the feature map fewer (measured on the
        Conv-BN-ReLU benchmark network, one image: 10 us per BatchNormalization).
        """
        folds = _bn_folds(self.layers)
        for ctx in ctxs:
            ctx.saved.clear()
        holder = -1  # which arena holds x; -1: the caller's array
        for i, (layer, ctx) in enumerate(zip(self.layers, ctxs)):
            ctx.fuse_relu = i in fused
            ctx.fold_bn = folds.get(i)
            ctx.folded = i - 1 in folds
            if ctx.fold_bn is not None:
                # the conv applies the BatchNormalization and that layer's fused relu
                ctx.fuse_relu = i + 1 in fused
            use = 1 if holder == 0 else 0
            ctx.ws = arenas[use]
            y = layer.forward(x, ctx, False)
            if _memory_owner(y) is not _memory_owner(x):
                holder = use
            x = y
        return x

    def _backward(self, dy: np.ndarray, ctxs: list, fused: bool, need_input_grad: bool = False):
        if self._plan is not None:
            return graph_run.backward(self.layers, self._plan, dy, ctxs, fused, need_input_grad)
        last = len(self.layers) - 1
        # Below the first layer with trainable weights no gradient is used (Flatten before
        # the MLP's first Dense: its dx was a third of the backward's FLOPs), unless the
        # input gradient itself is wanted (saliency).
        stop = 0 if need_input_grad else _first_trainable(self.layers)
        first = None if need_input_grad else _first_conv_pool(self.layers)
        for i in range(last, stop - 1, -1):
            if i == stop + 1 and first is not None:
                pooled = self.layers[i].pooled_gradient(dy, ctxs[i])
                if pooled is not None:  # the pool's backward and the conv's, in one pass
                    self.layers[stop].backward_from_pool(pooled, ctxs[stop])
                    return None
            dy = self.layers[i].backward(dy, ctxs[i], need_dx=need_input_grad or i > stop,
                                         skip_activation=fused and i == last)
        return dy

    def _fused_activation(self) -> bool:
        """True when the loss gradient can be taken with respect to the last pre-activation."""
        if self.loss is None or self.loss.fuses_with is None or not self.layers:
            return False
        last = self.layers[-1]
        return "activation" in last.config and last.config["activation"] == self.loss.fuses_with

    def _loss_and_grad(self, out: np.ndarray, y: np.ndarray, ctxs: list) -> tuple[float, np.ndarray, bool]:
        fused = self._fused_activation()
        grad = ctxs[-1].buf("loss_grad", out.shape)
        logits = ctxs[-1].saved.get("z") if fused else None
        if fused and logits is None:
            fused = False
        loss = self.loss.compute(out, y, grad, logits=logits)
        return loss, grad, fused

    def _accuracy(self, out: np.ndarray, y: np.ndarray) -> float | None:
        from . import losses

        if not self.metrics:
            return None
        return losses.correct_fraction(losses.accuracy_kind(out.shape, y.shape), out, y)

    def _train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple[float, float | None]:
        """One optimizer step on a checked batch. A non-finite loss or gradient raises
        TrainingDiverged and leaves every weight as it was before the step."""
        from .training import TrainingDiverged

        ctxs = self._train_ctxs
        backup = [w.copy() for w in self.non_trainable_weights] if self._has_state() else None
        out = self._forward(xb, ctxs, training=True)
        loss, grad, fused = self._loss_and_grad(out, yb, ctxs)
        accuracy = self._accuracy(out, yb)
        if not np.isfinite(loss):
            self._restore_state(backup)
            raise TrainingDiverged(f"the loss became {loss} (not a finite number)")
        self._backward(grad, ctxs, fused)
        grads = self._gradients(ctxs)
        params = self.trainable_weights
        saved = self._backup_buffers(params)
        # One pass per weight: the update copies the old values into saved and reports a
        # new value that is NaN or infinite, which a NaN or infinite gradient always makes
        # (every update rule carries it into the weight), as does an overflow in the update
        # itself (a huge learning rate, g*g in Adam's second moment). NaN/inf must never
        # reach the stored weights, so such a step is taken back whole.
        finite = self.optimizer.step(params, grads, saved)
        if not finite or (backup is not None and not _all_finite(self.non_trainable_weights)):
            for target, value in zip(params, saved):
                np.copyto(target, value)
            self._restore_state(backup)
            self.optimizer.build(params)  # its moments hold the NaN too: start them afresh
            if not _all_finite(grads):
                raise TrainingDiverged("a gradient became NaN or infinite")
            raise TrainingDiverged("the update made a weight NaN or infinite")
        return loss, accuracy

    def _backup_buffers(self, params: list) -> list:
        """Buffers, kept between steps, for the optimizer to copy the weights into before a
        step (``Optimizer.step``'s backups)."""
        backup = self._weights_backup
        if backup is None or len(backup) != len(params) or any(b.shape != p.shape for b, p in zip(backup, params)):
            backup = [np.empty_like(p) for p in params]
            self._weights_backup = backup
        return backup

    def _has_state(self) -> bool:
        return any(not spec.trainable for layer in self.layers for spec in layer.weight_specs)

    def _restore_state(self, backup) -> None:
        if backup is not None:
            for target, value in zip(self.non_trainable_weights, backup):
                target[...] = value

    def _gradients(self, ctxs: list) -> list[np.ndarray]:
        return [ctxs[i].grad(spec.name, spec.shape) for i, spec, _ in self._trainable_pairs()]

    # --- Keras API ---------------------------------------------------------------------

    def fit(self, x, y, batch_size: int = 32, epochs: int = 1, verbose="auto", callbacks=None,
            validation_split: float = 0.0, validation_data=None, shuffle: bool = True,
            initial_epoch: int = 0) -> "History":
        """Train; returns a History whose .history holds loss, accuracy, val_loss, val_accuracy.

        validation_split takes the LAST fraction of x and y before shuffling (as Keras).
        callbacks: engine/callbacks.py's (EarlyStopping, ReduceLROnPlateau...) or any object
        with Keras's on_* methods. epochs is the last epoch; initial_epoch the epochs already
        done (Keras: fit(epochs=5, initial_epoch=3) trains two more).
        """
        # The training lock first: a second thread is refused before it touches anything
        # (stop_training, the callbacks' model) of the run already going on.
        owner = self._claim_training()
        try:
            return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                             shuffle, initial_epoch)
        finally:
            self._release_training(owner)

    def _fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
             shuffle, initial_epoch=0) -> "History":
        from .training import EpochReport, History, ProgressPrinter, StepReport, train

        # The callbacks are called by the training generator itself: the same calls for
        # fit, the CLI and the window (engine/callbacks.py).
        run = train(self, x, y, batch_size=batch_size, epochs=epochs, validation_split=validation_split,
                    validation_data=validation_data, shuffle=shuffle, callbacks=callbacks,
                    initial_epoch=initial_epoch)
        history = History(self, {"batch_size": batch_size, "epochs": epochs, "steps": run.batches})
        verbose = 1 if verbose == "auto" else int(verbose)
        printer = ProgressPrinter(verbose) if verbose else None
        shown = 0
        try:
            for report in run:
                if isinstance(report, StepReport):
                    if printer:
                        printer.step(report)
                elif isinstance(report, EpochReport):
                    history.record(report)
                    if printer:
                        printer.epoch(report)
                if printer and len(run.messages) > shown:
                    for line in run.messages[shown:]:
                        printer.stream.write(line + "\n")
                    shown = len(run.messages)
        finally:
            run.close()
        if printer:
            for line in run.messages[shown:]:
                printer.stream.write(line + "\n")
        return history

    def train_on_batch(self, x, y):
        """One optimizer step on exactly this batch; returns [loss, accuracy] (or loss)."""
        from .training import TrainingDiverged

        self._require_compiled("train_on_batch")
        if not self.built:
            self.check_memory(max(1, len(x) if hasattr(x, "__len__") else 1))
        self._ensure_built()
        xb = self._prepare_x(x)
        yb = self._prepare_y(y, xb.shape[0])
        owner = self._claim_training()
        try:
            loss, accuracy = self._train_step(xb, yb)
        except TrainingDiverged as exc:
            raise TrainingDiverged(f"{exc}; the weights were left as before this batch") from None
        finally:
            self._release_training(owner)
        return [loss, accuracy] if self.metrics else loss

    def _claim_training(self) -> bool:
        """Take the model's training lock for this thread (True: this call took it).
        Another thread already training it gets a clear ValueError, never shared buffers."""
        current = threading.current_thread()
        if self._training_thread is current:
            return False
        if not self._training_lock.acquire(blocking=False):
            raise ValueError("this model is already being trained in another thread; stop that run "
                             "(or wait for it to finish) before training it again")
        try:
            from . import parallel
            from .training import limit_blas_threads

            parallel.apply_thread_settings()
            limit_blas_threads(1)
        except BaseException:
            self._training_lock.release()
            raise
        self._training_thread = current
        return True

    def _release_training(self, owner: bool) -> None:
        if owner:
            self._training_thread = None
            self._training_lock.release()

    def _in_training_thread(self) -> bool:
        return self._training_thread is threading.current_thread()

    def _inference_ctxs(self) -> list:
        return self._contexts(self._in_training_thread())

    def _predict_ctxs(self) -> tuple[list, tuple | None]:
        """(contexts, arenas) for predict / evaluate: in the training thread its own
        contexts (no arenas); elsewhere this thread's streaming contexts, whose buffers
        come from two shared arenas (see _forward_streaming). Separate from the
        inference contexts, whose per-layer buffers activations() and
        input_gradients() need."""
        if self._in_training_thread():
            return self._train_ctxs, None
        ctxs = getattr(self._local, "stream_ctxs", None)
        if ctxs is None or len(ctxs) != len(self.layers):
            from .kernels import Workspace
            from .layers.base import Context

            ctxs = [Context() for _ in self.layers]
            self._local.stream_ctxs = ctxs
            # two for a chain (ping-pong); a graph adds more as it needs (graph_run)
            self._local.arenas = [Workspace(), Workspace()]
        return ctxs, self._local.arenas

    def _serial_default(self) -> bool:
        """predict() from another thread while training runs uses the serial kernels."""
        return self._training_thread is not None and not self._in_training_thread()

    def _run_inference(self, fn, serial: bool | None, images: int | None = None):
        """fn() with the serial kernels when asked, when another thread trains this model,
        or when each call carries one image (images == 1): measured on all nine benchmark
        networks (2 threads), a single image ran 2-7 % faster serially than with parallel
        kernels, whose region start and join cost more than the split saves."""
        from . import parallel
        from .kernels import blas

        blas.ensure_single_threaded()  # once per process: no BLAS thread pool beside the workers
        if serial is None:
            serial = self._serial_default() or images == 1
        if serial:
            with parallel.serial_inference():
                return fn()
        return fn()

    def predict(self, x, batch_size: int = 32, verbose=0, serial: bool | None = None) -> np.ndarray:
        """Outputs for x in inference mode (dropout off, moving statistics), as a new array.

        serial: None = serial kernels only when another thread is training this model.
        """
        self._ensure_built()
        x = self._prepare_x(x)
        batch_size = _positive_int(batch_size, "batch_size")
        self._check_inference_memory(min(batch_size, x.shape[0]))

        def run():
            ctxs, arenas = self._predict_ctxs()
            outs = [self._forward(x[i:i + batch_size], ctxs, training=False, arenas=arenas).copy()
                    for i in range(0, x.shape[0], batch_size)]
            return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=0)

        return self._run_inference(run, serial, min(batch_size, x.shape[0]))

    def evaluate(self, x, y, batch_size: int = 32, verbose="auto", return_dict: bool = False,
                 serial: bool | None = None):
        """[loss, accuracy] (or loss alone without metrics) over x, y in inference mode."""
        self._require_compiled("evaluate")
        self._ensure_built()
        x = self._prepare_x(x)
        y = self._prepare_y(y, x.shape[0])
        batch_size = _positive_int(batch_size, "batch_size")
        self._check_inference_memory(min(batch_size, x.shape[0]))
        loss, accuracy = self._run_inference(lambda: self._evaluate_arrays(x, y, batch_size), serial)
        if return_dict:
            return {"loss": loss, **({"accuracy": accuracy} if self.metrics else {})}
        return [loss, accuracy] if self.metrics else loss

    def _evaluate_arrays(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[float, float | None]:
        ctxs, arenas = self._predict_ctxs()
        total_loss, total_acc, n = 0.0, 0.0, x.shape[0]
        for i in range(0, n, batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            out = self._forward(xb, ctxs, training=False, arenas=arenas)
            loss, _, _ = self._loss_and_grad(out, yb, ctxs)
            total_loss += loss * xb.shape[0]
            if self.metrics:
                total_acc += self._accuracy(out, yb) * xb.shape[0]
        return total_loss / n, (total_acc / n if self.metrics else None)

    def compute_gradients(self, x, y) -> tuple[float, list[np.ndarray]]:
        """(loss, grads) for one batch in training mode (dropout on, batch statistics),
        grads in trainable_weights order and shapes. Weights and moving statistics are not changed."""
        self._require_compiled("compute_gradients")
        if not self.built:
            self.check_memory(max(1, len(x) if hasattr(x, "__len__") else 1))
        self._ensure_built()
        xb = self._prepare_x(x)
        yb = self._prepare_y(y, xb.shape[0])
        owner = self._claim_training()
        ctxs = self._train_ctxs
        try:
            for ctx in ctxs:
                ctx.update_stats = False
            out = self._forward(xb, ctxs, training=True)
            loss, grad, fused = self._loss_and_grad(out, yb, ctxs)
            self._backward(grad, ctxs, fused)
            return loss, [g.copy() for g in self._gradients(ctxs)]
        finally:
            for ctx in ctxs:
                ctx.update_stats = True
            self._release_training(owner)

    def activations(self, x, serial: bool | None = None) -> dict[str, np.ndarray]:
        """Every layer's output for x in inference mode, {layer name: array}, in layer order
        (the feature maps the GUI shows). Copies: safe to keep."""
        self._ensure_built()
        x = self._prepare_x(x)
        self._check_inference_memory(x.shape[0])  # the whole of x goes through in one pass

        def run():
            outs: list = []
            self._forward(x, self._inference_ctxs(), training=False, collect=outs)
            return {layer.name: out.copy() for layer, out in zip(self.layers, outs)}

        return self._run_inference(run, serial, x.shape[0])

    def input_gradients(self, x, class_index: int, serial: bool | None = None) -> np.ndarray:
        """Saliency: d(score of class_index)/d(x) in inference mode, shaped like x.

        The score is the last layer's pre-activation (the logit) when it ends in softmax
        or sigmoid, its output otherwise."""
        self._require_layers("input_gradients")
        self._ensure_built()
        x = self._prepare_x(x)
        if x.shape[0] > 1:  # one pass forward and back over the whole of x
            self.check_memory(x.shape[0], training=True)
        units = self.output_shape[-1]
        if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) or not 0 <= class_index < units:
            raise ValueError(f"class_index must be an integer from 0 to {units - 1}, received {class_index!r}")
        last = self.layers[-1]
        skip = "activation" in last.config and last.config["activation"] in ("softmax", "sigmoid")

        def run():
            ctxs = self._inference_ctxs()
            out = self._forward(x, ctxs, training=False)
            seed = np.zeros(out.shape, np.float32)
            seed[..., class_index] = 1.0
            grads_backup = [dict(ctx.grads) for ctx in ctxs]
            dx = self._backward(seed, ctxs, fused=skip, need_input_grad=True)
            for ctx, g in zip(ctxs, grads_backup):
                ctx.grads = g
            return dx.reshape(x.shape).copy()

        return self._run_inference(run, serial)

    def save(self, path) -> None:
        """One file: the model JSON, the training recipe and the weights (base64 float32);
        a path ending in ".keras" gets Keras 3's .keras file, as keras Model.save writes it."""
        from .model_io import save_model_with_weights

        self._ensure_built()
        if str(path).endswith(".keras"):
            from pathlib import Path

            from .export.keras_archive import write

            write(self, Path(path), self.training_config())
            return
        save_model_with_weights(path, self)

    def save_weights(self, path) -> None:
        """keras Model.save_weights: a ".weights.h5" file in Keras 3's layout."""
        from .keras_weights_h5 import save_weights

        self._ensure_built()
        save_weights(self, path)

    def load_weights(self, path) -> None:
        """keras Model.load_weights from a Keras 3 ".weights.h5" (or a .keras file's weights);
        nothing changes unless every array fits (a ConfigError names the first that does not)."""
        from .keras_weights_h5 import load_weights

        self._ensure_built()
        load_weights(self, path)

    def training_config(self):
        """The compile settings as a TrainingConfig (None if not compiled with a known loss)."""
        from .training_config import TrainingConfig

        if self.optimizer is None or self.loss is None:
            return None
        opt = self.optimizer
        rate, schedule = opt.learning_rate, "constant"
        scheduled = getattr(opt, "schedule", None)
        if scheduled is not None:
            # The settings' learning_rate is a schedule's starting rate: the current one is ~0
            # after a cosine run, which a file would refuse. Only the recipe's cosine
            # (to 0, no warm-up) is a setting; any other schedule is saved as its starting rate.
            rate = scheduled.initial_learning_rate or getattr(scheduled, "warmup_target", None) or 0.001
            if (type(scheduled).__name__ == "CosineDecay" and scheduled.alpha == 0
                    and scheduled.warmup_target is None):
                schedule = "cosine"
        return TrainingConfig(optimizer=opt.name, learning_rate=float(rate), loss=self.loss.name,
                              momentum=float(getattr(opt, "momentum", 0.0)) if opt.name == "sgd" else 0.0,
                              nesterov=bool(getattr(opt, "nesterov", False)), seed=int(self.seed or 0),
                              schedule=schedule)


class Sequential(Model):
    """keras.Sequential: `Sequential([layers.Input(shape=(28, 28, 1)), layers.Conv2D(32, 3), ...])`."""

    def __init__(self, layers: Iterable[Layer] | None = None, name: str = "sequential", seed: int | None = 0):
        self._init_state(name, seed)
        for layer in layers or ():
            self.add(layer)

    def add(self, layer: Layer) -> None:
        """Append a layer, giving it Keras's default name (conv2d, conv2d_1, ...) if it has none."""
        from .graph import KerasTensor

        self._refuse_if_training_elsewhere("add")
        if isinstance(layer, KerasTensor) and isinstance(layer.layer, InputLayer):
            layer = layer.layer
        if isinstance(layer, InputLayer):
            if self.layers or self.input_shape is not None:
                raise ConfigError("an Input can only be the first entry of a Sequential model")
            self.input_shape = check_input_shape(layer.config["shape"])
            if layer.name is not None:
                self.input_name = layer.name
            return
        if not isinstance(layer, Layer):
            raise ConfigError(f"Sequential.add expected a layer, received {type(layer).__name__}")
        taken = self._layer_names()
        if layer.name is None:
            layer.name = unique_name(snake_case(layer.class_name), taken, self._name_counters)
        elif layer.name in taken:
            raise ConfigError(f"{layer.where}: the name '{layer.name}' is already used by another layer; "
                              "names must be unique within a model")
        self.layers.append(layer)
        taken.add(layer.name)
        self._names_for = len(self.layers)
        self.built = False

    def _layer_names(self) -> set[str]:
        """The names in use, kept from one add() to the next: rebuilding them on every add made
        loading a 40,000-layer file quadratic (minutes). Rebuilt when the list changed elsewhere."""
        if getattr(self, "_names_for", None) != len(self.layers):
            self._names = {existing.name for existing in self.layers}
            self._name_counters: dict[str, int] = {}
            self._names_for = len(self.layers)
        return self._names


def model_from_graph(name: str, input_shape, layers, inbound, input_name: str = DEFAULT_INPUT_NAME,
                     sequential: bool = False) -> Model:
    """The model of a graph (files, the builder's document): layers in topological order,
    inbound[i] the indices feeding layer i (-1 = the input). A Sequential when the caller
    asks (sequential=True) and the graph is a plain stack, a Model otherwise. The graph may
    still hold errors (an Add of mismatched shapes): analyse() shows them, build refuses."""
    inbound = tuple(tuple(ins) for ins in inbound)
    if sequential and is_linear(inbound):
        model = Sequential(name=name)
        model.input_shape = check_input_shape(tuple(input_shape))
        model.input_name = input_name
        for layer in layers:
            model.add(layer)
        return model
    model = Model.__new__(Model)
    model._init_state(name, 0)
    model._set_graph(input_shape, list(layers), inbound, input_name)
    return model


def _first_conv_pool(layers: list) -> int | None:
    """Index of the first layer with weights when it is a relu conv that can take its
    weight gradient from the max pool right after it (no gradient is wanted below it):
    the seed CNN's conv -> pool. A training step then runs the two layers' backward in one
    pass (``Conv2D.backward_from_pool``) and, for a 2x2 pool, their forward too
    (``Conv2D.forward_into_pool``). None otherwise, or with the relu hand-off off."""
    stop = _first_trainable(layers)
    if stop + 1 >= len(layers) or not graph_run.takes_pool(layers[stop], layers[stop + 1]):
        return None
    return stop


def _first_trainable(layers: list) -> int:
    """Index of the first layer with a trainable weight (len(layers) when none has)."""
    for i, layer in enumerate(layers):
        if any(spec.trainable for spec in getattr(layer, "weight_specs", ())):
            return i
    return len(layers)


def _workspace():
    from .kernels import Workspace

    return Workspace()


def _memory_owner(a: np.ndarray):
    """The array that owns a's memory (numpy collapses view chains to it)."""
    return a if a.base is None else a.base


def _bn_folds(layers: list) -> dict:
    """{index of a conv: the BatchNormalization after it that inference folds into it}."""
    return {i: layers[i + 1] for i in range(len(layers) - 1)
            if getattr(layers[i + 1], "folds_into", None) is not None and layers[i + 1].folds_into(layers[i])}


def _relu_fusions(layers: list) -> frozenset:
    """Indices of the layers that apply the relu of an Activation('relu') right after them,
    and of those Activations (which then pass their input through)."""
    found = set()
    for i in range(len(layers) - 1):
        if getattr(layers[i], "absorbs_relu", False) and getattr(layers[i + 1], "is_relu", False):
            found.update((i, i + 1))
    return frozenset(found)


def unique_name(stem: str, taken: set[str], counters: dict[str, int] | None = None) -> str:
    """Keras's naming: stem, then stem_1, stem_2, ... skipping names already used.

    ``counters`` (stem -> next suffix to try) makes naming n layers linear instead of
    quadratic; it is exact while ``taken`` only grows, as when a model is built in order.
    """
    if stem not in taken:
        return stem
    i = counters.get(stem, 1) if counters is not None else 1
    while f"{stem}_{i}" in taken:
        i += 1
    if counters is not None:
        counters[stem] = i + 1
    return f"{stem}_{i}"


def _all_finite(arrays) -> bool:
    """No NaN or infinity in any array, in one float32 sum each (NaN and inf propagate).

    A float32 sum of finite values can overflow only past 3.4e38, values no training that
    has not already diverged reaches; a float64 sum costs four times as much (measured:
    6.4 ms against 1.5 ms for a 784x4096 Dense kernel, on every step)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return all(np.isfinite(np.add.reduce(a.reshape(-1))) for a in arrays)


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, received {value!r}")
    return int(value)
