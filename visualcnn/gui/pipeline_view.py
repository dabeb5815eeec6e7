"""The pipeline in the centre of the builder: the input block above the graph of layer cards.

InputShapeWidget edits the input (height x width x channels); PipelineGraphView
(graph_view.py) draws the layers as cards, a plain column for a linear pipeline and
side-by-side columns with arrows for a graph, and makes every edit an undoable command.
The card texts and the item model live in graph_card.py and graph_model.py; they are
re-exported here for the callers that know them by this module.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSignalBlocker
from PySide6.QtGui import QFont, QUndoStack
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from ..engine.shapes import format_shape
from .commands import SetInputShapeCommand
from .document import PipelineDocument
from .families import family_colour, family_icon
from .graph_card import block_texts, block_tooltip, field_explanation, field_text, memory_texts
from .graph_model import MEMORY_ROLE, REPORT_ROLE, PipelineModel
from .graph_view import PipelineGraphView


class InputShapeWidget(QFrame):
    """The editable input block at the top of the pipeline: height x width x channels."""

    def __init__(self, document: PipelineDocument, undo_stack: QUndoStack, parent=None):
        super().__init__(parent)
        self._document = document
        self._undo_stack = undo_stack
        self.setObjectName("inputBlock")
        self.setStyleSheet("#inputBlock { border: 1.5px solid %s; border-radius: 8px; }"
                           % family_colour("input").lighter(140).name())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        self._badge = QLabel()
        self._fit_badge()
        layout.addWidget(self._badge)
        title = QLabel("<b>Input</b>")
        title.setToolTip("The image that enters the network: height x width x channels (1 for grey).")
        layout.addWidget(title)
        self._spins: list[QSpinBox] = []
        self._spin_layout = QHBoxLayout()
        self._spin_layout.setSpacing(4)
        layout.addLayout(self._spin_layout)
        layout.addStretch(1)
        self.shape_label = QLabel()
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setBold(True)
        self.shape_label.setFont(mono)
        layout.addWidget(self.shape_label)
        document.input_shape_changed.connect(self._on_document_input_shape_changed)
        document.pipeline_reset.connect(lambda: self._on_document_input_shape_changed(document.input_shape))
        self._on_document_input_shape_changed(document.input_shape)

    def _fit_badge(self) -> None:
        size = int(self.fontMetrics().height() * 1.9)
        self._badge.setPixmap(family_icon("input").pixmap(size, size))

    def changeEvent(self, event):  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # View ▸ Zoom
            self._fit_badge()

    @property
    def spin_boxes(self) -> list[QSpinBox]:
        return list(self._spins)

    def _build_spins(self, rank: int):
        while self._spin_layout.count():
            item = self._spin_layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        self._spins = []
        tips = {3: ("height (pixels)", "width (pixels)", "channels (1 grey, 3 colour)"),
                2: ("height", "width"), 1: ("features",)}[rank]
        for i in range(rank):
            if i:
                self._spin_layout.addWidget(QLabel("×"))
            spin = QSpinBox()
            spin.setRange(1, 100_000)
            spin.setToolTip(tips[i])
            spin.setAccessibleName(f"input {tips[i]}")
            spin.valueChanged.connect(self._on_spin_value_changed)
            self._spin_layout.addWidget(spin)
            self._spins.append(spin)

    def _on_document_input_shape_changed(self, shape):
        shape = tuple(shape)
        if len(self._spins) != len(shape):
            self._build_spins(len(shape))
        for spin, value in zip(self._spins, shape):
            if spin.value() != value:  # equality guard: never disturb a spin box being typed in
                with QSignalBlocker(spin):
                    spin.setValue(value)
        self.shape_label.setText(format_shape((None, *shape)))

    def _on_spin_value_changed(self, _value):
        shape = tuple(s.value() for s in self._spins)
        if shape != self._document.input_shape:
            self._undo_stack.push(SetInputShapeCommand(self._document, shape))


class PipelineWidget(QWidget):
    """Input block above the graph of layer cards."""

    def __init__(self, document: PipelineDocument, undo_stack: QUndoStack, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.setSpacing(2)
        self.input_widget = InputShapeWidget(document, undo_stack)
        layout.addWidget(self.input_widget)
        # `list_widget` is the name the window and tests have always used for the blocks view
        self.list_widget = self.graph_view = PipelineGraphView(document, undo_stack)
        layout.addWidget(self.list_widget, 1)


__all__ = ["PipelineWidget", "InputShapeWidget", "PipelineGraphView", "PipelineModel", "REPORT_ROLE", "MEMORY_ROLE",
           "block_texts", "block_tooltip", "field_explanation", "field_text", "memory_texts"]
