"""Datasets in the window: the picker stores the project's "dataset" section, an image folder
is read off the GUI thread with the engine's report, a bad folder gets one clear line, and an
RGB image folder trains from the window with its class names in the confusion matrix."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from make_shapes_dataset import make_shapes_dataset  # noqa: E402

CLASSES = ("circle", "square", "star", "triangle")


def tiny_rgb_model(side: int = 16, classes: int = len(CLASSES)) -> str:
    return json.dumps({"format": "visualcnn.model", "version": 1, "name": "tiny_rgb", "input_shape": [side, side, 3],
                       "layers": [{"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": [3, 3],
                                                                      "activation": "relu"}},
                                  {"class_name": "MaxPooling2D", "config": {"pool_size": [2, 2]}},
                                  {"class_name": "Flatten", "config": {}},
                                  {"class_name": "Dense", "config": {"units": classes, "activation": "softmax"}}]})


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """4 classes x 10 RGB images of 16x16 (40 files: quick to read and to train)."""
    return make_shapes_dataset(tmp_path_factory.mktemp("data") / "shapes", per_class=10, size=16, classes=CLASSES)


@pytest.fixture
def rgb_window(window):
    window.document.load_text(tiny_rgb_model())
    window.undo_stack.clear()
    return window


def wait_for_data(qtbot, tab):
    qtbot.waitUntil(lambda: tab.dataset() is not None or tab._data_error is not None, timeout=60_000)


def test_picking_a_folder_stores_the_section_and_shows_what_was_read(qtbot, rgb_window, shapes):
    tab = rgb_window.train_panel
    tab.controls.dataset.choose_folder(shapes)
    assert rgb_window.document.section("dataset") == {"source": "folder", "path": str(shapes)}
    assert tab.controls.dataset.source.currentText() == "Image folder: shapes"
    assert rgb_window.is_modified  # a changed section is a change of the project
    wait_for_data(qtbot, tab)
    data = tab.dataset()
    assert data.class_names == CLASSES and data.x_train.shape[1:] == (16, 16, 3)
    report = tab.controls.dataset.report.text()
    assert f"{len(data.y_train)} training and {len(data.y_test)} test images" in report
    assert "training" in report and "test images" in report and "4 classes" in report
    assert tab._blocker_reason() is None
    assert rgb_window.train_status.text().startswith("Ready to train")
    # not digits: the Draw tab becomes Try it, and comes back with MNIST
    index = rgb_window.tabs.indexOf(rgb_window.draw_page)
    assert rgb_window.tabs.tabText(index) == "Try it" and rgb_window.tab_bar.tabText(index) == "Try it"
    assert rgb_window.draw_page.widget() is rgb_window.dataset_ui.try_it
    tab.controls.dataset._pick({"source": "mnist"})
    assert rgb_window.document.section("dataset") is None
    assert rgb_window.tabs.tabText(index) == "Draw" and rgb_window.tab_bar.tabText(index) == "Draw"
    assert rgb_window.draw_page.widget() is rgb_window.draw_panel


def test_a_bad_folder_gets_one_clear_line_and_start_stays_off(qtbot, rgb_window, tmp_path):
    (tmp_path / "only_one_class").mkdir()
    (tmp_path / "only_one_class" / "a.png").write_bytes(b"not a png")
    tab = rgb_window.train_panel
    tab.controls.dataset.choose_folder(tmp_path)
    qtbot.waitUntil(lambda: tab.controls.dataset.report.text() not in ("", "Reading…")
                    and not tab.controls.dataset.report.text().startswith("Reading"), timeout=30_000)
    message = tab.controls.dataset.report.text()
    assert "\n" not in message and "only one class" in message and "add a sub-folder" in message
    assert not tab.controls.start_button.isEnabled()
    assert "only one class" in tab.controls.start_button.toolTip()
    assert not tab.start() and not tab.is_running()


def test_a_missing_folder_is_named(qtbot, rgb_window, tmp_path):
    tab = rgb_window.train_panel
    tab.controls.dataset.choose_folder(tmp_path / "gone")
    qtbot.waitUntil(lambda: "no such folder" in tab.controls.dataset.report.text(), timeout=30_000)
    assert not tab.controls.start_button.isEnabled()


def test_an_rgb_folder_trains_in_the_window_with_class_names_in_the_confusion_matrix(qtbot, rgb_window, shapes):
    tab = rgb_window.train_panel
    tab.controls.dataset.choose_folder(shapes)
    tab.controls.batch_size.setValue(8)
    tab.controls.epochs.setValue(1)
    with qtbot.waitSignal(tab.run_finished, timeout=120_000):
        rgb_window.train_button.click()  # Start while the folder may still be read: the run waits for it
    qtbot.waitUntil(lambda: tab.results._probabilities is not None, timeout=10_000)
    matrix = tab.results.matrix
    assert matrix.classes == len(CLASSES) and matrix.class_names == list(CLASSES)
    rows = [name for _, name in matrix.plot.getAxis("left")._tickLevels[0]]
    assert all(row.startswith(name) for row, name in zip(rows, CLASSES)) and len(rows) == len(CLASSES)
    columns = [name for _, name in matrix.plot.getAxis("bottom")._tickLevels[0]]
    assert all(c == n or (c.endswith("…") and n.startswith(c[:-1])) or c == str(i)
               for i, (c, n) in enumerate(zip(columns, CLASSES))), columns
    matrix.resize(1600, 900)  # room for the whole names under the columns
    qtbot.waitUntil(lambda: [n for _, n in matrix.plot.getAxis("bottom")._tickLevels[0]] == list(CLASSES),
                    timeout=5_000)
    assert int(matrix.matrix.sum()) == len(tab.dataset().y_test)
    tab.results.show_cell(0, 0)
    if tab.results.gallery.count():
        assert tab.results.gallery.item(0).text().startswith("true circle")
    assert rgb_window.document.trained_weights is not None
    maps = tab.feature_maps._layers  # the colour probe's feature maps, as for a digit
    assert [layer.name for layer in maps][:2] == ["conv2d", "max_pooling2d"] and maps[0].maps.shape == (14, 14, 4)
    # Try it classifies with the trained weights and the class names
    try_it = rgb_window.dataset_ui.try_it
    qtbot.waitUntil(try_it.has_model, timeout=10_000)
    assert try_it.open_image(next((shapes / "star").glob("*.png")))
    assert try_it.answer.text() in CLASSES and try_it.probabilities.shape == (len(CLASSES),)


def test_the_browser_shows_every_class_with_its_counts(qtbot, rgb_window, shapes):
    tab = rgb_window.train_panel
    tab.controls.dataset.choose_folder(shapes)
    wait_for_data(qtbot, tab)
    rgb_window.dataset_ui.browser_action.trigger()  # View ▸ Dataset Browser…
    browser = rgb_window.train_panel.dataset_browser
    assert browser.isVisible()
    qtbot.waitUntil(lambda: len(browser.class_labels) == len(CLASSES), timeout=10_000)
    data = tab.dataset()
    for index, (name, label) in enumerate(zip(CLASSES, browser.class_labels)):
        train = int((data.y_train == index).sum())
        test = int((data.y_test == index).sum())
        assert label.text() == f"<b>{name}</b>: {train:,} training, {test:,} test images"
        assert train + test == 10
    qtbot.waitUntil(lambda: not browser.mosaics[0].pixmap().isNull(), timeout=5_000)
    browser.close()


def test_long_class_names_are_shortened_under_narrow_columns(qtbot):
    from visualcnn.gui.panels.results import ConfusionMatrixWidget

    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    matrix = ConfusionMatrixWidget()
    qtbot.addWidget(matrix)
    matrix.set_class_names(names)
    matrix.resize(1800, 1000)
    matrix.show()
    qtbot.waitUntil(lambda: matrix.column_labels == names, timeout=5_000)
    matrix.resize(260, 260)
    qtbot.waitUntil(lambda: matrix.column_labels != names, timeout=5_000)
    short = matrix.column_labels
    assert len(set(short)) == len(names)  # still tell the columns apart
    if short[0] == "0":  # not even two letters fit: numbers, and the rows say which is which
        assert [n for _, n in matrix.plot.getAxis("left")._tickLevels[0]][0] == "T-shirt/top (0)"
    else:
        assert all(s == n or (s.endswith("…") and n.startswith(s[:-1])) for s, n in zip(short, names))


def test_closing_the_window_while_a_folder_is_read_is_safe(qtbot, rgb_window, shapes, tmp_path):
    import shutil

    folder = shutil.copytree(shapes, tmp_path / "copy")  # not read yet in this process
    tab = rgb_window.train_panel
    tab.controls.dataset.choose_folder(folder)
    assert tab.dataset() is None  # read in the background: not there yet when the window closes
    rgb_window.undo_stack.setClean()
    rgb_window.document.set_section("dataset", None)  # nothing unsaved: the close does not ask
    rgb_window._baseline = type(rgb_window._baseline).of(rgb_window.document)
    rgb_window.close()
    qtbot.waitUntil(lambda: not tab.dataset_loader.busy, timeout=30_000)
    qtbot.wait(50)  # the loader's signal reaches a closed window: nothing happens


def test_skipped_files_are_named_in_the_report_and_the_browser(qtbot, rgb_window, shapes, tmp_path):
    import shutil

    folder = shutil.copytree(shapes, tmp_path / "with_bad_files")
    (folder / "star" / "empty.png").write_bytes(b"")
    tab = rgb_window.train_panel
    tab.controls.dataset.choose_folder(folder)
    wait_for_data(qtbot, tab)
    assert "1 file(s) skipped" in tab.controls.dataset.report.text()
    tab.controls.dataset.browse.click()
    browser = tab.dataset_browser
    assert browser.report.isVisibleTo(browser)
    text = browser.report.toPlainText().splitlines()
    assert text[0] == "1 file(s) skipped:" and text[1].startswith("  skipped star/empty.png: ")
    browser.close()


def test_a_folders_resize_and_test_share_are_its_section_settings(qtbot, rgb_window, shapes):
    tab = rgb_window.train_panel
    picker = tab.controls.dataset
    assert not picker.settings_row.isVisibleTo(picker)  # MNIST has none
    picker.choose_folder(shapes)
    wait_for_data(qtbot, tab)
    assert picker.settings_row.isVisibleTo(picker)
    picker.test_split.setValue(0.5)
    assert rgb_window.document.section("dataset") == {"source": "folder", "path": str(shapes), "test_split": 0.5}
    qtbot.waitUntil(lambda: tab.dataset() is not None and len(tab.dataset().y_test) == 20, timeout=30_000)
    picker.interpolation.setCurrentIndex(picker.interpolation.findData("nearest"))
    picker.interpolation.activated.emit(picker.interpolation.currentIndex())
    assert rgb_window.document.section("dataset")["interpolation"] == "nearest"
    picker.test_split.setValue(0.2)  # the default again: left out of the section
    assert "test_split" not in rgb_window.document.section("dataset")
