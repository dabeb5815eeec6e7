"""The document as a Qt item model: one row per layer, data from the current report.

Rows follow the document's signals; REPORT_ROLE gives a row's LayerReport, MEMORY_ROLE the
texts its card shows (with memory at the document's batch size), DisplayRole and
AccessibleTextRole the card in one line, ToolTipRole its derivation.
"""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt

from ..engine.memory import LayerMemory
from .answer_mask import answer_mask
from .document import PipelineDocument
from .graph_card import block_texts, block_tooltip
from .memory_texts import document_memory

REPORT_ROLE = Qt.ItemDataRole.UserRole + 1
MEMORY_ROLE = Qt.ItemDataRole.UserRole + 2


class PipelineModel(QAbstractListModel):
    """Rows = the document's layers; data from the document's current report."""

    def __init__(self, document: PipelineDocument, parent=None):
        super().__init__(parent)
        self._document = document
        self._rows = len(document)
        document.layer_inserted.connect(self._on_document_layer_inserted)
        document.layer_removed.connect(self._on_document_layer_removed)
        document.layer_moved.connect(self._on_document_layer_moved)
        document.pipeline_reset.connect(self._on_document_pipeline_reset)
        document.report_updated.connect(self._on_document_report_updated)
        self._memory = None
        self._memory_report = None
        document.training_changed.connect(self._on_document_training_changed)
        # a lesson's predict step hides (or gives back) one quantity of one block
        self._mask = answer_mask(document)
        self._mask.changed.connect(lambda: self._on_document_report_updated(self._document.report))

    def memory(self, row: int) -> LayerMemory | None:
        """Row's memory at the document's batch size (estimated once per report)."""
        report = self._document.report
        if self._memory_report is not report:
            self._memory_report, self._memory = report, document_memory(self._document)
        if self._memory is None or row >= len(self._memory.layers):
            return None
        return self._memory.layers[row]

    def batch_size(self) -> int | None:
        self.memory(0)
        return None if self._memory is None else self._memory.batch_size

    def _on_document_training_changed(self):
        self._memory_report = None
        self._on_document_report_updated(self._document.report)

    def rowCount(self, parent=QModelIndex()):  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else self._rows

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        rows = self._document.report.rows
        if not index.isValid() or index.row() >= len(rows):
            return None
        report = rows[index.row()]
        if role == REPORT_ROLE:
            return report
        image = self._document.report.input_shape
        hidden = self._mask.quantities(report.name)
        if role == MEMORY_ROLE:
            return block_texts(report, image, self.memory(index.row()), hidden)
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            t = block_texts(report, image, self.memory(index.row()), hidden)
            return (f"{t['title']} ({t['class_name']}): {t['settings']}; {t['shape']}; {t['params']} "
                    f"{t['note']}{t['error']}")
        if role == Qt.ItemDataRole.ToolTipRole:
            timings = self._document.layer_timings
            ms = timings.layers.get(report.name) if timings is not None else None
            measured = None if ms is None else (*ms, timings.batch_size, timings.backward_in.get(report.name, ""),
                                                timings.forward_in.get(report.name, ""))
            return block_tooltip(report, image, self.memory(index.row()), self.batch_size(), measured, hidden)
        return None

    def flags(self, index):
        base = super().flags(index)
        if index.isValid():
            return base | Qt.ItemFlag.ItemIsDragEnabled
        return base | Qt.ItemFlag.ItemIsDropEnabled

    def _on_document_layer_inserted(self, index: int):
        self.beginInsertRows(QModelIndex(), index, index)
        self._rows += 1
        self.endInsertRows()

    def _on_document_layer_removed(self, index: int):
        self.beginRemoveRows(QModelIndex(), index, index)
        self._rows -= 1
        self.endRemoveRows()

    def _on_document_layer_moved(self, source: int, target: int):
        # Qt counts the destination before the move: moving down lands "before target + 1".
        self.beginMoveRows(QModelIndex(), source, source, QModelIndex(), target + 1 if target > source else target)
        self.endMoveRows()

    def _on_document_pipeline_reset(self):
        self.beginResetModel()
        self._rows = len(self._document)
        self.endResetModel()

    def _on_document_report_updated(self, _report):
        if self._rows:
            self.dataChanged.emit(self.index(0), self.index(self._rows - 1))
