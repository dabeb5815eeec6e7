"""The Keras summary table, live: a thin Qt renderer over engine.summary's rows and totals.

The rows, the "?" for unknown shapes and the totals lines come from the same functions
`visualcnn summary` prints with, so the two cannot disagree. Under the totals: the
training peak memory at the document's batch size, red with the engine's message when
this machine cannot give it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from ..engine.summary import connected_to, cost_lines, render_summary, summary_rows, totals_lines, wide_line_length
from .answer_mask import MASK, MASK_TIP, answer_mask
from .document import PipelineDocument
from .families import ERROR_COLOUR, UNKNOWN_COLOUR
from .glossary_tips import explain_summary, explained, summary_cell_terms
from .memory_texts import document_memory, format_bytes, peak_text

COPY_TIP = "Copy the table exactly as Keras's model.summary() prints it"

HEADERS = ("Layer (type)", "Output Shape", "Param #")
CONNECTED_HEADER = "Connected to"  # the fourth column, shown only for a graph (as Keras does)


class SummaryWidget(QWidget):
    def __init__(self, document: PipelineDocument, parent=None):
        super().__init__(parent)
        self.setObjectName("summary")
        self._document = document
        self.memory_problem: str | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        top = QHBoxLayout()
        self.title = QLabel()
        top.addWidget(self.title, 1)
        self.copy_button = QPushButton("Copy as text")
        self.copy_button.setToolTip(COPY_TIP)
        self.copy_button.clicked.connect(self._on_copy_button_clicked)
        top.addWidget(self.copy_button)
        layout.addLayout(top)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.table, 1)
        self.totals = QLabel()
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.totals.setFont(mono)
        self.totals.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.totals)
        # The costs for one image under Keras's totals (the table itself stays Keras's); each
        # row's tooltip gives that layer's MACs line, as its card does.
        self.costs = QLabel()
        self.costs.setFont(mono)
        self.costs.setWordWrap(True)  # the activation line is longer than a 1024-pixel dock
        self.costs.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.costs.setToolTip("Multiply-adds (MACs) and the memory of every layer's output, for one image; "
                              "hover a row for that layer's, or run visualcnn summary --costs")
        layout.addWidget(self.costs)
        self.memory = QLabel()
        self.memory.setObjectName("memoryPeak")
        self.memory.setWordWrap(True)
        self.memory.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.memory)
        document.report_updated.connect(self._on_document_report_updated)
        document.training_changed.connect(lambda *_: self._show_memory())
        self._mask = answer_mask(document)  # a lesson's predict step hides its answer here too
        self._mask.changed.connect(lambda: self._on_document_report_updated(self._document.report))
        self._on_document_report_updated(document.report)

    def text(self) -> str:
        """The same text `visualcnn summary` prints for this pipeline."""
        report = self._document.report
        return render_summary(self._document.name, report, wide_line_length(report))

    def cell_texts(self) -> list[tuple[str, ...]]:
        columns = self.table.columnCount()
        return [tuple(self.table.item(r, c).text() for c in range(columns)) for r in range(self.table.rowCount())]

    def _on_copy_button_clicked(self):
        QGuiApplication.clipboard().setText(self.text())

    def _on_document_report_updated(self, report):
        self.title.setText(f'Model: "{self._document.name}"')
        # The copied text is Keras's whole table: while a predict step hides a number it would
        # paste the answer, so it waits for the answer too.
        hidden = bool(self._mask.pairs)
        self.copy_button.setEnabled(not hidden)
        self.copy_button.setToolTip(MASK_TIP if hidden else COPY_TIP)
        rows = summary_rows(report)
        # A branching graph gets Keras's "Connected to" column; rows stay in the builder's
        # order (the cards'), so a red row here is the red card there.
        graph = not report.is_linear
        if self.table.columnCount() != (4 if graph else 3):
            self.table.setColumnCount(4 if graph else 3)
            self.table.setHorizontalHeaderLabels(HEADERS + ((CONNECTED_HEADER,) if graph else ()))
            if graph:  # shares the width with the layer names (both elide; the tooltip has all)
                self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setRowCount(len(rows))
        for r, (row, layer_report) in enumerate(zip(rows, report.rows)):
            values = (f"{row.name} ({row.class_name})", *_masked_cells(self._mask, row, layer_report))
            if graph:
                values += (connected_to(report, r, keras_suffix=False),)  # "Copy as text" keeps Keras's [0][0]
            for c, value in enumerate(values):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(r, c, item)
                if item.text() != value:
                    item.setText(value)
                item.setTextAlignment((Qt.AlignmentFlag.AlignRight if c == 2 else Qt.AlignmentFlag.AlignLeft)
                                      | Qt.AlignmentFlag.AlignVCenter)
                colour = (QColor(ERROR_COLOUR) if layer_report.status == "error"
                          else QColor(UNKNOWN_COLOUR) if layer_report.status == "unknown" else None)
                item.setForeground(colour if colour is not None else self.palette().text())
                tip = layer_report.error or (value if c in (0, 3) else _cost_tip(layer_report))
                if value == MASK or (c == 2 and self._mask.masked(layer_report.name, "macs")):
                    tip = MASK_TIP
                item.setToolTip(explained(tip, *summary_cell_terms(c, layer_report)))  # None, Param #: glossary
        totals = [line.strip() for line in totals_lines(report)]
        if self._mask.hides_totals():  # the total minus the other rows would be the answer
            totals = [f"{line.split(':')[0]}: {MASK}" for line in totals]
        self.totals.setText("\n".join(totals))
        self.totals.setToolTip(MASK_TIP if self._mask.hides_totals() else "")
        costs = [line.strip() for line in cost_lines(report)] if report.ok else []
        if costs and self._mask.hides_total_macs():
            costs[0] = f"Total MACs: {MASK} per image"
        if costs and self._mask.hides_total_activations():
            costs[1] = f"Activation memory: {MASK} per image"
        self.costs.setText("\n".join(costs))
        explain_summary(self)  # the headers are remade when a graph adds "Connected to"
        self._show_memory()

    def _show_memory(self) -> None:
        estimate = document_memory(self._document) if self._document.report.ok else None
        if estimate is None:
            self.memory_problem = None
            self.memory.setText("")
            self.memory.setToolTip("")
            return
        text, problem = peak_text(estimate)
        if self._mask.hides_totals():  # the weights' bytes are the total parameters times 4
            text = text.replace(f" (weights {format_bytes(estimate.weight_bytes)})", "")
        self.memory_problem = problem
        if problem:
            self.memory.setStyleSheet(f"color: {ERROR_COLOUR}; font-weight: bold;")
            self.memory.setText(f"{text}. {problem}.")
        else:
            self.memory.setStyleSheet("")
            self.memory.setText(text)
        self.memory.setToolTip("Weights, their gradients and optimizer state, plus every layer's activations "
                               "and their gradients for one batch, as float32. Change the batch size in the "
                               "Train tab.")


def _masked_cells(mask, row, layer_report) -> tuple[str, str]:
    """(Output Shape, Param #) of a row, "?" where a lesson's predict step asks for it."""
    shape = MASK if mask.masked(layer_report.name, "output_shape") and layer_report.status == "ok" else row.output_shape
    params = MASK if mask.masked(layer_report.name, "params") and layer_report.status == "ok" else row.params
    return shape, params


def _cost_tip(layer_report) -> str:
    """A row's MACs and activation memory for one image, worked as on the card ('' when unknown)."""
    inference = layer_report.inference
    if inference is None:
        return ""
    return f"{inference.macs_line} per image\n{inference.activation_line} per image"
