"""A square canvas to draw a digit on: white ink on black, as MNIST.

Strokes are kept as point lists in canvas-independent units (0..1), so the drawing
survives resizes and "undo last stroke" is just dropping the last list. They are
rendered with an anti-aliased round pen into a fixed-size greyscale raster (the image
the engine's canvas_to_mnist receives), and onto the widget at whatever size it has.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

RASTER_SIZE = 280  # pixels of the image handed to preprocessing (10x MNIST)
DEFAULT_PEN = 0.07  # pen width as a fraction of the canvas: MNIST-like stroke weight


class DigitCanvasWidget(QWidget):
    """Draw with the mouse or a tablet. Emits stroke_finished on every release."""

    stroke_finished = Signal()
    drawing_cleared = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._strokes: list[list[QPointF]] = []
        self._current: list[QPointF] | None = None
        self._pen_fraction = DEFAULT_PEN
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Draw a digit with the mouse. Right-click or Ctrl+Z undoes the last stroke.")

    # --- public API -----------------------------------------------------------------

    @property
    def stroke_count(self) -> int:
        return len(self._strokes)

    def pen_fraction(self) -> float:
        return self._pen_fraction

    def set_pen_fraction(self, fraction: float) -> None:
        """Pen width as a fraction of the canvas side (0.02 .. 0.2)."""
        self._pen_fraction = float(min(max(fraction, 0.02), 0.2))
        self.update()
        if self._strokes:
            self.stroke_finished.emit()

    def clear(self) -> None:
        if self._strokes or self._current:
            self._strokes.clear()
            self._current = None
            self.update()
            self.drawing_cleared.emit()

    def undo_stroke(self) -> None:
        if self._strokes:
            self._strokes.pop()
            self.update()
            if self._strokes:
                self.stroke_finished.emit()
            else:
                self.drawing_cleared.emit()

    def add_stroke(self, points: list[tuple[float, float]]) -> None:
        """Add a stroke in canvas units (0..1, x right, y down): for tests and demos."""
        self._strokes.append([QPointF(x, y) for x, y in points])
        self.update()
        self.stroke_finished.emit()

    def image_array(self, size: int = RASTER_SIZE) -> np.ndarray:
        """The drawing as a (size, size) uint8 array, ink high (255 = full ink)."""
        image = QImage(size, size, QImage.Format.Format_Grayscale8)
        image.fill(0)
        painter = QPainter(image)
        self._paint_strokes(painter, size, QColor(255, 255, 255))
        painter.end()
        # Grayscale8 rows are padded to 4 bytes; copy row by row through bytesPerLine.
        buffer = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * size)
        return buffer.reshape(size, image.bytesPerLine())[:, :size].copy()

    # --- drawing --------------------------------------------------------------------

    def _side(self) -> float:
        return float(min(self.width(), self.height()))

    def _origin(self) -> QPointF:
        side = self._side()
        return QPointF((self.width() - side) / 2, (self.height() - side) / 2)

    def _to_units(self, pos: QPointF) -> QPointF:
        side = self._side() or 1.0
        o = self._origin()
        return QPointF((pos.x() - o.x()) / side, (pos.y() - o.y()) / side)

    def _paint_strokes(self, painter: QPainter, side: float, colour: QColor) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        pen = QPen(colour, self._pen_fraction * side, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                   Qt.PenJoinStyle.RoundJoin)
        painter.setPen(pen)
        strokes = self._strokes + ([self._current] if self._current else [])
        for stroke in strokes:
            if len(stroke) == 1:  # a dot
                p = stroke[0] * side
                painter.drawPoint(p)
                continue
            path = QPainterPath(stroke[0] * side)
            for point in stroke[1:]:
                path.lineTo(point * side)
            painter.drawPath(path)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        side = self._side()
        painter.translate(self._origin())
        painter.fillRect(QRectF(0, 0, side, side), QColor(0, 0, 0))
        self._paint_strokes(painter, side, QColor(255, 255, 255))
        if not self._strokes and not self._current:
            painter.setPen(QColor(150, 150, 150))
            painter.drawText(QRectF(0, 0, side, side), Qt.AlignmentFlag.AlignCenter, "draw a digit here")
        painter.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.RightButton:
            self.undo_stroke()
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self._current = [self._to_units(event.position())]
            self.update()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._current is not None:
            self._current.append(self._to_units(event.position()))
            self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._current is not None and event.button() == Qt.MouseButton.LeftButton:
            self._strokes.append(self._current)
            self._current = None
            self.update()
            self.stroke_finished.emit()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(320, 320)

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return width
