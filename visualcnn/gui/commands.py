"""One QUndoCommand per user edit; each calls PipelineDocument methods and nothing else.

Consecutive edits of the same argument of the same block made within MERGE_SECONDS of
each other (typing 4 then 40 in a spin box) merge into one undo step, as do input-shape
and training-setting edits; a deliberate later edit of the same field stays a step of its own.

An edit of the pipeline may drop the trained weights (a weight shape changed); its undo
puts back the weights the project had before the edit (PipelineDocument.undoing).

Pipeline edits keep the document's record of what they did (`PipelineDocument.last_edit`:
row-level steps and their exact inverse) and undo/redo replay it, so an edit that also
rewired links, renamed references or reordered rows comes back exactly. A command whose
edit is impossible (a loop, a missing link) raises ConfigError in its constructor, before
the stack runs it: push nothing and show the message.
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


class _PipelineEdit(QUndoCommand):
    """Runs one document edit on the first redo, then replays its recorded steps.

    Subclasses implement _edit() (the document call). Merged commands (a typing burst) keep
    every absorbed edit, replayed in order (undone in reverse)."""

    def __init__(self, document: PipelineDocument, text: str):
        super().__init__(text)
        self._document = document
        self._edits: list = []
        self._done = False
        self._weights = None

    def _edit(self) -> None:
        raise NotImplementedError

    def redo(self):
        self._weights = self._document.weights_state()
        if not self._done:
            self._done = True
            self._document.last_edit = None
            self._edit()
            if self._document.last_edit is not None:
                self._edits.append(self._document.last_edit)
            return
        for edit in self._edits:
            self._document.replay(edit.forward, edit.cause)

    def undo(self):
        with self._document.undoing(self._weights):
            for edit in reversed(self._edits):
                self._document.replay(edit.inverse, edit.cause)


def _refuse(problem: str | None) -> None:
    """Refuse an edit before the stack runs it (the message is for the user)."""
    if problem is not None:
        raise ConfigError(problem)


class InsertLayerCommand(_PipelineEdit):
    """A new block at row `index`, fed by the block above it (the input at 0), taking over
    that block's consumers: between two blocks of a stack, as it always was."""

    def __init__(self, document: PipelineDocument, index: int, class_name: str, config: dict | None = None,
                 text: str | None = None):
        if class_name not in LAYER_CLASSES:  # refuse before the stack runs redo()
            raise ConfigError(f"unknown layer type {class_name!r}; VisualCNN knows {', '.join(LAYER_CLASSES)}")
        super().__init__(document, text or f"Add {class_name}")
        self._index = max(0, min(index, len(document)))
        self._entry = LayerEntry(class_name, dict(config or {}))

    @property
    def index(self) -> int:
        return self._index

    def _edit(self):
        self._document.insert_after(self._index - 1, self._entry.class_name, self._entry.config)


def InsertAfterCommand(document: PipelineDocument, row: int, class_name: str,  # noqa: N802 - reads as a class
                       config: dict | None = None) -> InsertLayerCommand:
    """A new block right after `row` (-1: the input), taking over its consumers."""
    return InsertLayerCommand(document, row + 1, class_name, config)


class RemoveLayerCommand(_PipelineEdit):
    """Delete a block; the blocks it fed take its input."""

    def __init__(self, document: PipelineDocument, index: int):
        super().__init__(document, f"Delete {_label(document, index)}")
        self._index = index

    def _edit(self):
        self._document.remove_layer(self._index)


def duplicate_layer_command(document: PipelineDocument, index: int) -> InsertLayerCommand:
    """Insert a copy right after the block (taking over its consumers); the copy gets its own
    default name."""
    entry = document.entry(index)
    config = {k: v for k, v in entry.config.items() if k != "name"}
    return InsertLayerCommand(document, index + 1, entry.class_name, config,
                              text=f"Duplicate {_label(document, index)}")


class MoveLayerCommand(_PipelineEdit):
    """Reorder a stack; in a graph a block moves only along its own straight run."""

    def __init__(self, document: PipelineDocument, source: int, target: int):
        super().__init__(document, f"Move {_label(document, source)}")
        self._source = source
        self._target = max(0, min(target, len(document) - 1))
        _refuse(document.move_problem(source, self._target))

    @property
    def target(self) -> int:
        return self._target

    def _edit(self):
        self._document.move_layer(self._source, self._target)


