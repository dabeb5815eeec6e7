"""One QUndoCommand per user edit; each calls PipelineDocument methods and nothing else.

Consecutive edits of the same argument of the same block made within MERGE_SECONDS of
each other (typing 4 then 40 in a spin box) merge into one undo step, as do input-shape
and training-setting edits; a deliberate later edit of the same field stays a step of its own.

An edit of the pipeline may drop the trained weights (a weight shape changed); its undo
puts back the weights the project had before the edit (PipelineDocument.undoing).
"""

from __future__ import annotations

import time

from PySide6.QtGui import QUndoCommand

from ..engine.layers import LAYER_CLASSES, ConfigError
from ..engine.training_config import TrainingConfig
from .document import LayerEntry, PipelineDocument

_SET_CONFIG_ID = 1001
_SET_INPUT_ID = 1002
_SET_TRAINING_ID = 1003
_SET_WEIGHTS_ID = 1004
MERGE_SECONDS = 1.0


def _typing_burst(earlier: float, later: float) -> bool:
    return later - earlier <= MERGE_SECONDS


def _absorb(command: QUndoCommand, other: QUndoCommand) -> bool:
    """Merge a later edit of the same field typed within MERGE_SECONDS into `command`.

    Both carry _old, _new and _edited_at; an edit typed back to the old value vanishes."""
    if not _typing_burst(command._edited_at, other._edited_at):
        return False
    command._new = other._new
    command._edited_at = other._edited_at
    if command._new == command._old:
        command.setObsolete(True)  # deleted without an undo(): put back the weights the edit dropped
        command._document.restore_weights_state(command._weights)
    return True


def _label(document: PipelineDocument, index: int) -> str:
    layers = document.layers
    return layers[index].name if 0 <= index < len(layers) and layers[index].name else document.entry(index).class_name


class InsertLayerCommand(QUndoCommand):
    def __init__(self, document: PipelineDocument, index: int, class_name: str, config: dict | None = None,
                 text: str | None = None):
        if class_name not in LAYER_CLASSES:  # refuse before the stack runs redo()
            raise ConfigError(f"unknown layer type {class_name!r}; VisualCNN knows {', '.join(LAYER_CLASSES)}")
        super().__init__(text or f"Add {class_name}")
        self._document = document
        self._index = max(0, min(index, len(document)))
        self._entry = LayerEntry(class_name, dict(config or {}))

    @property
    def index(self) -> int:
        return self._index

    def redo(self):
        self._weights = self._document.weights_state()
        self._document.insert_layer(self._index, self._entry.class_name, self._entry.config)

    def undo(self):
        with self._document.undoing(self._weights):
            self._document.remove_layer(self._index)


class RemoveLayerCommand(QUndoCommand):
    def __init__(self, document: PipelineDocument, index: int):
        super().__init__(f"Delete {_label(document, index)}")
        self._document = document
        self._index = index
        self._entry = document.entry(index)

    def redo(self):
        self._weights = self._document.weights_state()
        self._document.remove_layer(self._index)

    def undo(self):
        with self._document.undoing(self._weights):
            self._document.insert_layer(self._index, self._entry.class_name, self._entry.config)


def duplicate_layer_command(document: PipelineDocument, index: int) -> InsertLayerCommand:
    """Insert a copy right after the block; the copy gets its own default name."""
    entry = document.entry(index)
    config = {k: v for k, v in entry.config.items() if k != "name"}
    return InsertLayerCommand(document, index + 1, entry.class_name, config,
                              text=f"Duplicate {_label(document, index)}")


class MoveLayerCommand(QUndoCommand):
    def __init__(self, document: PipelineDocument, source: int, target: int):
        super().__init__(f"Move {_label(document, source)}")
        self._document = document
        self._source = source
        self._target = max(0, min(target, len(document) - 1))

    @property
    def target(self) -> int:
        return self._target

    def redo(self):
        self._weights = self._document.weights_state()
        self._document.move_layer(self._source, self._target)

    def undo(self):
        with self._document.undoing(self._weights):
            self._document.move_layer(self._target, self._source)


