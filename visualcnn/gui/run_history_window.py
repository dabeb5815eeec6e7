"""The run history window: every recorded run of the project in a table, their curves overlaid.

View ▸ Run History… opens it. The table (engine/run_history.run_table: the same columns as
the CSV export) sorts by any column; the settings that differ between the runs are moved
to the front and highlighted, so "what did I change?" is answered at a glance. Ticked runs
are drawn over each other by the Train tab's own curves panel (panels/curves.py), each in
the colour of its run number, shown beside the number in the table. A run can be deleted
(Edit ▸ Undo brings it back); the table exports as CSV and either chart as PNG or SVG
(pyqtgraph's exporters), every file written whole or not at all.

The window follows the document: a run recorded while it is open appears at once.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QIODevice, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QKeySequence, QPixmap, QUndoCommand
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QMenu,
                               QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..engine.model_io import write_bytes_atomic, write_text_atomic
from ..engine.run_history import cell_text, run_table, runs_to_csv
from .panels.curves import RUN_COLOURS, CurvesPanel, _RunItem
from .panels.learning_rate_plot import HEADROOM

DIFFERS_BACKGROUND = QColor("#fff1b8")  # a soft yellow: readable on a projector, not alarming
MAX_LEGEND_RUNS = 12
SHOWN_AT_FIRST = 8  # runs ticked when the window first lists them: the newest
CHARTS = {"loss": "the loss chart", "accuracy": "the accuracy chart", "both": "both charts"}


def run_colour(run_id: int) -> QColor:
    """The colour a run is drawn in (the curves panel colours a run by its number)."""
    return QColor(RUN_COLOURS[(run_id - 1) % len(RUN_COLOURS)])


class RunCurvesPanel(CurvesPanel):
    """The Train tab's curves panel showing recorded runs instead of a live one: every run
    drawn at full strength in its own colour, one legend entry per run."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.keep_runs.hide()  # recorded runs are chosen in the table, not kept or cleared here
        self.clear_button.hide()
        for label in self.findChildren(QLabel):
            label.setText("thin: the recorded batches · thick: smoothed · dots: epoch mean · dashed: validation")
        # The learning-rate strip shows each run's rate in the run's colour (not planned / used).
        self.lr_plot = getattr(self, "lr_plot", None)
        if self.lr_plot is not None:
            self.learning_rate.caption.setHtml('<span style="color:#333">learning rate</span>')
            self.lr_plot.setToolTip("The learning rate each run used: flat unless a schedule or "
                                    "ReduceLROnPlateau moved it")

    @property
    def graphics(self) -> pg.GraphicsLayoutWidget:
        return self._graphics

    def show_records(self, records: list[dict]) -> None:
        """Draw these runs. A run already drawn keeps its plot items (making a run's eight
        items is the slow part: 50 runs redrawn from scratch took ~2 s), so ticking a run or
        recording one only adds or removes what changed."""
        drawn = {run.record_key: run for run in self._runs}
        wanted = [_record_key(r) for r in records]
        for key, run in drawn.items():
            if key not in wanted:
                run.remove()
                if run.lr_item is not None:
                    self.lr_plot.removeItem(run.lr_item)
        self._runs = [drawn.get(key) or self._draw(record) for key, record in zip(wanted, records)]
        # the x axis spans the longest run; a continued run's epochs count on from where it resumed
        ends = [int(r.get("epochs") or 0) for r in records]
        ends += [math.ceil(max(r["steps"]["x"])) for r in records if (r.get("steps") or {}).get("x")]
        ends += [max(r["curves"]["epoch"]) for r in records if (r.get("curves") or {}).get("epoch")]
        self._epochs = max([1] + ends)
        self._shown_epochs = None  # refit even when the epoch count is unchanged
        self._fit_ranges()
        self._fit_learning_rates()
        self._refresh_legends()

    def _fit_learning_rates(self) -> None:
        """0 to a little above the highest rate drawn, two ticks (as the Train tab's strip)."""
        tops = [float(np.nanmax(run.lr_item.getData()[1])) for run in self._runs
                if run.lr_item is not None and run.lr_item.getData()[1] is not None]
        if self.lr_plot is None or not tops:
            return
        highest = max(tops)
        self.lr_plot.setYRange(0, HEADROOM * highest, padding=0)
        self.lr_plot.getAxis("left").setTicks([[(0.0, "0"), (highest, f"{highest:.3g}")], []])

    def _draw(self, record: dict) -> _RunItem:
        run = _RunItem(record["id"], self.loss_plot, self.accuracy_plot)
        run.record_key = _record_key(record)
        steps = record.get("steps") or {}
        xs = steps.get("x", [])
        batches = max(1, int(record.get("batches") or 1))
        accuracies = steps.get("accuracy") or [None] * len(xs)
        for x, loss, accuracy in zip(xs, steps.get("loss", []), accuracies):
            if loss is not None:
                run.add_step(x, loss, accuracy, step=max(1, round(x * batches)))
        curves = record.get("curves") or {}
        for i, epoch in enumerate(curves.get("epoch", [])):
            for kind in ("loss", "accuracy"):
                values = curves.get(kind)
                if values:
                    run.series[f"epoch_{kind}"].append(epoch - 0.5, values[i])
                values = curves.get(f"val_{kind}")
                if values:
                    run.series[f"val_{kind}"].append(float(epoch), values[i])
        run.push()
        run.lr_item = self._draw_learning_rate(record, run.index)
        return run

    def _draw_learning_rate(self, record: dict, index: int):
        """The run's rate per recorded point, or its setting as a flat line when it never moved."""
        if self.lr_plot is None:
            return None
        steps = record.get("steps") or {}
        xs, rates = steps.get("x", []), steps.get("learning_rate")
        if rates:
            points = [(x, r) for x, r in zip(xs, rates) if r is not None]
        else:
            rate = (record.get("settings") or {}).get("learning_rate")
            end = max(xs) if xs else float(record.get("epochs") or 1)
            points = [(0.0, rate), (end, rate)] if isinstance(rate, (int, float)) and rate > 0 else []
        if not points:
            return None
        x, y = zip(*points)
        return self.lr_plot.plot(np.asarray(x, float), np.asarray(y, float), antialias=False,
                                 pen=pg.mkPen(run_colour(index), width=2))

    def shown_runs(self) -> list[int]:
        return [run.index for run in self._runs]

    def _refresh_legends(self) -> None:
        self.legend.clear()
        for run in self._runs[:MAX_LEGEND_RUNS]:
            self.legend.addItem(run.series["smooth_loss"].item, f"run {run.index}")


