"""Try it: an image file is read like the training images, classified with the dataset's class
names; an unreadable file gets one line naming it; a dropped file is classified the same way."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from make_shapes_dataset import make_shapes_dataset  # noqa: E402

CLASSES = ("circle", "square", "star")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_shapes_dataset(tmp_path_factory.mktemp("try") / "shapes", per_class=3, size=20, classes=CLASSES)


@pytest.fixture
def try_it(qtbot, shapes):
    from visualcnn.engine.dataset_spec import load_dataset_for
    from visualcnn.engine.model_io import model_from_json
    from visualcnn.gui.dataset_source import FolderArrays, as_unit_floats
    from visualcnn.gui.try_it import TryItWidget

    model = model_from_json('{"format": "visualcnn.model", "version": 1, "input_shape": [12, 12, 3], "layers": ['
                            '{"class_name": "Flatten", "config": {}},'
                            '{"class_name": "Dense", "config": {"units": 3, "activation": "softmax"}}]}')
    model.build(seed=3)
    data = load_dataset_for({"source": "folder", "path": str(shapes)}, (12, 12, 3))
    arrays = FolderArrays(as_unit_floats(data.x_train), data.y_train, as_unit_floats(data.x_test), data.y_test,
                          data.x_test, data.class_names)
    widget = TryItWidget()
    qtbot.addWidget(widget)
    widget.set_dataset(arrays)
    widget.set_model(model)
    widget.show()
    return widget, model


def test_an_image_file_is_classified_with_the_class_names(try_it, shapes):
    widget, model = try_it
    path = next((shapes / "star").glob("*.png"))
    assert widget.open_image(path)
    from visualcnn.engine.image_folder import decode_image

    expected = model.predict(decode_image(path, (12, 12, 3))[None].astype(np.float32) / 255)[0]
    np.testing.assert_allclose(widget.probabilities, expected, rtol=1e-5, atol=1e-6)
    assert widget.answer.text() == CLASSES[int(np.argmax(expected))]
    assert widget.bars.names == list(CLASSES)
    assert "read as 12x12 RGB" in widget.caption.text()


def test_an_unreadable_file_is_named_in_one_line(try_it, tmp_path):
    widget, _ = try_it
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert not widget.open_image(bad)
    assert "broken.png cannot be classified" in widget.caption.text() and "\n" not in widget.caption.text()
    assert widget.probabilities is None


def test_a_dropped_file_is_classified(try_it, shapes):
    widget, _ = try_it
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(next((shapes / "circle").glob("*.png"))))])
    event = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    widget.dropEvent(event)
    assert widget.probabilities is not None and widget.answer.text() in CLASSES
    assert "circle_" in widget.caption.text()


def test_a_test_image_and_no_model(try_it):
    widget, _ = try_it
    widget.try_test_image(0)
    assert "labelled" in widget.caption.text() and widget.answer.text() in CLASSES
    widget.set_model(None)
    assert widget.answer.text() == "?" and widget.probabilities is None
