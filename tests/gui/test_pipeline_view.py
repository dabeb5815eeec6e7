"""The pipeline view in a plain column (the graph view of a linear pipeline): drops driven with a
built QMimeData, keyboard edits, live cards."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QMimeData, Qt

from visualcnn.engine import load_model_file
from visualcnn.engine.summary import summary_rows
from visualcnn.gui.mime import MIME_TYPE
from visualcnn.gui.palette import palette_mime_data
from visualcnn.gui.pipeline_view import REPORT_ROLE, block_texts


def classes(window):
    return [e.class_name for e in window.document.entries]


def test_cards_show_exactly_the_summary_shapes_and_counts(seed_window, seed_path):
    expected = summary_rows(load_model_file(seed_path).model.checked_report())
    model = seed_window.pipeline.list_widget.model()
    assert model.rowCount() == len(expected) == 8
    for row, want in enumerate(expected):
        texts = block_texts(model.index(row).data(REPORT_ROLE))
        assert (texts["title"], texts["class_name"]) == (want.name, want.class_name)
        assert texts["shape"] == want.output_shape
        assert texts["params"] == f"{want.params} params"
    first = block_texts(model.index(0).data(REPORT_ROLE))
    assert first["settings"] == "32 filters, 3x3, relu, valid"
    assert first["note"] == "receptive field 3x3"


def test_palette_drop_inserts_at_the_drop_row_and_undoes(seed_window):
    lw = seed_window.pipeline.list_widget
    assert lw.handle_drop(palette_mime_data("BatchNormalization"), 1)
    assert classes(seed_window)[:3] == ["Conv2D", "BatchNormalization", "MaxPooling2D"]
    assert lw.current_row() == 1
    assert seed_window.document.report.rows[1].params == 4 * 32
    assert seed_window.inspector.row == 1
    seed_window.undo_stack.undo()
    assert classes(seed_window)[:2] == ["Conv2D", "MaxPooling2D"]


def test_drop_from_own_pipeline_moves_the_block(seed_window):
    lw = seed_window.pipeline.list_widget
    mime = lw.mime_data_for_row(6)  # dropout
    assert lw.handle_drop(mime, 5)  # above dense
    assert classes(seed_window)[4:] == ["Flatten", "Dropout", "Dense", "Dense"]
    assert lw.current_row() == 5
    # dropping a block just below itself changes nothing
    count = seed_window.undo_stack.count()
    assert lw.handle_drop(lw.mime_data_for_row(5), 6)
    assert seed_window.undo_stack.count() == count


def test_drop_of_a_foreign_pipeline_block_inserts_a_copy(seed_window):
    mime = QMimeData()
    payload = b'{"source": "pipeline", "document": "other", "index": 0, "class_name": "Dense", ' \
              b'"config": {"name": "dense_9", "units": 7}}'
    mime.setData(MIME_TYPE, QByteArray(payload))
    assert seed_window.pipeline.list_widget.handle_drop(mime, 8)
    assert seed_window.document.entry(8).config == {"units": 7}
    assert seed_window.document.report.rows[8].name == "dense_2"


def test_foreign_or_broken_drops_are_refused(seed_window):
    lw = seed_window.pipeline.list_widget
    text = QMimeData()
    text.setText("Conv2D")
    broken = QMimeData()
    broken.setData(MIME_TYPE, QByteArray(b"{nope"))
    unknown = QMimeData()
    unknown.setData(MIME_TYPE, QByteArray(b'{"source": "palette", "class_name": "LSTM"}'))
    for mime in (text, broken, unknown):
        assert not lw.handle_drop(mime, 0)
    assert seed_window.undo_stack.count() == 0


def test_keyboard_delete_duplicate_and_move(seed_window, qtbot):
    lw = seed_window.pipeline.list_widget
    lw.setFocus()
    lw.select_row(0)
    qtbot.keyClick(lw, Qt.Key.Key_Down)
    assert lw.current_row() == 1
    qtbot.keyClick(lw, Qt.Key.Key_Delete)
    assert classes(seed_window)[:2] == ["Conv2D", "Conv2D"]
    assert seed_window.document.report.rows[1].output_shape == (None, 24, 24, 64)
    qtbot.keyClick(lw, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert len(seed_window.document) == 8 and lw.current_row() == 2
    qtbot.keyClick(lw, Qt.Key.Key_Up, Qt.KeyboardModifier.AltModifier)
    assert lw.current_row() == 1
    assert seed_window.undo_stack.count() == 3
    for _ in range(3):
        seed_window.undo_action.trigger()
    assert classes(seed_window)[:2] == ["Conv2D", "MaxPooling2D"]


def test_double_click_in_the_palette_inserts_after_the_selection(seed_window):
    seed_window.pipeline.list_widget.select_row(3)
    seed_window.palette_widget.layer_activated.emit("Dropout")
    assert classes(seed_window)[4] == "Dropout"
    assert seed_window.pipeline.list_widget.current_row() == 4


def test_input_block_edits_are_undoable(seed_window):
    spins = seed_window.pipeline.input_widget.spin_boxes
    spins[0].setValue(32)
    spins[1].setValue(32)
    assert seed_window.document.input_shape == (32, 32, 1)
    assert seed_window.document.report.rows[0].output_shape == (None, 30, 30, 32)
    assert seed_window.undo_stack.count() == 1  # one typing burst
    seed_window.undo_stack.undo()
    assert [s.value() for s in spins] == [28, 28, 1]
