"""Keras's call syntax: symbolic tensors, `layer(tensor)`, and the graph they spell.

    inputs = Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, padding="same")(inputs)
    y = layers.Add()([x, layers.Conv2D(32, 3, padding="same")(x)])
    model = Model(inputs, layers.Dense(10)(layers.Flatten()(y)))

A KerasTensor holds only a shape and where it came from (the layer that made it and that
layer's input tensors); calling a layer infers its output shape at once, so an impossible
layer fails on the line that adds it, as in Keras. `trace` turns the tensors between one
input and one output into the engine's graph form: layers in topological order (Keras's
`model.layers` order) and, per layer, the indices of the layers feeding it (-1 = the input).
"""

from __future__ import annotations

from typing import Any

from .layers.arguments import ConfigError
from .shapes import format_shape


class KerasTensor:
    """A symbolic tensor: batch shape (None, ...), the layer that produced it (an
    InputLayer for the model input) and that layer's input tensors."""

    __slots__ = ("shape", "layer", "inputs")
    dtype = "float32"

    def __init__(self, shape: tuple, layer, inputs: tuple = ()):
        self.shape = tuple(shape)
        self.layer = layer
        self.inputs = tuple(inputs)

    @property
    def name(self) -> str | None:
        return self.layer.name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={format_shape(self.shape)}, dtype=float32, name={self.layer.name or self.layer.class_name}>"


def input_tensor(shape, name: str | None = None) -> KerasTensor:
    """keras.Input: the model's input as a symbolic tensor (shape without the batch axis)."""
    from .analysis import check_input_shape
    from .layers.core import InputLayer

    layer = InputLayer(shape=shape, name=name)
    check_input_shape(layer.config["shape"])
    return KerasTensor(layer.batch_shape, layer)


def call_layer(layer, inputs: Any) -> KerasTensor:
    """layer(inputs) on symbolic tensors: the output tensor, its shape inferred now
    (ConfigError naming the layer when it cannot work, as Keras raises at the call)."""
    tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for t in tensors:
        if not isinstance(t, KerasTensor):
            raise TypeError(f"{layer.where}: call it on a tensor from Input(...) or another layer's output, "
                            f"e.g. x = layers.Conv2D(32, 3)(inputs); received {type(t).__name__}")
    if not tensors:
        raise ConfigError(f"{layer.where}: called on an empty list; give it the tensors to join")
    # layers get their default names when the Model is made; until then "input 2" tells
    # two unnamed Conv2D branches apart
    names = tuple(t.layer.name or f"input {k + 1}" for k, t in enumerate(tensors))
    if getattr(layer, "merge", False):
        if not isinstance(inputs, (list, tuple)):
            raise ConfigError(f"{layer.where}: a merge layer is called on a list of tensors, "
                              f"e.g. {layer.class_name}()([x, y])")
        inference = layer.infer(tuple(t.shape for t in tensors), input_names=names)
    else:
        if len(tensors) > 1:
            raise ConfigError(f"{layer.where}: takes one input but was called on {len(tensors)}; "
                              "use Add or Concatenate to join branches")
        inference = layer.infer(tensors[0].shape)
    return KerasTensor(inference.output_shape, layer, tuple(tensors))


def _single(value: Any, what: str) -> KerasTensor:
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ConfigError(f"Model: VisualCNN models have exactly one {what}, received {len(value)}")
        value = value[0]
    if isinstance(value, dict):
        raise ConfigError(f"Model: give the {what} as a tensor, not a dict")
    if not isinstance(value, KerasTensor):
        raise TypeError(f"Model: {what} must be a tensor from Input(...) or a layer call, "
                        f"received {type(value).__name__}")
    return value


def trace(inputs: Any, outputs: Any) -> tuple[tuple, str | None, list, tuple]:
    """(input shape, input name, layers, inbound) of the graph from `inputs` to `outputs`.

    Layers come in Keras's model.layers order (by depth from the output, deepest first),
    which is also the order of get_weights(). Raises ConfigError when the output does not
    depend on the input, when a layer is used twice, or for another Input inside."""
    from .layers.core import InputLayer
    from .summary import keras_order

    source, sink = _single(inputs, "input"), _single(outputs, "output")
    if not isinstance(source.layer, InputLayer):
        raise ConfigError("Model: inputs must be the tensor returned by Input(shape=...)")
    # depth-first from the output; each tensor is one node (id -> index in `found`)
    index: dict[int, int] = {}
    found: list[KerasTensor] = []
    stack: list[tuple[KerasTensor, bool]] = [(sink, False)]
    while stack:
        t, expanded = stack.pop()
        if id(t) in index:
            continue
        if t is source:
            continue
        if isinstance(t.layer, InputLayer):
            raise ConfigError(f"Model: the output depends on another Input ('{t.layer.name or 'input'}') than the "
                              "model's input; VisualCNN models have exactly one input")
        if expanded:
            index[id(t)] = len(found)
            found.append(t)
            continue
        stack.append((t, True))
        for parent in reversed(t.inputs):
            if id(parent) not in index and parent is not source:
                stack.append((parent, False))
    if sink is source:
        raise ConfigError("Model: the output is the input itself; add at least one layer")
    if not any(_reaches(t, source) for t in found):
        raise ConfigError("Model: the output does not depend on the input")
    inbound = [tuple(-1 if p is source else index[id(p)] for p in t.inputs) for t in found]
    seen: dict[int, Any] = {}
    for t in found:
        if id(t.layer) in seen:
            raise ConfigError(f"Model: {t.layer.where} is used twice in the graph; VisualCNN does not share a "
                              "layer between two places: create a second layer")
        seen[id(t.layer)] = t.layer
    order = [i for i in keras_order(inbound) if i != -1]
    position = {old: new for new, old in enumerate(order)}
    layers = [found[i].layer for i in order]
    new_inbound = tuple(tuple(-1 if j == -1 else position[j] for j in inbound[i]) for i in order)
    return source.layer.config["shape"], source.layer.name, layers, new_inbound


def _reaches(t: KerasTensor, source: KerasTensor) -> bool:
    return any(p is source for p in t.inputs)


__all__ = ["KerasTensor", "input_tensor", "call_layer", "trace"]
