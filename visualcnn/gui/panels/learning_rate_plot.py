"""The learning-rate strip under the loss curve (CurvesPanel owns the plot, this fills it).

Before a run it shows the rate the next run will use at every batch (dashed: the plan,
engine/schedules.py learning_rate_curve; the schedule and callbacks in words in its
tooltip); during a run the rate the optimizer really used (solid: a schedule, the
window's box or ReduceLROnPlateau move it). The x axis is linked to the loss plot's, so a
drop in the rate sits exactly under the batches it affected.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from .chart_style import style_chart

PLAN_COLOUR = "#888888"
USED_COLOUR = "#e07b00"
MIN_HEIGHT, MAX_HEIGHT = 36, 100  # pixels of the strip
SHARE = 0.2  # of the charts' height
HEADROOM = 1.6  # the y axis reaches this times the highest rate


class LearningRatePlot:
    def __init__(self, plot: pg.PlotItem):
        self.plot = plot
        style_chart(plot)
        # The epochs are read on the loss plot right above (x linked): numbers here would
        # only cost the strip height it lacks in a small window.
        plot.getAxis("bottom").setStyle(showValues=False)
        self.planned = plot.plot(pen=pg.mkPen(PLAN_COLOUR, width=2, style=Qt.PenStyle.DashLine), antialias=False)
        self.used = plot.plot(pen=pg.mkPen(USED_COLOUR, width=2), antialias=False)
        self._x: list[float] = []
        self._y: list[float] = []
        self._top = self._planned_top = 0.0
        self._dirty = False
        # The strip's name and key inside it, top right: an axis title would cost height it lacks.
        self.caption = pg.TextItem(anchor=(1, 0))
        self.caption.setHtml(f'<span style="color:#333">learning rate</span> <span style="color:{USED_COLOUR}">'
                             f'━ used</span> <span style="color:{PLAN_COLOUR}">╍ planned</span>')
        self.caption.setParentItem(plot.getViewBox())
        plot.getViewBox().sigResized.connect(self._place_caption)

    # --- data ---------------------------------------------------------------------

    def show_planned(self, x, rates, text: str) -> None:
        """The next run's rate at every batch (empty: nothing planned) and its description."""
        x = np.asarray(x, float)
        rates = np.asarray(rates, float)
        self.planned.setData(x, rates)
        self.plot.setToolTip(text)
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
        highest = max(self._planned_top, max(self._y) if self._y else 0.0)
        top = HEADROOM * highest  # room above the curve for the caption
        if top > 0 and top != self._top:
            self._top = top
            self.plot.setYRange(0, top, padding=0)
            # two ticks: a strip this low has no room for more (they overlapped)
            self.plot.getAxis("left").setTicks([[(0.0, "0"), (highest, f"{highest:.3g}")], []])

    def fit_height(self, available: int) -> None:
        """A strip, not a third chart: a fifth of the charts' height, so the loss and accuracy
        keep most of it however small the window."""
        height = int(min(MAX_HEIGHT, max(MIN_HEIGHT, SHARE * available)))
        self.plot.setMaximumHeight(height)
        self.plot.setMinimumHeight(height)

    def _place_caption(self, *_args) -> None:
        self.caption.setPos(self.plot.getViewBox().width(), 0)

    def apply_fonts(self, size: float, tick) -> None:
        """Axis text at the panel's (zoomed) font size, like the loss and accuracy plots."""
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setStyle(tickFont=tick)
        self.caption.setFont(tick)


__all__ = ["LearningRatePlot"]
