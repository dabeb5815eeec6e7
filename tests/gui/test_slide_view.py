"""Watch it slide (issue 13 item 2): the window steps through every output cell in order, the
map fills in to the layer's output, the geometry drawn is the engine's, and the controls
(play, pause, step, back, reset, fill, speed, layer and filter choosers) work; closing the
window mid-animation is safe."""

from __future__ import annotations

import numpy as np
import pytest

from visualcnn.engine import Sequential
from visualcnn.engine import layers as L
from visualcnn.engine.explain.window import slide_geometry


def model_and_image():
    model = Sequential([L.Input((28, 28, 1)),
                        L.Conv2D(3, 3, strides=2, padding="same", activation="relu", name="s2_same"),
                        L.MaxPooling2D(2, name="pool"), L.Conv2D(2, 3, dilation_rate=2, name="dilated"),
                        L.Flatten(name="flatten"), L.Dense(10, activation="softmax", name="dense")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.build(seed=3)
    image = np.zeros((28, 28, 1), np.float32)
    image[4:24, 10:18, 0] = np.linspace(0.2, 1.0, 8)
    return model, image


@pytest.fixture
def slide(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.slide_view import SlideWindow

    create_application()
    w = SlideWindow()
    qtbot.addWidget(w)
    model, image = model_and_image()
    w.show_layer(model, image, "s2_same")
    qtbot.waitExposed(w)
    return w, model, image


def test_steps_through_every_cell_in_order_and_ends_with_the_layers_output(qtbot, slide):
    w, model, image = slide
    view = w.view
    view.filter.setValue(1)
    expected = model.activations(image[None])["s2_same"][0, :, :, 1]
    g = view.geometry_
    assert g.output_size == (14, 14) and g.pads == ((0, 1), (0, 1))  # the odd zero at the bottom / right
    assert "0 zero row(s) on top, 1 at the bottom" in view.description.text()
    seen = []
    view.cell_shown.connect(lambda i, j: seen.append((i, j)))
    assert np.isnan(view.shown).all()
    while view.step():
        i, j = seen[-1]
        assert view.canvas.cell == (i, j)
        assert view.shown[i, j] == expected[i, j]
        assert np.isnan(view.shown).sum() == 14 * 14 - len(seen)  # one cell more each step
    assert seen == [(i, j) for i in range(14) for j in range(14)]
    np.testing.assert_array_equal(view.shown, expected)
    # the last window reaches the padding row and column at the end
    assert g.window(13, 13) == ((26, 27, 28), (26, 27, 28))
    assert "padding zeros" in view.progress.text()
    assert f"{expected[13, 13]:.4g}" in view.result.text()
    assert not view.step()  # the map is full


def test_controls(qtbot, slide):
    w, model, image = slide
    view = w.view
    assert [view.layer.itemText(k) for k in range(view.layer.count())] == ["s2_same", "pool", "dilated"]
    view.set_speed(40)
    assert view.timer.interval() == 25 and "40 cells/s" in view.speed_label.text()
    view.play_button.click()
    assert view.is_playing() and "Pause" in view.play_button.text()
    qtbot.waitUntil(lambda: view.position >= 3, timeout=5000)
    view.play_button.click()
    assert not view.is_playing() and "Play" in view.play_button.text()
    stopped = view.position
    qtbot.wait(150)
    assert view.position == stopped  # paused means paused
    view.step_button.click()
    assert view.position == stopped + 1
    i, j = view.cells[view.position]
    view.back_button.click()
    assert view.position == stopped and np.isnan(view.shown[i, j])
    view.reset_button.click()
    assert view.position == -1 and np.isnan(view.shown).all() and view.canvas.cell is None
    view.fill_button.click()
    np.testing.assert_array_equal(view.shown, model.activations(image[None])["s2_same"][0, :, :, 0])
    # play again from a full map starts over
    view.play()
    assert view.position == -1 and view.is_playing()
    view.pause()
    # the layer chooser: a pooling layer has no kernel, a dilated conv reads with gaps
    view.layer.setCurrentText("pool")
    assert view.layer_name == "pool" and view.geometry_.pooling and not view.kernel.isVisibleTo(view)
    view.filter.setValue(2)
    view.step()
    assert view.patch.ring is not None  # the max is ringed, in the numbers and on the input
    a, b = view.patch.ring
    rows, cols = view.geometry_.window(0, 0)
    assert view.canvas.chosen == (rows[a], cols[b])
    assert view.patch.values[a, b] == view.patch.values.max()
    acts = model.activations(image[None])
    view.fill_all()
    np.testing.assert_array_equal(view.shown, acts["pool"][0, :, :, 2])
    view.layer.setCurrentText("dilated")
    assert view.geometry_ == slide_geometry(model.get_layer("dilated"), (7, 7))
    view.step()
    assert view.canvas.cell == (0, 0) and view.geometry_.window(0, 0) == ((0, 2, 4), (0, 2, 4))
    assert "dilation 2x2" in view.description.text()
    assert view.in_channel.isVisibleTo(view)  # three input channels: the one drawn is chosen
    view.in_channel.setValue(2)
    np.testing.assert_array_equal(view.canvas.input_map, acts["pool"][0, :, :, 2])


def test_closing_mid_animation_is_safe(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.slide_view import SlideWindow

    create_application()
    w = SlideWindow()  # not handed to qtbot: the test deletes it itself
    w.show_layer(*model_and_image(), "s2_same")
    qtbot.waitExposed(w)
    view = w.view
    view.set_speed(40)
    view.play()
    qtbot.waitUntil(lambda: view.position >= 1, timeout=5000)
    w.close()
    assert not view.is_playing()
    w.deleteLater()
    qtbot.wait(120)  # ticks that were due must not reach the deleted view


def test_the_draw_tab_owner_going_away_mid_animation_is_safe(qtbot):
    from PySide6.QtCore import QPoint, Qt

    from visualcnn.gui.app import create_application
    from visualcnn.gui.draw_tab import DrawTabWidget

    create_application()
    tab = DrawTabWidget()
    tab.resize(900, 700)
    tab.show()
    qtbot.waitExposed(tab)
    model, _image = model_and_image()
    tab.set_model(model)
    canvas = tab.canvas
    x = canvas.width() // 2
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, canvas.height() // 5))
    for y in range(canvas.height() // 5, 4 * canvas.height() // 5, 10):
        qtbot.mouseMove(canvas, QPoint(x, y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, 4 * canvas.height() // 5))
    slide = tab.watch_slide("s2_same")
    slide.view.set_speed(40)
    slide.view.play()
    qtbot.waitUntil(lambda: slide.view.position >= 1, timeout=5000)
    tab.close()
    tab.deleteLater()
    qtbot.wait(120)


def test_the_view_menu_opens_it_over_the_drawn_digit(qtbot, window):
    """Explain > Watch a Layer Slide… (window: the main window fixture of conftest.py)."""
    from PySide6.QtCore import QPoint, Qt

    window.watch_slide_action.trigger()
    assert "draw a digit" in window.statusBar().currentMessage()
    assert window.draw_panel.tracer.slide_window is None
    model, _image = model_and_image()
    window.draw_panel.set_model(model)
    window.tabs.setCurrentIndex(2)
    canvas = window.draw_panel.canvas
    qtbot.waitExposed(canvas)
    x = canvas.width() // 2
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, canvas.height() // 5))
    for y in range(canvas.height() // 5, 4 * canvas.height() // 5, 10):
        qtbot.mouseMove(canvas, QPoint(x, y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, 4 * canvas.height() // 5))
    window.watch_slide_action.trigger()
    slide = window.draw_panel.tracer.slide_window
    assert slide is not None and slide.isVisible() and slide.view.layer_name == "s2_same"
    slide.close()
