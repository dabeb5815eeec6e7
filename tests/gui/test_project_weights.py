"""Trained weights belong to the project: kept while they fit, saved, loaded back, undoable."""

from __future__ import annotations

import json

from visualcnn.engine.model_io import encode_weights
from visualcnn.gui.commands import SetInputShapeCommand, SetTrainedWeightsCommand


def trained_weights_for(window):
    model = window.build_engine_model()
    model.build(seed=3)
    return encode_weights(model), model


def test_weights_count_only_while_the_pipeline_is_unchanged(seed_window):
    weights, _ = trained_weights_for(seed_window)
    doc = seed_window.document
    seed_window.undo_stack.push(SetTrainedWeightsCommand(doc, weights))
    assert doc.trained_weights is weights and seed_window.is_modified
    seed_window.undo_stack.push(SetInputShapeCommand(doc, (32, 32, 1)))
    assert doc.trained_weights is None, "weights trained for 28x28 do not fit 32x32"
    seed_window.undo_stack.undo()
    assert doc.trained_weights is weights, "undoing the edit brings them back"
    seed_window.undo_stack.undo()
    assert doc.trained_weights is None, "undoing the training drops them"


def test_draw_tab_follows_the_project_weights(seed_window):
    assert not seed_window.draw_panel.has_model()
    weights, model = trained_weights_for(seed_window)
    seed_window.undo_stack.push(SetTrainedWeightsCommand(seed_window.document, weights))
    assert seed_window.draw_panel.has_model()
    kernel = seed_window.draw_panel._model.get_weights()[0]
    assert (kernel == model.get_weights()[0]).all()
    seed_window.undo_stack.undo()
    assert not seed_window.draw_panel.has_model()


def test_weights_are_saved_and_loaded_back(seed_window, tmp_path):
    weights, model = trained_weights_for(seed_window)
    seed_window.undo_stack.push(SetTrainedWeightsCommand(seed_window.document, weights))
    path = tmp_path / "trained.json"
    assert seed_window.save_to(path)
    assert "weights" in json.loads(path.read_text())
    seed_window.new_project()
    assert seed_window.document.trained_weights is None
    assert seed_window.open_file(path)
    loaded = seed_window.trained_model()
    assert all((a == b).all() for a, b in zip(loaded.get_weights(), model.get_weights()))


def test_weights_that_do_not_fit_are_refused_and_the_project_is_untouched(seed_window, tmp_path, dialogs):
    weights, _ = trained_weights_for(seed_window)
    seed_window.undo_stack.push(SetTrainedWeightsCommand(seed_window.document, weights))
    path = tmp_path / "broken.json"
    assert seed_window.save_to(path)
    data = json.loads(path.read_text())
    data["weights"]["layers"]["conv2d"][0]["data"] = "AAAA"  # 3 bytes: not 288 floats
    path.write_text(json.dumps(data))
    seed_window.undo_stack.push(SetInputShapeCommand(seed_window.document, (30, 30, 1)))
    before = seed_window.document.to_json()
    assert not seed_window.open_file(path, confirm=False)
    assert dialogs and dialogs[-1][0] == "critical" and "conv2d/kernel" in dialogs[-1][2]
    assert seed_window.document.to_json() == before
