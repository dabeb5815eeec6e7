"""PipelineDocument: QtCore only (no QApplication needed), signals only on real change."""

from __future__ import annotations

import pytest

from visualcnn.engine.model_io import load_model_file, model_to_dict
from visualcnn.gui.document import LayerEntry, PipelineDocument


class Recorder:
    def __init__(self, document: PipelineDocument):
        self.events: list[tuple] = []
        for name in ("layer_inserted", "layer_removed", "layer_changed", "layer_moved", "input_shape_changed",
                     "pipeline_reset"):
            getattr(document, name).connect(lambda *args, n=name: self.events.append((n, *args)))
        self.reports = []
        document.report_updated.connect(self.reports.append)


@pytest.fixture
def doc():
    return PipelineDocument()


def test_empty_document_has_the_mnist_input_and_no_error(doc):
    assert doc.input_shape == (28, 28, 1)
    assert len(doc) == 0
    assert doc.report.rows == ()
    assert doc.report.output_shape == (None, 28, 28, 1)


def test_insert_change_move_remove_emit_once_and_reanalyse(doc):
    rec = Recorder(doc)
    doc.insert_layer(0, "Conv2D", {"filters": 32, "kernel_size": 3})
    doc.insert_layer(1, "Flatten", {})
    doc.insert_layer(1, "MaxPooling2D", {})
    assert [r.output_shape for r in doc.report.rows] == [(None, 26, 26, 32), (None, 13, 13, 32), (None, 5408)]
    assert [r.name for r in doc.report.rows] == ["conv2d", "max_pooling2d", "flatten"]

    doc.set_layer_config(0, {"filters": 8, "kernel_size": 5})
    assert doc.report.rows[0].output_shape == (None, 24, 24, 8)
    assert doc.report.rows[2].output_shape == (None, 12 * 12 * 8)

    doc.move_layer(2, 0)
    assert [e.class_name for e in doc.entries] == ["Flatten", "Conv2D", "MaxPooling2D"]
    removed = doc.remove_layer(0)
    assert removed == LayerEntry("Flatten", {})
    assert rec.events == [("layer_inserted", 0), ("layer_inserted", 1), ("layer_inserted", 1),
                          ("layer_changed", 0), ("layer_moved", 2, 0), ("layer_removed", 0)]
    assert len(rec.reports) == 6 and rec.reports[-1] is doc.report


def test_no_signal_without_real_change(doc):
    doc.insert_layer(0, "Dense", {"units": 4})
    rec = Recorder(doc)
    assert doc.set_layer_config(0, {"units": 4}) is False
    assert doc.set_input_shape((28, 28, 1)) is False
    assert doc.move_layer(0, 0) is False
    assert rec.events == [] and rec.reports == []
    assert doc.set_input_shape([32, 32, 3]) is True
    assert rec.events == [("input_shape_changed", (32, 32, 3))]


def test_entries_are_copies(doc):
    doc.insert_layer(0, "Conv2D", {"filters": 4, "kernel_size": [3, 3]})
    doc.entry(0).config["kernel_size"][0] = 99
    doc.entries[0].config["filters"] = 1
    assert doc.entry(0).config == {"filters": 4, "kernel_size": [3, 3]}


def test_shape_error_names_the_reason_and_later_blocks_are_unknown(doc):
    doc.insert_layer(0, "Conv2D", {"filters": 32, "kernel_size": 40})
    doc.insert_layer(1, "Flatten", {})
    first, second = doc.report.rows
    assert first.status == "error"
    assert "kernel 40x40 does not fit the 28x28 input with valid padding" in first.error
    assert second.status == "unknown" and second.output_shape is None
    assert doc.report.error == first.error


def test_config_rejected_by_the_layer_class_is_kept_and_shown_not_raised(doc):
    doc.insert_layer(0, "Conv2D", {"filters": 8, "kernel_size": 3, "strides": 2, "dilation_rate": 2})
    doc.insert_layer(1, "Flatten", {})
    row = doc.report.rows[0]
    assert row.status == "error"
    assert row.error.startswith("Conv2D 'conv2d': strides 2x2 cannot be combined with dilation_rate 2x2")
    assert doc.report.rows[1].status == "unknown"
    assert doc.entry(0).config["dilation_rate"] == 2  # still representable, still editable
    doc.set_layer_config(0, {"filters": 8, "kernel_size": 3, "strides": 2})
    assert doc.report.ok


def test_unknown_class_is_refused(doc):
    with pytest.raises(ValueError, match="unknown layer type"):
        doc.insert_layer(0, "LSTM", {})


def test_seed_preset_round_trips_to_the_engine_file_form(doc, seed_path):
    model_file = load_model_file(seed_path)
    doc.load_model_file(model_file)
    assert doc.name == "seed_cnn"
    expected = model_to_dict(model_file.model, training=model_file.training, description=model_file.description)
    assert doc.to_dict() == expected
    assert doc.to_dict(window={"selected": 2})["window"] == {"selected": 2}
    assert doc.report.total_params == 121_930


def test_bad_text_raises_and_leaves_document_untouched(doc, seed_path):
    doc.load_text(seed_path.read_text())
    before = (doc.input_shape, doc.entries, doc.name)
    rec = Recorder(doc)
    with pytest.raises(ValueError, match="not valid JSON"):
        doc.load_text('{"format": "visualcnn.model", ')
    assert (doc.input_shape, doc.entries, doc.name) == before
    assert rec.events == []
