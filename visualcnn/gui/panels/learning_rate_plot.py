"""The learning-rate strip under the loss curve (CurvesPanel owns the plot, this fills it).

Before a run it shows the rate the next run will use at every batch (dashed: the plan,
engine/schedules.py learning_rate_curve) and, beside it, the schedule and callbacks in
words; during a run the rate the optimizer really used (solid: a schedule, the window's
box or ReduceLROnPlateau move it). The x axis is linked to the loss plot's, so a drop in
the rate sits exactly under the batches it affected.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGraphicsItem

PLAN_COLOUR = "#888888"
USED_COLOUR = "#e07b00"


class LearningRatePlot:
    def __init__(self, plot: pg.PlotItem, note: pg.LabelItem):
        self.plot = plot
        self.note = note
        plot.setLabel("left", "learning rate")
        plot.showGrid(x=True, y=True, alpha=0.25)
        for axis in ("left", "bottom"):
            item = plot.getAxis(axis)
            item.setTextPen("#222")
            item.setPen("#666")
            item.enableAutoSIPrefix(False)
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        plot.setMouseEnabled(x=False, y=False)
        plot.setMenuEnabled(False)
        plot.disableAutoRange()
        self.planned = plot.plot(pen=pg.mkPen(PLAN_COLOUR, width=2, style=Qt.PenStyle.DashLine), antialias=False)
        self.used = plot.plot(pen=pg.mkPen(USED_COLOUR, width=2), antialias=False)
        self._x: list[float] = []
        self._y: list[float] = []
        self._top = self._planned_top = 0.0
        self._dirty = False
        self._text = ""

    # --- data ---------------------------------------------------------------------

    def show_planned(self, x, rates, text: str) -> None:
        """The next run's rate at every batch (empty: nothing planned) and its description."""
        x = np.asarray(x, float)
        rates = np.asarray(rates, float)
        self.planned.setData(x, rates)
        self._text = text
        self._set_note(text)
        self._planned_top = float(rates.max()) if rates.size else 0.0
        self._fit()

    def begin_run(self) -> None:
        self._x, self._y = [], []
        self.used.setData([], [])

    def add(self, x: float, rate) -> None:
        if rate is None or not np.isfinite(rate):
            return
        self._x.append(float(x))
        self._y.append(float(rate))
        self._dirty = True

    def push(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.used.setData(np.asarray(self._x), np.asarray(self._y))
        self._fit()

    def clear(self) -> None:
        self.begin_run()

    def used_series(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, rate) drawn for the current run, for tests."""
        return np.asarray(self._x), np.asarray(self._y)

    def planned_series(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.planned.getData()
        return (np.asarray([]), np.asarray([])) if x is None else (np.asarray(x), np.asarray(y))

    # --- drawing ------------------------------------------------------------------

    def _fit(self) -> None:
        """0 to a little above the highest rate planned or used; changed only when that moves."""
        top = 1.1 * max(self._planned_top, max(self._y) if self._y else 0.0)
        if top > 0 and top != self._top:
            self._top = top
            self.plot.setYRange(0, top, padding=0)

    def _set_note(self, text: str) -> None:
        html = "<br>".join(text.splitlines())
        self.note.setText(html, color="#333", size=getattr(self, "_note_size", "9pt"))

    def apply_fonts(self, size: float, tick) -> None:
        """Axis text at the panel's (zoomed) font size, like the loss and accuracy plots."""
        self.plot.setLabel("left", "learning rate", **{"font-size": f"{size:.1f}pt"})
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setStyle(tickFont=tick)
        self._note_size = f"{size * 0.9:.1f}pt"
        self._set_note(self._text)


__all__ = ["LearningRatePlot"]
