"""A lesson's model as it stands at each step, and the actions of show_me / change on it.

The window edits a PipelineDocument (gui/document.py); the checker and the grader have no
window, so they replay the same edits here on plain data: the input shape, the layer
entries (class_name, config, inbound names: the document's LayerEntry form) and the
training settings. Each action follows the document's edit of the same name
(gui/document_graph.py: insert_after, remove, set_config, wrap_residual), including how
blocks are named, because a later step refers to what earlier actions made by name:

- in a plain stack every block is named from the top as Sequential.add names them: a
  block's config name when no block above took it, else the next free name. A Conv2D
  inserted above 'conv2d_1' is named 'conv2d_1' and the old one becomes 'conv2d_2',
  exactly as the window shows it;
- as soon as the pipeline is a graph (a skip, after wrap_residual), a new block gets a name
  no block has (conv2d_3), and blocks named in a link keep their names.

tests/gui/test_lesson_actions_match_document.py checks that the window's document and
this simulation name and connect every block alike.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from ..analysis import PipelineReport, analyse_graph, check_input_shape
from ..layers import LAYER_CLASSES, ConfigError, Layer, layer_from_config, snake_case
from ..model import unique_name
from ..training_config import TrainingConfig
from .format import Action

INPUT = "input"  # a node's source that is the model input
DEFAULT_INPUT_NAME = "input_layer"


class ActionError(ConfigError):
    """An action that cannot be performed on the model as it stands (one line)."""


@dataclass(frozen=True)
class Entry:
    """One block, as the document holds it: class name, config (engine JSON) and the names of
    the blocks feeding it (empty: the entry before it, or the input for the first)."""

    class_name: str
    config: dict = field(default_factory=dict)
    inbound: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "inbound", tuple(self.inbound))


@dataclass(frozen=True)
class ModelState:
    """The model a lesson step works on: what the document holds, without the window."""

    input_shape: tuple
    entries: tuple[Entry, ...] = ()
    training: TrainingConfig = field(default_factory=TrainingConfig)
    input_name: str = DEFAULT_INPUT_NAME
    name: str = "sequential"

    # --- what the engine says about it ---------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer_names(self.entries))

    def row_named(self, name: str) -> int:
        """The row of the block called `name`; ActionError listing the names when none is."""
        names = self.names
        if name in names:
            return names.index(name)
        raise ActionError(f"there is no layer named {name!r} at this point (the layers are: {', '.join(names)})")

    def layers(self) -> list[Layer]:
        """Engine layers named as the document names them; a config the class rejects becomes a
        layer whose inference fails with the engine's message (the window shows it red)."""
        layers = []
        for entry, name in zip(self.entries, self.names):
            try:
                layers.append(layer_from_config(entry.class_name, {**entry.config, "name": name}))
            except (ConfigError, TypeError) as exc:
                layers.append(_Rejected(entry.class_name, name, str(exc)))
        return layers

    def inbound(self) -> tuple[tuple[int, ...], ...]:
        """Row indices feeding each row (-1: the input; a missing name points past the end, which
        the analysis reports as a block that does not exist)."""
        return tuple(tuple(-1 if s == INPUT else (s if isinstance(s, int) else len(self.entries))
                           for s in node.sources) for node in self._nodes())

    def report(self) -> PipelineReport:
        """The engine's analysis: shapes, parameters with derivations, receptive fields, MACs."""
        return analyse_graph(self.input_shape, self.layers(), self.inbound(), self.input_name)

    # --- building -------------------------------------------------------------------------------

    @classmethod
    def from_model(cls, model, training: TrainingConfig | None = None) -> "ModelState":
        """The state of an engine model (Sequential or graph Model), as the document loads it."""
        layers = list(model.layers)
        inbound = getattr(model, "inbound", None) or tuple((i - 1,) for i in range(len(layers)))
        input_name = getattr(model, "input_name", None) or DEFAULT_INPUT_NAME
        entries = []
        for i, (layer, sources) in enumerate(zip(layers, inbound)):
            sources = tuple(sources)
            names = () if sources == (i - 1,) else tuple(input_name if j == -1 else layers[j].name for j in sources)
            entries.append(Entry(layer.class_name, layer.get_config(compact=True), names))
        return cls(tuple(model.input_shape), tuple(entries), training or TrainingConfig(), input_name,
                   getattr(model, "name", "sequential"))

    @classmethod
    def from_file(cls, path) -> "ModelState":
        from ..model_io import load_model_file

        model_file = load_model_file(path)
        return cls.from_model(model_file.model, model_file.training)

    def _nodes(self) -> list["_Node"]:
        names = self.names
        row_of = {name: row for row, name in enumerate(names)}
        nodes = []
        for row, entry in enumerate(self.entries):
            if not entry.inbound:
                sources = (row - 1 if row else INPUT,)
            else:
                sources = tuple(INPUT if n == self.input_name else row_of.get(n, _Missing(n)) for n in entry.inbound)
            nodes.append(_Node(row, entry.class_name, entry.config, sources))
        return nodes

    def _with_nodes(self, nodes: list["_Node"]) -> "ModelState":
        """The state whose entries are `nodes` in order, named and linked as the document does."""
        entries = _canonical(nodes, self.input_name)
        if any(e.inbound for e in entries):
            nodes = _name_new_blocks(nodes, self.names)
            entries = _canonical(nodes, self.input_name)
        return replace(self, entries=tuple(entries))


