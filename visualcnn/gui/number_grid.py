"""A small grid of numbers a class can read from the back of the room: each cell shows its
value, tinted by sign (blue positive, red negative, stronger for larger magnitudes);
padding cells are hatched grey zeros and one cell can be ringed (a max pooling's choice,
a sliding window's current cell). Used by the trace panel for patch, kernel, products.

Large grids (more than MAX_SPELLED cells a side) are drawn as colours only: numbers that
small are not readable, and the tooltip still gives each value.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

MAX_SPELLED = 9  # a side longer than this shows colours, not numbers


def number_text(value: float) -> str:
    """At most 5 characters: 0.53, -1.2, 12.3, 1e+03."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100 or magnitude < 0.01:
        return f"{value:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{value:.2f}" if magnitude < 10 else f"{value:.1f}"


def sign_colour(value: float, scale: float) -> QColor:
    """White at 0, blue for positive and red for negative values, saturating at `scale`."""
    strength = 0.0 if scale <= 0 else min(abs(value) / scale, 1.0)
    base = (60, 110, 220) if value >= 0 else (220, 70, 60)
    mix = [round(255 + (c - 255) * 0.75 * strength) for c in base]
    return QColor(*mix)


class NumberGrid(QWidget):
    """set_values((h, w) array, padding mask, ringed cell); paints nothing else."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.values = np.zeros((0, 0))
        self.padding: np.ndarray | None = None
        self.ring: tuple[int, int] | None = None
        self._scale = 1.0
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)

    def set_values(self, values, padding=None, ring: tuple[int, int] | None = None,
                   scale: float | None = None) -> None:
        """values (h, w); padding: (h, w) bools (hatched zeros); scale: the magnitude of full
        colour (default: the largest |value|, so grids shown side by side can share one)."""
        values = np.asarray(values, np.float64)
        self.values = values.reshape(1, -1) if values.ndim == 1 else values
        self.padding = None if padding is None else np.asarray(padding, bool)
        self.ring = ring
        finite = np.abs(self.values[np.isfinite(self.values)])
        self._scale = scale if scale is not None else (float(finite.max()) if finite.size else 1.0)
        self.updateGeometry()
        self.update()

    def spelled(self) -> bool:
        return max(self.values.shape, default=0) <= MAX_SPELLED

    def cell_side(self) -> int:
        metrics = self.fontMetrics()
        if self.spelled():
            return max(metrics.horizontalAdvance("-8e-10") + 10, round(2.2 * metrics.height()))
        return max(8, round(0.9 * metrics.height()))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        side = self.cell_side()
        h, w = self.values.shape if self.values.size else (1, 1)
        return QSize(w * side + 2, h * side + 2)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return self.sizeHint()

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        if not self.values.size:
            return
        side = self.cell_side()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        font = QFont(self.font())
        painter.setFont(font)
        spelled = self.spelled()
        for a in range(self.values.shape[0]):
            for b in range(self.values.shape[1]):
                rect = QRectF(1 + b * side, 1 + a * side, side, side)
                pad = self.padding is not None and bool(self.padding[a, b])
                value = float(self.values[a, b])
                if pad:
                    painter.fillRect(rect, QColor("#d8d8d8"))
                    painter.fillRect(rect, QBrush(QColor("#b0b0b0"), Qt.BrushStyle.BDiagPattern))
                elif np.isfinite(value):
                    painter.fillRect(rect, sign_colour(value, self._scale))
                else:
                    painter.fillRect(rect, QColor("#f4f4f4"))
                painter.setPen(QPen(QColor("#888"), 1))
                painter.drawRect(rect)
                if spelled and np.isfinite(value):
                    painter.setPen(QColor("#555" if pad else "#111"))
                    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "0" if pad else number_text(value))
        if self.ring is not None:
            a, b = self.ring
            painter.setPen(QPen(QColor("#f39c12"), 4))
            painter.drawRect(QRectF(1 + b * side + 2, 1 + a * side + 2, side - 4, side - 4))
        painter.end()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        side = self.cell_side()
        a, b = int((event.position().y() - 1) // side), int((event.position().x() - 1) // side)
        if 0 <= a < self.values.shape[0] and 0 <= b < self.values.shape[1]:
            pad = self.padding is not None and bool(self.padding[a, b])
            self.setToolTip(f"[{a}, {b}] = " + ("0 (padding)" if pad else f"{self.values[a, b]:.6g}"))
        super().mouseMoveEvent(event)
