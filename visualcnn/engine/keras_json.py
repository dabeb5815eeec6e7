"""Keras's model.to_json(), read into a layer graph: Sequential, and Functional (Keras 3 and 2).

Keras 3 Functional: config.layers lists every operation with "inbound_nodes": [{"args": ...,
"kwargs": ...}], each input a {"class_name": "__keras_tensor__", "config": {"keras_history":
[layer, node_index, tensor_index]}}; config.input_layers / output_layers name the model's
input and output tensors the same way. Keras 2 writes "inbound_nodes": [[[layer, node_index,
tensor_index, kwargs], ...]]. See keras/src/models/functional.py (get_config,
functional_from_config, serialize_node).

VisualCNN models have one image (or vector) input, one output, and layers that are each
called once; anything else is refused with one line naming what and where.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from .layers import LAYER_CLASSES, ConfigError, Layer, layer_from_config

FUNCTIONAL_CLASSES = ("Functional", "Model")


@dataclass
class Graph:
    """What a model file describes: layers in topological order, inbound[i] the indices of
    the layers feeding layer i (-1 = the input). functional: a Keras Functional model (its
    summary starts with the InputLayer row), not a Sequential one."""

    name: str
    input_shape: list
    layers: list[Layer]
    inbound: list[tuple[int, ...]] = field(default_factory=list)
    input_name: str = "input_layer"
    functional: bool = False


def read_keras(data: dict) -> Graph:
    """A Keras model.to_json() document (already parsed) as a Graph."""
    try:
        return _read_keras(data)
    except RecursionError:  # args nested thousands deep: not something Keras writes
        raise ConfigError("Keras model JSON: a layer's inbound_nodes are nested too deeply") from None


def _read_keras(data: dict) -> Graph:
    class_name = data["class_name"]
    config = data.get("config")
    if not isinstance(config, dict):
        raise ConfigError("Keras model JSON: 'config' must be an object")
    _keras2_settings(config.get("layers"))
    if class_name == "Sequential":
        return _read_sequential(config)
    if class_name in FUNCTIONAL_CLASSES:
        return _read_functional(config)
    raise ConfigError(f"Keras model JSON: a {class_name!r} model is not supported; VisualCNN reads Sequential and "
                      "Functional models (keras.Sequential / keras.Model(inputs, outputs))")


def _keras2_settings(entries: Any) -> None:
    """Keras 2 (tf.keras) writes a built BatchNormalization's axis as a list of one ("axis": [3]);
    it is that axis (Keras 3's int(axis) refuses the list, so its legacy loader cannot open such files)."""
    for entry in entries if isinstance(entries, list) else ():
        config = entry.get("config") if isinstance(entry, dict) else None
        if (isinstance(config, dict) and entry.get("class_name") == "BatchNormalization"
                and isinstance(config.get("axis"), list) and len(config["axis"]) == 1):
            entry["config"] = {**config, "axis": config["axis"][0]}


def build_layer(class_name: Any, config: Any, where: str) -> Layer:
    """layer_from_config with the layer's place in the file in front of any error."""
    if class_name is None:
        raise ConfigError(f"{where}: missing class_name")
    if not isinstance(config, dict):
        raise ConfigError(f"{where} ({class_name}): config must be an object, received {type(config).__name__}")
    try:
        return layer_from_config(class_name, config)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except TypeError as exc:  # e.g. a config key that is not a string
        raise ConfigError(f"{where} ({class_name}): {exc}") from None


# --- Sequential -------------------------------------------------------------------------

def _read_sequential(config: dict) -> Graph:
    """{"class_name": "Sequential", "config": {"name", "layers": [InputLayer?, ...], "build_input_shape"?}}."""
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ConfigError("Keras model JSON: config.layers must be a list")
    input_shape = None
    input_name = "input_layer"
    layer_entries = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("config", {}), dict):
            raise ConfigError(f"layer {index + 1}: expected an object with class_name and config")
        class_name, layer_config = entry.get("class_name"), dict(entry.get("config", {}))
        if class_name == "InputLayer":
            if index != 0:
                raise ConfigError(f"layer {index + 1}: an InputLayer can only come first")
            input_shape = _batch_shape(layer_config, f"layer {index + 1} (InputLayer)")
            continue
        # Keras 2 files carry the input shape on the first layer's config.
        for key in ("batch_input_shape", "batch_shape"):
            if key in layer_config:
                shape = _batch_shape({key: layer_config.pop(key)}, f"layer {index + 1}")
                if input_shape is None and not layer_entries:
                    input_shape = shape
        layer_entries.append((index, class_name, layer_config))
    build = config.get("build_input_shape")
    if input_shape is None and isinstance(build, list) and build[:1] == [None]:
        input_shape = build[1:]
    if input_shape is None:
        raise ConfigError("Keras model JSON: the model has no input shape (no InputLayer and no build_input_shape)")
    layers = [build_layer(class_name, layer_config, f"layer {index + 1}")
              for index, class_name, layer_config in layer_entries]
    return Graph(_model_name(config, "sequential"), input_shape, layers,
                 [(i - 1,) for i in range(len(layers))], input_name)


