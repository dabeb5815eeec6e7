"""One feature map or filter, enlarged: what a tile in a mosaic is, at a size a class can read.

Clicking a tile in the feature maps or the filters opens this window (one per panel,
reused, never modal, so it can stay open beside the panel while training runs). It shows
the 2-D array pixel by pixel (nearest neighbour, no smoothing: each square is one value),
its value range, and which layer and channel it is.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QDialog, QLabel, QVBoxLayout, QWidget


def colour_image(values: np.ndarray, colormap: str, levels: tuple[float, float]) -> np.ndarray:
    """(h, w) values -> (h, w, 4) RGBA uint8 through a pyqtgraph colour map over `levels`."""
    low, high = levels
    span = high - low if high > low else 1.0
    scaled = np.clip((np.asarray(values, np.float64) - low) / span, 0.0, 1.0)
    scaled = np.nan_to_num(scaled, nan=0.0)
    return np.ascontiguousarray(pg.colormap.get(colormap).map(scaled, mode="byte"))


def enlarged_pixmap(values: np.ndarray, colormap: str, levels: tuple[float, float], side: int) -> QPixmap:
    """The array as a square-ish pixmap about `side` pixels on its long edge, blocky."""
    rgba = colour_image(values, colormap, levels)
    h, w = rgba.shape[:2]
    image = QImage(rgba.data, w, h, rgba.strides[0], QImage.Format.Format_RGBA8888).copy()
    scale = max(1, side // max(h, w))
    return QPixmap.fromImage(image).scaled(w * scale, h * scale, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)


class TileDialog(QDialog):
    """The enlarged tile; set_tile() replaces what it shows."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("tileDialog")
        self.setWindowTitle("Enlarged tile")
        self.setModal(False)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setStyleSheet("background: #222;")
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.details)
        self.values: np.ndarray | None = None

    def set_tile(self, values: np.ndarray, title: str, details: str, colormap: str = "viridis",
                 levels: tuple[float, float] | None = None) -> None:
        """values: (h, w). levels: the colour range (default: the tile's own min..max)."""
        values = np.asarray(values, np.float32)
        self.values = values
        finite = values[np.isfinite(values)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        levels = levels or (low, high)
        # Readable from the back of a room: about 18 lines of text tall, whatever the zoom.
        side = max(160, 18 * self.fontMetrics().height())
        self.image.setPixmap(enlarged_pixmap(values, colormap, levels, side))
        self.title.setText(f"<b>{title}</b>")
        self.details.setText(f"{details}<br>{values.shape[0]}x{values.shape[1]} values from {low:.4g} to {high:.4g}"
                             f" (colours span {levels[0]:.4g} to {levels[1]:.4g}).")
        self.setWindowTitle(title)
        self.adjustSize()

    def value_range(self) -> tuple[float, float] | None:
        if self.values is None:
            return None
        finite = self.values[np.isfinite(self.values)]
        return (float(finite.min()), float(finite.max())) if finite.size else None
