"""Colours, titles and icons per layer family, drawn with QPainter (no image files to ship).

Colours come from the Okabe-Ito palette, which stays distinguishable for colour-blind
students and on a washed-out classroom projector.
"""

from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

from ..engine.layers import FAMILIES

# The palette's order is the engine's teaching order (one home for it); the input is the
# pipeline's first card, not a palette group.
FAMILY_ORDER = tuple(f for f in FAMILIES if f != "input")
FAMILY_TITLES = {
    "input": "Input",
    "augmentation": "Augmentation",
    "convolution": "Convolution",
    "pooling": "Pooling",
    "activation": "Activation",
    "normalization": "Normalization",
    "regularisation": "Regularisation",
    "reshaping": "Reshaping",
    "merge": "Merge",
    "core": "Core",
}
OTHER_TITLE = "Other"  # the palette group of a family the GUI has no title for
# Okabe-Ito hues; the light ones (orange, yellow, sky blue, reddish purple) darkened so
# the white glyph on a badge stays readable.
FAMILY_COLOURS = {
    "input": "#56616b",
    "augmentation": "#2b2b2b",  # Okabe-Ito black, softened
    "convolution": "#0072b2",  # blue
    "pooling": "#009e73",  # bluish green
    "activation": "#c08000",  # orange
    "normalization": "#8c8000",  # yellow
    "regularisation": "#8e5ba8",
    "reshaping": "#2f8cc0",  # sky blue
    "merge": "#b3447f",  # reddish purple
    "core": "#d55e00",  # vermillion
}
ERROR_COLOUR = "#c62828"
UNKNOWN_COLOUR = "#8a8a8a"


def family_title(family: str) -> str:
    return FAMILY_TITLES.get(family, OTHER_TITLE)


def family_colour(family: str) -> QColor:
    """The family's colour; a family the GUI does not know is neutral grey, never an error."""
    return QColor(FAMILY_COLOURS.get(family, UNKNOWN_COLOUR))