class SetLayerConfigCommand(_PipelineEdit):
    """Replace one block's config. `key` names the argument edited, for merging. A new name
    is written into every link naming the block, in the same step."""

    def __init__(self, document: PipelineDocument, index: int, config: dict, key: str | None = None):
        super().__init__(document, f"Change {key + ' of ' if key else ''}{_label(document, index)}")
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
        if not _absorb(self, other):
            return False
        self._edits += other._edits
        return True

    def _edit(self):
        self._document.set_layer_config(self._index, self._new)


class RenameLayerCommand(SetLayerConfigCommand):
    """Give a block a new name (unique, non-empty); every link naming it follows."""

    def __init__(self, document: PipelineDocument, index: int, name: str):
        name = name.strip() if isinstance(name, str) else name
        if not isinstance(name, str) or not name:
            raise ConfigError("a block's name cannot be empty; type a name such as conv_1")
        used = [n for row, n in enumerate(document.names) if row != index]
        if name in used or name == document.input_name:
            raise ConfigError(f"the name {name!r} is already used by another block; pick another")
        super().__init__(document, index, {**document.entry(index).config, "name": name}, key="name")
        self.setText(f"Rename {_label(document, index)} to {name}")


class ConnectCommand(_PipelineEdit):
    """Feed `target` with `source`'s output (source -1: the input): a merge gains an input, any
    other block has its input replaced; rows are reordered when needed. Loops are refused."""

    def __init__(self, document: PipelineDocument, source: int, target: int):
        _refuse(document.connect_problem(source, target))
        super().__init__(document, f"Connect {_source_label(document, source)} to {_label(document, target)}")
        self._source, self._target = source, target

    def _edit(self):
        self._document.connect(self._source, self._target)


class DisconnectCommand(_PipelineEdit):
    """Remove the link source -> target (a block keeps at least one input)."""

    def __init__(self, document: PipelineDocument, source: int, target: int):
        _refuse(document.disconnect_problem(source, target))
        super().__init__(document,
                         f"Disconnect {_source_label(document, source)} from {_label(document, target)}")
        self._source, self._target = source, target

    def _edit(self):
        self._document.disconnect(self._source, self._target)


class InsertMergeCommand(_PipelineEdit):
    """A block dropped on the link source -> target, on that link only: it takes the source as
    its (first) input and feeds the target in the source's place. A merge (Add, Concatenate)
    then waits for its other inputs; any other class just sits on the link (a BatchNormalization
    on a skip). `index` is its row once done."""

    def __init__(self, document: PipelineDocument, source: int, target: int, class_name: str,
                 config: dict | None = None):
        _refuse(document.merge_problem(source, target, class_name))
        super().__init__(document, f"Add {class_name}")
        self._source, self._target, self._class_name = source, target, class_name
        self._config = dict(config or {})
        self.index = -1

    def _edit(self):
        self.index = self._document.insert_merge(self._source, self._target, self._class_name, self._config)


InsertOnLinkCommand = InsertMergeCommand  # the same edit, named for one-input blocks


class WrapResidualCommand(_PipelineEdit):
    """Wrap rows first..last (one straight path) in a residual block: the skip from the
    selection's input, an Add after it and a relu Activation; a 1x1 Conv2D projection on the
    skip when the shapes differ. `rows` are the added blocks' rows once done."""

    def __init__(self, document: PipelineDocument, first: int, last: int):
        _refuse(document.wrap_problem(first, last))
        super().__init__(document, "Wrap in residual block")
        self._first, self._last = first, last
        self.rows: tuple[int, ...] = ()

    def _edit(self):
        self.rows = self._document.wrap_residual(self._first, self._last)


def _source_label(document: PipelineDocument, row: int) -> str:
    return document.input_name if row == -1 else _label(document, row)


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
                   "momentum": "momentum", "nesterov": "Nesterov momentum",
                   "schedule": "learning-rate schedule", "decay_rate": "decay factor", "decay_epochs": "decay period",
                   "monitor": "watched quantity", "early_stopping": "early stopping",
                   "patience": "early-stopping patience",
                   "restore_best_weights": "restore best weights", "reduce_lr_on_plateau": "reduce on plateau",
                   "reduce_lr_factor": "reduce-on-plateau factor", "reduce_lr_patience": "reduce-on-plateau patience"}


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