class SetLayerConfigCommand(QUndoCommand):
    """Replace one block's config. `key` names the argument edited, for merging."""

    def __init__(self, document: PipelineDocument, index: int, config: dict, key: str | None = None):
        super().__init__(f"Change {key + ' of ' if key else ''}{_label(document, index)}")
        self._document = document
        self._index = index
        self._old = document.entry(index).config
        self._new = dict(config)
        self._key = key
        self._edited_at = time.monotonic()

    def id(self) -> int:
        return _SET_CONFIG_ID if self._key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetLayerConfigCommand) or (other._index, other._key) != (self._index, self._key):
            return False
        return _absorb(self, other)

    def redo(self):
        self._weights = self._document.weights_state()
        self._document.set_layer_config(self._index, self._new)

    def undo(self):
        with self._document.undoing(self._weights):
            self._document.set_layer_config(self._index, self._old)


class SetInputShapeCommand(QUndoCommand):
    def __init__(self, document: PipelineDocument, shape: tuple):
        super().__init__("Change input shape")
        self._document = document
        self._old = document.input_shape
        self._new = tuple(shape)
        self._edited_at = time.monotonic()

    def id(self) -> int:
        return _SET_INPUT_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetInputShapeCommand):
            return False
        return _absorb(self, other)

    def redo(self):
        self._weights = self._document.weights_state()
        self._document.set_input_shape(self._new)

    def undo(self):
        with self._document.undoing(self._weights):
            self._document.set_input_shape(self._old)


class SetTrainedWeightsCommand(QUndoCommand):
    """A finished training run: its weights become the project's (undo restores the old ones).

    Runs one after another with no edit between them merge into one step (undo goes back
    to the weights before the series): every step keeps its weights, and ten runs in a
    row must not keep ten copies of a model's weights alive."""

    def id(self) -> int:
        return _SET_WEIGHTS_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetTrainedWeightsCommand) or other._document is not self._document:
            return False
        self._weights, self._after = other._weights, other._after
        return True

    def __init__(self, document: PipelineDocument, weights: dict | None, text: str = "Train network"):
        super().__init__(text)
        self._document = document
        self._before = document.weights_state()
        self._weights = weights
        self._after = None

    def redo(self):
        if self._after is None:
            self._document.set_trained_weights(self._weights)
            self._after = self._document.weights_state()
        else:
            self._document.restore_weights_state(self._after)

    def undo(self):
        self._document.restore_weights_state(self._before)


TRAINING_LABELS = {"optimizer": "optimizer", "learning_rate": "learning rate", "batch_size": "batch size",
                   "epochs": "epochs", "validation_split": "validation split", "seed": "seed", "loss": "loss",
                   "momentum": "momentum", "nesterov": "Nesterov momentum"}


class SetTrainingConfigCommand(QUndoCommand):
    """Change the training settings. `key` names the setting edited (typing merges), or None."""

    def __init__(self, document: PipelineDocument, config: TrainingConfig, key: str | None = None):
        super().__init__(f"Change {TRAINING_LABELS.get(key, key) if key else 'training settings'}")
        self._document = document
        self._old = document.training if document.has_training_settings else None
        self._new = config
        self._key = key
        self._edited_at = time.monotonic()

    def id(self) -> int:
        return _SET_TRAINING_ID if self._key else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetTrainingConfigCommand) or other._key != self._key:
            return False
        if not _typing_burst(self._edited_at, other._edited_at):
            return False
        self._new = other._new
        self._edited_at = other._edited_at
        if self._new == (self._old or TrainingConfig()):
            self.setObsolete(True)
        return True

    def redo(self):
        self._document.set_training(self._new)

    def undo(self):
        self._document.set_training(self._old)
