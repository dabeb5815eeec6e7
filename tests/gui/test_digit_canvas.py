"""Drawing on the canvas with real mouse events."""

import numpy as np
from PySide6.QtCore import QPoint, Qt

from visualcnn.engine.preprocess import canvas_to_mnist
from visualcnn.gui.panels.digit_canvas import DigitCanvasWidget


def drag(qtbot, widget, points):
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=QPoint(*points[0]))
    for p in points[1:]:
        qtbot.mouseMove(widget, QPoint(*p))
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=QPoint(*points[-1]))


def test_mouse_stroke_makes_ink_and_a_signal(qtbot):
    canvas = DigitCanvasWidget()
    qtbot.addWidget(canvas)
    canvas.resize(300, 300)
    canvas.show()
    assert canvas.image_array().max() == 0
    with qtbot.waitSignal(canvas.stroke_finished, timeout=2000):
        drag(qtbot, canvas, [(150, 40), (150, 100), (150, 160), (150, 260)])
    image = canvas.image_array()
    assert image.shape == (280, 280) and image.dtype == np.uint8
    column = image[:, 140]
    assert column[60:220].min() > 200, "a vertical stroke inks the middle column"
    assert image[:, :60].max() == 0, "nothing far from the stroke"
    digit = canvas_to_mnist(image)
    assert digit.shape == (28, 28) and digit.max() > 0.9


def test_undo_and_clear(qtbot):
    canvas = DigitCanvasWidget()
    qtbot.addWidget(canvas)
    canvas.add_stroke([(0.2, 0.2), (0.8, 0.2)])
    canvas.add_stroke([(0.5, 0.2), (0.5, 0.9)])
    assert canvas.stroke_count == 2
    canvas.undo_stroke()
    assert canvas.stroke_count == 1 and canvas.image_array()[200:, 140].max() == 0
    with qtbot.waitSignal(canvas.drawing_cleared, timeout=1000):
        canvas.clear()
    assert canvas.stroke_count == 0 and canvas.image_array().max() == 0


def test_pen_width_changes_the_ink(qtbot):
    canvas = DigitCanvasWidget()
    qtbot.addWidget(canvas)
    canvas.add_stroke([(0.5, 0.2), (0.5, 0.8)])
    thin = (canvas.image_array() > 127).sum()
    canvas.set_pen_fraction(0.15)
    thick = (canvas.image_array() > 127).sum()
    assert thick > 1.8 * thin