def _batch_shape(config: dict, where: str) -> list:
    """The input shape without its batch axis. A batch size fixed by Input(batch_size=...) is
    dropped: fit and predict choose the batch in VisualCNN."""
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if not isinstance(shape, list) or len(shape) < 2:
        raise ConfigError(f"{where}: batch_shape must be a list like [null, 28, 28, 1], received {shape!r}")
    if any(d is None for d in shape[1:]):
        raise ConfigError(f"{where}: the input shape {_shape_text(shape)} has sizes left open (None); "
                          "VisualCNN models take a fixed image size such as (None, 28, 28, 1)")
    return shape[1:]


def _shape_text(shape: list) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _model_name(config: dict, default: str) -> str:
    name = config.get("name")
    return name if isinstance(name, str) and name else default


# --- Functional -------------------------------------------------------------------------

@dataclass
class _Entry:
    index: int  # position in config.layers
    name: str
    class_name: str
    config: dict
    sources: list[str]  # names of the layers feeding it, in call order


def _read_functional(config: dict) -> Graph:
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ConfigError("Keras model JSON: config.layers must be a list")
    parsed = [_functional_entry(index, entry) for index, entry in enumerate(entries)]
    by_name: dict[str, _Entry] = {}
    for entry in parsed:
        if entry.name in by_name:
            raise ConfigError(f"layer {entry.index + 1}: the name '{entry.name}' is used by two layers "
                              f"(layers {by_name[entry.name].index + 1} and {entry.index + 1}); names must be unique")
        by_name[entry.name] = entry
    input_name = _single_endpoint(config, "input_layers", "input", by_name)
    output_name = _single_endpoint(config, "output_layers", "output", by_name)
    input_entry = by_name[input_name]
    if input_entry.class_name != "InputLayer":
        raise ConfigError(f"Keras model JSON: the model's input '{input_name}' is a {input_entry.class_name}, "
                          "not an InputLayer")
    for entry in parsed:
        if entry.class_name == "InputLayer" and entry.name != input_name:
            raise ConfigError(f"Keras model JSON: InputLayer '{entry.name}' is not the model's input "
                              f"'{input_name}'; VisualCNN models have one input")
    input_shape = _input_shape(input_entry)
    _refuse_unknown_classes(parsed)
    order = _topological(parsed, by_name)
    # Only what the output depends on is part of the model (Keras drops the rest too).
    needed = _ancestors(by_name, output_name)
    kept = [entry for entry in order if entry.name in needed and entry.name != input_name]
    if not kept:  # the output is an ancestor of itself and comes last in a topological order
        raise ConfigError("Keras model JSON: the model has no layers (its output is its input)")
    position = {input_name: -1, **{entry.name: i for i, entry in enumerate(kept)}}
    layers, inbound = [], []
    for entry in kept:
        layer_config = dict(entry.config)
        layer_config["name"] = entry.name
        layers.append(build_layer(entry.class_name, layer_config, f"layer '{entry.name}'"))
        inbound.append(tuple(position[source] for source in entry.sources))
    return Graph(_model_name(config, "functional"), input_shape, layers, inbound, input_name, functional=True)


