"""Entries become engine layers in one place (engine/pipeline_layers.py) for the window and the lesson
checker: a config its class rejects is analysed as a block that fails with the engine's message."""

from visualcnn.engine.analysis import analyse_graph
from visualcnn.engine.lessons.simulate import ModelState
from visualcnn.engine.pipeline_edits import LayerEntry, layer_names
from visualcnn.engine.pipeline_layers import RejectedLayer, build_layers, entries_from_model
from visualcnn.engine.model_io import load_model_file
from visualcnn.resources import preset_path

BRANCHES = [LayerEntry("Conv2D", {"name": "left", "filters": 4, "kernel_size": 3, "padding": "same"}),
            LayerEntry("Conv2D", {"filters": 4, "kernel_size": 3, "padding": "same"}, ("input_layer",))]


def test_a_merge_whose_config_is_rejected_is_an_error_row_not_a_crash():
    # The analysis passes a merge its input names; the stand-in must take them and fail with the message.
    entries = [*BRANCHES, LayerEntry("Add", {"bogus": 1}, ("left", "conv2d"))]
    layers = build_layers(entries)
    assert isinstance(layers[2], RejectedLayer) and layers[2].merge
    report = analyse_graph((8, 8, 1), layers, ((-1,), (-1,), (0, 1)), "input_layer")
    assert report.rows[2].error and "bogus" in report.rows[2].error
    assert report.rows[0].error is None and report.rows[0].output_shape == (None, 8, 8, 4)


def test_the_lesson_checker_reports_a_rejected_block_as_the_window_does():
    state = ModelState((8, 8, 1), (*BRANCHES, LayerEntry("Add", {"bogus": 1}, ("left", "conv2d"))))
    row = state.report().rows[2]
    assert not state.report().ok and "bogus" in row.error and row.layer.describe() == "invalid settings"


def test_entries_from_a_model_name_links_only_where_a_block_is_not_fed_by_the_one_before():
    model = load_model_file(preset_path("resnet_mnist")).model
    entries = entries_from_model(model)
    assert layer_names(entries) == [layer.name for layer in model.layers]
    assert entries[0].inbound == () and any(entry.inbound for entry in entries)
    assert all(entry.inbound == () for entry in entries_from_model(load_model_file(preset_path("seed_cnn")).model))
