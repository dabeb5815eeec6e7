"""Live loss and accuracy curves: per batch (raw and smoothed), per epoch, validation.

The x axis is in epochs (epoch - 1 + batch / batches), so per-batch points and per-epoch
points share one axis and runs of different sizes line up. Each run owns its plot items,
created once when the run begins and afterwards only setData'd from plain lists. A QTimer
coalesces the ~20 progress reports a second into a few redraws.

Runs accumulate while "Keep earlier runs" is checked (earlier runs are drawn faded, for
comparison); otherwise a new run clears the plots. One legend, in a row under both plots
(inside a plot it covered the curves), is rebuilt from the runs (never appended to), so it
stays small however many runs pile up: the current run's series (validation only once a
validation value exists, so none with a split of 0) and the last few earlier runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .chart_style import style_chart
from .learning_rate_plot import LearningRatePlot

REDRAW_MS = 250
# Exponential moving average factor per training batch. The window receives only some
# batches (progress is throttled), so a received point decays the average by SMOOTHING once
# for every batch since the last one: the curve then follows the last ~10 batches whatever
# the speed, instead of lagging by whole epochs on a fast model.
SMOOTHING = 0.9
RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
EARLIER_RUNS_IN_LEGEND = 3  # older runs stay drawn (faded) but leave the legend


@dataclass
class _Series:
    """Growing x/y lists for one quantity of one run, and the plot item showing them."""

    item: pg.PlotDataItem
    x: list = field(default_factory=list)
    y: list = field(default_factory=list)

    def append(self, x: float, y: float | None) -> None:
        if y is None or not np.isfinite(y):
            return
        self.x.append(x)
        self.y.append(float(y))

    def push(self) -> None:
        self.item.setData(np.asarray(self.x, float), np.asarray(self.y, float))


class _RunItem:
    """Everything one run draws in the loss and accuracy plots."""

    def __init__(self, index: int, loss_plot: pg.PlotItem, acc_plot: pg.PlotItem):
        self.index = index
        colour = pg.mkColor(RUN_COLOURS[(index - 1) % len(RUN_COLOURS)])
        faint = pg.mkColor(colour)
        faint.setAlpha(60)
        self.plots = (loss_plot, acc_plot)
        self.series: dict[str, _Series] = {}
        self.ema: dict[str, tuple[float, int]] = {}  # kind -> (average, batch it was last updated at)
        for kind, plot in (("loss", loss_plot), ("accuracy", acc_plot)):
            self.series[f"batch_{kind}"] = _Series(plot.plot(pen=pg.mkPen(faint, width=1), antialias=False))
            # No name=: the panel writes the legends itself (see CurvesPanel._refresh_legends).
            self.series[f"smooth_{kind}"] = _Series(plot.plot(pen=pg.mkPen(colour, width=2), antialias=False))
            self.series[f"epoch_{kind}"] = _Series(plot.plot(
                pen=None, symbol="o", symbolSize=9, symbolBrush=colour, symbolPen="w"))
            self.series[f"val_{kind}"] = _Series(plot.plot(
                pen=pg.mkPen(colour, width=2, style=Qt.PenStyle.DashLine), symbol="s", symbolSize=9,
                symbolBrush="w", symbolPen=pg.mkPen(colour, width=2)))
        self.markers: list[pg.InfiniteLine] = []

    def add_step(self, x: float, loss: float, accuracy: float | None, step: int | None = None) -> None:
        """``step``: the batch's number in the whole run (1-based); None counts one per call."""
        for kind, value in (("loss", loss), ("accuracy", accuracy)):
            if value is None or not np.isfinite(value):
                continue
            previous, last_step = self.ema.get(kind, (None, 0))
            step_now = last_step + 1 if step is None else step
            if previous is None:
                smooth = value
            else:
                keep = SMOOTHING ** max(1, step_now - last_step)
                smooth = keep * previous + (1.0 - keep) * value
            self.ema[kind] = (smooth, step_now)
            self.series[f"batch_{kind}"].append(x, value)
            self.series[f"smooth_{kind}"].append(x, smooth)

    def set_faded(self, faded: bool) -> None:
        for series in self.series.values():
            series.item.setOpacity(0.45 if faded else 1.0)

    def push(self) -> None:
        for series in self.series.values():
            series.push()

    def remove(self) -> None:
        for series in self.series.values():
            for plot in self.plots:
                if series.item.scene() is not None and series.item in plot.listDataItems():
                    plot.removeItem(series.item)
        for marker in self.markers:
            for plot in self.plots:
                if marker in plot.items:
                    plot.removeItem(marker)