def _record_key(record: dict) -> tuple:
    """Which run a drawing shows: run numbers repeat from one project to the next."""
    return record["id"], record.get("started"), record.get("duration")


class _Cell(QTableWidgetItem):
    """A table cell that sorts by its value (numbers as numbers, empty cells last)."""

    def __init__(self, text: str, key):
        super().__init__(text)
        self.key = key

    def __lt__(self, other) -> bool:  # noqa: D105 - Qt's sort calls this
        mine, theirs = self.key, getattr(other, "key", None)
        if mine is None or theirs is None:
            return theirs is None and mine is not None
        if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)):
            return mine < theirs
        return str(mine) < str(theirs)


class DeleteRunsCommand(QUndoCommand):
    """Delete runs from the history; undo puts them back in their place (runs recorded in
    between stay)."""

    def __init__(self, document, ids: list[int]):
        ids = sorted(ids)
        super().__init__(f"Delete run {ids[0]}" if len(ids) == 1 else f"Delete runs {', '.join(map(str, ids))}")
        self._document = document
        self._removed = [r for r in document.section("runs") or [] if r["id"] in ids]

    def redo(self) -> None:
        ids = {r["id"] for r in self._removed}
        runs = [r for r in self._document.section("runs") or [] if r["id"] not in ids]
        self._document.set_section("runs", runs or None)

    def undo(self) -> None:
        runs = list(self._document.section("runs") or []) + self._removed
        self._document.set_section("runs", sorted(runs, key=lambda r: r["id"]))


