"""The trace panel (issue 13 item 1): click a feature-map cell, see how its value was made.

Everything shown comes from the engine's explain.trace / trace_backward (the panel only
lays the numbers out): the probe image with the cell's receptive field drawn on it; for a
conv cell the input patch, the kernel and their element-wise products as grids of numbers
tinted by sign, one input channel at a time (the channels listed by their sums, largest
first: pick one to expand it), then sum + bias -> activation = value in large type; for
pooling the window with the max ringed or the average; for Dense and the other mixing
layers the top contributions; for merges each input's share. Below, the backward side:
dL/d(value) for a label with the model's loss, and this cell's share of the kernel's
gradient. Sized by the font so View > Zoom makes it projector-sized.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QComboBox, QFrame, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QScrollArea, QSizePolicy, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from ..engine.explain import trace, trace_backward
from ..engine.explain.text import n
from ..engine.explain.window import SLIDING
from .number_grid import NumberGrid, number_text, sign_colour

CONV_KINDS = ("conv", "depthwise")


def image_rgb(image: np.ndarray) -> np.ndarray:
    """A model input (h, w, channels) as (h, w, 3) uint8 for display: grey for one channel,
    the first three as RGB otherwise, stretched to its own range."""
    image = np.asarray(image, np.float64)
    if image.ndim == 2:
        image = image[:, :, None]
    shown = image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image[:, :, :1], 3, axis=2)
    low, high = float(shown.min()), float(shown.max())
    if low >= 0 and high <= 1:
        low, high = 0.0, 1.0  # an MNIST digit keeps its true black and white
    scaled = (shown - low) / (high - low) if high > low else np.zeros_like(shown)
    return np.ascontiguousarray((np.clip(scaled, 0, 1) * 255).astype(np.uint8))


def field_pixmap(image: np.ndarray, rows, cols, side: int) -> QPixmap:
    """The input image, pixelated to about `side` pixels, the receptive field outlined in
    orange and the rest dimmed (rows / cols: first, last inclusive; None: no field)."""
    rgb = image_rgb(image)
    h, w = rgb.shape[:2]
    scale = max(1, side // max(h, w))
    qimage = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format.Format_RGB888).copy()
    pixmap = QPixmap.fromImage(qimage).scaled(w * scale, h * scale, Qt.AspectRatioMode.IgnoreAspectRatio,
                                              Qt.TransformationMode.FastTransformation)
    if rows is None or cols is None:
        return pixmap
    painter = QPainter(pixmap)
    box = QRectF(cols[0] * scale, rows[0] * scale, (cols[1] - cols[0] + 1) * scale, (rows[1] - rows[0] + 1) * scale)
    dim = QColor(0, 0, 0, 150)
    painter.fillRect(QRectF(0, 0, w * scale, box.top()), dim)
    painter.fillRect(QRectF(0, box.bottom(), w * scale, h * scale - box.bottom()), dim)
    painter.fillRect(QRectF(0, box.top(), box.left(), box.height()), dim)
    painter.fillRect(QRectF(box.right(), box.top(), w * scale - box.right(), box.height()), dim)
    painter.setPen(QPen(QColor("#f39c12"), max(2, scale // 3)))
    painter.drawRect(box)
    painter.end()
    return pixmap


def _scaled_font(widget: QWidget, factor: float, bold: bool = False) -> QFont:
    font = QFont(widget.font())
    font.setPointSizeF(font.pointSizeF() * factor)
    font.setBold(bold)
    return font


class TracePanel(QWidget):
    """set_cell(model, image, layer_name, index, label) shows one value taken apart.

    slide_requested(layer name) asks the owner to open the sliding-window view."""

    slide_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("tracePanel")
        self.trace = None
        self.backward = None
        self._model = None
        self._image: np.ndarray | None = None
        self._loss = None
        self._channel_order: list[int] = []

        self.title = QLabel()
        self.title.setWordWrap(True)
        self.field_image = QLabel()
        self.field_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.field_caption = QLabel()
        self.field_caption.setWordWrap(True)
        self.formula = QLabel()
        self.formula.setWordWrap(True)
        self.channels = QComboBox()
        self.channels.setToolTip("Each input channel's window*kernel products add up to its sum; pick a channel "
                                 "to see its numbers")
        self.channels.currentIndexChanged.connect(self._show_channel)
        self.patch = NumberGrid()
        self.kernel = NumberGrid()
        self.products = NumberGrid()
        self.window_grid = NumberGrid()
        self.terms = QTableWidget(0, 4)
        self.terms.setHorizontalHeaderLabels(["input", "value", "weight", "product"])
        self.terms.verticalHeader().hide()
        self.terms.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.terms.setSizeAdjustPolicy(QTableWidget.SizeAdjustPolicy.AdjustToContents)
        self.channel_sum = QLabel()
        self.equation = QLabel()
        self.equation.setWordWrap(True)
        self.equation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.label_choice = QSpinBox()
        self.label_choice.setToolTip("The label the loss is computed for")
        self.label_choice.valueChanged.connect(self._show_backward)
        self.backward_text = QLabel()
        self.backward_text.setWordWrap(True)
        self.kernel_share = NumberGrid()
        self.kernel_share_caption = QLabel()
        self.slide_button = QPushButton("Watch this layer slide…")
        self.slide_button.clicked.connect(lambda: self.trace and self.slide_requested.emit(self.trace.layer_name))
        self._build_layout()
        self._fit_to_font()

    # --- layout ---------------------------------------------------------------------

    def _build_layout(self) -> None:
        left = QVBoxLayout()
        left.addWidget(self.field_image)
        left.addWidget(self.field_caption)
        left.addWidget(self.slide_button)
        left.addStretch(1)

        self.grids_box = QWidget()
        grids = QGridLayout(self.grids_box)
        grids.setContentsMargins(0, 0, 0, 0)
        self._grid_heads = []
        for column, (head, grid) in enumerate((("input patch", self.patch), ("kernel", self.kernel),
                                               ("products", self.products))):
            label = QLabel(f"<b>{head}</b>")
            self._grid_heads.append(label)
            grids.addWidget(label, 0, 2 * column, Qt.AlignmentFlag.AlignLeft)
            grids.addWidget(grid, 1, 2 * column, Qt.AlignmentFlag.AlignTop)
            if column < 2:
                sign = QLabel("×" if column == 0 else "=")
                sign.setObjectName("gridSign")
                grids.addWidget(sign, 1, 2 * column + 1, Qt.AlignmentFlag.AlignCenter)
        grids.addWidget(self.channel_sum, 2, 0, 1, 5)
        grids.setColumnStretch(6, 1)

        self.channel_row = QWidget()
        row = QHBoxLayout(self.channel_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Input channel:"))
        row.addWidget(self.channels, 1)

        middle = QVBoxLayout()
        middle.addWidget(self.formula)
        middle.addWidget(self.channel_row)
        middle.addWidget(self.grids_box)
        middle.addWidget(self.window_grid, 0, Qt.AlignmentFlag.AlignLeft)
        middle.addWidget(self.terms, 0, Qt.AlignmentFlag.AlignLeft)
        middle.addWidget(self.equation)
        middle.addWidget(self.details)

        self.backward_box = QGroupBox("Backward: how the loss flows back through this value")
        back = QGridLayout(self.backward_box)
        back.addWidget(QLabel("label:"), 0, 0)
        back.addWidget(self.label_choice, 0, 1, Qt.AlignmentFlag.AlignLeft)
        back.addWidget(self.backward_text, 1, 0, 1, 3)
        back.addWidget(self.kernel_share_caption, 2, 0, 1, 3)
        back.addWidget(self.kernel_share, 3, 0, 1, 3, Qt.AlignmentFlag.AlignLeft)
        back.setColumnStretch(2, 1)
        middle.addWidget(self.backward_box)
        middle.addStretch(1)

        body = QHBoxLayout()
        body.addLayout(left, 0)
        body.addSpacing(12)
        body.addLayout(middle, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(body, 1)

    def _fit_to_font(self) -> None:
        """Numbers about 1.3x the window's text; the headline and the result larger still."""
        for grid in (self.patch, self.kernel, self.products, self.window_grid, self.kernel_share):
            grid.setFont(_scaled_font(self, 1.25))
        self.title.setFont(_scaled_font(self, 1.5, bold=True))
        self.equation.setFont(_scaled_font(self, 1.45))
        for label in (self.formula, self.channel_sum, self.backward_text, self.details):
            label.setFont(_scaled_font(self, 1.15))
        for sign in self.grids_box.findChildren(QLabel, "gridSign"):
            sign.setFont(_scaled_font(self, 2.0, bold=True))
        self.terms.setFont(_scaled_font(self, 1.2))

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == event.Type.FontChange:  # View > Zoom
            self._fit_to_font()
            self._show_field()

    # --- content ----------------------------------------------------------------------

    def set_cell(self, model, image: np.ndarray, layer_name: str, index, label: int | None = None,
                 loss=None) -> None:
        """Trace layer_name[index] of `model` for one input `image` (the model's input shape).
        label: the class the backward side starts from (None: the network's answer); loss:
        the training's loss (None: the model's compiled loss, else sparse categorical
        cross-entropy)."""
        image = np.asarray(image, np.float32).reshape(model.input_shape)
        self._model, self._image, self._loss = model, image, loss
        self.trace = trace(model, image, layer_name, index)
        self.backward = None  # the previous cell's: recomputed below
        self._channel_order = []
        t = self.trace
        where = _where(t.index)
        self.title.setText(f"{t.layer_name} ({t.class_name}) {where} = {n(t.value)}")
        self.formula.setText(t.formula)
        self._show_field()
        self.slide_button.setVisible(t.class_name in SLIDING)
        self._show_body()
        units = model.output_shape[-1]
        self.label_choice.blockSignals(True)
        self.label_choice.setRange(0, max(units - 1, 0))
        if label is None:
            label = int(np.argmax(model.predict(image[None], verbose=0)[0])) if units > 1 else 0
        self.label_choice.setValue(int(label))
        self.label_choice.blockSignals(False)
        self._show_backward()

    def _show_field(self) -> None:
        t = self.trace
        if t is None or self._image is None:
            return
        side = max(168, 12 * self.fontMetrics().height())
        self.field_image.setPixmap(field_pixmap(self._image, t.field_rows, t.field_cols, side))
        if t.field_rows is None:
            self.field_caption.setText("the input is not an image")
            return
        (r0, r1), (c0, c1) = t.field_rows, t.field_cols
        self.field_caption.setText(f"It sees input rows {r0}–{r1}, columns {c0}–{c1}: "
                                   f"{r1 - r0 + 1}x{c1 - c0 + 1} pixels (outlined).")

    def _show_body(self) -> None:
        t = self.trace
        conv = t.kind in CONV_KINDS and t.products is not None
        pool = t.kind in ("max_pool", "average_pool")
        self.channel_row.setVisible(conv and t.products.shape[2] > 1)
        self.grids_box.setVisible(conv)
        self.window_grid.setVisible(pool)
        listed = bool(t.terms) and not conv
        self.terms.setVisible(listed)
        self.details.setText("<br>".join(t.notes))
        self.details.setVisible(bool(t.notes))
        if conv:
            self._fill_channels()
        if pool:
            ring = None
            if t.chosen is not None:
                ring = (t.window_rows.index(t.chosen[0]), t.window_cols.index(t.chosen[1]))
            self.window_grid.set_values(t.patch[:, :, 0], t.padding, ring)
        if listed:
            self._fill_terms()
        self.equation.setText(self._equation())

    def _fill_channels(self) -> None:
        t = self.trace
        sums = t.channel_sums
        self._channel_order = [int(c) for c in np.argsort(-np.abs(sums), kind="stable")]
        self.channels.blockSignals(True)
        self.channels.clear()
        for c in self._channel_order:
            self.channels.addItem(f"channel {c}: its products sum to {n(sums[c])}")
        self.channels.setCurrentIndex(0)
        self.channels.blockSignals(False)
        self._show_channel(0)

    def _show_channel(self, row: int) -> None:
        t = self.trace
        if t is None or t.products is None or not 0 <= row < len(self._channel_order):
            return
        c = self._channel_order[row]
        self.patch.set_values(t.patch[:, :, c], t.padding)
        self.kernel.set_values(t.kernel[:, :, c])
        self.products.set_values(t.products[:, :, c], t.padding)
        many = t.products.shape[2]
        channel = f"channel {c}: " if many > 1 else ""
        rest = f" (the other {many - 1} channels add {n(t.total - t.channel_sums[c])})" if many > 1 else ""
        self.channel_sum.setText(f"{channel}sum of the {t.products[:, :, c].size} products = "
                                 f"<b>{n(t.channel_sums[c])}</b>{rest}")
        if self.backward is not None:
            self._show_kernel_share()

    def _fill_terms(self) -> None:
        t = self.trace
        rows = list(t.terms)
        self.terms.setRowCount(len(rows) + (1 if t.rest_count else 0))
        merge = t.kind in ("merge", "moves")
        self.terms.setHorizontalHeaderLabels(["input", "value", "share" if merge else "weight", "product"])
        total = sum(term.value for term in rows) if merge else None
        # a share is a fraction of a sum whose inputs all pull the same way (as explain/text.py)
        same_sign = all(term.value >= 0 for term in rows) or all(term.value <= 0 for term in rows)
        if not (merge and t.formula.endswith("sum of the inputs") and same_sign):
            total = None
        scale = max((abs(term.product) for term in rows), default=1.0)
        for r, term in enumerate(rows):
            share = f"{100 * term.value / total:.0f}%" if total else ""
            cells = [term.label, n(term.value), share if merge else n(term.weight), n(term.product)]
            for k, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if k == 3:
                    item.setBackground(sign_colour(term.product, scale))
                self.terms.setItem(r, k, item)
        if t.rest_count:
            r = len(rows)
            self.terms.setItem(r, 0, QTableWidgetItem(f"{t.rest_count} others"))
            for k in (1, 2):
                self.terms.setItem(r, k, QTableWidgetItem(""))
            self.terms.setItem(r, 3, QTableWidgetItem(n(t.rest)))
        if merge:
            self.terms.hideColumn(3)
        else:
            self.terms.showColumn(3)
        self.terms.resizeColumnsToContents()
        width = sum(self.terms.columnWidth(k) for k in range(4) if not self.terms.isColumnHidden(k))
        self.terms.setFixedWidth(width + 2 * self.terms.frameWidth() + 4)
        visible = min(self.terms.rowCount(), 11)
        row_h = self.terms.verticalHeader().defaultSectionSize()
        self.terms.setFixedHeight(self.terms.horizontalHeader().height() + visible * row_h + 6)

    def _equation(self) -> str:
        """The last steps in large type: sum + bias = z, activation(z) = value."""
        t = self.trace
        parts = []
        if t.kind == "max_pool":
            parts.append(f"max of the window = <b>{n(t.computed)}</b> (ringed)")
        elif t.kind == "average_pool":
            inside = int((~t.padding).sum())
            parts.append(f"{n(t.total)} / {inside} = <b>{n(t.computed)}</b>")
        elif t.total is not None:
            many = t.channel_sums is not None and len(t.channel_sums) > 1 and t.kind in CONV_KINDS
            parts.append(f"sum{' over all channels' if many else ''} = {n(t.total)}")
            if t.bias is not None:
                parts.append(f"+ bias {n(t.bias)} = {n(t.pre_activation)}")
            if t.activation and t.activation != "linear":
                parts.append(f"{t.activation}({n(t.pre_activation)}) = <b>{n(t.computed)}</b>")
            else:
                parts.append(f"= <b>{n(t.computed)}</b>")
        else:
            source = f"x = {n(t.inputs[0])} → " if len(t.inputs) == 1 else ""
            parts.append(f"{source}<b>{n(t.computed)}</b>")
        verdict = "✔ the model's value" if t.matches() else f"✘ the model computed {n(t.value)}"
        return "&nbsp;&nbsp;&nbsp;".join(parts) + f"<br><span style='color:#2a7'>{verdict}</span>"

    def _show_backward(self) -> None:
        t = self.trace
        if t is None or self._model is None:
            return
        try:
            self.backward = trace_backward(self._model, self._image, int(self.label_choice.value()), t.layer_name,
                                           t.index, loss=self._loss)
        except (ValueError, KeyError, TypeError) as exc:  # e.g. a loss that needs another target shape
            self.backward = None
            self.backward_text.setText(f"No backward side for this model: {exc}")
            self.kernel_share.hide()
            self.kernel_share_caption.hide()
            return
        self.backward_text.setText("<br>".join(self.backward.lines()))
        self._show_kernel_share()

    def _show_kernel_share(self) -> None:
        b, t = self.backward, self.trace
        show = b is not None and b.kernel_share is not None and t.kind == "conv" and b.kernel_share.ndim == 3
        self.kernel_share.setVisible(show and b.dpre != 0)
        self.kernel_share_caption.setVisible(show)
        if not show:
            return
        if b.dpre == 0:  # a grid of zeros teaches nothing: say why it is zero
            self.kernel_share_caption.setText("dL/dz is 0: this cell adds nothing to the kernel's gradient for this "
                                              "image (nothing after it uses its value, or its activation is flat)")
            return
        row = self.channels.currentIndex()
        c = self._channel_order[row] if 0 <= row < len(self._channel_order) else 0
        self.kernel_share.set_values(b.kernel_share[:, :, c], t.padding)
        self.kernel_share_caption.setText(f"this cell's share of dL/dkernel (channel {c}) = dL/dz "
                                          f"{number_text(b.dpre)} × the input patch:")


def _where(index) -> str:
    if len(index) == 3:
        return f"filter {index[2]}, row {index[0]}, column {index[1]}"
    if len(index) == 1:
        return f"unit {index[0]}"
    return f"[{', '.join(str(i) for i in index)}]"


class TraceWindow(QWidget):
    """The panel in its own window (not modal: it stays open beside the maps and is
    updated by the next click), scrolling when a small screen cannot hold it."""

    slide_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("traceWindow")
        self.setWindowTitle("Trace a value")
        self.panel = TracePanel()
        self.panel.slide_requested.connect(self.slide_requested)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.panel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        self.panel.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def show_cell(self, model, image, layer_name: str, index, label: int | None = None, loss=None) -> None:
        self.panel.set_cell(model, image, layer_name, index, label, loss)
        self.setWindowTitle(f"Trace: {self.panel.title.text()}")
        if not self.isVisible():
            screen = self.screen().availableGeometry() if self.screen() else None
            if screen is not None:
                self.resize(min(1100, screen.width() - 40), min(820, screen.height() - 60))
        self.show()
        self.raise_()