class CurvesPanel(QWidget):
    """Loss and accuracy against epochs for the current run and, optionally, earlier ones."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._runs: list[_RunItem] = []
        self._dirty = False
        self._graphics = pg.GraphicsLayoutWidget()
        self._graphics.setBackground("w")
        self.loss_plot = self._graphics.addPlot(row=0, col=0, title="Loss")
        self.accuracy_plot = self._graphics.addPlot(row=0, col=1, rowspan=2, title="Accuracy")
        for plot, label in ((self.loss_plot, "loss (cross-entropy)"), (self.accuracy_plot, "accuracy")):
            plot.setLabel("bottom", "epoch")
            plot.setLabel("left", label)
            style_chart(plot)  # ranges: see _fit_ranges
        # The learning rate in a strip under the loss (planned before a run, used during it;
        # x linked), beside the full-height accuracy (gui/panels/learning_rate_plot.py).
        self.lr_plot = self._graphics.addPlot(row=1, col=0)
        self.lr_plot.setXLink(self.loss_plot)
        self.learning_rate = LearningRatePlot(self.lr_plot)
        # Both plots draw each run with the same colours and styles: one legend serves both.
        self.legend = pg.LegendItem(labelTextColor="#333", colCount=3, frame=False, verSpacing=-6)
        self._graphics.addItem(self.legend, row=2, col=0, colspan=2)
        self._graphics.ci.layout.setRowStretchFactor(0, 1)  # the plots take the height, the legend its lines
        self._graphics.ci.layout.setRowStretchFactor(1, 0)  # the learning-rate strip: LearningRatePlot.fit_height
        self._graphics.ci.layout.setRowStretchFactor(2, 0)
        self._epochs = 1
        self._loss_top = 2.5
        self.loss_plot.setRange(xRange=(0, 1), yRange=(0, self._loss_top), padding=0.02)
        self.accuracy_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
        self.keep_runs = QCheckBox("Keep earlier runs to compare")
        self.keep_runs.setToolTip("Checked: a new run is drawn over the earlier ones (which fade). "
                                  "Unchecked: a new run clears the plots.")
        self.keep_runs.setChecked(True)
        self.clear_button = QPushButton("Clear curves")
        self.clear_button.clicked.connect(self._on_clear_button_clicked)
        hint = QLabel("thin: every batch · thick: smoothed · dots: epoch mean · dashed: validation")
        hint.setStyleSheet("color: #555;")
        hint.setWordWrap(True)  # else its one line sets the Train tab's minimum width (453 px)
        bar = QHBoxLayout()
        bar.addWidget(hint, 1)
        bar.addWidget(self.keep_runs)
        bar.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._graphics, 1)
        layout.addLayout(bar)
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._apply_fonts()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self.learning_rate.fit_height(self._graphics.height())

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # View ▸ Zoom: chart text follows the window's
            self._apply_fonts()

    def _apply_fonts(self) -> None:
        """Titles, axis labels, ticks and legends sized from this widget's (zoomed) font."""
        size = self.font().pointSizeF()
        tick = QFont(self.font())
        tick.setPointSizeF(size * 0.9)
        for plot, title, label in ((self.loss_plot, "Loss", "loss (cross-entropy)"),
                                   (self.accuracy_plot, "Accuracy", "accuracy")):
            plot.setTitle(title, size=f"{size * 1.15:.1f}pt", color="#333")
            plot.setLabel("bottom", "epoch", **{"font-size": f"{size:.1f}pt"})
            plot.setLabel("left", label, **{"font-size": f"{size:.1f}pt"})
            for axis in ("left", "bottom"):
                plot.getAxis(axis).setStyle(tickFont=tick)
        self.learning_rate.apply_fonts(size, tick)
        self.legend.opts["labelTextSize"] = f"{size * 0.9:.1f}pt"
        self.legend.clear()  # re-added with the new text size
        self._refresh_legends()

    def legend_labels(self, plot: str = "loss") -> list[str]:
        """The legend's texts in order (one legend serves both plots; `plot` is kept for tests)."""
        return [label.text for _sample, label in self.legend.items]

    def _refresh_legends(self) -> None:
        """Rewrite the legend from the runs: bounded, and only series that have data."""
        wanted = []
        if self._runs:
            run = self._runs[-1]
            prefix = f"run {run.index}: " if len(self._runs) > 1 else ""
            wanted.append((run.series["smooth_loss"].item, f"{prefix}train (smoothed)"))
            wanted.append((run.series["epoch_loss"].item, f"{prefix}train, epoch mean"))
            if run.series["val_loss"].y:
                wanted.append((run.series["val_loss"].item, f"{prefix}validation"))
            for earlier in reversed(self._runs[-1 - EARLIER_RUNS_IN_LEGEND:-1]):
                wanted.append((earlier.series["smooth_loss"].item, f"run {earlier.index} (earlier)"))
        current = [(sample.item, label.text) for sample, label in self.legend.items]
        if current != wanted:
            self.legend.clear()
            for item, text in wanted:
                self.legend.addItem(item, text)

    # --- data in ------------------------------------------------------------------

    @property
    def run_count(self) -> int:
        return len(self._runs)

    def begin_run(self, epochs: int = 1) -> None:
        """A new run of `epochs` starts: clear or fade the earlier ones, then add this run's items."""
        if not self.keep_runs.isChecked():
            self.clear()
        self._epochs = max(epochs, self._epochs if self._runs else 1)
        self._fit_ranges()
        for run in self._runs:
            run.set_faded(True)
        index = (self._runs[-1].index + 1) if self._runs else 1
        self._runs.append(_RunItem(index, self.loss_plot, self.accuracy_plot))
        self.learning_rate.begin_run()
        self._refresh_legends()
        self._timer.start()

    def end_run(self) -> None:
        self._on_timer_timeout()
        self._timer.stop()

    def add_step(self, report) -> None:
        """A StepReport: this batch's own loss/accuracy (raw and smoothed)."""
        if not self._runs:
            self.begin_run(report.epochs)
        x = report.epoch - 1 + report.batch / report.batches
        step = (report.epoch - 1) * report.batches + report.batch
        self._runs[-1].add_step(x, report.batch_loss, report.batch_accuracy, step)
        self.learning_rate.add(x, getattr(report, "learning_rate", None))
        self._dirty = True

    def add_epoch(self, report) -> None:
        """An EpochReport: the epoch's mean loss/accuracy and the validation figures."""
        if not self._runs:
            self.begin_run(report.epochs)
        run = self._runs[-1]
        x = float(report.epoch)
        # The epoch mean averages over the whole epoch: drawn mid-epoch, where it belongs;
        # validation is measured after the epoch: drawn at its end.
        run.series["epoch_loss"].append(x - 0.5, report.loss)
        run.series["epoch_accuracy"].append(x - 0.5, report.accuracy)
        had_validation = bool(run.series["val_loss"].y)
        run.series["val_loss"].append(x, report.val_loss)
        run.series["val_accuracy"].append(x, report.val_accuracy)
        if not had_validation and run.series["val_loss"].y:
            self._refresh_legends()
        self._dirty = True

    def mark(self, x: float, text: str) -> None:
        """A labelled vertical line in both plots (a learning-rate change, a pause)."""
        if not self._runs:
            return
        run = self._runs[-1]
        for plot in (self.loss_plot, self.accuracy_plot):
            line = pg.InfiniteLine(pos=x, angle=90, pen=pg.mkPen("#888", style=Qt.PenStyle.DotLine),
                                   label=text, labelOpts={"position": 0.92, "color": "#444", "rotateAxis": (1, 0)})
            plot.addItem(line)
            run.markers.append(line)

    def show_planned_learning_rate(self, x, rates, text: str = "") -> None:
        """The next run's learning rate at every batch, drawn dashed under the loss before it
        starts (gui/panels/callback_controls.py SchedulePreview); the axes make room for it."""
        self.learning_rate.show_planned(x, rates, text)
        if len(x) and not self._timer.isActive():
            self._epochs = max(int(np.ceil(x[-1])), self._epochs if self._runs else 1)
            self._fit_ranges()

    def clear(self) -> None:
        for run in self._runs:
            run.remove()
        self._runs.clear()
        self.learning_rate.clear()
        self._refresh_legends()
        self._dirty = False

    def series(self, name: str, run: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) data of one series ('smooth_loss', 'val_accuracy'...) of a run, for tests."""
        s = self._runs[run].series[name]
        return np.asarray(s.x), np.asarray(s.y)

    # --- drawing ------------------------------------------------------------------

    def _fit_ranges(self) -> None:
        """Fixed ranges (all epochs of the run; loss up to a round top) changed only when
        data leaves them, so the axes are not re-laid out on every redraw."""
        top = 2.5
        for run in self._runs:
            for name in ("batch_loss", "val_loss"):
                values = run.series[name].y
                if values:
                    top = max(top, max(values))
        top = float(np.ceil(top * 2) / 2)
        if top != self._loss_top or self._epochs != getattr(self, "_shown_epochs", None):
            self._loss_top, self._shown_epochs = top, self._epochs
            self.loss_plot.setRange(xRange=(0, self._epochs), yRange=(0, top), padding=0.02)
            self.accuracy_plot.setRange(xRange=(0, self._epochs), yRange=(0, 1), padding=0.02)

    def _on_timer_timeout(self) -> None:
        if not self._dirty or not self._runs:
            return
        self._dirty = False
        self._runs[-1].push()
        self.learning_rate.push()
        self._fit_ranges()

    def _on_clear_button_clicked(self) -> None:
        running = self._timer.isActive()
        self.clear()
        if running:  # keep drawing the current run from now on
            self.begin_run(self._epochs)
