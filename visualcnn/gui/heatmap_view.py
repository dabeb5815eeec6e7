"""A heat map laid over the digit, with its colour bar: the one picture every explanation
map (Grad-CAM, occlusion, saliency, SmoothGrad, the sanity check's pair) is shown as.

Two colour scales: "sequential" for maps in [0, 1] (inferno: dark = nothing, yellow = the
most), and "diverging" for signed maps such as occlusion's drop in probability (blue =
hiding the pixels helps the class, white = no change, red = hiding them hurts it),
symmetric around 0 so white always means zero.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

SEQUENTIAL, DIVERGING = "sequential", "diverging"
ALPHA = 0.6  # the map's share of the colour: the digit's strokes stay visible underneath


def _luts() -> dict[str, np.ndarray]:
    sequential = pg.colormap.get("inferno").getLookupTable(0.0, 1.0, 256, alpha=False).astype(np.float64) / 255
    t = np.linspace(-1, 1, 256)[:, None]
    blue, white, red = np.array([0.13, 0.40, 0.75]), np.array([1.0, 1.0, 1.0]), np.array([0.80, 0.10, 0.12])
    diverging = np.where(t < 0, white + (-t) * (blue - white), white + t * (red - white))
    return {SEQUENTIAL: sequential, DIVERGING: diverging}


LUTS = _luts()


def heat_rgb(image: np.ndarray | None, heat: np.ndarray, scale: str, low: float, high: float) -> np.ndarray:
    """(h, w, 3) uint8: heat coloured by `scale` between low and high, blended over the grey digit."""
    span = high - low if high > low else 1.0
    index = np.clip(np.rint((np.asarray(heat, np.float64) - low) / span * 255), 0, 255).astype(np.int64)
    colour = LUTS[scale][index]
    if image is not None:
        grey = np.clip(np.asarray(image, np.float64), 0, 1)[..., None]
        colour = ALPHA * colour + (1 - ALPHA) * grey
    return np.ascontiguousarray((np.clip(colour, 0, 1) * 255).astype(np.uint8))


def rgb_image(rgb: np.ndarray) -> QImage:
    return QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888).copy()


def scale_for(heat: np.ndarray, scale: str) -> tuple[float, float]:
    """The colour bar's ends: [0, 1] for sequential maps, +-max|value| for diverging ones."""
    if scale == SEQUENTIAL:
        return 0.0, 1.0
    top = float(np.max(np.abs(heat))) if np.size(heat) else 0.0
    return -(top or 1.0), (top or 1.0)