def state_of(model_or_document: Any) -> ModelState:
    """A ModelState for what the caller has: a ModelState, the window's document (anything with
    input_shape, entries, input_name and training: duck-typed, the engine never imports Qt), an
    engine model or a ModelFile."""
    obj = model_or_document
    if isinstance(obj, ModelState):
        return obj
    if hasattr(obj, "entries") and hasattr(obj, "input_shape"):
        entries = tuple(Entry(e.class_name, dict(e.config), tuple(e.inbound)) for e in obj.entries)
        training = getattr(obj, "training", None) or TrainingConfig()
        return ModelState(tuple(obj.input_shape), entries, training,
                          getattr(obj, "input_name", None) or DEFAULT_INPUT_NAME)
    if hasattr(obj, "model") and hasattr(obj, "training"):  # a ModelFile
        return ModelState.from_model(obj.model, obj.training)
    if hasattr(obj, "layers") and hasattr(obj, "input_shape"):
        return ModelState.from_model(obj)
    raise TypeError(f"expected a model, a ModelState or the document, received {type(obj).__name__}")


# --- the actions ---------------------------------------------------------------------------------


def merged_config(config: dict, changes: dict) -> dict:
    """set_config's new config: the changes merged into the block's config (the name stays)."""
    return {**copy.deepcopy(config), **copy.deepcopy(changes)}


def merged_training(training: TrainingConfig, settings: dict) -> TrainingConfig:
    """set_training's new settings (checked as a file's "training" section is). A new optimizer
    without a learning rate takes that optimizer's Keras default."""
    values = {**training.to_dict(), **settings}
    if "optimizer" in settings and "learning_rate" not in settings:
        del values["learning_rate"]
    return TrainingConfig.from_dict(values)


def apply_action(model, action: Action) -> ModelState:
    """The model after one action; ActionError (one line) when it cannot be done."""
    state = state_of(model)
    args, kind = action.args, action.action
    nodes = state._nodes()
    if kind == "set_config":
        row = state.row_named(args["layer"])
        nodes[row] = nodes[row].with_config(merged_config(nodes[row].config, args["config"]))
        return state._with_nodes(nodes)
    if kind == "insert_after":
        if args["class"] not in LAYER_CLASSES:
            raise ActionError(f"unknown layer class {args['class']!r}")
        row = -1 if args["layer"] == state.input_name else state.row_named(args["layer"])
        key, source = _NewKey(), (INPUT if row == -1 else nodes[row].key)
        out = [n.with_sources(key if s == source else s for s in n.sources) for n in nodes]
        out.insert(row + 1, _Node(key, args["class"], copy.deepcopy(args.get("config") or {}), (source,)))
        return state._with_nodes(out)
    if kind == "remove":
        return state._with_nodes(_remove(nodes, state.row_named(args["layer"])))
    if kind == "set_training":
        try:
            return replace(state, training=merged_training(state.training, args["settings"]))
        except ConfigError as exc:
            raise ActionError(str(exc)) from None
    if kind == "wrap_residual":
        return _wrap_residual(state, nodes, state.row_named(args["first"]), state.row_named(args["last"]))
    if kind == "set_input_shape":
        try:
            return replace(state, input_shape=check_input_shape(list(args["shape"])))
        except ConfigError as exc:
            raise ActionError(str(exc)) from None
    raise ActionError(f"unknown action {kind!r}")