def _functional_entry(index: int, entry: Any) -> _Entry:
    where = f"layer {index + 1}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected an object with class_name, config and inbound_nodes")
    if not isinstance(entry.get("class_name"), str):
        raise ConfigError(f"{where}: class_name must be a layer class such as \"Conv2D\", "
                          f"received {entry.get('class_name')!r}")
    config = entry.get("config", {})
    if not isinstance(config, dict):
        raise ConfigError(f"{where} ({entry.get('class_name')}): config must be an object")
    name = entry.get("name", config.get("name"))
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} ({entry.get('class_name')}): a Functional model's layer needs a name")
    where = f"layer '{name}'"
    nodes = entry.get("inbound_nodes", [])
    if not isinstance(nodes, list):
        raise ConfigError(f"{where}: inbound_nodes must be a list")
    if len(nodes) > 1:
        raise ConfigError(f"{where}: the layer is called {len(nodes)} times (a shared layer); VisualCNN layers "
                          "are used once each: give each call its own layer")
    sources = _node_sources(nodes[0], where) if nodes else []
    if entry.get("class_name") == "InputLayer":
        if sources:
            raise ConfigError(f"{where}: an InputLayer takes no inputs")
    elif not sources:
        raise ConfigError(f"{where}: the layer is not connected to anything (no inbound_nodes)")
    return _Entry(index, name, entry.get("class_name"), config, sources)


def _node_sources(node: Any, where: str) -> list[str]:
    """The names of the layers whose outputs one call takes, in order (Keras 3 or Keras 2 form)."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        histories: list = []
        _collect_histories(node.get("args", []), histories, where)
        kwargs = node.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise ConfigError(f"{where}: inbound_nodes kwargs must be an object")
        for key, value in kwargs.items():
            found: list = []
            _collect_histories(value, found, where)
            if found:
                histories += found
            # Keras records `training` for layers whose call defaults it (the augmentation layers);
            # VisualCNN's fit and predict set the mode, as Keras's do.
            elif value is not None and not (key == "training" and isinstance(value, bool)):
                raise ConfigError(f"{where}: the layer is called with {key}={value!r}; VisualCNN calls layers on "
                                  "their inputs only")
    elif isinstance(node, list):  # Keras 2: [[layer, node_index, tensor_index, kwargs], ...]
        histories = []
        for item in node:
            if not isinstance(item, list) or len(item) not in (3, 4):
                raise ConfigError(f"{where}: inbound_nodes entries must be [layer, node_index, tensor_index, kwargs]")
            if len(item) == 4 and item[3]:
                raise ConfigError(f"{where}: the layer is called with {item[3]!r}; VisualCNN calls layers on "
                                  "their inputs only")
            histories.append(item[:3])
    else:
        raise ConfigError(f"{where}: inbound_nodes entries must be objects with args (Keras 3) or lists (Keras 2)")
    return [_history_source(history, where) for history in histories]


def _collect_histories(value: Any, out: list, where: str) -> None:
    """Every __keras_tensor__'s keras_history inside a call's args, in order (Keras flattens them so)."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history") if isinstance(value.get("config"), dict) else None
            if history is None:
                raise ConfigError(f"{where}: an input tensor without keras_history")
            out.append(history)
            return
        for item in value.values():
            _collect_histories(item, out, where)
    elif isinstance(value, list):
        for item in value:
            _collect_histories(item, out, where)


def _history_source(history: Any, where: str) -> str:
    if (not isinstance(history, list) or len(history) != 3 or not isinstance(history[0], str)
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in history[1:])):
        raise ConfigError(f"{where}: an input reference must be [layer name, node index, tensor index], "
                          f"received {history!r}")
    name, node_index, tensor_index = history
    if node_index != 0:
        raise ConfigError(f"{where}: takes the output of call {node_index + 1} of '{name}', a shared layer; "
                          "VisualCNN layers are used once each")
    if tensor_index != 0:
        raise ConfigError(f"{where}: takes output {tensor_index + 1} of '{name}'; VisualCNN layers have one output")
    return name


