"""The pipeline being edited: the single source of truth of the builder window.

A QObject (QtCore only, so its tests need only a QCoreApplication) holding the input
shape and an ordered list of (class_name, config) entries, configs exactly as the engine
accepts them. It emits past-tense signals only on real change and keeps the engine's
`PipelineReport` for the current pipeline, recomputed on every change (pure arithmetic,
well under a millisecond for a classroom-sized network).

Invalid configs stay representable: a config the layer class itself rejects (strides
with dilation, a negative filter count) is analysed as a block that fails with the
engine's message, so the window shows it red instead of refusing the edit.

The training settings (a TrainingConfig) belong to the document too: they are saved
with the pipeline, edited through commands and only mirrored by the Train tab's widgets.

Trained weights stay attached while every layer's weight shapes are unchanged (a
Dropout rate, an activation); an edit that changes a shape drops them, says why
(`weights_dropped`), and the edit's undo brings them back.

Views never call the mutating methods directly; every user edit is a QUndoCommand
(see commands.py) that does.
"""

from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Sequence

from PySide6.QtCore import QObject, Signal

from ..engine.analysis import PipelineReport, analyse, check_input_shape, weight_layout
from ..engine.layers import LAYER_CLASSES, ConfigError, Layer, layer_from_config, snake_case
from ..engine.model import unique_name
from ..engine.model_io import FORMAT, VERSION, ModelFile, read_model_file
from ..engine.training_config import TrainingConfig

DEFAULT_INPUT_SHAPE = (28, 28, 1)
DEFAULT_NAME = "sequential"


@dataclass(frozen=True)
class LayerEntry:
    """One block of the pipeline: a Keras class name and its config (engine-acceptable JSON)."""

    class_name: str
    config: dict = field(default_factory=dict)

    def copy(self) -> "LayerEntry":
        return LayerEntry(self.class_name, copy.deepcopy(self.config))


class RejectedLayer(Layer):
    """Stands in for a layer whose config its class rejected; inference fails with that message."""

    def __init__(self, class_name: str, name: str | None, message: str):
        super().__init__(name=name)
        self.class_name = class_name
        cls = LAYER_CLASSES.get(class_name)
        self.family = cls.family if cls else "core"
        self.explanation = cls.explanation if cls else ""
        self.message = message

    def infer(self, input_shape, field=None):  # noqa: ARG002 - same signature as Layer.infer
        raise ConfigError(self.message)

    def describe(self) -> str:
        return "invalid settings"


def build_layers(entries: Sequence[LayerEntry]) -> list[Layer]:
    """Engine layers for the entries, named as Sequential.add would (conv2d, conv2d_1, ...).

    Never raises: a rejected config becomes a RejectedLayer carrying the engine's message.
    """
    layers: list[Layer] = []
    taken: set[str] = set()
    counters: dict[str, int] = {}  # keeps naming linear for huge files
    for entry in entries:
        config = dict(entry.config)
        name = config.get("name")
        if not isinstance(name, str) or not name or name in taken:
            name = unique_name(snake_case(entry.class_name), taken, counters)
        taken.add(name)
        config["name"] = name
        try:
            layer = layer_from_config(entry.class_name, config)
        except ConfigError as exc:
            layer = RejectedLayer(entry.class_name, name, str(exc))
        except TypeError as exc:  # a positional/keyword clash the class reports as TypeError
            layer = RejectedLayer(entry.class_name, name, f"{entry.class_name} '{name}': {exc}")
        layers.append(layer)
    return layers


def weight_shapes(report: PipelineReport) -> tuple | None:
    """What trained weights must fit: the engine's weight_layout (every weight array's layer
    type, name and shape, in order) and the names of the layers holding them (saved weights
    are keyed by layer name). None when the pipeline has an error (shapes unknown). Layers
    without weights are left out, so adding a Dropout or Flatten, or changing an
    activation, keeps the signature."""
    layout = weight_layout(report)
    if layout is None:
        return None
    return layout, tuple(row.name for row in report.rows if row.inference.weights)


