"""View ▸ Zoom in / Zoom out / Reset zoom: one factor for the whole window, remembered.

Zooming sets the application font (base size x factor). Every widget that inherits its
font gets a FontChange event and re-lays out; the panels size what they draw (cards,
tiles, thumbnails, chart fonts) from their font metrics and refresh on that event, so
one font change scales text and panels alike. The factor lives in QSettings under
"view/zoom" and is applied again when the next window opens.

    zoom = ZoomController(settings)        # applies the remembered factor
    zoom.add_actions(view_menu)            # Ctrl++ / Ctrl+- / Ctrl+0
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSettings, Signal
from PySide6.QtGui import QAction, QFont, QKeySequence
from PySide6.QtWidgets import QApplication, QMenu

SETTINGS_KEY = "view/zoom"
STEPS = (0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5)  # a projector needs big steps up
MIN_ZOOM, MAX_ZOOM = STEPS[0], STEPS[-1]

_base_point_size: float | None = None  # the application font's size before any zoom


def base_point_size() -> float:
    """The unzoomed application font size (taken once, before the first zoom)."""
    global _base_point_size
    if _base_point_size is None:
        size = QApplication.font().pointSizeF()
        _base_point_size = size if size > 0 else 10.0
    return _base_point_size


def clamp_zoom(value) -> float:
    """A stored or requested factor made safe: anything odd becomes 1.0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 1.0
    if not value == value or value <= 0:  # NaN or non-positive
        return 1.0
    return min(MAX_ZOOM, max(MIN_ZOOM, value))


def apply_zoom(factor: float) -> float:
    """Set the application font to base x factor; returns the factor used."""
    factor = clamp_zoom(factor)
    font = QFont(QApplication.font())
    font.setPointSizeF(round(base_point_size() * factor, 2))
    if font.pointSizeF() != QApplication.font().pointSizeF():
        QApplication.setFont(font)
    return factor


def scaled_font(widget, scale: float = 1.0, bold: bool = False, family: str | None = None) -> QFont:
    """A font `scale` times the widget's current font (which already carries the zoom)."""
    font = QFont(widget.font()) if family is None else QFont(family)
    if family is not None:
        font.setStyleHint(QFont.StyleHint.Monospace)
    font.setPointSizeF(max(1.0, widget.font().pointSizeF() * scale))
    if bold:
        font.setBold(True)
    return font


class _WidthInEm(QObject):
    """Keeps a widget's minimum/maximum width in ems of its own font, across zoom changes."""

    def __init__(self, widget, minimum_em: float | None, maximum_em: float | None):
        super().__init__(widget)
        self._widget, self._minimum, self._maximum = widget, minimum_em, maximum_em
        widget.installEventFilter(self)
        self.apply()

    def apply(self) -> None:
        em = self._widget.fontMetrics().horizontalAdvance("m")
        if self._minimum is not None:
            self._widget.setMinimumWidth(round(self._minimum * em))
        if self._maximum is not None:
            self._widget.setMaximumWidth(round(self._maximum * em))

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if watched is self._widget and event.type() == QEvent.Type.FontChange:
            self.apply()
        return False


def width_in_em(widget, minimum_em: float | None = None, maximum_em: float | None = None) -> None:
    """Size a widget's width in ems (12 px at 9 pt) so it grows with View ▸ Zoom: a fixed
    pixel width keeps its text's room constant while the text grows, and then scrolls."""
    _WidthInEm(widget, minimum_em, maximum_em)


class ZoomController(QObject):
    """Owns the zoom factor of the window: the three actions, the setting, the font."""

    zoom_changed = Signal(float)

    def __init__(self, settings: QSettings, parent: QObject | None = None):
        super().__init__(parent)
        self._settings = settings
        base_point_size()
        self._factor = apply_zoom(clamp_zoom(settings.value(SETTINGS_KEY, 1.0)))
        self.zoom_in_action = QAction("Zoom &In", self)
        self.zoom_in_action.setShortcuts([QKeySequence.StandardKey.ZoomIn, QKeySequence("Ctrl+=")])
        self.zoom_in_action.triggered.connect(lambda _=False: self.zoom_in())
        self.zoom_out_action = QAction("Zoom &Out", self)
        self.zoom_out_action.setShortcut(QKeySequence.StandardKey.ZoomOut)
        self.zoom_out_action.triggered.connect(lambda _=False: self.zoom_out())
        self.reset_action = QAction("&Reset Zoom", self)
        self.reset_action.setShortcut(QKeySequence("Ctrl+0"))
        self.reset_action.triggered.connect(lambda _=False: self.reset())
        self._sync_actions()

    @property
    def factor(self) -> float:
        return self._factor

    def add_actions(self, menu: QMenu) -> None:
        for action in (self.zoom_in_action, self.zoom_out_action, self.reset_action):
            menu.addAction(action)

    def set_factor(self, factor: float) -> None:
        factor = clamp_zoom(factor)
        if factor == self._factor:
            return
        self._factor = apply_zoom(factor)
        self._settings.setValue(SETTINGS_KEY, self._factor)
        self._sync_actions()
        self.zoom_changed.emit(self._factor)

    def zoom_in(self) -> None:
        self.set_factor(next((s for s in STEPS if s > self._factor + 1e-6), MAX_ZOOM))

    def zoom_out(self) -> None:
        self.set_factor(next((s for s in reversed(STEPS) if s < self._factor - 1e-6), MIN_ZOOM))

    def reset(self) -> None:
        self.set_factor(1.0)

    def _sync_actions(self) -> None:
        self.zoom_in_action.setEnabled(self._factor < MAX_ZOOM)
        self.zoom_out_action.setEnabled(self._factor > MIN_ZOOM)
        self.reset_action.setText(f"&Reset Zoom ({self._factor:.0%})")