def _single_endpoint(config: dict, key: str, what: str, by_name: dict[str, _Entry]) -> str:
    """The one layer named by input_layers / output_layers: [name, 0, 0], [[name, 0, 0]] or a dict of them."""
    value = config.get(key)
    refs = [value] if isinstance(value, list) and value and isinstance(value[0], str) else value
    if isinstance(refs, dict):  # a model called on a dict of inputs
        refs = list(refs.values())
    if not isinstance(refs, list) or not refs:
        raise ConfigError(f'Keras model JSON: config.{key} must name the model\'s {what}, e.g. ["{what}_layer", 0, 0]')
    if len(refs) > 1:
        shown = ", ".join(f"'{ref[0]}'" if isinstance(ref, list) and ref else repr(ref) for ref in refs)
        raise ConfigError(f"Keras model JSON: the model has {len(refs)} {what}s ({shown}); "
                          f"VisualCNN models have one {what}")
    name = _history_source(refs[0], f"config.{key}")
    if name not in by_name:
        raise ConfigError(f"Keras model JSON: the {what} '{name}' is not one of the model's layers")
    return name


def _refuse_unknown_classes(entries: list[_Entry]) -> None:
    unknown = [entry for entry in entries if entry.class_name != "InputLayer" and entry.class_name not in LAYER_CLASSES]
    if unknown:
        shown = ", ".join(f"{entry.class_name} ('{entry.name}')" for entry in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ConfigError(f"Keras model JSON: VisualCNN has no {shown}{more}; it supports "
                          f"{', '.join(LAYER_CLASSES)}")


def _input_shape(entry: _Entry) -> list:
    config = entry.config
    where = f"InputLayer '{entry.name}'"
    if config.get("sparse") or config.get("ragged"):
        raise ConfigError(f"{where}: a sparse or ragged input is not supported; VisualCNN takes dense images")
    dtype = config.get("dtype", "float32")
    if isinstance(dtype, dict):  # a DTypePolicy object
        dtype = dtype.get("config", {}).get("name", "float32")
    if isinstance(dtype, str) and not dtype.startswith(("float", "mixed_")):
        raise ConfigError(f"{where}: the input holds {dtype} values; VisualCNN models take float images "
                          "(pixel values)")
    return _batch_shape(config, where)


def _topological(entries: list[_Entry], by_name: dict[str, _Entry]) -> list[_Entry]:
    """The entries with every layer after its inputs; file order wherever that already holds
    (Keras writes them so, and its summary order comes from the graph, not the file)."""
    for entry in entries:
        for source in entry.sources:
            if source not in by_name:
                raise ConfigError(f"layer '{entry.name}': takes the output of '{source}', which is not a layer "
                                  "of the model")
    waiting = {entry.name: len(entry.sources) for entry in entries}
    users: dict[str, list[_Entry]] = {}
    for entry in entries:
        for source in entry.sources:
            users.setdefault(source, []).append(entry)
    ready = [(entry.index, entry.name) for entry in entries if not entry.sources]
    heapq.heapify(ready)
    order = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(by_name[name])
        for user in users.get(name, ()):
            waiting[user.name] -= 1
            if waiting[user.name] == 0:
                heapq.heappush(ready, (user.index, user.name))
    if len(order) < len(entries):
        stuck = next(entry for entry in entries if waiting[entry.name] > 0)
        raise ConfigError(f"layer '{stuck.name}': its inputs form a cycle (a layer feeding itself through "
                          "others); a model's layers must flow from the input to the output")
    return order


def _ancestors(by_name: dict[str, _Entry], output_name: str) -> set[str]:
    seen, stack = {output_name}, [output_name]
    while stack:
        for source in by_name[stack.pop()].sources:
            if source not in seen:
                seen.add(source)
                stack.append(source)
    return seen