def entry_from_layer(layer: Layer) -> LayerEntry:
    """A compact document entry for an engine layer (defaults dropped, as files store them)."""
    return LayerEntry(layer.class_name, layer.get_config(compact=True))


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

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._input_shape: tuple = DEFAULT_INPUT_SHAPE
        self._entries: list[LayerEntry] = []
        self.name = DEFAULT_NAME
        self.description = ""
        self._training: TrainingConfig | None = None  # None: the defaults, not written to files
        self.window: dict | None = None
        self._layers: list[Layer] = []
        self._report = analyse(self._input_shape, [])
        # Trained weights (the engine's encode_weights form) and the weight shapes they fit
        # (weight_shapes()). An edit that changes those shapes drops them; its undo restores them.
        self._weights: tuple[tuple, dict] | None = None
        self._undoing = False

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

    def structure_signature(self) -> str:
        """The input shape and layer configs as canonical text (the pipeline without settings)."""
        data = self.to_dict(include_weights=False)
        return json.dumps({"input_shape": data["input_shape"], "layers": data["layers"]}, sort_keys=True)

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

    def weights_state(self) -> tuple[tuple, dict] | None:
        """The raw (signature, weights) pair, for an undo command to restore."""
        return self._weights

    def restore_weights_state(self, state: tuple[tuple, dict] | None) -> None:
        if state is self._weights:
            return
        self._weights = state
        self.weights_changed.emit()

    def _drop_weights_if_shapes_changed(self, cause: str) -> None:
        """After an edit: weights that no longer fit are dropped, and the window told why."""
        if self._weights is None or self._weights[0] == self.weight_signature():
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
        """Insert at index (clamped to 0..len); returns the index used."""
        if class_name not in LAYER_CLASSES:
            raise ConfigError(f"unknown layer type {class_name!r}; VisualCNN knows {', '.join(LAYER_CLASSES)}")
        index = max(0, min(index, len(self._entries)))
        self._entries.insert(index, LayerEntry(class_name, copy.deepcopy(dict(config or {}))))
        self._reanalyse()
        self.layer_inserted.emit(index)
        self.report_updated.emit(self._report)
        self._drop_weights_if_shapes_changed(f"a {class_name} block was added as {self._name_at(index)}")
        return index

    def remove_layer(self, index: int) -> LayerEntry:
        name = self._name_at(index)
        entry = self._entries.pop(index)
        self._reanalyse()
        self.layer_removed.emit(index)
        self.report_updated.emit(self._report)
        self._drop_weights_if_shapes_changed(f"{name} was removed")
        return entry

    def set_layer_config(self, index: int, config: dict) -> bool:
        old = self._entries[index]
        if old.config == config:
            return False
        name = self._name_at(index)
        self._entries[index] = LayerEntry(old.class_name, copy.deepcopy(dict(config)))
        self._reanalyse()
        self.layer_changed.emit(index)
        self.report_updated.emit(self._report)
        changed = sorted(k for k in set(old.config) | set(config) if old.config.get(k) != config.get(k))
        self._drop_weights_if_shapes_changed(f"{name}'s {' and '.join(changed) or 'settings'} changed")
        return True

    def move_layer(self, source: int, target: int) -> bool:
        """Move the entry at source so that it ends at index target."""
        target = max(0, min(target, len(self._entries) - 1))
        if source == target:
            return False
        name = self._name_at(source)
        entry = self._entries.pop(source)
        self._entries.insert(target, entry)
        self._reanalyse()
        self.layer_moved.emit(source, target)
        self.report_updated.emit(self._report)
        self._drop_weights_if_shapes_changed(f"{name} was moved")
        return True

    def _name_at(self, index: int) -> str:
        layers = self._layers
        if 0 <= index < len(layers) and layers[index].name:
            return layers[index].name
        return self._entries[index].class_name if 0 <= index < len(self._entries) else "a block"

    def reset(self, input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE, entries: Sequence[LayerEntry] = (),
              name: str = DEFAULT_NAME, description: str = "", training: TrainingConfig | None = None,
              window: dict | None = None) -> None:
        self._input_shape = check_input_shape(list(input_shape))
        self._entries = [e.copy() for e in entries]
        self._weights = None
        self.name = name or DEFAULT_NAME
        self.description = description
        settings_before = self.training
        self._training = training
        self.window = window
        self._reanalyse()
        self.pipeline_reset.emit()
        self.report_updated.emit(self._report)
        self.weights_changed.emit()
        if self.training != settings_before:
            self.training_changed.emit(self.training)

    def _reanalyse(self) -> None:
        self._layers = build_layers(self._entries)
        self._report = analyse(self._input_shape, self._layers)

    # --- files -----------------------------------------------------------------

    def load_model_file(self, model_file: ModelFile) -> None:
        model = model_file.model
        self._weights = None
        self.reset(model.input_shape, [entry_from_layer(layer) for layer in model.layers], model.name,
                   model_file.description, model_file.training, model_file.window)
        if model_file.weights is not None:
            self.set_trained_weights(model_file.weights)

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
        layers = []
        for entry, built in zip(self._entries, self._layers):
            config = entry.config
            try:
                # Every block is saved with the name it shows (batch_normalization, conv2d_1), as
                # model_to_dict does, so the file names the same layers as its weights.
                layer = layer_from_config(entry.class_name, {**config, "name": config.get("name") or built.name})
                config = layer.get_config(compact=True)
            except (ConfigError, TypeError):
                config = copy.deepcopy(config)
            layers.append({"class_name": entry.class_name, "config": config})
        data["layers"] = layers
        if self._training is not None:
            data["training"] = self._training.to_dict()
        window = self.window if window is None else window
        if window:
            data["window"] = window
        if include_weights and self.trained_weights is not None:
            data["weights"] = self.trained_weights
        return data

    def to_json(self, window: dict | None = None) -> str:
        return json.dumps(self.to_dict(window), indent=2) + "\n"


__all__ = ["PipelineDocument", "LayerEntry", "RejectedLayer", "build_layers", "entry_from_layer",
           "DEFAULT_INPUT_SHAPE"]
