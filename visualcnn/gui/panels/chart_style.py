"""How every chart of the Train tab looks and behaves: one place for the curves and the
learning-rate strip (and the run history, which reuses the curves panel)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem


def style_chart(plot: pg.PlotItem) -> None:
    """Grid, dark axis text, no SI prefixes, fixed ranges (the panels fit them), no mouse."""
    plot.showGrid(x=True, y=True, alpha=0.25)
    for axis in ("left", "bottom"):
        item = plot.getAxis(axis)
        item.setTextPen("#222")
        item.setPen("#666")
        item.enableAutoSIPrefix(False)
        # Axis text and grid are the costliest part of a repaint (measured: most of it);
        # the ranges change rarely, so a cached pixmap is reused.
        item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    plot.setMouseEnabled(x=False, y=False)
    plot.setMenuEnabled(False)
    plot.disableAutoRange()
