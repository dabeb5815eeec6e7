"""The pipeline being edited: the single source of truth of the builder window.

A QObject (QtCore only, so its tests need only a QCoreApplication) holding the input
shape and an ordered list of LayerEntry (class_name, config, inbound), configs exactly as
the engine accepts them. It emits past-tense signals only on real change and keeps the engine's
`PipelineReport` for the current pipeline, recomputed on every change (pure arithmetic,
well under a millisecond for a classroom-sized network).

Invalid configs stay representable: a config the layer class itself rejects (strides
with dilation, a negative filter count) is analysed as a block that fails with the
engine's message, so the window shows it red instead of refusing the edit.

The training settings (a TrainingConfig) belong to the document too: they are saved
with the pipeline, edited through commands and only mirrored by the Train tab's widgets.

Trained weights stay attached while every layer's weight shapes are unchanged (a
Dropout rate, an activation, a new link that changes no shape; a renamed block takes its
weights along); an edit that changes a shape drops them, says why (`weights_dropped`),
and the edit's undo brings them back.

The pipeline is a graph: each entry names the blocks feeding it (`LayerEntry.inbound`,
empty = the entry before it), entries stay in topological order and the last is the
output. A plain stack has no inbound names at all and behaves as it always did. Every
structural edit is worked out on nodes (engine/pipeline_edits.py) and applied as row-level steps
(remove, move, insert, set), each emitting its usual signal; the steps and their inverses
are kept in `last_edit` so an undo restores the exact entries, links and names.

Views never call the mutating methods directly; every user edit is a QUndoCommand
(see commands.py) that does.
"""

from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Sequence

from PySide6.QtCore import QObject, Signal

from ..engine.analysis import PipelineReport, analyse_graph, check_input_shape
from ..engine.layers import LAYER_CLASSES, ConfigError, Layer, layer_from_config
from ..engine.model import model_from_graph
from ..engine.model_io import FORMAT, VERSION, ModelFile, read_model_file
from ..engine.project_sections import SECTIONS
from ..engine.training_config import TrainingConfig
from ..engine import pipeline_edits as edits
from ..engine.pipeline_edits import EditRefused, LayerEntry, layer_names
from ..engine.pipeline_layers import RejectedLayer, build_layers, entries_from_model, entry_from_layer

DEFAULT_INPUT_SHAPE = (28, 28, 1)
DEFAULT_NAME = "sequential"
DEFAULT_INPUT_NAME = "input_layer"


@dataclass(frozen=True)
class Edit:
    """One document edit as row-level steps, and the steps that undo it exactly."""

    forward: tuple
    inverse: tuple
    cause: str


def weight_shapes(report: PipelineReport) -> tuple | None:
    """What trained weights must fit: every weight array's layer type, name and shape, in
    order (as the engine's weight_layout), and the names of the layers holding them (saved
    weights are keyed by layer name). None when a shape is unknown. Layers without weights
    are left out, so adding a Dropout or Flatten, or changing an activation, keeps it."""
    # Not weight_layout(), which is None for any error: a block whose output is unused is an
    # error, yet every shape is known, and a link being redrawn must not drop the weights.
    if any(row.inference is None for row in report.rows):
        return None
    layout = tuple((row.layer.class_name, spec.name, tuple(spec.shape))
                   for row in report.rows for spec in row.inference.weights)
    return layout, tuple(row.name for row in report.rows if row.inference.weights)