def apply_actions(model, actions: Sequence[Action]) -> ModelState:
    """The model after the actions in order (show_me, or a predict step's change)."""
    state = state_of(model)
    for action in actions:
        state = apply_action(state, action)
    return state


# --- the document's graph edits, on nodes (gui/document_graph.py does the same for the window) ---


class _NewKey:
    """Identity of a block an action adds."""


@dataclass(frozen=True)
class _Missing:
    name: str


@dataclass(frozen=True)
class _Node:
    key: Any  # the row before the edit, or a _NewKey
    class_name: str
    config: dict
    sources: tuple

    def with_sources(self, sources) -> "_Node":
        return _Node(self.key, self.class_name, self.config, tuple(sources))

    def with_config(self, config: dict) -> "_Node":
        return _Node(self.key, self.class_name, config, self.sources)


def layer_names(entries: Sequence) -> list[str]:
    """Each entry's layer name as Sequential.add names them: its config's name when set and not
    taken by an earlier entry, else the next free snake_case name."""
    names: list[str] = []
    taken: set[str] = set()
    counters: dict[str, int] = {}
    for entry in entries:
        name = entry.config.get("name")
        if not isinstance(name, str) or not name or name in taken:
            name = unique_name(snake_case(entry.class_name), taken, counters)
        taken.add(name)
        names.append(name)
    return names


def _is_merge(class_name: str) -> bool:
    return bool(getattr(LAYER_CLASSES.get(class_name), "merge", False))


def _canonical(nodes: Sequence[_Node], input_name: str) -> list[Entry]:
    """Entries for the nodes in order: inbound only where a block is not fed by the one before,
    and every block named in an inbound carries its name in its config."""
    names = layer_names(nodes)
    row_of = {node.key: row for row, node in enumerate(nodes)}
    referenced: set[int] = set()
    inbounds = []
    for row, node in enumerate(nodes):
        default = (nodes[row - 1].key if row else INPUT,)
        if node.sources == default:
            inbounds.append(())
            continue
        written = []
        for source in node.sources:
            if source == INPUT:
                written.append(input_name)
            elif isinstance(source, _Missing):
                written.append(source.name)
            else:
                written.append(names[row_of[source]])
                referenced.add(row_of[source])
        inbounds.append(tuple(written))
    entries = []
    for row, node in enumerate(nodes):
        config = node.config
        if row in referenced and config.get("name") != names[row]:
            config = {"name": names[row], **{k: v for k, v in config.items() if k != "name"}}
        entries.append(Entry(node.class_name, config, inbounds[row]))
    return entries


def _name_new_blocks(nodes: Sequence[_Node], names_in_use: Sequence[str]) -> list[_Node]:
    taken = set(names_in_use) | {n.config["name"] for n in nodes if isinstance(n.config.get("name"), str)}
    out = []
    for node in nodes:
        if isinstance(node.key, _NewKey) and not node.config.get("name"):
            name = unique_name(snake_case(node.class_name), taken)
            taken.add(name)
            node = node.with_config({"name": name, **node.config})
        out.append(node)
    return out


def _remove(nodes: list[_Node], row: int) -> list[_Node]:
    gone = nodes[row]
    out = []
    for node in nodes:
        if node is gone:
            continue
        if gone.key in node.sources:
            if _is_merge(node.class_name):
                sources = [t for s in node.sources for t in (gone.sources if s == gone.key else (s,))]
                node = node.with_sources(dict.fromkeys(sources))
            else:
                node = node.with_sources(gone.sources[0] if s == gone.key else s for s in node.sources)
        out.append(node)
    return out