class ColourBar(QWidget):
    """A vertical gradient of the scale with its two ends and its middle written beside it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.scale, self.low, self.high = SEQUENTIAL, 0.0, 1.0
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self._fit()

    def set_scale(self, scale: str, low: float, high: float) -> None:
        self.scale, self.low, self.high = scale, low, high
        self._fit()
        self.update()

    def _labels(self) -> list[str]:
        return [_number(self.high), _number((self.low + self.high) / 2), _number(self.low)]

    def _fit(self) -> None:
        metrics = self.fontMetrics()
        self.setFixedWidth(14 + 6 + max(metrics.horizontalAdvance(t) for t in self._labels()) + 2)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit()

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        metrics = self.fontMetrics()
        top, bottom = metrics.height() / 2, self.height() - metrics.height() / 2
        bar = QRectF(0, top, 14, max(1.0, bottom - top))
        gradient = QLinearGradient(0, bar.bottom(), 0, bar.top())
        lut = LUTS[self.scale]
        for k in range(0, 256, 15):
            r, g, b = (int(v * 255) for v in lut[k])
            gradient.setColorAt(k / 255, QColor(r, g, b))
        r, g, b = (int(v * 255) for v in lut[255])
        gradient.setColorAt(1.0, QColor(r, g, b))
        painter.fillRect(bar, gradient)
        painter.setPen(QColor("#222"))
        painter.drawRect(bar)
        for text, y in zip(self._labels(), (bar.top(), bar.center().y(), bar.bottom())):
            painter.drawText(QRectF(20, y - metrics.height() / 2, self.width() - 20, metrics.height()),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
        painter.end()


def _number(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.2g}" if abs(value) < 0.01 else f"{value:.2f}"


class MapView(QWidget):
    """Title, the map over the digit (pixelated, square), its colour bar, and a caption.

    `heat` is the array last shown (the test compares it with the engine's) and `image` the
    QImage it was drawn from, before enlarging."""

    def __init__(self, title: str, caption: str = "", parent=None, lines: int = 10):
        super().__init__(parent)
        self._lines = lines  # the picture's side in text lines: it grows with View > Zoom
        self.heat: np.ndarray | None = None
        self.image: QImage | None = None
        self._title = QLabel(f"<b>{title}</b>")
        self._title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._picture = QLabel()
        self._picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._picture.setStyleSheet("background: black; color: #ccc; border: 1px solid #555;")
        self._picture.setWordWrap(True)
        self._bar = ColourBar()
        keep = self._bar.sizePolicy()
        keep.setRetainSizeWhenHidden(True)  # a map arriving or going never shifts its neighbours
        self._bar.setSizePolicy(keep)
        self._caption = QLabel(caption)
        self._caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._caption.setWordWrap(True)
        self._caption.setStyleSheet("color: #444;")
        row = QHBoxLayout()
        row.setSpacing(4)
        row.addWidget(self._picture)
        row.addWidget(self._bar)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self._title)
        layout.addLayout(row)
        layout.addWidget(self._caption)
        layout.addStretch(1)
        self._fit()
        self.show_text("")

    def side(self) -> int:
        return max(14 * self._lines, self._lines * self.fontMetrics().height())

    def _fit(self) -> None:
        side = self.side()
        self._picture.setFixedSize(side, side)
        self._bar.setFixedHeight(side)
        # a fixed width and room for three lines: a wrapped label in a grid otherwise gets the
        # height of one line and is drawn over the picture
        self._caption.setFixedWidth(side + self._bar.width() + 4)
        self._fit_caption()

    def _fit_caption(self) -> None:
        lines = 3 * self.fontMetrics().lineSpacing() + 4
        self._caption.setMinimumHeight(max(lines, self._caption.heightForWidth(self._caption.width())))

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit()
            if self.image is not None:
                self._show_pixmap()

    def set_title(self, title: str) -> None:
        self._title.setText(f"<b>{title}</b>")

    def set_caption(self, text: str) -> None:
        self._caption.setText(text)
        self._fit_caption()

    def title(self) -> str:
        return self._title.text()

    def caption(self) -> str:
        return self._caption.text()

    def show_map(self, image: np.ndarray | None, heat: np.ndarray, scale: str = SEQUENTIAL,
                 limits: tuple[float, float] | None = None) -> None:
        heat = np.asarray(heat, np.float64)
        low, high = limits if limits is not None else scale_for(heat, scale)
        self.heat = heat
        self.image = rgb_image(heat_rgb(image, heat, scale, low, high))
        self._bar.set_scale(scale, low, high)
        self._bar.setVisible(True)
        self._show_pixmap()

    def show_image(self, image: np.ndarray) -> None:
        """The plain grey image, no map and no colour bar."""
        grey = (np.clip(np.asarray(image, np.float64), 0, 1) * 255).astype(np.uint8)
        self.heat = np.asarray(image, np.float64)
        self.image = rgb_image(np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1)))
        self._bar.setVisible(False)
        self._show_pixmap()

    def _show_pixmap(self) -> None:
        side = self.side()
        self._picture.setPixmap(QPixmap.fromImage(self.image).scaled(
            side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation))

    def show_text(self, text: str) -> None:
        """No map (nothing yet, computing, cancelled, or why not): say so in its place."""
        self.heat, self.image = None, None
        self._picture.clear()
        self._picture.setText(text)
        self._bar.setVisible(False)

    def text(self) -> str:
        return self._picture.text()


__all__ = ["MapView", "ColourBar", "heat_rgb", "rgb_image", "scale_for", "SEQUENTIAL", "DIVERGING"]
