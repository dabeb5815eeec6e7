"""A predict step about the model as it stands hides its answer in the window (gui/answer_mask.py):
in the real MainWindow with a bundled lesson open, the block card, the Summary and the Inspector
show "?" for exactly the asked quantity until the step is answered right, revealed, skipped or left,
or the lesson closed; a wrong answer keeps it hidden; a step with a change hides nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from visualcnn.gui.answer_mask import MASK, MASK_TIP
from visualcnn.gui.graph_model import MEMORY_ROLE

LESSONS = Path(__file__).resolve().parents[2] / "resources" / "lessons"


@pytest.fixture
def panel(window):
    yield window.lessons
    window.explain_windows.stop()


def card(window, name):
    """(the card's texts, its tooltip) for the block named `name`."""
    model = window.pipeline.list_widget._model
    index = model.index(window.document.row_named(name))
    return model.data(index, MEMORY_ROLE), model.data(index, Qt.ItemDataRole.ToolTipRole)


def summary_row(window, name):
    return next(row for row in window.summary.cell_texts() if row[0].startswith(f"{name} ("))


def open_at(panel, lesson: str, step: int, quantity: str):
    assert panel.open_lesson(LESSONS / lesson, step=step, restart=True)
    assert panel.step.kind == "predict" and panel.step.quantity == quantity and not panel.step.change
    return panel.step.layer


def test_output_shape_is_hidden_until_answered_right(window, panel):
    # Lesson 02 step 2: the 200x200 image through a 2x2 stride-2 conv2d (the model as it stands)
    layer = open_at(panel, "02_stride_padding.md", 1, "output_shape")
    texts, tip = card(window, layer)
    assert texts["shape"] == MASK and "100" not in texts["shape"]
    assert "out_h = ?" not in tip and "output shape = ?" in tip and "(None, 100, 100, 16)" not in tip
    assert "100*100*16" not in tip  # the MACs line would multiply the shape out
    assert texts["params"].startswith("80 params")  # only the asked quantity is hidden
    row = summary_row(window, layer)
    assert row[1] == MASK and row[2] == "80"
    derivation = window.inspector.derivation.text()
    assert "output shape = ?" in derivation and "100" not in derivation and "params = 2*2*1*16 + 16 = 80" in derivation
    assert window.inspector.derivation.toolTip() == MASK_TIP
    costs = window.summary.costs.text()  # for one layer, its MACs and output bytes multiply the shape out
    assert "Total MACs: ?" in costs and "Activation memory: ?" in costs and "640,000" not in costs

    panel.view.answer_field.setText("50x50x16")  # wrong
    panel.view.check_button.click()
    assert "✘" in panel.view.feedback.text()
    assert card(window, layer)[0]["shape"] == MASK and summary_row(window, layer)[1] == MASK
    assert not window.summary.copy_button.isEnabled()  # Keras's whole table would paste the answer

    panel.view.answer_field.setText("100x100x16")
    panel.view.check_button.click()
    assert "✔" in panel.view.feedback.text()
    assert card(window, layer)[0]["shape"] == "(None, 100, 100, 16)"
    assert summary_row(window, layer)[1] == "(None, 100, 100, 16)"
    assert "output shape = (None, 100, 100, 16)" in window.inspector.derivation.text()
    assert not window.inspector.derivation.toolTip()
    assert "Total MACs: 640,000" in window.summary.costs.text()
    assert window.summary.copy_button.isEnabled()


def test_params_hide_the_row_the_card_and_every_total_until_show_the_answer(window, panel):
    # Lesson 02 step 3: one conv2d is the whole model, so its total IS the answer
    layer = open_at(panel, "02_stride_padding.md", 2, "params")
    texts, tip = card(window, layer)
    assert texts["params"] == f"{MASK} params" and texts["shape"] == "(None, 100, 100, 16)"
    assert "params = ?" in tip and "= 80" not in tip
    assert summary_row(window, layer)[2] == MASK
    totals = window.summary.totals.text()
    assert "Total params: ?" in totals and "80" not in totals
    assert "Training peak" in window.summary.memory.text() and "weights" not in window.summary.memory.text()
    assert "params = ?" in window.inspector.derivation.text()
    assert "= 80" not in window.inspector.derivation.text()

    panel.view.reveal_button.click()
    assert card(window, layer)[0]["params"].startswith("80 params")
    assert summary_row(window, layer)[2] == "80"
    assert "Total params: 80" in window.summary.totals.text()
    assert "(weights 320 B)" in window.summary.memory.text()


def test_skipping_leaving_and_closing_give_the_numbers_back(window, panel):
    layer = open_at(panel, "02_stride_padding.md", 1, "output_shape")
    assert card(window, layer)[0]["shape"] == MASK
    panel.next_button.click()  # Skip ▶ to the params step: the shape is back, the params hidden
    assert card(window, layer)[0]["shape"] == "(None, 100, 100, 16)"
    assert card(window, layer)[0]["params"] == f"{MASK} params"
    panel.next_button.click()  # a step with a change: the model on screen is not its answer
    assert panel.step.change and not panel.answer_mask.pairs
    assert card(window, layer)[0]["shape"] == "(None, 100, 100, 16)" and summary_row(window, layer)[2] == "80"
    panel.previous_step()
    assert summary_row(window, layer)[2] == MASK
    panel.show_list()  # back to all lessons
    assert summary_row(window, layer)[2] == "80"
    panel.open_lesson(LESSONS / "02_stride_padding.md", step=2, restart=True)
    assert summary_row(window, layer)[2] == MASK
    window.lessons_dock.close()  # the lesson closed with its dock
    assert summary_row(window, layer)[2] == "80" and "Total params: 80" in window.summary.totals.text()
    panel.open_lesson(LESSONS / "02_stride_padding.md", step=2, restart=True)
    assert summary_row(window, layer)[2] == MASK
    window.document.reset(window.document.input_shape, window.document.entries)  # another project opened
    assert summary_row(window, layer)[2] == "80"


def test_receptive_field_and_macs_are_hidden_on_the_card_and_summary(window, panel):
    layer = open_at(panel, "05_receptive_fields.md", 1, "receptive_field")
    texts, tip = card(window, layer)
    assert texts["note"] == f"receptive field {MASK}" and "receptive field = ?" in tip
    assert "sees 5x5" not in tip and "receptive field = ?" in window.inspector.derivation.text()
    assert texts["shape"] != MASK and "?" not in texts["params"]
    assert card(window, "conv2d")[0]["note"] == "receptive field 3x3"  # other blocks keep theirs

    layer = open_at(panel, "03_pooling.md", 4, "macs")
    texts, tip = card(window, layer)
    assert texts["macs"] == f"{MASK} MACs" and "MACs = ?" in tip
    assert [line for line in tip.splitlines() if line.startswith("MACs =")] == ["MACs = ? (predict it in the Lessons "
                                                                            "panel first)"]
    assert "Total MACs: ?" in window.summary.costs.text()
    row = window.document.row_named(layer)
    assert window.summary.table.item(row, 2).toolTip().startswith(MASK_TIP)
    panel.view.reveal_button.click()
    assert card(window, layer)[0]["macs"].endswith("MACs") and MASK not in card(window, layer)[0]["macs"]
    assert "Total MACs: ?" not in window.summary.costs.text()


def test_total_params_hides_the_totals_but_not_the_rows(window, panel):
    open_at(panel, "06_keras_mnist_cnn.md", 4, "total_params")
    assert "Total params: ?" in window.summary.totals.text()
    assert "Ready to train: ? parameters" in window.train_status.text()
    assert all(MASK not in row[2] for row in window.summary.cell_texts())  # adding them up is the exercise
    panel.view.answer_field.setText("1")
    panel.view.check_button.click()  # wrong: still hidden
    assert "Total params: ?" in window.summary.totals.text()
    panel.view.reveal_button.click()
    total = f"{window.document.report.total_params:,}"
    assert f"Total params: {total}" in window.summary.totals.text()
    assert f"Ready to train: {total} parameters" in window.train_status.text()
