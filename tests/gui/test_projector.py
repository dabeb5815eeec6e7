"""A classroom projector: zoom, no sideways scrolling at 1024x768 / 1280x720 / 150 %, enlarged
tiles, unclipped inspector text, memory on the cards, readable presets and status text."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("pytestqt")


def make_window(qtbot, settings_path, size=None, preset="seed_cnn"):
    from PySide6.QtCore import QSettings

    from visualcnn.gui.app import create_application
    from visualcnn.gui.main_window import MainWindow, preset_paths

    create_application()
    settings = QSettings(str(settings_path), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    if preset:
        assert window.load_preset(next(p for p in preset_paths() if p.stem == preset))
    if size:
        window.resize(*size)
        window.fit_docks()  # what the window does for the size it opens at
    window.show()
    qtbot.waitExposed(window)
    return window


@pytest.fixture(autouse=True)
def _no_modal_dialogs(dialogs):
    """A failing test must not hang on the 'unsaved changes' question when its window closes."""
    return dialogs


@pytest.fixture(autouse=True)
def _reset_zoom():
    yield
    from PySide6.QtWidgets import QApplication

    from visualcnn.gui.zoom import apply_zoom

    if QApplication.instance() is not None:
        apply_zoom(1.0)  # the application font is process-wide: leave it as found


def settle(qtbot, ms=150):
    qtbot.wait(ms)


def sideways_scrolling(window) -> list[str]:
    from PySide6.QtWidgets import QAbstractScrollArea

    return [f"{type(w).__name__} {w.objectName()!r} (by {w.horizontalScrollBar().maximum()} px)"
            for w in window.findChildren(QAbstractScrollArea)
            if w.isVisible() and w.horizontalScrollBar().isVisible() and w.horizontalScrollBar().maximum() > 0]


def fake_results(window):
    """Fill the Train tab's test results as after a run, so their layout is measured too."""
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=500).astype(np.float32)
    labels = rng.integers(0, 10, size=500)
    results = SimpleNamespace(loss=0.4, accuracy=0.9, probabilities=probabilities, labels=labels)
    images = rng.integers(0, 255, size=(500, 28, 28)).astype(np.uint8)
    window.train_panel.results.set_results(results, images)
    window.train_panel.lower_tabs.setCurrentIndex(1)


# --- zoom -----------------------------------------------------------------------------


def test_zoom_in_scales_the_font_and_is_remembered(qtbot, tmp_path):
    from PySide6.QtWidgets import QApplication

    window = make_window(qtbot, tmp_path / "s.ini")
    before = QApplication.font().pointSizeF()
    card_before = window.pipeline.list_widget.sizeHintForRow(0)
    window.zoom.zoom_in_action.trigger()
    window.zoom.zoom_in_action.trigger()
    settle(qtbot)
    factor = window.zoom.factor
    assert factor > 1.1
    assert QApplication.font().pointSizeF() == pytest.approx(before * factor, rel=0.02)
    assert window.inspector.font().pointSizeF() == pytest.approx(before * factor, rel=0.02)
    assert window.pipeline.list_widget.sizeHintForRow(0) > card_before  # cards grow with the text
    window.settings.sync()
    window.undo_stack.setClean()
    window.close()

    apply_default = QApplication.font().pointSizeF()
    again = make_window(qtbot, tmp_path / "s.ini")
    assert again.zoom.factor == pytest.approx(factor)
    assert QApplication.font().pointSizeF() == pytest.approx(apply_default)
    again.zoom.reset_action.trigger()
    assert QApplication.font().pointSizeF() == pytest.approx(before)
    assert again.settings.value("view/zoom", type=float) == pytest.approx(1.0)
    again.undo_stack.setClean()


def test_zoom_shortcuts_and_limits(qtbot, tmp_path):
    from PySide6.QtGui import QKeySequence

    from visualcnn.gui.zoom import MAX_ZOOM, MIN_ZOOM, clamp_zoom

    window = make_window(qtbot, tmp_path / "s.ini", preset=None)
    zoom = window.zoom
    assert zoom.zoom_in_action.shortcut() == QKeySequence(QKeySequence.StandardKey.ZoomIn)
    assert zoom.zoom_out_action.shortcut() == QKeySequence(QKeySequence.StandardKey.ZoomOut)
    assert zoom.reset_action.shortcut() == QKeySequence("Ctrl+0")
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    assert zoom.zoom_in_action in view_menu.actions()
    for _ in range(20):
        zoom.zoom_in()
    assert zoom.factor == MAX_ZOOM and not zoom.zoom_in_action.isEnabled()
    for _ in range(20):
        zoom.zoom_out()
    assert zoom.factor == MIN_ZOOM and not zoom.zoom_out_action.isEnabled()
    assert clamp_zoom("nonsense") == 1.0 and clamp_zoom(float("nan")) == 1.0 and clamp_zoom(99) == MAX_ZOOM
    window.undo_stack.setClean()


