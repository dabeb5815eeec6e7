"""A block added in the window is saved with the name it shows, as the engine writes files."""

from __future__ import annotations

import json

from visualcnn.engine.model_io import load_model_file, model_to_dict, read_model_file
from visualcnn.gui.document import PipelineDocument


def test_batch_normalization_from_the_palette_is_saved_with_its_name():
    doc = PipelineDocument()
    doc.insert_layer(0, "Conv2D", {"filters": 4, "kernel_size": [3, 3]})
    doc.insert_layer(1, "BatchNormalization", {})  # the palette's starter config: no name
    doc.insert_layer(2, "BatchNormalization", {"name": "my_bn", "momentum": 0.9})
    doc.insert_layer(3, "Flatten", {})
    doc.insert_layer(4, "Dense", {"units": 10, "activation": "softmax"})
    saved = doc.to_dict()
    names = [entry["config"].get("name") for entry in saved["layers"]]
    assert names == ["conv2d", "batch_normalization", "my_bn", "flatten", "dense"]
    assert saved["layers"][1] == {"class_name": "BatchNormalization", "config": {"name": "batch_normalization"}}
    reopened = read_model_file(json.dumps(saved)).model
    assert [layer.name for layer in reopened.layers] == names
    assert saved == model_to_dict(reopened)  # the engine writes the same file


def test_rejected_config_is_still_written_as_left(tmp_path):
    doc = PipelineDocument()
    doc.insert_layer(0, "Dense", {"units": "ten"})
    assert doc.to_dict()["layers"][0]["config"] == {"units": "ten"}


def test_window_file_round_trip_keeps_names(tmp_path, seed_path):
    doc = PipelineDocument()
    doc.load_model_file(load_model_file(seed_path))
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(doc.to_dict()))
    assert [layer.name for layer in load_model_file(path).model.layers] == [row.name for row in doc.report.rows]
