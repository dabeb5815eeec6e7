"""Training settings belong to the document; trained weights survive edits that keep every
weight shape, and an edit that drops them says why and is undone by Undo."""

from __future__ import annotations

import json

import pytest

from visualcnn.engine.model_io import encode_weights, model_from_json
from visualcnn.engine.training_config import TrainingConfig
from visualcnn.gui import commands
from visualcnn.gui.commands import (InsertLayerCommand, MoveLayerCommand, RemoveLayerCommand, SetInputShapeCommand,
                                    SetLayerConfigCommand, SetTrainedWeightsCommand, SetTrainingConfigCommand)
from visualcnn.gui.document import PipelineDocument


@pytest.fixture
def trained(doc, stack):
    """The document with weights trained for it (pushed as a run's result)."""
    model = model_from_json(json.dumps(doc.to_dict(include_weights=False)))
    model.build(seed=1)
    weights = encode_weights(model)
    stack.push(SetTrainedWeightsCommand(doc, weights))
    assert doc.trained_weights is weights
    return weights


def dropped_messages(doc) -> list:
    messages = []
    doc.weights_dropped.connect(messages.append)
    return messages


# --- settings ---------------------------------------------------------------------------

def test_settings_edit_is_undoable_signalled_and_saved(doc, stack):
    seen = []
    doc.training_changed.connect(seen.append)
    before = doc.training
    new = TrainingConfig(batch_size=128, learning_rate=0.01)
    stack.push(SetTrainingConfigCommand(doc, new, "batch_size"))
    assert doc.training == new and seen == [new]
    saved = json.loads(doc.to_json())["training"]
    assert saved["batch_size"] == 128 and saved["learning_rate"] == 0.01
    again = PipelineDocument()
    again.load_text(doc.to_json())
    assert again.training == new
    stack.undo()
    assert doc.training == before and seen[-1] == before
    stack.redo()
    assert doc.training == new


def test_setting_the_same_settings_emits_nothing(doc):
    seen = []
    doc.training_changed.connect(seen.append)
    assert not doc.set_training(doc.training)
    assert seen == []


def test_typing_a_setting_merges_into_one_step(doc, stack):
    for batch in (1, 12, 128):
        stack.push(SetTrainingConfigCommand(doc, TrainingConfig(batch_size=batch), "batch_size"))
    assert stack.count() == 1 and doc.training.batch_size == 128
    stack.push(SetTrainingConfigCommand(doc, TrainingConfig(batch_size=128, epochs=3), "epochs"))
    assert stack.count() == 2


def test_a_document_without_settings_writes_none_until_edited():
    doc = PipelineDocument()
    assert doc.training == TrainingConfig() and "training" not in doc.to_dict()
    doc.set_training(TrainingConfig(epochs=2))
    assert doc.to_dict()["training"]["epochs"] == 2


# --- weights ----------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda d: SetLayerConfigCommand(d, 6, {**d.entry(6).config, "rate": 0.2}, key="rate"),  # no weights
    lambda d: SetLayerConfigCommand(d, 0, {**d.entry(0).config, "activation": "tanh"}, key="activation"),
    lambda d: InsertLayerCommand(d, 5, "Dropout", {"rate": 0.3}),
    lambda d: RemoveLayerCommand(d, 6),
], ids=["dropout-rate", "activation", "insert-dropout", "remove-dropout"])
def test_edits_that_keep_every_weight_shape_keep_the_weights(doc, stack, trained, make):
    messages = dropped_messages(doc)
    stack.push(make(doc))
    assert doc.trained_weights is trained and messages == []
    assert "weights" in doc.to_dict()


@pytest.mark.parametrize("make, cause", [
    (lambda d: SetLayerConfigCommand(d, 0, {**d.entry(0).config, "filters": 16}, key="filters"),
     "conv2d's filters changed"),
    (lambda d: SetInputShapeCommand(d, (32, 32, 1)), "the input shape changed"),
    (lambda d: InsertLayerCommand(d, 5, "Dense", {"units": 32}), "a Dense block was added"),
    (lambda d: RemoveLayerCommand(d, 0), "conv2d was removed"),
    (lambda d: MoveLayerCommand(d, 5, 7), "dense was moved"),
], ids=["filters", "input-shape", "insert-dense", "remove-conv", "move-dense"])
def test_an_edit_that_changes_a_weight_shape_drops_them_says_why_and_undo_restores(doc, stack, trained, make, cause):
    messages = dropped_messages(doc)
    stack.push(make(doc))
    assert doc.trained_weights is None and "weights" not in doc.to_dict()
    assert len(messages) == 1 and messages[0].startswith(cause)
    stack.undo()
    assert doc.trained_weights is trained and len(messages) == 1  # undo says nothing more
    stack.redo()
    assert doc.trained_weights is None and len(messages) == 2


def test_a_typing_burst_back_to_the_old_value_keeps_the_weights(doc, stack, trained, monkeypatch):
    config = doc.entry(0).config
    stack.push(SetLayerConfigCommand(doc, 0, {**config, "filters": 3}, key="filters"))
    assert doc.trained_weights is None
    stack.push(SetLayerConfigCommand(doc, 0, {**config, "filters": 32}, key="filters"))  # within the burst
    assert stack.count() == 1  # only the training step is left
    assert doc.trained_weights is trained


def test_a_merged_burst_is_undone_with_the_weights_it_dropped(doc, stack, trained, monkeypatch):
    config = doc.entry(0).config
    for filters in (1, 16):
        stack.push(SetLayerConfigCommand(doc, 0, {**config, "filters": filters}, key="filters"))
    assert stack.count() == 2 and doc.trained_weights is None
    stack.undo()
    assert doc.entry(0).config["filters"] == 32 and doc.trained_weights is trained
    monkeypatch.setattr(commands.time, "monotonic", lambda: 1e9)  # a later, deliberate edit
    stack.push(SetLayerConfigCommand(doc, 0, {**config, "filters": 8}, key="filters"))
    stack.undo()
    assert doc.trained_weights is trained


def test_memory_estimate_follows_the_batch_size_setting(doc):
    at_64 = doc.memory_estimate()
    doc.set_training(TrainingConfig(batch_size=128))
    at_128 = doc.memory_estimate()
    assert at_64.batch_size == 64 and at_128.batch_size == 128
    assert at_128.weight_bytes == at_64.weight_bytes == doc.report.total_params * 4
    assert [m.activation_bytes for m in at_128.layers] == [2 * m.activation_bytes for m in at_64.layers]
    assert at_128.training_peak_bytes > at_64.training_peak_bytes


def test_runs_in_a_row_keep_one_undo_step_and_one_copy_of_the_weights(doc, stack, trained):
    later = {"encoding": trained["encoding"], "layers": dict(trained["layers"])}
    stack.push(SetTrainedWeightsCommand(doc, later))
    assert stack.count() == 1 and doc.trained_weights is later
    stack.undo()
    assert doc.trained_weights is None  # before the series
    stack.redo()
    assert doc.trained_weights is later
    stack.push(SetTrainingConfigCommand(doc, TrainingConfig(epochs=2), "epochs"))  # an edit between runs
    stack.push(SetTrainedWeightsCommand(doc, trained))
    assert stack.count() == 3
    stack.undo()
    assert doc.trained_weights is later
