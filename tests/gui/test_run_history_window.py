"""The run history (issue 15 item 5): runs of the real Train tab are recorded in the
project; the run table sorts, highlights what differs, overlays the ticked runs' curves,
deletes undoably and exports the table as CSV and a chart as PNG / SVG."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from visualcnn.engine import read_model_file
from visualcnn.engine.run_history import check_runs_section


def tiny_run(qtbot, window, learning_rate, batch_size=64):
    """One short run (320 images, 1 epoch) through the Train tab's own Start."""
    controls = window.train_panel.controls
    controls.train_images.setValue(320)
    controls.epochs.setValue(1)
    controls.batch_size.setValue(batch_size)
    controls.learning_rate.setValue(learning_rate)
    with qtbot.waitSignal(window.run_recorder.recorded, timeout=120_000) as blocker:
        window.train_button.click()
    return blocker.args[0]




def test_three_runs_are_recorded_and_compared(qtbot, seed_window, tmp_path):
    window = seed_window
    records = [tiny_run(qtbot, window, lr, bs) for lr, bs in ((0.001, 64), (0.003, 64), (0.001, 32))]
    runs = window.document.section("runs")
    assert [r["id"] for r in runs] == [1, 2, 3] and records[-1] == runs[-1]
    for run in runs:
        assert run["source"] == "window" and run["status"] == "completed" and run["epochs"] == 1
        assert run["dataset"] == "MNIST, 320 training images" and run["settings"]["limit"] == 320
        assert 0.0 <= run["final"]["test_accuracy"] <= 1.0 and run["steps"]["x"][-1] == pytest.approx(1.0)
    assert [r["settings"]["learning_rate"] for r in runs] == [0.001, 0.003, 0.001]
    assert "the run history" in window.unsaved_changes_text()

    history = window.open_run_history()
    qtbot.waitExposed(history)
    assert history.row_ids() == [1, 2, 3]
    # what differs (learning rate, batch size) comes first among the settings, highlighted
    differing = [c.header for c in history.columns if c.differs]
    assert differing == ["learning rate", "batch size"]
    lr_col = history.column_index("settings.learning_rate")
    opt_col = history.column_index("settings.optimizer")
    assert lr_col < opt_col
    highlighted = history.table.item(0, lr_col).background().color().name()
    assert highlighted == "#fff1b8" and history.table.item(0, opt_col).background().color().name() != highlighted
    assert history.table.item(1, lr_col).text() == "0.003"

    # sorting: by learning rate descending puts run 2 first; by batch size ascending run 3
    history.table.sortItems(lr_col, Qt.SortOrder.DescendingOrder)
    assert history.row_ids()[0] == 2
    history.table.sortItems(history.column_index("settings.batch_size"), Qt.SortOrder.AscendingOrder)
    assert history.row_ids()[0] == 3

    # the ticked runs are overlaid by the curves panel, in their own colours
    assert history.curves.shown_runs() == [1, 2, 3]
    history.set_shown(2, False)
    assert history.curves.shown_runs() == [1, 3]
    x, y = history.curves.series("epoch_loss", run=0)
    assert list(x) == [0.5] and y[0] == pytest.approx(runs[0]["final"]["loss"])
    assert history.curves.legend_labels() == ["run 1", "run 3"]
    # each run's learning rate in the strip under the loss, in its colour (flat: no schedule)
    rates = [run.lr_item.getData()[1] for run in history.curves._runs]
    assert [list(r) for r in rates] == [[0.001, 0.001], [0.001, 0.001]]
    assert history.curves._runs[0].lr_item.opts["pen"].color().name() == "#1f77b4"

    # CSV: one row per run, the table's columns
    path = tmp_path / "runs.csv"
    history.export_csv(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [row["id"] for row in rows] == ["1", "2", "3"]
    assert [float(row["settings.learning_rate"]) for row in rows] == [0.001, 0.003, 0.001]
    assert float(rows[0]["final.test_accuracy"]) == pytest.approx(runs[0]["final"]["test_accuracy"])

    # charts: PNG and SVG of either plot or both
    png = tmp_path / "loss.png"
    history.export_chart(png, "loss")
    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 200
    svg = tmp_path / "both.svg"
    history.export_chart(svg, "both")
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "Accuracy" in text

    # deleting is one undoable edit
    history.table.selectRow(history.row_ids().index(1))
    assert history.selected_ids() == [1]
    history.delete_button.click()
    assert [r["id"] for r in window.document.section("runs")] == [2, 3] and history.row_ids() == [3, 2]
    window.undo_stack.undo()
    assert [r["id"] for r in window.document.section("runs")] == [1, 2, 3]

    # the history is saved with the project and reads back through the checker
    saved = tmp_path / "project.json"
    assert window.save_to(saved)
    back = read_model_file(saved.read_text()).sections["runs"]
    assert back == check_runs_section(json.loads(json.dumps(runs)))


def test_a_stopped_run_is_recorded_as_stopped(qtbot, seed_window):
    controls = seed_window.train_panel.controls
    controls.train_images.setValue(640)
    controls.epochs.setValue(1000)
    with qtbot.waitSignal(seed_window.train_panel.controller.progressed, timeout=60_000):
        seed_window.train_button.click()
    with qtbot.waitSignal(seed_window.run_recorder.recorded, timeout=60_000) as blocker:
        seed_window.train_panel.controls.stop_button.click()
    record = blocker.args[0]
    assert record["status"] == "stopped" and "test_accuracy" not in record["final"]
    assert record["settings"]["epochs"] == 1000 and record["epochs"] < 1000


def test_many_runs_tick_the_newest_and_redraw_only_what_changed(qtbot, doc):
    from visualcnn.engine.run_history import add_run, record_from_reports
    from visualcnn.engine.training import EpochReport, StepReport
    from visualcnn.gui.run_history_window import SHOWN_AT_FIRST, RunHistoryWindow

    reports = [StepReport(1, 1, b, 20, 1.0 / b, 0.5, 1.0 / b, 0.5, 1.0, b, 0.1, 0.1) for b in range(1, 21)]
    reports.append(EpochReport(1, 1, 0.3, 0.9, None, None, 1.0, 1.0))
    runs = []
    for i in range(20):
        runs = add_run(runs, record_from_reports(reports, {"learning_rate": 0.001 * (1 + i % 2)}, "MNIST"))
    doc.set_section("runs", runs)
    history = RunHistoryWindow(doc)
    qtbot.addWidget(history)
    assert history.curves.shown_runs() == list(range(21 - SHOWN_AT_FIRST, 21))
    assert "the newest 8 are ticked" in history.heading.text()
    items = {run.index: run.series["smooth_loss"].item for run in history.curves._runs}
    history.set_shown(3, True)
    history.set_shown(20, False)
    assert history.curves.shown_runs() == [3] + list(range(21 - SHOWN_AT_FIRST, 20))
    kept = {run.index: run.series["smooth_loss"].item for run in history.curves._runs}
    assert all(kept[i] is items[i] for i in range(21 - SHOWN_AT_FIRST, 20))  # drawn once, not again
    assert items[20].scene() is None  # the unticked run's curves left the chart
    doc.set_section("runs", add_run(doc.section("runs"), runs[0]))  # a new run is ticked at once
    assert history.curves.shown_runs()[-1] == 21 and history.row_ids()[-1] == 21