def test_zoom_scales_chart_fonts_and_tiles(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path / "s.ini", size=(1280, 720))
    curves = window.train_panel.curves
    maps = window.draw_panel._maps
    tick = curves.loss_plot.getAxis("bottom").style["tickFont"].pointSizeF()
    side = maps.tile_side()
    window.zoom.set_factor(1.5)
    settle(qtbot)
    assert curves.loss_plot.getAxis("bottom").style["tickFont"].pointSizeF() == pytest.approx(tick * 1.5, rel=0.05)
    assert maps.tile_side() > side * 1.3
    window.undo_stack.setClean()


# --- no sideways scrolling ---------------------------------------------------------------


@pytest.mark.parametrize("size, zoom", [((1024, 768), 1.0), ((1280, 720), 1.0), ((1920, 1080), 1.5)])
def test_no_tab_scrolls_sideways(qtbot, tmp_path, size, zoom):
    window = make_window(qtbot, tmp_path / "s.ini", preset="lenet5")
    window.zoom.set_factor(zoom)
    window.resize(*size)
    window.fit_docks()
    settle(qtbot)
    window.pipeline.list_widget.select_row(4)  # Flatten: the longest explanation in the inspector
    for index in range(window.tabs.count()):
        window.tabs.setCurrentIndex(index)
        if index == 1:
            fake_results(window)
        if index == 2:
            window.draw_panel.canvas.add_stroke([(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)])
        settle(qtbot, 300)
        assert window.width() == size[0]
        assert sideways_scrolling(window) == [], f"tab {window.tabs.tabText(index)} at {size}, zoom {zoom}"
    window.undo_stack.setClean()


def test_pipeline_shows_every_block_of_lenet_at_1280x720(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path / "s.ini", size=(1280, 720), preset="lenet5")
    settle(qtbot, 300)
    lw = window.pipeline.list_widget
    last = lw.visualRect(lw.model().index(lw.model().rowCount() - 1))
    assert last.bottom() <= lw.viewport().height(), "the last block is out of sight"
    assert window.summary_dock in window.tabifiedDockWidgets(window.inspector_dock)
    window.undo_stack.setClean()


def test_tab_bar_stays_in_one_place_on_every_tab(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path / "s.ini", size=(1280, 800))
    bar = window.tab_bar
    assert bar.isVisible() and not window.tabs.tabBar().isVisible()
    places = []
    for index in range(3):
        bar.setCurrentIndex(index)  # clicking the pinned bar switches the page
        settle(qtbot)
        assert window.tabs.currentIndex() == index
        places.append(bar.mapTo(window, bar.rect().topLeft()))
    assert places[0] == places[1] == places[2]
    window.tabs.setCurrentIndex(0)  # and the other way round
    assert bar.currentIndex() == 0
    window.undo_stack.setClean()


# --- enlarged tiles -----------------------------------------------------------------------


def test_clicking_a_feature_map_tile_opens_it_enlarged(qtbot):
    from PySide6.QtCore import Qt

    from visualcnn.gui.app import create_application
    from visualcnn.gui.panels.feature_maps import FeatureMapsWidget, MapLayer

    create_application()
    widget = FeatureMapsWidget()
    qtbot.addWidget(widget)
    widget.resize(700, 500)
    widget.show()
    qtbot.waitExposed(widget)
    maps = np.random.default_rng(1).normal(size=(26, 26, 8)).astype(np.float32)
    widget.set_layers([MapLayer("conv2d", "Conv2D", maps, (3, 3), (1, 1), (1, 1))])
    settle(qtbot, 200)
    assert widget.tile_side() >= 30  # not the 17 px of before
    scene_point = widget.scene_position(0, 5, 10, 12)
    view = widget._graphics
    pos = view.mapFromScene(scene_point)
    with qtbot.waitSignal(widget.tile_clicked) as clicked:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert clicked.args == ["conv2d", 5]
    dialog = widget._dialog
    assert dialog.isVisible()
    assert "conv2d" in dialog.title.text() and "channel 5" in dialog.title.text()
    assert dialog.value_range() == pytest.approx((float(maps[:, :, 5].min()), float(maps[:, :, 5].max())))
    assert f"{maps[:, :, 5].max():.4g}" in dialog.details.text()
    assert dialog.image.pixmap().width() >= 8 * 26  # readable: at least 8 screen pixels per value


