"""One QUndoCommand per edit: redo applies, undo restores exactly, typing bursts merge."""

from __future__ import annotations

import pytest

from visualcnn.gui import commands
from visualcnn.gui.commands import (InsertLayerCommand, MoveLayerCommand, RemoveLayerCommand,
                                    SetInputShapeCommand, SetLayerConfigCommand, duplicate_layer_command)


def snapshot(doc):
    return doc.input_shape, doc.entries, [(r.output_shape, r.params) for r in doc.report.rows]


@pytest.mark.parametrize("make", [
    lambda d: InsertLayerCommand(d, 2, "BatchNormalization", {}),
    lambda d: RemoveLayerCommand(d, 0),
    lambda d: MoveLayerCommand(d, 6, 5),
    lambda d: MoveLayerCommand(d, 0, 7),
    lambda d: SetLayerConfigCommand(d, 0, {"filters": 16, "kernel_size": [5, 5]}, key="kernel_size"),
    lambda d: SetInputShapeCommand(d, (32, 32, 3)),
    lambda d: duplicate_layer_command(d, 2),
], ids=["insert", "remove", "move-up", "move-to-end", "set-config", "input-shape", "duplicate"])
def test_undo_restores_and_redo_reapplies(doc, stack, make):
    before = snapshot(doc)
    stack.push(make(doc))
    after = snapshot(doc)
    assert after != before
    stack.undo()
    assert snapshot(doc) == before
    stack.redo()
    assert snapshot(doc) == after


def test_duplicate_gets_its_own_keras_name(doc, stack):
    stack.push(duplicate_layer_command(doc, 0))
    assert [r.name for r in doc.report.rows[:3]] == ["conv2d", "conv2d_1", "max_pooling2d"]
    assert doc.report.rows[1].output_shape == (None, 24, 24, 32)


def test_a_typing_burst_is_one_undo_step(doc, stack):
    base = doc.entry(0).config
    stack.push(SetLayerConfigCommand(doc, 0, {**base, "kernel_size": [4, 4]}, key="kernel_size"))
    stack.push(SetLayerConfigCommand(doc, 0, {**base, "kernel_size": [40, 40]}, key="kernel_size"))
    assert stack.count() == 1
    stack.undo()
    assert doc.entry(0).config == base


def test_separate_edits_of_one_field_are_separate_steps(doc, stack, monkeypatch):
    monkeypatch.setattr(commands, "MERGE_SECONDS", -1.0)
    base = doc.entry(0).config
    stack.push(SetLayerConfigCommand(doc, 0, {**base, "kernel_size": [5, 5]}, key="kernel_size"))
    stack.push(SetLayerConfigCommand(doc, 0, {**base, "kernel_size": [40, 40]}, key="kernel_size"))
    assert stack.count() == 2
    stack.undo()
    assert doc.entry(0).config["kernel_size"] == [5, 5]


def test_edits_of_different_fields_do_not_merge(doc, stack):
    base = doc.entry(0).config
    stack.push(SetLayerConfigCommand(doc, 0, {**base, "filters": 8}, key="filters"))
    stack.push(SetLayerConfigCommand(doc, 0, {**base, "filters": 8, "padding": "same"}, key="padding"))
    assert stack.count() == 2


def test_burst_that_returns_to_the_start_leaves_no_step(doc, stack):
    base = doc.entry(0).config
    stack.push(SetLayerConfigCommand(doc, 0, {**base, "filters": 3}, key="filters"))
    stack.push(SetLayerConfigCommand(doc, 0, base, key="filters"))
    assert stack.count() == 0
    assert stack.isClean()
