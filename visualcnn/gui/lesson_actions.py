"""A lesson's actions ("Show me", a predict step's change) performed on the window's document
as ONE undoable edit: a QUndoStack macro of the ordinary edit commands (gui/commands.py), so
Undo takes the whole demonstration back in one step, exactly as if the student had made it.

The actions are data from the lesson file (the brief's format, checked by the engine's
lesson_problems): {action="set_config" | "insert_after" | "remove" | "set_training" |
"wrap_residual" | "set_input_shape", ...}. Layer references are names in the pipeline as it
stands when the action runs, so each command is built only after the previous one ran.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from PySide6.QtGui import QUndoStack

from ..engine.layers import ConfigError
from ..engine.training_config import TrainingConfig
from .commands import (InsertAfterCommand, RemoveLayerCommand, SetInputShapeCommand, SetLayerConfigCommand,
                       SetTrainingConfigCommand, WrapResidualCommand)
from .document import PipelineDocument


def _row(document: PipelineDocument, name) -> int:
    try:
        return document.row_named(str(name))
    except ValueError:
        raise ConfigError(f"the lesson names a layer {name!r} that is not in the pipeline "
                          f"({', '.join(document.names) or 'no layers'}); reopen the lesson to start the step "
                          "again") from None


def training_with(document: PipelineDocument, settings: Mapping) -> TrainingConfig:
    """The document's training settings with `settings` (TrainingConfig fields) merged in;
    ConfigError names a bad value. A new optimizer without a learning rate gets Keras's
    default rate for it (as choosing it in the Train tab does)."""
    current = document.training.to_dict()
    merged = {**current, **{key: value for key, value in settings.items()
                            if key in TrainingConfig.__dataclass_fields__}}
    if "optimizer" in settings and "learning_rate" not in settings:
        merged.pop("learning_rate", None)
    return TrainingConfig.from_dict(merged)


def as_dict(action) -> dict:
    """An engine Action (engine/lessons/format.py) or a plain mapping, as the file's table."""
    return action.to_dict() if hasattr(action, "to_dict") else dict(action)


def command_for(document: PipelineDocument, action):
    """The undo command that performs one action on the document as it stands now."""
    action = as_dict(action)
    kind = action.get("action")
    if kind == "set_config":
        row = _row(document, action["layer"])
        config = {**document.entry(row).config, **dict(action.get("config", {}))}
        return SetLayerConfigCommand(document, row, config)
    if kind == "insert_after":
        return InsertAfterCommand(document, _row(document, action["layer"]), action["class"],
                                  dict(action.get("config", {})))
    if kind == "remove":
        return RemoveLayerCommand(document, _row(document, action["layer"]))
    if kind == "set_training":
        return SetTrainingConfigCommand(document, training_with(document, action.get("settings", {})))
    if kind == "wrap_residual":
        return WrapResidualCommand(document, _row(document, action["first"]), _row(document, action["last"]))
    if kind == "set_input_shape":
        return SetInputShapeCommand(document, tuple(int(v) for v in action["shape"]))
    raise ConfigError(f"unknown lesson action {kind!r}; known: set_config, insert_after, remove, set_training, "
                      "wrap_residual, set_input_shape")


def perform_actions(document: PipelineDocument, undo_stack: QUndoStack, actions: Iterable,
                    text: str) -> bool:
    """Run the actions as one undo step named `text`; False when there was nothing to do.

    An action that cannot run (ConfigError: a name the student's own edits removed) takes the
    steps already made back and raises, so a half-done demonstration never stays behind."""
    actions = list(actions)
    if not actions:
        return False
    undo_stack.beginMacro(text)
    pushed = 0
    try:
        for action in actions:
            undo_stack.push(command_for(document, action))
            pushed += 1
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        undo_stack.endMacro()
        undo_stack.undo()  # the partial macro, however many of its steps ran
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"a lesson action could not run ({exc!r}); reopen the lesson to start the step again") \
            from exc
    undo_stack.endMacro()
    return pushed > 0


def apply_silently(document: PipelineDocument, actions: Iterable) -> None:
    """Replay actions without an undo step (reopening a lesson at a later step rebuilds the
    pipeline the earlier steps made); ConfigError when one cannot run."""
    scratch = QUndoStack()
    for action in actions:
        scratch.push(command_for(document, action))
    scratch.clear()  # the document keeps the edits; nothing to undo them into


__all__ = ["perform_actions", "apply_silently", "command_for", "training_with"]