def test_clicking_a_filter_opens_it_enlarged(qtbot):
    from PySide6.QtCore import Qt

    from visualcnn.gui.app import create_application
    from visualcnn.gui.panels.filters import FiltersPanel

    create_application()
    panel = FiltersPanel()
    qtbot.addWidget(panel)
    panel.resize(500, 400)
    panel.show()
    qtbot.waitExposed(panel)
    kernel = np.random.default_rng(2).normal(size=(3, 3, 1, 6)).astype(np.float32)
    panel.set_weights({"conv2d": [kernel, np.zeros(6, np.float32)]})
    settle(qtbot, 200)
    pos = panel._graphics.mapFromScene(panel.scene_position(4, 1, 1))
    with qtbot.waitSignal(panel.tile_clicked) as clicked:
        qtbot.mouseClick(panel._graphics.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert clicked.args == [4]
    dialog = panel._dialog
    assert dialog.isVisible() and "filter 4" in dialog.title.text()
    np.testing.assert_allclose(dialog.values, kernel[:, :, 0, 4])


# --- inspector ----------------------------------------------------------------------------


def test_inspector_text_fits_for_every_layer_class(qtbot, tmp_path):
    from PySide6.QtWidgets import QLabel

    from visualcnn.engine.layers import LAYER_CLASSES
    from visualcnn.gui.palette import starter_config

    window = make_window(qtbot, tmp_path / "s.ini", size=(1024, 768), preset=None)
    lw = window.pipeline.list_widget
    names = list(LAYER_CLASSES)
    for row, name in enumerate(names):
        lw.insert_layer(row, name, starter_config(name))
    assert window.inspector_dock.width() <= 360
    room = window.inspector.parentWidget().width()  # the scroll area's viewport
    for row, name in enumerate(names):
        lw.select_row(row)
        settle(qtbot, 30)
        inspector = window.inspector
        assert inspector.minimumSizeHint().width() <= room, name
        for label in inspector.findChildren(QLabel):
            if not label.isVisible() or not label.text():
                continue
            fits = label.wordWrap() or label.sizeHint().width() <= label.width()
            assert fits, f"{name}: {label.text()!r} is clipped ({label.sizeHint().width()} > {label.width()})"
    window.undo_stack.setClean()


# --- cards: memory and receptive fields ----------------------------------------------------


def test_cards_show_memory_at_the_batch_size(qtbot, tmp_path):
    from visualcnn.gui.pipeline_view import MEMORY_ROLE

    window = make_window(qtbot, tmp_path / "s.ini")
    model = window.pipeline.list_widget.model()
    texts = model.data(model.index(0), MEMORY_ROLE)  # conv2d: 32 x 26 x 26 floats per image, batch 64
    assert texts["activation_memory"] == "5.3 MiB"
    assert texts["params"] == "320 params · 1.2 KiB"
    tooltip = model.data(model.index(0), 3)  # ToolTipRole
    assert "Memory at batch 64" in tooltip
    assert "Training peak at batch 64" in window.summary.memory.text()
    assert window.summary.memory_problem is None
    window.undo_stack.setClean()


def test_training_peak_is_red_when_it_cannot_fit(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("VISUALCNN_MEMORY_LIMIT", str(1024 * 1024))  # a 1 MiB machine
    window = make_window(qtbot, tmp_path / "s.ini")
    summary = window.summary
    assert summary.memory_problem and "available" in summary.memory_problem
    assert "color" in summary.memory.styleSheet()
    assert not window.train_button.isEnabled()
    assert window.train_status.text().startswith("Cannot train")
    window.undo_stack.setClean()


def test_vector_blocks_and_fields_past_the_image_are_explained(qtbot, tmp_path):
    from visualcnn.gui.pipeline_view import REPORT_ROLE

    window = make_window(qtbot, tmp_path / "s.ini", preset="lenet5")
    model = window.pipeline.list_widget.model()
    rows = {model.data(model.index(r), REPORT_ROLE).layer.class_name: r for r in range(model.rowCount())}
    flatten = model.data(model.index(rows["Flatten"]), 0)
    assert "past the 28x28 image's border" in flatten
    tip = model.data(model.index(rows["Flatten"]), 3)
    assert "no sliding window" in tip and "larger than the 28x28 input image" in tip
    dense_tip = model.data(model.index(rows["Dense"]), 3)
    assert "every input to every unit" in dense_tip
    window.pipeline.list_widget.select_row(rows["Dense"])
    assert "every input to every unit" in window.inspector.derivation.text()
    window.undo_stack.setClean()


def test_seed_cnn_dense_sees_part_of_the_image(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path / "s.ini")
    model = window.pipeline.list_widget.model()
    assert "sees 26x26 of the 28x28 image" in model.data(model.index(4), 0)  # flatten
    assert "never seen" in model.data(model.index(4), 3)
    window.undo_stack.setClean()


# --- one readiness check -------------------------------------------------------------------


@pytest.mark.parametrize("edit", ["input", "units", "activation"])
def test_build_tab_readiness_is_the_engines(qtbot, tmp_path, edit):
    from visualcnn.engine.recipe import readiness_problem
    from visualcnn.gui.commands import SetInputShapeCommand, SetLayerConfigCommand

    window = make_window(qtbot, tmp_path / "s.ini")
    document = window.document
    last = len(document) - 1
    if edit == "input":
        window.undo_stack.push(SetInputShapeCommand(document, (32, 32, 1)))
    else:
        config = dict(document.entry(last).config)
        config.update({"units": 64} if edit == "units" else {"activation": "relu"})
        window.undo_stack.push(SetLayerConfigCommand(document, last, config))
    problem = readiness_problem(document.report, document.training)
    assert problem is not None
    assert not window.train_button.isEnabled()
    assert window.train_status.text() == f"Cannot train: {problem}"
    window.undo_stack.setClean()


# --- papercuts ------------------------------------------------------------------------------


def test_presets_menu_shows_readable_titles(qtbot, tmp_path):
    import json

    from visualcnn.gui.main_window import preset_paths

    window = make_window(qtbot, tmp_path / "s.ini", preset=None)
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Presets")
    texts = [a.text() for a in menu.actions()]
    titles = [json.loads(p.read_text(encoding="utf-8")).get("title") for p in preset_paths()]
    assert all(titles) and sorted(texts) == sorted(titles)
    assert not [t for t in texts if "_" in t]
    window.undo_stack.setClean()


def test_progress_line_never_breaks_inside_images_per_second(qtbot):
    from PySide6.QtGui import QTextLayout

    from visualcnn.engine.training import StepReport
    from visualcnn.gui.app import create_application
    from visualcnn.gui.panels.training_controls import TrainingControlsPanel

    create_application()
    controls = TrainingControlsPanel()
    qtbot.addWidget(controls)
    controls.begin(2, 43)
    controls.show_step(StepReport(2, 2, 43, 43, 1.0, 0.5, 1.0, 0.5, 3820.0, 2752, 0.72, 0.0))
    text = controls.progress_label.text()
    assert "images" in text
    for width in range(70, 400, 2):  # every width the column can have, down to a few words
        layout = QTextLayout(text, controls.progress_label.font())
        layout.beginLayout()
        lines = []
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(width)
            lines.append(text[line.textStart():line.textStart() + line.textLength()])
        layout.endLayout()
        assert not [line for line in lines if line.rstrip().rstrip("\u2060").endswith("/")], (width, lines)


def test_card_memory_follows_the_documents_batch_size(qtbot, tmp_path):
    from dataclasses import replace

    from visualcnn.gui.pipeline_view import MEMORY_ROLE

    window = make_window(qtbot, tmp_path / "s.ini")
    model = window.pipeline.list_widget.model()
    assert model.data(model.index(0), MEMORY_ROLE)["activation_memory"] == "5.3 MiB"
    window.document.set_training(replace(window.document.training, batch_size=128))
    assert model.data(model.index(0), MEMORY_ROLE)["activation_memory"] == "10.6 MiB"
    assert "Training peak at batch 128" in window.summary.memory.text()
    assert "at batch 128" in window.train_status.text()
    window.undo_stack.setClean()