class PipelineDocument(QObject):
    """Input shape + ordered layer entries, with the engine's live report."""

    layer_inserted = Signal(int)          # index
    layer_removed = Signal(int)           # index it had
    layer_changed = Signal(int)           # index whose config changed
    layer_moved = Signal(int, int)        # from index, to index (final position)
    input_shape_changed = Signal(tuple)
    pipeline_reset = Signal()             # everything replaced (new, open, preset)
    report_updated = Signal(object)       # PipelineReport, after every change above
    weights_changed = Signal()            # trained weights set, replaced or dropped
    weights_dropped = Signal(str)         # an edit changed a weight shape: why ("conv2d's filters changed")
    training_changed = Signal(object)     # TrainingConfig, after a real change of a setting
    graph_changed = Signal()              # the links changed (after the rows' signals, before report_updated)
    section_changed = Signal(str)         # a project section (dataset, resume, runs, teacher) was set or cleared

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._input_shape: tuple = DEFAULT_INPUT_SHAPE
        self._entries: list[LayerEntry] = []
        self._input_name = DEFAULT_INPUT_NAME
        self._names: list[str] = []
        self._nodes: list[edits.Node] = []
        self._inbound: tuple[tuple[int, ...], ...] = ()
        self.last_edit: Edit | None = None  # the steps of the last edit (None: it changed nothing)
        self.name = DEFAULT_NAME
        self.description = ""
        self._training: TrainingConfig | None = None  # None: the defaults, not written to files
        self.window: dict | None = None
        # The optional project sections (engine/project_sections.py), kept as their owners
        # checked them and written back as they are.
        self._sections: dict = {}
        self._layers: list[Layer] = []
        self._report = analyse_graph(self._input_shape, [], [], self._input_name)
        # Trained weights (the engine's encode_weights form) and the weight shapes they fit
        # (weight_shapes()). An edit that changes those shapes drops them; its undo restores them.
        self._weights: tuple[tuple, dict] | None = None
        self._undoing = False
        # The last run's measured ms per layer and the structure_signature() they were taken
        # on: any edit of the structure makes them stale (not saved with the project).
        self._timings: tuple[str, object] | None = None

    # --- reading ---------------------------------------------------------------

    @property
    def input_shape(self) -> tuple:
        return self._input_shape

    @property
    def entries(self) -> tuple[LayerEntry, ...]:
        return tuple(e.copy() for e in self._entries)

    def entry(self, index: int) -> LayerEntry:
        return self._entries[index].copy()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The engine layers of the last analysis (named, possibly RejectedLayer)."""
        return tuple(self._layers)

    @property
    def report(self) -> PipelineReport:
        return self._report

    # --- the graph (rows are indices into entries; -1 is the model input) --------------

    @property
    def input_name(self) -> str:
        return self._input_name

    @property
    def names(self) -> tuple[str, ...]:
        """Each row's layer name (its config's, or the automatic one such as conv2d_1)."""
        return tuple(self._names)

    def row_named(self, name: str) -> int:
        """The row of the block named `name`, -1 for the input; ValueError when none is."""
        if name == self._input_name:
            return -1
        return self._names.index(name)

    @property
    def graph_inbound(self) -> tuple[tuple[int, ...], ...]:
        """Every row's sources (row indices, -1 = the input), as the analysis reads them."""
        return self._inbound

    def inbound(self, row: int) -> tuple[int, ...]:
        return self._inbound[row]

    def consumers(self, row: int) -> tuple[int, ...]:
        """The rows fed by `row` (-1: the input), top to bottom."""
        return tuple(i for i, sources in enumerate(self._inbound) if row in sources)

    @property
    def is_linear(self) -> bool:
        """A plain stack: every block fed by the one before it (no inbound names at all)."""
        return not any(entry.inbound for entry in self._entries)

    def straight_run(self, row: int) -> tuple[int, int]:
        """The rows (first, last) a block can be moved between: its chain of single-input blocks."""
        return edits.straight_run(self._nodes, row)

    def connect_problem(self, source: int, target: int) -> str | None:
        return self._problem(edits.check_connect, self._nodes, self._names, source, target, self._input_name)

    def disconnect_problem(self, source: int, target: int) -> str | None:
        return self._problem(edits.disconnect, self._nodes, self._names, source, target, self._input_name)

    def merge_problem(self, source: int, target: int, class_name: str) -> str | None:
        return self._problem(edits.insert_merge, self._nodes, self._names, source, target, class_name, {},
                             self._input_name)

    def move_problem(self, source: int, target: int) -> str | None:
        return self._problem(edits.move, self._nodes, self._names, source, max(0, min(target, len(self) - 1)))

    def wrap_problem(self, first: int, last: int) -> str | None:
        return self._problem(self._wrapped, first, last)

    @staticmethod
    def _problem(edit, *args) -> str | None:
        try:
            edit(*args)
        except EditRefused as exc:
            return str(exc)
        return None

    def build_model(self):
        """A fresh, untrained engine model of the pipeline (a Sequential for a plain stack);
        ConfigError when the pipeline has an error."""
        self._report.raise_for_error()
        layers = [layer_from_config(entry.class_name, {**entry.config, "name": name})
                  for entry, name in zip(self._entries, self._names)]
        return model_from_graph(self.name, self._input_shape, layers, self._inbound, input_name=self._input_name,
                                sequential=self.is_linear)

    def structure_signature(self) -> str:
        """The input, layer configs and links as canonical text (the pipeline without settings)."""
        data = self.to_dict(include_weights=False)
        return json.dumps({key: data[key] for key in ("input_shape", "input_name", "layers") if key in data},
                          sort_keys=True)

    def weight_signature(self) -> tuple | None:
        """What trained weights must fit: weight_shapes() of the current report."""
        return weight_shapes(self._report)

    @property
    def trained_weights(self) -> dict | None:
        """Weights trained for the current pipeline's weight shapes, or None."""
        if self._weights is None or self._weights[0] is None or self._weights[0] != self.weight_signature():
            return None
        return self._weights[1]

    def set_trained_weights(self, weights: dict | None) -> None:
        """Attach weights trained for the current pipeline (None drops them)."""
        self._weights = None if weights is None else (self.weight_signature(), weights)
        self.weights_changed.emit()

    @property
    def layer_timings(self):
        """The last run's LayerTimings (training_worker) when the pipeline still has the
        structure they were measured on, else None."""
        if self._timings is None or self._timings[0] != self.structure_signature():
            return None
        return self._timings[1]

    def set_layer_timings(self, timings) -> None:
        """Keep a run's measured ms per layer, for the current structure (None drops them)."""
        self._timings = None if timings is None else (self.structure_signature(), timings)

    def weights_state(self) -> tuple[tuple, dict] | None:
        """The raw (signature, weights) pair, for an undo command to restore."""
        return self._weights

    def restore_weights_state(self, state: tuple[tuple, dict] | None) -> None:
        if state is self._weights:
            return
        self._weights = state
        self.weights_changed.emit()

    def _drop_weights_if_shapes_changed(self, cause: str, same_blocks: bool = False) -> None:
        """After an edit: weights that no longer fit are dropped, and the window told why.

        same_blocks: the edit kept every block in its row (only configs and links changed), so
        when just names differ (a rename) the weights follow their blocks to the new names."""
        signature = self.weight_signature()
        if self._weights is None or self._weights[0] == signature:
            return
        before = self._weights[0]
        if same_blocks and before is not None and signature is not None and before[0] == signature[0]:
            renamed = dict(zip(before[1], signature[1]))
            weights = self._weights[1]
            self._weights = (signature, {**weights, "layers": {renamed.get(name, name): arrays
                                                               for name, arrays in weights["layers"].items()}})
            self.weights_changed.emit()
            return
        self._weights = None
        self.weights_changed.emit()
        if not self._undoing:  # an undo puts its own weights back right after: nothing to tell
            self.weights_dropped.emit(cause)

    @contextmanager
    def undoing(self, weights_state: tuple[tuple, dict] | None):
        """For a command's undo(): revert the edit inside, then the weights it had before."""
        self._undoing = True
        try:
            yield
        finally:
            self._undoing = False
            self.restore_weights_state(weights_state)

    def memory_estimate(self, batch_size: int | None = None):
        """engine.memory.estimate_memory of the current pipeline at the settings' batch size
        and optimizer (pure arithmetic); None while the pipeline has an error."""
        from ..engine.memory import estimate_memory

        if self._report.error:
            return None
        config = self.training
        return estimate_memory(self._report, int(batch_size or config.batch_size), optimizer=config.optimizer,
                               momentum=config.momentum)

    # --- training settings -------------------------------------------------------

    @property
    def training(self) -> TrainingConfig:
        """The training settings (the defaults until a file or an edit sets them)."""
        return self._training if self._training is not None else TrainingConfig()

    @training.setter
    def training(self, config: TrainingConfig | None) -> None:
        self.set_training(config)

    @property
    def has_training_settings(self) -> bool:
        """True when the settings were set (by the file or an edit) and are saved with it."""
        return self._training is not None

    def set_training(self, config: TrainingConfig | None) -> bool:
        """Replace the training settings; True (and training_changed) on a real change."""
        if config is not None and not isinstance(config, TrainingConfig):
            raise TypeError(f"training settings must be a TrainingConfig, received {type(config).__name__}")
        before = self.training
        self._training = config
        if self.training == before:
            return False
        self.training_changed.emit(self.training)
        return True

    # --- editing (called by commands) -----------------------------------------

    def set_input_shape(self, shape: Sequence[int]) -> bool:
        shape = check_input_shape(list(shape))
        if shape == self._input_shape:
            return False
        self._input_shape = shape
        self._reanalyse()
        self.input_shape_changed.emit(shape)
        self.report_updated.emit(self._report)
        self._drop_weights_if_shapes_changed("the input shape changed")
        return True

    def insert_layer(self, index: int, class_name: str, config: dict | None = None) -> int:
        """Insert at index (clamped to 0..len): the block goes right after row index - 1 (the
        input for 0) and takes over its consumers. Returns the index used."""
        self._check_class(class_name)
        index = max(0, min(index, len(self._entries)))
        return self.insert_after(index - 1, class_name, config)

    def insert_after(self, row: int, class_name: str, config: dict | None = None) -> int:
        """A new block fed by `row` (-1: the input) right after it, taking over its consumers."""
        self._check_class(class_name)
        nodes, key = edits.insert_after(self._nodes, row, class_name, dict(config or {}))
        index = self._index_of(nodes, key)
        self._apply(nodes, lambda: f"a {class_name} block was added as {self._name_at(index)}")
        return index

    def remove_layer(self, index: int) -> LayerEntry:
        """Delete a block; its consumers take its input."""
        name, entry = self._name_at(index), self._entries[index].copy()
        self._apply(edits.remove(self._nodes, index), f"{name} was removed")
        return entry

    def set_layer_config(self, index: int, config: dict) -> bool:
        """Replace a block's config; a new name is written into every inbound naming the block."""
        old = self._entries[index]
        if old.config == config:
            self.last_edit = None
            return False
        name = self._name_at(index)
        changed = sorted(k for k in set(old.config) | set(config) if old.config.get(k) != config.get(k))
        return self._apply(edits.set_config(self._nodes, index, dict(config)),
                           f"{name}'s {' and '.join(changed) or 'settings'} changed")

    def move_layer(self, source: int, target: int) -> bool:
        """Move the entry at source so that it ends at index target (within its straight run)."""
        target = max(0, min(target, len(self._entries) - 1))
        if source == target:
            self.last_edit = None
            return False
        name = self._name_at(source)
        return self._apply(edits.move(self._nodes, self._names, source, target), f"{name} was moved",
                           moving=(source,))

    def connect(self, source: int, target: int) -> bool:
        """Feed target with source's output (a merge gains an input; another block's input is
        replaced); rows are reordered when source comes after target."""
        src, dst = self._source_name(source), self._name_at(target)
        nodes = edits.connect(self._nodes, self._names, source, target, self._input_name)
        return self._apply(nodes, f"'{src}' was connected to '{dst}'", detail=True)

    def disconnect(self, source: int, target: int) -> bool:
        src, dst = self._source_name(source), self._name_at(target)
        nodes = edits.disconnect(self._nodes, self._names, source, target, self._input_name)
        return self._apply(nodes, f"'{src}' no longer feeds '{dst}'", detail=True)

    def insert_merge(self, source: int, target: int, class_name: str, config: dict | None = None) -> int:
        """A block on the link source -> target only (a merge's first input; any class); its row."""
        self._check_class(class_name)
        nodes, key = edits.insert_merge(self._nodes, self._names, source, target, class_name,
                                        dict(config or {}), self._input_name)
        index = self._index_of(nodes, key)
        self._apply(nodes, lambda: f"a {class_name} block was added as {self._name_at(index)}", detail=True)
        return index

    def wrap_residual(self, first: int, last: int) -> tuple[int, ...]:
        """Keras's residual block around rows first..last (a straight run): the skip, an Add
        after `last` and a relu Activation; a 1x1 Conv2D projection on the skip when the
        shapes differ. Returns the rows of the added blocks."""
        nodes, keys = self._wrapped(first, last)
        rows = tuple(self._index_of(nodes, key) for key in keys)
        names = f"{self._name_at(min(first, last))} to {self._name_at(max(first, last))}"
        self._apply(nodes, f"{names} were wrapped in a residual block", detail=True)
        return rows

    def _wrapped(self, first: int, last: int):
        first, last = min(first, last), max(first, last)
        rows = self._report.rows
        shape_in = rows[first].input_shape if 0 <= first < len(rows) else None
        shape_out = rows[last].output_shape if 0 <= last < len(rows) else None
        return edits.wrap_residual(self._nodes, self._names, first, last, shape_in, shape_out, self._input_name)

    @staticmethod
    def _check_class(class_name: str) -> None:
        if class_name not in LAYER_CLASSES:
            raise ConfigError(f"unknown layer type {class_name!r}; VisualCNN knows {', '.join(LAYER_CLASSES)}")

    @staticmethod
    def _index_of(nodes, key) -> int:
        return next(i for i, node in enumerate(nodes) if node.key is key)

    def _source_name(self, row: int) -> str:
        return self._input_name if row == -1 else self._name_at(row)

    def _name_at(self, index: int) -> str:
        layers = self._layers
        if 0 <= index < len(layers) and layers[index].name:
            return layers[index].name
        return self._entries[index].class_name if 0 <= index < len(self._entries) else "a block"

    # --- applying edits as row-level steps ----------------------------------------------

    def _apply(self, nodes, cause, detail: bool = False, moving=()) -> bool:
        """Make the entries those of `nodes` (in order), step by step; record the edit.

        cause: why weights would be dropped (a callable is read after the edit, when the new
        block has its name); detail: add which weight changed shape (for links, whose effect
        on a Dense far below is not obvious)."""
        nodes, target = edits.edited_entries(nodes, self._names, self._input_name)
        steps = edits.plan_steps(self._entries, nodes, target, moving)
        if not steps:
            self.last_edit = None
            return False
        self.last_edit = self.replay(steps, cause, detail)
        return True

    def replay(self, steps, cause, detail: bool = False) -> Edit:
        """Apply row-level steps, each followed by its signal; then graph_changed (when links
        changed), report_updated and the weights check. Returns the edit with its inverse."""
        links_before, shapes_before = self._links(), _weight_shapes_by_layer(self._report)
        inverse = []
        for step in steps:
            kind, row = step[0], step[1]
            if kind == "insert":
                self._entries.insert(row, step[2].copy())
                inverse.append(("remove", row))
            elif kind == "remove":
                inverse.append(("insert", row, self._entries.pop(row)))
            elif kind == "move":
                self._entries.insert(step[2], self._entries.pop(row))
                inverse.append(("move", step[2], row))
            else:
                inverse.append(("set", row, self._entries[row]))
                self._entries[row] = step[2].copy()
            self._reanalyse()
            if kind == "insert":
                self.layer_inserted.emit(row)
            elif kind == "remove":
                self.layer_removed.emit(row)
            elif kind == "move":
                self.layer_moved.emit(row, step[2])
            else:
                self.layer_changed.emit(row)
        if self._links() != links_before:
            self.graph_changed.emit()
        self.report_updated.emit(self._report)
        cause = cause() if callable(cause) else cause
        if detail:
            cause += _weights_detail(shapes_before, _weight_shapes_by_layer(self._report))
        self._drop_weights_if_shapes_changed(cause, same_blocks=all(step[0] == "set" for step in steps))
        return Edit(tuple(steps), tuple(reversed(inverse)), cause)

    def _links(self) -> tuple:
        return self._inbound, tuple(entry.inbound for entry in self._entries)

    def reset(self, input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE, entries: Sequence[LayerEntry] = (),
              name: str = DEFAULT_NAME, description: str = "", training: TrainingConfig | None = None,
              window: dict | None = None, input_name: str = DEFAULT_INPUT_NAME, sections: dict | None = None) -> None:
        self._input_shape = check_input_shape(list(input_shape))
        self._input_name = input_name or DEFAULT_INPUT_NAME
        entries = [e.copy() for e in entries]
        # Canonical form (inbound only where needed, referenced names pinned), as edits keep it.
        self._entries = edits.canonical_entries(edits.graph_of(entries, layer_names(entries), self._input_name),
                                                self._input_name)
        self._weights = None
        self.last_edit = None
        self.name = name or DEFAULT_NAME
        self.description = description
        settings_before = self.training
        self._training = training
        self.window = window
        changed_sections = set(self._sections) | set(sections or {})
        self._sections = dict(sections or {})
        self._reanalyse()
        self.pipeline_reset.emit()
        self.report_updated.emit(self._report)
        self.weights_changed.emit()
        if self.training != settings_before:
            self.training_changed.emit(self.training)
        for key in sorted(changed_sections):
            self.section_changed.emit(key)

    def _reanalyse(self) -> None:
        self._names = layer_names(self._entries)
        self._nodes = edits.graph_of(self._entries, self._names, self._input_name)
        self._inbound = edits.source_indices(self._nodes)
        self._layers = build_layers(self._entries, self._names)
        self._report = analyse_graph(self._input_shape, self._layers, self._inbound, self._input_name)

    # --- files -----------------------------------------------------------------

    def load_model_file(self, model_file: ModelFile) -> None:
        model = model_file.model
        self._weights = None
        self.reset(model.input_shape, entries_from_model(model), model.name, model_file.description,
                   model_file.training, model_file.window, model.input_name, model_file.sections)
        if model_file.weights is not None:
            self.set_trained_weights(model_file.weights)

    # --- project sections (dataset, resume, runs, teacher) ---------------------------

    def section(self, key: str):
        """The project's section `key` (engine/project_sections.SECTIONS), or None."""
        return self._sections.get(key)

    @property
    def sections(self) -> dict:
        return dict(self._sections)

    def set_section(self, key: str, value) -> None:
        """Set (or, with None, clear) a section; its owner module checked value already."""
        if key not in SECTIONS:
            raise KeyError(f"unknown project section {key!r}; known: {', '.join(SECTIONS)}")
        if value is None:
            if self._sections.pop(key, None) is None:
                return
        else:
            self._sections[key] = value
        self.section_changed.emit(key)

    def load_text(self, text: str | bytes) -> None:
        """Parse a model file first; only a file that parses replaces the pipeline."""
        self.load_model_file(read_model_file(text))

    def to_dict(self, window: dict | None = None, include_weights: bool = True) -> dict:
        """The foundation's model file (engine model_to_dict form), plus window-only settings.

        Entries the engine accepts are written compact (defaults dropped) exactly as
        model_to_dict writes them; a rejected config is written as the user left it.
        """
        data: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": self.name}
        if self.description:
            data["description"] = self.description
        data["input_shape"] = list(self._input_shape)
        if self._input_name != DEFAULT_INPUT_NAME:
            data["input_name"] = self._input_name
        layers = []
        for entry, name in zip(self._entries, self._names):
            config = entry.config
            try:
                # Every block is saved with the name it shows (batch_normalization, conv2d_1), as
                # model_to_dict does, so the file names the same layers as its weights.
                layer = layer_from_config(entry.class_name, {**config, "name": name})
                config = layer.get_config(compact=True)
            except (ConfigError, TypeError):
                config = copy.deepcopy(config)
            item = {"class_name": entry.class_name, "config": config}
            if entry.inbound:  # only where a block is not fed by the one before (the graph form)
                item["inbound"] = list(entry.inbound)
            layers.append(item)
        data["layers"] = layers
        if self._training is not None:
            data["training"] = self._training.to_dict()
        window = self.window if window is None else window
        if window:
            data["window"] = window
        if include_weights and self.trained_weights is not None:
            data["weights"] = self.trained_weights
        for key in SECTIONS:
            if self._sections.get(key) is not None:
                data[key] = self._sections[key]
        return data

    def to_json(self, window: dict | None = None) -> str:
        return json.dumps(self.to_dict(window), indent=2) + "\n"


def _weight_shapes_by_layer(report: PipelineReport) -> dict:
    """{layer name: ((weight name, shape), ...)} for the rows whose shapes are known."""
    return {row.name: tuple((spec.name, tuple(spec.shape)) for spec in row.inference.weights)
            for row in report.rows if row.inference is not None and row.inference.weights}


def _weights_detail(before: dict, after: dict) -> str:
    """", which changed dense's kernel from (800, 10) to (1600, 10)" for the first weight whose
    shape an edit changed, or ", which added conv2d_2's weights" for a new layer that has some;
    empty when neither happened."""
    for name, specs in after.items():
        if name not in before:
            return f", which added {name}'s weights"
        for (spec, shape), (spec_before, shape_before) in zip(specs, before[name]):
            if spec == spec_before and shape != shape_before:
                return f", which changed {name}'s {spec} from {shape_before} to {shape}"
    return ""


__all__ = ["PipelineDocument", "LayerEntry", "RejectedLayer", "Edit", "EditRefused", "build_layers",
           "entry_from_layer", "entries_from_model", "DEFAULT_INPUT_SHAPE", "DEFAULT_INPUT_NAME"]