class RunHistoryWindow(QWidget):
    """The table of runs and the overlay of the ticked runs' curves."""

    message_posted = Signal(str)

    def __init__(self, document, undo_stack=None, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Run history")
        self._document, self._undo_stack = document, undo_stack
        self._records: list[dict] = []
        self._hidden: set[int] = set()  # runs not drawn (unticked)
        self._seen: set[tuple] = set()  # runs already shown in the table (_record_key)
        self._filling = False
        self.columns = []

        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.table = QTableWidget()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(False)  # the highlight colour must read as the only colour
        self.table.verticalHeader().hide()
        line = self.table.fontMetrics().height()
        self.table.verticalHeader().setDefaultSectionSize(int(line * 1.5))
        # room for the header, four runs and the horizontal scroll bar before the charts take the rest
        self.table.setMinimumHeight(int(line * 1.5) * 6 + self.table.horizontalScrollBar().sizeHint().height())
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.AscendingOrder)  # by run number
        self.table.itemChanged.connect(self._on_table_item_changed)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.show_all_button = QPushButton("Show all")
        self.show_all_button.setToolTip("Tick every run: all their curves in the charts")
        self.show_all_button.clicked.connect(self._on_show_all_clicked)
        self.delete_button = QPushButton("Delete run")
        self.delete_button.setToolTip("Delete the selected runs from the history (Edit ▸ Undo brings them back)")
        self.delete_button.setShortcut(QKeySequence.StandardKey.Delete)
        self.delete_button.clicked.connect(self._on_delete_clicked)
        self.csv_button = QPushButton("Export table as CSV…")
        self.csv_button.clicked.connect(self._on_csv_clicked)
        self.chart_button = QPushButton("Export chart…")
        menu = QMenu(self.chart_button)
        for which, text in CHARTS.items():
            menu.addAction(f"Save {text} as PNG or SVG…").triggered.connect(
                lambda _=False, w=which: self._on_export_chart(w))
        self.chart_button.setMenu(menu)
        buttons = QHBoxLayout()
        for button in (self.show_all_button, self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        for button in (self.csv_button, self.chart_button):
            buttons.addWidget(button)

        self.status = QLabel()  # what the last export or delete did
        self.status.setStyleSheet("color: #555;")
        self.curves = RunCurvesPanel()
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.heading)
        top_layout.addWidget(self.table, 1)
        top_layout.addLayout(buttons)
        top_layout.addWidget(self.status)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(self.curves)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        document.section_changed.connect(self._on_document_section_changed)
        self.refresh()
        self.resize(1100, 760)

    # --- filling -------------------------------------------------------------------

    @property
    def records(self) -> list[dict]:
        return list(self._records)

    def refresh(self) -> None:
        """Rebuild the table and charts from the document's history."""
        self._records = list(self._document.section("runs") or [])
        ids = {r["id"] for r in self._records}
        self._hidden &= ids
        # A run seen for the first time is ticked when it is among the newest: fifty runs
        # overlaid are a tangle (and slow to draw); older ones are a tick away.
        newest = set(sorted(ids)[-SHOWN_AT_FIRST:])
        for record in self._records:
            key = _record_key(record)
            if key not in self._seen:
                self._seen.add(key)
                if record["id"] not in newest:
                    self._hidden.add(record["id"])
        self.columns, rows = run_table(self._records)
        differing = [c for c in self.columns if c.differs]
        count = len(self._records)
        if count == 0:
            self.heading.setText("No runs yet: every run of the Train tab (and of <code>visualcnn train --save</code>) "
                                 "is recorded here.")
        else:
            text = f"<b>{count} run{'s' if count != 1 else ''}.</b> Tick runs to overlay their curves below"
            text += f" (the newest {SHOWN_AT_FIRST} are ticked)." if count > SHOWN_AT_FIRST else "."
            if differing:
                names = ", ".join(c.header for c in differing)
                text += (f" <span style='background:{DIFFERS_BACKGROUND.name()}'>&nbsp;Highlighted:&nbsp;</span> "
                         f"what differs between the runs ({names}).")
            self.heading.setText(text)
        self._filling = True
        sort_column = self.table.horizontalHeader().sortIndicatorSection()
        sort_order = self.table.horizontalHeader().sortIndicatorOrder()
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(self.columns))
        self.table.setRowCount(len(rows))
        bold = QFont(self.table.font())
        bold.setBold(True)
        for col, column in enumerate(self.columns):
            header = QTableWidgetItem(column.header)
            if column.differs:
                header.setFont(bold)
                header.setBackground(QBrush(DIFFERS_BACKGROUND))
                header.setToolTip(f"{column.header}: not the same in every run")
            self.table.setHorizontalHeaderItem(col, header)
        for row, (record, values) in enumerate(zip(self._records, rows)):
            for col, (column, value) in enumerate(zip(self.columns, values)):
                cell = _Cell(_started_text(value) if column.key == "started" else cell_text(value, column.key), value)
                if column.numeric:
                    cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if column.differs:
                    cell.setBackground(QBrush(DIFFERS_BACKGROUND))
                if column.key == "id":
                    cell.setFlags(cell.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    hidden = record["id"] in self._hidden
                    cell.setCheckState(Qt.CheckState.Unchecked if hidden else Qt.CheckState.Checked)
                    cell.setIcon(_swatch(run_colour(record["id"])))
                    cell.setToolTip("Ticked: drawn in the charts below, in this colour")
                if column.key == "dataset":
                    cell.setToolTip(str(value))
                self.table.setItem(row, col, cell)
        self.table.setSortingEnabled(True)
        if 0 <= sort_column < len(self.columns):
            self.table.sortItems(sort_column, sort_order)
        self._filling = False
        self._redraw()
        self._update_buttons()

    def _redraw(self) -> None:
        self.curves.show_records([r for r in self._records if r["id"] not in self._hidden])

    def _update_buttons(self) -> None:
        selected = self.selected_ids()
        self.delete_button.setEnabled(bool(selected))
        self.delete_button.setText("Delete runs" if len(selected) > 1 else "Delete run")
        self.csv_button.setEnabled(bool(self._records))
        self.chart_button.setEnabled(bool(self._records))
        self.show_all_button.setEnabled(bool(self._hidden))

    # --- queries used by the buttons and tests ---------------------------------------

    def column_index(self, key: str) -> int:
        return [c.key for c in self.columns].index(key)

    def row_ids(self) -> list[int]:
        """The run numbers in the table's current (sorted) order."""
        col = self.column_index("id")
        return [self.table.item(row, col).key for row in range(self.table.rowCount())]

    def selected_ids(self) -> list[int]:
        if not self.columns:
            return []
        col = self.column_index("id")
        return sorted({self.table.item(index.row(), col).key for index in self.table.selectionModel().selectedRows()})

    def set_shown(self, run_id: int, shown: bool) -> None:
        """Tick or untick a run (its curves in the charts)."""
        col = self.column_index("id")
        for row in range(self.table.rowCount()):
            item = self.table.item(row, col)
            if item.key == run_id:
                item.setCheckState(Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked)

    # --- actions --------------------------------------------------------------------

    def delete_runs(self, ids: list[int]) -> None:
        """Delete runs; with an undo stack the deletion is an undoable edit."""
        ids = [i for i in ids if any(r["id"] == i for r in self._records)]
        if not ids:
            return
        command = DeleteRunsCommand(self._document, ids)
        if self._undo_stack is not None:
            self._undo_stack.push(command)
            text = f"{command.text()}: Edit ▸ Undo in the main window brings it back."
            self.status.setText(text)
            self.message_posted.emit(text)
        else:
            command.redo()

    def export_csv(self, path: str | Path) -> None:
        write_text_atomic(path, runs_to_csv(self._records))

    def export_chart(self, path: str | Path, which: str = "both") -> None:
        """The loss chart, the accuracy chart or both, as PNG (twice the screen's pixels) or
        SVG, chosen by the file's suffix."""
        from pyqtgraph.exporters import ImageExporter, SVGExporter

        item = {"loss": self.curves.loss_plot, "accuracy": self.curves.accuracy_plot,
                "both": self.curves.graphics.ci}[which]
        if str(path).lower().endswith(".svg"):
            try:
                data = SVGExporter(item).export(toBytes=True)
            except ValueError:
                # pyqtgraph 0.14's SVG exporter cannot read the closed paths ("... Z") that
                # Qt 6 writes (pyqtgraph issue #3495): Qt's own SVG generator draws the same
                # scene (our charts keep their data inside fixed ranges, so its lack of
                # clipping does not show).
                data = _qt_svg(item)
            write_bytes_atomic(path, data)
            return
        exporter = ImageExporter(item)
        width = max(1, int(item.boundingRect().width()))
        exporter.parameters()["width"] = 2 * width  # sharp when projected or printed
        image = exporter.export(toBytes=True)
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        write_bytes_atomic(path, bytes(buffer.data()))

    # --- slots ----------------------------------------------------------------------

    def _on_document_section_changed(self, key: str) -> None:
        if key == "runs":
            self.refresh()

    def _on_table_item_changed(self, item) -> None:
        if self._filling or self.columns[item.column()].key != "id":
            return
        if item.checkState() == Qt.CheckState.Checked:
            self._hidden.discard(item.key)
        else:
            self._hidden.add(item.key)
        self._redraw()
        self._update_buttons()

    def _on_show_all_clicked(self) -> None:
        for run_id in list(self._hidden):
            self.set_shown(run_id, True)

    def _on_delete_clicked(self) -> None:
        self.delete_runs(self.selected_ids())

    def _on_csv_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the run table", "runs.csv", "CSV table (*.csv)")
        if path:
            self._write(lambda: self.export_csv(path), path)

    def _on_export_chart(self, which: str) -> None:
        path, chosen = QFileDialog.getSaveFileName(self, f"Export {CHARTS[which]}", f"runs_{which}.png",
                                                   "PNG image (*.png);;SVG drawing (*.svg)")
        if not path:
            return
        if not path.lower().endswith((".png", ".svg")):
            path += ".svg" if "svg" in chosen.lower() else ".png"
        self._write(lambda: self.export_chart(path, which), path)

    def _write(self, write, path: str) -> None:
        try:
            write()
        except OSError as exc:
            text = f"Could not write {path}: {exc.strerror or exc}"
        else:
            text = f"Saved {path}"
        self.status.setText(text)
        self.message_posted.emit(text)


def _qt_svg(item) -> bytes:
    """An SVG of a graphics item's area of its scene, drawn by QtSvg's QSvgGenerator."""
    from PySide6.QtCore import QRectF, QSize
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    source = item.sceneBoundingRect()
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    generator = QSvgGenerator()
    generator.setOutputDevice(buffer)
    generator.setSize(QSize(int(source.width()), int(source.height())))
    generator.setViewBox(QRectF(0, 0, source.width(), source.height()))
    generator.setTitle("VisualCNN run history")
    painter = QPainter(generator)
    try:
        painter.fillRect(QRectF(0, 0, source.width(), source.height()), QColor("white"))
        item.scene().render(painter, QRectF(0, 0, source.width(), source.height()), source)
    finally:
        painter.end()
    return bytes(buffer.data())


def _started_text(started) -> str:
    """"2026-11-30T12:36:12Z" as "30 Nov 12:36" (the CSV keeps the full time)."""
    from datetime import datetime

    try:
        return datetime.strptime(str(started), "%Y-%m-%dT%H:%M:%SZ").strftime("%d %b %H:%M")
    except ValueError:
        return str(started)


def _swatch(colour: QColor) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(colour)
    return QIcon(pixmap)