def _straight_run(nodes: Sequence[_Node], row: int) -> tuple[int, int]:
    consumers: dict = {}
    for r, node in enumerate(nodes):
        for s in dict.fromkeys(node.sources):
            consumers.setdefault(s, []).append(r)

    def linked(upper: int) -> bool:
        below = nodes[upper + 1]
        return (len(nodes[upper].sources) == 1 and below.sources == (nodes[upper].key,)
                and consumers.get(nodes[upper].key) == [upper + 1])

    if len(nodes[row].sources) != 1:
        return row, row
    first = last = row
    while first > 0 and len(nodes[first - 1].sources) == 1 and linked(first - 1):
        first -= 1
    while last + 1 < len(nodes) and linked(last):
        last += 1
    return first, last


def _wrap_residual(state: ModelState, nodes: list[_Node], first: int, last: int) -> ModelState:
    """Keras's residual block around rows first..last: Add(main path, skip) then Activation relu,
    with a 1x1 Conv2D projection on the skip when the shapes differ."""
    first, last = min(first, last), max(first, last)
    run_first, run_last = _straight_run(nodes, first)
    names = state.names
    if len(nodes[first].sources) != 1 or not run_first <= last <= run_last:
        raise ActionError(f"wrap_residual needs consecutive layers on one path from '{names[first]}' to "
                          f"'{names[last]}', each fed by the one before it")
    rows = state.report().rows
    shape_in, shape_out = rows[first].input_shape, rows[last].output_shape
    if shape_in is None or shape_out is None:
        raise ActionError(f"wrap_residual: the shapes of '{names[first]}' to '{names[last]}' are unknown "
                          "(an earlier layer has an error)")
    skip = nodes[first].sources[0]
    new_nodes = []
    if tuple(shape_in) != tuple(shape_out):
        projection = _projection(shape_in, shape_out, names[first], names[last])
        key = _NewKey()
        new_nodes.append(_Node(key, "Conv2D", projection, (skip,)))
        skip = key
    add_key, relu_key = _NewKey(), _NewKey()
    new_nodes.append(_Node(add_key, "Add", {}, (nodes[last].key, skip)))
    new_nodes.append(_Node(relu_key, "Activation", {"activation": "relu"}, (add_key,)))
    tail = nodes[last].key
    after = [n.with_sources(relu_key if s == tail else s for s in n.sources) for n in nodes[last + 1:]]
    return state._with_nodes([*nodes[:last + 1], *new_nodes, *after])


def _projection(shape_in, shape_out, first_name: str, last_name: str) -> dict:
    where = f"wrap_residual: '{first_name}' to '{last_name}' turns {tuple(shape_in)} into {tuple(shape_out)}"
    if len(shape_in) != 4 or len(shape_out) != 4:
        raise ActionError(f"{where}; a projected skip needs image-shaped input and output")
    strides = []
    for size_in, size_out in zip(shape_in[1:3], shape_out[1:3]):
        stride = -(-size_in // size_out)
        if stride < 1 or -(-size_in // stride) != size_out:
            raise ActionError(f"{where}; no 1x1 convolution stride maps {size_in} to {size_out} on the skip")
        strides.append(stride)
    config: dict = {"filters": int(shape_out[3]), "kernel_size": 1}
    if strides != [1, 1]:
        config["strides"] = strides[0] if strides[0] == strides[1] else strides
    return config


class _Rejected(Layer):
    """A block whose config its class rejected: inference fails with that message."""

    def __init__(self, class_name: str, name: str, message: str):
        super().__init__(name=name)
        self.class_name = class_name
        self.merge = _is_merge(class_name)
        self.message = message

    def infer(self, input_shape, field=None, **kwargs):  # noqa: ARG002 - Layer.infer's signature
        raise ConfigError(self.message)


__all__ = ["ModelState", "Entry", "ActionError", "state_of", "apply_action", "apply_actions", "merged_config",
           "merged_training", "layer_names"]