def _draw_glyph(painter: QPainter, family: str, rect: QRectF) -> None:
    """A white pictogram of what the family does, inside rect."""
    pen = QPen(QColor("white"), rect.width() * 0.07)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    x, y, w, h = rect.x(), rect.y(), rect.width(), rect.height()
    if family == "convolution":  # a 3x3 filter
        cell = w / 3
        for i in range(4):
            painter.drawLine(QPointF(x + i * cell, y), QPointF(x + i * cell, y + h))
            painter.drawLine(QPointF(x, y + i * cell), QPointF(x + w, y + i * cell))
    elif family == "pooling":  # a big square shrinking to a small filled one
        painter.drawRect(QRectF(x, y, w * 0.62, h * 0.62))
        painter.setBrush(QColor("white"))
        painter.drawRect(QRectF(x + w * 0.68, y + h * 0.68, w * 0.32, h * 0.32))
    elif family == "regularisation":  # dropped-out units: dots, some crossed
        r = w * 0.13
        for i, (cx, cy) in enumerate(((0.2, 0.2), (0.8, 0.2), (0.5, 0.5), (0.2, 0.8), (0.8, 0.8))):
            centre = QPointF(x + cx * w, y + cy * h)
            if i % 2:
                painter.drawLine(centre - QPointF(r, r), centre + QPointF(r, r))
                painter.drawLine(centre - QPointF(r, -r), centre + QPointF(r, -r))
            else:
                painter.setBrush(QColor("white"))
                painter.drawEllipse(centre, r, r)
                painter.setBrush(Qt.BrushStyle.NoBrush)
    elif family == "input":  # a picture
        painter.drawRect(QRectF(x, y, w, h))
        painter.drawLine(QPointF(x, y + h * 0.8), QPointF(x + w * 0.4, y + h * 0.4))
        painter.drawLine(QPointF(x + w * 0.4, y + h * 0.4), QPointF(x + w, y + h))
    elif family == "activation":  # the relu curve: flat, then rising
        painter.drawLine(QPointF(x, y + h * 0.75), QPointF(x + w * 0.45, y + h * 0.75))
        painter.drawLine(QPointF(x + w * 0.45, y + h * 0.75), QPointF(x + w, y))
    elif family == "normalization":  # a bell curve
        path = QPainterPath(QPointF(x, y + h))
        top = y + h * 0.05
        path.cubicTo(QPointF(x + w * 0.33, y + h), QPointF(x + w * 0.33, top), QPointF(x + w * 0.5, top))
        path.cubicTo(QPointF(x + w * 0.67, top), QPointF(x + w * 0.67, y + h), QPointF(x + w, y + h))
        painter.drawPath(path)
    elif family == "reshaping":  # a tall block becomes a wide one
        painter.drawRect(QRectF(x, y, w * 0.24, h))
        painter.drawLine(QPointF(x + w * 0.34, y + h * 0.5), QPointF(x + w * 0.56, y + h * 0.5))
        painter.drawLine(QPointF(x + w * 0.48, y + h * 0.4), QPointF(x + w * 0.56, y + h * 0.5))
        painter.drawLine(QPointF(x + w * 0.48, y + h * 0.6), QPointF(x + w * 0.56, y + h * 0.5))
        painter.drawRect(QRectF(x + w * 0.64, y + h * 0.3, w * 0.36, h * 0.4))
    elif family == "merge":  # two paths joining in a plus
        centre, r = QPointF(x + w * 0.62, y + h * 0.5), w * 0.26
        painter.drawLine(QPointF(x, y), centre - QPointF(r * 0.7, r * 0.7))
        painter.drawLine(QPointF(x, y + h), centre - QPointF(r * 0.7, -r * 0.7))
        painter.drawEllipse(centre, r, r)
        painter.drawLine(centre - QPointF(r * 0.55, 0), centre + QPointF(r * 0.55, 0))
        painter.drawLine(centre - QPointF(0, r * 0.55), centre + QPointF(0, r * 0.55))
    elif family == "augmentation":  # a picture and a tilted copy of it
        painter.drawRect(QRectF(x, y + h * 0.3, w * 0.6, h * 0.6))
        painter.save()
        painter.translate(x + w * 0.62, y + h * 0.4)
        painter.rotate(-20)
        painter.drawRect(QRectF(-w * 0.3, -h * 0.3, w * 0.6, h * 0.6))
        painter.restore()
    elif family != "core":  # a family the GUI does not know: three dots
        painter.setBrush(QColor("white"))
        for f in (0.2, 0.5, 0.8):
            painter.drawEllipse(QPointF(x + w * f, y + h * 0.5), w * 0.08, w * 0.08)
    else:  # core: fully connected 3 -> 2
        left = [QPointF(x + w * 0.1, y + h * f) for f in (0.1, 0.5, 0.9)]
        right = [QPointF(x + w * 0.9, y + h * f) for f in (0.28, 0.72)]
        thin = QPen(QColor("white"), w * 0.045)
        painter.setPen(thin)
        for a in left:
            for b in right:
                painter.drawLine(a, b)
        painter.setBrush(QColor("white"))
        for p in left + right:
            painter.drawEllipse(p, w * 0.1, w * 0.1)


def paint_family_badge(painter: QPainter, family: str, rect: QRectF, colour: QColor | None = None) -> None:
    """The rounded coloured square with the family glyph, as used in the palette and blocks."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour or family_colour(family))
    radius = rect.width() * 0.2
    painter.drawRoundedRect(rect, radius, radius)
    inset = rect.width() * 0.22
    _draw_glyph(painter, family, rect.adjusted(inset, inset, -inset, -inset))
    painter.restore()


@lru_cache(maxsize=None)
def family_icon(family: str) -> QIcon:
    icon = QIcon()
    for size in (16, 24, 32, 48, 64):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        paint_family_badge(painter, family, QRectF(0, 0, size, size))
        painter.end()
        icon.addPixmap(pixmap)
    return icon
