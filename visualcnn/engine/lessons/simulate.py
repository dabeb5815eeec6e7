"""A lesson's model as it stands at each step, and the actions of show_me / change on it.

The window edits a PipelineDocument (gui/document.py); the checker and the grader have no
window, so they replay the same edits here on plain data: the input shape, the layer
entries (class_name, config, inbound names: the document's LayerEntry form) and the
training settings. Each action is the document's edit of the same name, through the same
functions (engine/pipeline_edits.py: insert_after, remove, set_config, wrap_residual,
edited_entries), so blocks are named alike, because a later step refers to what earlier
actions made by name:

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

from .. import pipeline_edits as edits
from ..analysis import PipelineReport, analyse_graph, check_input_shape
from ..layers import LAYER_CLASSES, ConfigError, Layer
from ..pipeline_edits import EditRefused, LayerEntry, layer_names
from ..pipeline_layers import build_layers, entries_from_model
from ..training_config import TrainingConfig
from .format import Action

DEFAULT_INPUT_NAME = "input_layer"


class ActionError(ConfigError):
    """An action that cannot be performed on the model as it stands (one line)."""


# One block, as the document holds it: class name, config (engine JSON) and the names of the
# blocks feeding it (empty: the entry before it, or the input for the first).
Entry = LayerEntry


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
        return build_layers(self.entries, self.names)

    def inbound(self) -> tuple[tuple[int, ...], ...]:
        """Row indices feeding each row (-1: the input; a missing name points past the end, which
        the analysis reports as a block that does not exist)."""
        return edits.source_indices(self._nodes())

    def report(self) -> PipelineReport:
        """The engine's analysis: shapes, parameters with derivations, receptive fields, MACs."""
        return analyse_graph(self.input_shape, self.layers(), self.inbound(), self.input_name)

    # --- building -------------------------------------------------------------------------------

    @classmethod
    def from_model(cls, model, training: TrainingConfig | None = None) -> "ModelState":
        """The state of an engine model (Sequential or graph Model), as the document loads it."""
        input_name = getattr(model, "input_name", None) or DEFAULT_INPUT_NAME
        return cls(tuple(model.input_shape), tuple(entries_from_model(model)), training or TrainingConfig(),
                   input_name, getattr(model, "name", "sequential"))

    @classmethod
    def from_file(cls, path) -> "ModelState":
        from ..model_io import load_model_file

        model_file = load_model_file(path)
        return cls.from_model(model_file.model, model_file.training)

    def _nodes(self) -> list[edits.Node]:
        return edits.graph_of(self.entries, self.names, self.input_name)

    def _with_nodes(self, nodes: list[edits.Node]) -> "ModelState":
        """The state whose entries are `nodes` in order, named and linked as the document does."""
        _, entries = edits.edited_entries(nodes, self.names, self.input_name)
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
        return state._with_nodes(edits.set_config(nodes, row, merged_config(nodes[row].config, args["config"])))
    if kind == "insert_after":
        if args["class"] not in LAYER_CLASSES:
            raise ActionError(f"unknown layer class {args['class']!r}")
        row = -1 if args["layer"] == state.input_name else state.row_named(args["layer"])
        out, _ = edits.insert_after(nodes, row, args["class"], args.get("config") or {})
        return state._with_nodes(out)
    if kind == "remove":
        return state._with_nodes(edits.remove(nodes, state.row_named(args["layer"])))
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


# --- wrap_residual: the document's edit, with the lesson checker's messages ---------------------


def _wrap_residual(state: ModelState, nodes: list[edits.Node], first: int, last: int) -> ModelState:
    """Keras's residual block around rows first..last (edits.wrap_residual: Add(main path, skip)
    then Activation relu, a 1x1 Conv2D projection on the skip when the shapes differ). The
    selection is checked here first so a lesson's author reads the layer names, not the
    window's 'select a straight run'."""
    first, last = min(first, last), max(first, last)
    run_first, run_last = edits.straight_run(nodes, first)
    names = state.names
    if len(nodes[first].sources) != 1 or not run_first <= last <= run_last:
        raise ActionError(f"wrap_residual needs consecutive layers on one path from '{names[first]}' to "
                          f"'{names[last]}', each fed by the one before it")
    rows = state.report().rows
    shape_in, shape_out = rows[first].input_shape, rows[last].output_shape
    if shape_in is None or shape_out is None:
        raise ActionError(f"wrap_residual: the shapes of '{names[first]}' to '{names[last]}' are unknown "
                          "(an earlier layer has an error)")
    try:
        out, _ = edits.wrap_residual(nodes, names, first, last, shape_in, shape_out, state.input_name)
    except EditRefused as exc:
        raise ActionError(f"wrap_residual: {exc}") from None
    return state._with_nodes(out)


__all__ = ["ModelState", "Entry", "ActionError", "state_of", "apply_action", "apply_actions", "merged_config",
           "merged_training", "layer_names"]
