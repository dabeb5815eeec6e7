"""The pipeline in the centre of the builder: the input block, then one card per layer.

PipelineModel adapts the document to Qt's item model (rows follow the document's
signals); BlockDelegate paints each card from the engine's LayerReport: type and key
settings, output shape, parameter count, receptive field, or the engine's error in red.
PipelineListWidget handles selection, keyboard, context menu and drag and drop; every
edit it makes is a QUndoCommand pushed on the window's stack. Each card also shows its
memory at the document's batch size: the output's bytes next to the output shape, the
weights' bytes next to the parameter count (engine.memory's estimate).
"""

from __future__ import annotations

from PySide6.QtCore import (QAbstractListModel, QByteArray, QEvent, QMimeData, QModelIndex, QPoint, QRect, QRectF,
                            QSignalBlocker, QSize, Qt, Signal)
from PySide6.QtGui import (QAction, QColor, QDrag, QFont, QFontMetrics, QKeySequence, QPainter, QPalette,
                           QPen, QPixmap, QUndoStack)
from PySide6.QtWidgets import (QAbstractItemView, QFrame, QHBoxLayout, QLabel, QListView, QMenu, QSpinBox,
                               QStyle, QStyledItemDelegate, QStyleOptionViewItem, QVBoxLayout, QWidget)

from ..engine.analysis import LayerReport
from ..engine.memory import LayerMemory, format_bytes
from ..engine.shapes import format_shape
from .commands import (InsertLayerCommand, MoveLayerCommand, RemoveLayerCommand, SetInputShapeCommand,
                       duplicate_layer_command)
from .document import PipelineDocument
from .families import ERROR_COLOUR, UNKNOWN_COLOUR, family_colour, family_icon, paint_family_badge
from .memory_texts import document_memory
from .mime import MIME_TYPE, LayerPayload, decode_payload, drop_row, encode_payload

REPORT_ROLE = Qt.ItemDataRole.UserRole + 1
MEMORY_ROLE = Qt.ItemDataRole.UserRole + 2


def _image_size(image_shape) -> tuple[int, int] | None:
    """(height, width) of the pipeline's input when it is an image, else None."""
    shape = tuple(image_shape or ())
    return (int(shape[0]), int(shape[1])) if len(shape) >= 2 else None


def _pair(size) -> str:
    return f"{size[0]:g}x{size[1]:g}"


def _flat(report: LayerReport) -> bool:
    """True for a block whose output is a vector (Flatten, Dense, global pooling...)."""
    return report.output_shape is not None and len(report.output_shape) == 2


def field_text(report: LayerReport, image_shape=None) -> str:
    """'receptive field 5x5' for a block, as short as possible; a vector block says how
    much of the image it sees, and a field larger than the image says so."""
    if report.inference is None:
        return ""
    size = report.inference.field.size
    image = _image_size(image_shape)
    if image is not None and (size[0] > image[0] or size[1] > image[1]):
        return f"receptive field {_pair(size)}, past the {image[0]}x{image[1]} image's border"
    if image is not None and _flat(report):
        if size[0] >= image[0] and size[1] >= image[1]:
            return "sees the whole image"
        return f"sees {_pair(size)} of the {image[0]}x{image[1]} image"
    return f"receptive field {_pair(size)}" + ("" if size[0] == size[1] else " (h x w)")


def field_explanation(report: LayerReport, image_shape=None) -> str:
    """What the receptive field shown on a card means for this block, in a sentence or two
    ('' when the plain 'each output sees NxN input pixels' says it all)."""
    if report.inference is None or report.output_shape is None:
        return ""
    size = report.inference.field.size
    image = _image_size(image_shape)
    parts = []
    flat = _flat(report)
    name = report.layer.class_name
    if flat and report.input_shape is not None and len(report.input_shape) == 4:
        parts.append(f"{name} has no sliding window: each of its outputs is computed from every position of its "
                     f"{format_shape(report.input_shape)} input at once, so it depends on the whole "
                     f"{_pair(size)} area that the layers before it cover together.")
    elif flat and report.params > 0 and name == "Dense":
        parts.append(f"Dense connects every input to every unit, so each unit depends on everything the layers "
                     f"before it see: a {_pair(size)} area of the image.")
    elif flat:
        parts.append(f"{name} works value by value, so each output sees what its input saw: a {_pair(size)} area "
                     "of the image.")
    if image is not None and (size[0] > image[0] or size[1] > image[1]):
        parts.append(f"The field ({_pair(size)}) is larger than the {image[0]}x{image[1]} input image: the "
                     "windows reach past the border into the padding (zeros), so a value can depend on the whole "
                     "image, and how much of it lies inside depends on where the value sits.")
    elif image is not None and flat and (size[0] >= image[0] and size[1] >= image[1]):
        parts.append("That is the whole image.")
    elif image is not None and flat:
        parts.append(f"That is {_pair(size)} of the {image[0]}x{image[1]} image: the remaining border pixels are "
                     "never seen (a stride or pooling that does not divide the size evenly drops them).")
    return " ".join(parts)


def memory_texts(memory: LayerMemory | None, batch_size: int | None = None) -> tuple[str, str]:
    """(activation text next to the output shape, weight text next to the parameters)."""
    if memory is None:
        return "", ""
    activation = format_bytes(memory.activation_bytes) if memory.activation_bytes else ""
    weights = format_bytes(memory.weight_bytes) if memory.weight_bytes else ""
    return activation, weights


def block_texts(report: LayerReport, image_shape=None, memory: LayerMemory | None = None) -> dict:
    """Everything a card shows, as plain strings (also used by tests and accessibility)."""
    layer = report.layer
    activation_mem, weight_mem = memory_texts(memory)
    if report.status == "ok":
        shape = format_shape(report.output_shape)
        params = f"{report.params:,} params"
        if report.params != report.trainable_params:
            params += f" ({report.params - report.trainable_params:,} non-trainable)"
        if weight_mem:
            params += f" · {weight_mem}"
        note, error = field_text(report, image_shape), ""
    elif report.status == "error":
        shape, params, note, error = "cannot compute", "", "", report.error
        activation_mem = ""
    else:
        shape, params, note, error = "?", "", "shape unknown until the red block above is fixed", ""
        activation_mem = ""
    return {"title": report.name, "class_name": layer.class_name, "settings": layer.describe(),
            "shape": shape, "params": params, "note": note, "error": error, "activation_memory": activation_mem}


def block_tooltip(report: LayerReport, image_shape=None, memory: LayerMemory | None = None,
                  batch_size: int | None = None) -> str:
    """The card's tooltip: the derivation, what the receptive field means, the memory."""
    if report.inference is None:
        return report.error or "shape unknown until the red block above is fixed"
    lines = list(report.inference.derivation)
    explanation = field_explanation(report, image_shape)
    if explanation:
        lines += ["", explanation]
    if memory is not None and batch_size:
        lines += ["", f"Memory at batch {batch_size} (float32): weights {format_bytes(memory.weight_bytes)}, "
                      f"output {format_bytes(memory.activation_bytes)}"]
    return "\n".join(lines)


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
        if role == MEMORY_ROLE:
            return block_texts(report, image, self.memory(index.row()))
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            t = block_texts(report, image, self.memory(index.row()))
            return (f"{t['title']} ({t['class_name']}): {t['settings']}; {t['shape']}; {t['params']} "
                    f"{t['note']}{t['error']}")
        if role == Qt.ItemDataRole.ToolTipRole:
            return block_tooltip(report, image, self.memory(index.row()), self.batch_size())
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


class BlockDelegate(QStyledItemDelegate):
    """Paints one layer card.

    [stripe] n [badge]  name  Type ..................... (None, 26, 26, 32)
                        32 filters, 3x3, relu · receptive field 3x3   320 params
                        (the engine's error, wrapped, in red, when the block is impossible)
    """

    MARGIN = 4      # around the card, in logical pixels
    PADDING = 8     # inside the card

    def __init__(self, view: QListView):
        super().__init__(view)
        self._view = view

    def _fonts(self, option) -> tuple[QFont, QFont, QFont, QFont]:
        base = QFont(option.font)
        title = QFont(base)
        title.setBold(True)
        title.setPointSizeF(base.pointSizeF() * 1.1)
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(base.pointSizeF() * 1.05)
        mono.setBold(True)
        small = QFont(base)
        small.setPointSizeF(base.pointSizeF() * 0.95)
        return base, title, mono, small

    def _geometry(self, option) -> tuple[int, int, int]:
        """(badge size, number column width, text left offset from the card's left)."""
        base, title, _, small = self._fonts(option)
        badge = QFontMetrics(title).height() + QFontMetrics(base).height() - 4
        number = QFontMetrics(small).horizontalAdvance("00")
        return badge, number, 10 + number + 6 + badge + self.PADDING

    def _error_height(self, option, width: int, text: str) -> int:
        small = self._fonts(option)[3]
        _, _, left = self._geometry(option)
        available = max(60, width - 2 * self.MARGIN - left - self.PADDING)
        return QFontMetrics(small).boundingRect(QRect(0, 0, available, 10000),
                                                int(Qt.TextFlag.TextWordWrap), text).height()

    def sizeHint(self, option, index):
        report = index.data(REPORT_ROLE)
        base, title, _, _ = self._fonts(option)
        width = self._view.viewport().width() or 400
        if not self._view.verticalScrollBar().isVisible():
            # Leave room for the scroll bar that more cards will bring: a card laid out for the
            # wider viewport would be clipped on the right (and scroll sideways) once it appears.
            width -= self._view.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent, None, self._view)
        height = 2 * self.PADDING + self.MARGIN + QFontMetrics(title).height() + QFontMetrics(base).height()
        if report is not None and report.status == "error":
            height += 4 + self._error_height(option, width, report.error or "")
        return QSize(max(100, width - 2), height)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index):
        report: LayerReport | None = index.data(REPORT_ROLE)
        if report is None:
            return
        texts = index.data(MEMORY_ROLE) or block_texts(report)
        base, title_font, mono, small = self._fonts(option)
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        card = QRectF(option.rect).adjusted(self.MARGIN, self.MARGIN / 2, -self.MARGIN, -self.MARGIN / 2)
        family = report.layer.family
        error = report.status == "error"
        unknown = report.status == "unknown"
        colour = QColor(ERROR_COLOUR) if error else family_colour(family)
        text_colour = palette.color(QPalette.ColorRole.Text)
        muted = palette.color(QPalette.ColorRole.PlaceholderText)

        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        background = QColor("#fdecea") if error else QColor(palette.color(QPalette.ColorRole.Base))
        if selected and not error:
            background = QColor(palette.color(QPalette.ColorRole.Highlight))
            background.setAlpha(28)
            background = _over(background, palette.color(QPalette.ColorRole.Base))
        border = QColor(ERROR_COLOUR) if error else (palette.color(QPalette.ColorRole.Highlight) if selected
                                                     else QColor(family_colour(family)).lighter(160))
        painter.setPen(QPen(border, 2.5 if (selected or error) else 1.2))
        painter.setBrush(background)
        painter.drawRoundedRect(card, 7, 7)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(QRectF(card.left() + 2, card.top() + 2, 6, card.height() - 4), 3, 3)

        badge, number_w, left = self._geometry(option)
        top = card.top() + self.PADDING
        painter.setFont(small)
        painter.setPen(muted)
        painter.drawText(QRectF(card.left() + 10, top, number_w, badge),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, str(index.row() + 1))
        paint_family_badge(painter, family, QRectF(card.left() + 10 + number_w + 6, top, badge, badge),
                           colour if error else None)

        text_left = card.left() + left
        right = card.right() - self.PADDING
        y = top
        fm_title, fm_base, fm_mono = QFontMetrics(title_font), QFontMetrics(base), QFontMetrics(mono)

        # line 1: name  Type ........ output shape
        title_h = fm_title.height()
        painter.setFont(mono)
        painter.setPen(QColor(ERROR_COLOUR) if error else (QColor(UNKNOWN_COLOUR) if unknown else text_colour))
        shape_w = fm_mono.horizontalAdvance(texts["shape"])
        painter.drawText(QRectF(right - shape_w, y, shape_w, title_h),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, texts["shape"])
        activation = texts.get("activation_memory", "")
        fm_small = QFontMetrics(small)
        if activation and right - shape_w - text_left > fm_small.horizontalAdvance(activation) + 120:
            # the batch's output, in bytes, beside the shape it comes from
            act_w = fm_small.horizontalAdvance(activation)
            painter.setFont(small)
            painter.setPen(muted)
            painter.drawText(QRectF(right - shape_w - 10 - act_w, y, act_w, title_h),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, activation)
            shape_w += 10 + act_w
        space = right - shape_w - 12 - text_left
        painter.setFont(title_font)
        painter.setPen(text_colour)
        name = fm_title.elidedText(texts["title"], Qt.TextElideMode.ElideRight, int(space))
        painter.drawText(QRectF(text_left, y, space, title_h), Qt.AlignmentFlag.AlignVCenter, name)
        name_w = fm_title.horizontalAdvance(name + "  ")
        if name_w < space:
            painter.setFont(base)
            painter.setPen(muted)
            painter.drawText(QRectF(text_left + name_w, y, space - name_w, title_h), Qt.AlignmentFlag.AlignVCenter,
                             fm_base.elidedText(texts["class_name"], Qt.TextElideMode.ElideRight,
                                                int(space - name_w)))
        y += title_h

        # line 2: settings · receptive field (or why unknown) ........ params
        line_h = fm_base.height()
        painter.setFont(base)
        params_w = fm_base.horizontalAdvance(texts["params"])
        painter.setPen(text_colour)
        painter.drawText(QRectF(right - params_w, y, params_w, line_h),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, texts["params"])
        space = right - params_w - 12 - text_left
        settings = fm_base.elidedText(texts["settings"], Qt.TextElideMode.ElideRight, int(space))
        painter.setPen(muted if unknown else text_colour)
        painter.drawText(QRectF(text_left, y, space, line_h), Qt.AlignmentFlag.AlignVCenter, settings)
        used = fm_base.horizontalAdvance(settings) if settings else 0
        if texts["note"] and used < space:
            note = ("  ·  " if settings else "") + texts["note"]
            painter.setPen(muted)
            painter.drawText(QRectF(text_left + used, y, space - used, line_h), Qt.AlignmentFlag.AlignVCenter,
                             fm_base.elidedText(note, Qt.TextElideMode.ElideRight, int(space - used)))
        y += line_h + 4

        # the engine's own words when the block is impossible
        if error:
            painter.setFont(small)
            painter.setPen(QColor(ERROR_COLOUR))
            painter.drawText(QRectF(text_left, y, right - text_left, card.bottom() - y),
                             int(Qt.TextFlag.TextWordWrap) | int(Qt.AlignmentFlag.AlignTop), texts["error"])
        painter.restore()


def _over(top: QColor, bottom: QColor) -> QColor:
    """top (with alpha) composited over an opaque bottom colour."""
    a = top.alphaF()
    return QColor.fromRgbF(top.redF() * a + bottom.redF() * (1 - a), top.greenF() * a + bottom.greenF() * (1 - a),
                           top.blueF() * a + bottom.blueF() * (1 - a))


class PipelineListWidget(QListView):
    """The blocks: select, reorder by dragging, drop from the palette, delete, duplicate."""

    current_row_changed = Signal(int)   # -1 when nothing is selected

    def __init__(self, document: PipelineDocument, undo_stack: QUndoStack, parent=None):
        super().__init__(parent)
        self._document = document
        self._undo_stack = undo_stack
        self._document_id = f"{id(document):x}"
        self._drop_row: int | None = None
        self.setObjectName("pipelineList")
        self.setModel(PipelineModel(document, self))
        self.setItemDelegate(BlockDelegate(self))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDropIndicatorShown(False)  # we draw our own insertion line
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        # Cards are as wide as the view and elide their text: never scroll sideways.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setUniformItemSizes(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_context_menu_requested)
        self.selectionModel().currentChanged.connect(self._on_selection_current_changed)
        self.model().modelReset.connect(lambda: self.current_row_changed.emit(self.current_row()))
        document.layer_inserted.connect(self._on_document_layer_inserted)
        document.layer_moved.connect(self._on_document_layer_moved)
        document.layer_removed.connect(self._on_document_layer_removed)
        document.report_updated.connect(self._on_document_report_updated)

        self.delete_action = self._action("&Delete Block", QKeySequence.StandardKey.Delete, self.delete_current)
        self.duplicate_action = self._action("D&uplicate Block", QKeySequence("Ctrl+D"), self.duplicate_current)
        self.move_up_action = self._action("Move Block &Up", QKeySequence("Alt+Up"), lambda: self.move_current(-1))
        self.move_down_action = self._action("Move Block Do&wn", QKeySequence("Alt+Down"),
                                             lambda: self.move_current(1))
        self._update_actions()

    def _action(self, text: str, shortcut, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(shortcut)
        # Only while the pipeline has focus: Del in an inspector spin box edits the number.
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    # --- selection ------------------------------------------------------------

    def current_row(self) -> int:
        index = self.currentIndex()
        return index.row() if index.isValid() else -1

    def select_row(self, row: int) -> None:
        if 0 <= row < self.model().rowCount():
            index = self.model().index(row)
            self.setCurrentIndex(index)
            self.scrollTo(index)
        else:
            self.clearSelection()
            self.setCurrentIndex(QModelIndex())
        self._update_actions()

    def _on_selection_current_changed(self, current, _previous):
        self._update_actions()
        self.current_row_changed.emit(current.row() if current.isValid() else -1)

    def _update_actions(self):
        row, count = self.current_row(), self.model().rowCount()
        self.delete_action.setEnabled(row >= 0)
        self.duplicate_action.setEnabled(row >= 0)
        self.move_up_action.setEnabled(row > 0)
        self.move_down_action.setEnabled(0 <= row < count - 1)

    def _on_document_layer_inserted(self, index: int):
        self.select_row(index)

    def _on_document_layer_moved(self, _source: int, target: int):
        self.select_row(target)

    def _on_document_layer_removed(self, index: int):
        self.select_row(min(index, self.model().rowCount() - 1))

    def _on_document_report_updated(self, _report):
        # Card heights depend on the error text: re-lay out the rows.
        self.scheduleDelayedItemsLayout()
        self._update_actions()

    # --- edits (each one undoable) ---------------------------------------------

    def delete_current(self):
        row = self.current_row()
        if row >= 0:
            self._undo_stack.push(RemoveLayerCommand(self._document, row))

    def duplicate_current(self):
        row = self.current_row()
        if row >= 0:
            self._undo_stack.push(duplicate_layer_command(self._document, row))

    def move_current(self, step: int):
        row = self.current_row()
        target = row + step
        if row >= 0 and 0 <= target < len(self._document):
            self._undo_stack.push(MoveLayerCommand(self._document, row, target))

    def insert_layer(self, row: int, class_name: str, config: dict) -> None:
        self._undo_stack.push(InsertLayerCommand(self._document, row, class_name, config))

    def insertion_row(self) -> int:
        """Where a double-clicked palette entry goes: after the selected block, else at the end."""
        row = self.current_row()
        return row + 1 if row >= 0 else len(self._document)

    def _on_context_menu_requested(self, pos: QPoint):
        index = self.indexAt(pos)
        if index.isValid():
            self.select_row(index.row())
        menu = QMenu(self)
        for action in (self.duplicate_action, self.delete_action, None, self.move_up_action, self.move_down_action):
            menu.addSeparator() if action is None else menu.addAction(action)
        menu.exec(self.viewport().mapToGlobal(pos))

    # --- drag and drop ---------------------------------------------------------

    def mime_data_for_row(self, row: int) -> QMimeData:
        entry = self._document.entry(row)
        payload = LayerPayload("pipeline", entry.class_name, entry.config, row, self._document_id)
        mime = QMimeData()
        mime.setData(MIME_TYPE, QByteArray(encode_payload(payload)))
        return mime

    def handle_drop(self, mime: QMimeData, row: int) -> bool:
        """Insert or move the block a drag carries so that it lands at `row`. Returns True if accepted."""
        if not mime.hasFormat(MIME_TYPE):
            return False
        try:
            payload = decode_payload(bytes(mime.data(MIME_TYPE).data()))
        except ValueError:
            return False
        row = max(0, min(row, len(self._document)))
        if payload.is_move_within(self._document_id):
            source = payload.index
            if source >= len(self._document):
                return False
            target = row - 1 if row > source else row
            if target != source:
                self._undo_stack.push(MoveLayerCommand(self._document, source, target))
            return True
        config = {k: v for k, v in payload.config.items() if k != "name"}
        try:
            self.insert_layer(row, payload.class_name, config)
        except ValueError:  # a class this version does not know
            return False
        return True

    def startDrag(self, supported_actions):
        row = self.current_row()
        if row < 0:
            return
        drag = QDrag(self)
        drag.setMimeData(self.mime_data_for_row(row))
        rect = self.visualRect(self.model().index(row))
        pixmap = QPixmap(rect.size() * self.devicePixelRatioF())
        pixmap.setDevicePixelRatio(self.devicePixelRatioF())
        pixmap.fill(Qt.GlobalColor.transparent)
        self.viewport().render(pixmap, QPoint(), rect)
        drag.setPixmap(pixmap)
        drag.setHotSpot(QPoint(rect.width() // 4, rect.height() // 2))
        drag.exec(Qt.DropAction.MoveAction | Qt.DropAction.CopyAction, Qt.DropAction.MoveAction)

    def _row_at(self, y: float) -> int:
        rects = []
        for row in range(self.model().rowCount()):
            r = self.visualRect(self.model().index(row))
            rects.append((r.top(), r.height()))
        return drop_row(rects, int(y))

    def dragEnterEvent(self, event):
        if event.mimeData().hasFormat(MIME_TYPE):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event):
        if not event.mimeData().hasFormat(MIME_TYPE):
            event.ignore()
            return
        self._drop_row = self._row_at(event.position().y())
        event.acceptProposedAction()
        self.viewport().update()

    def dragLeaveEvent(self, event):
        self._drop_row = None
        self.viewport().update()
        event.accept()

    def dropEvent(self, event):
        row = self._row_at(event.position().y())
        self._drop_row = None
        self.viewport().update()
        if self.handle_drop(event.mimeData(), row):
            # Report a copy, never a move: Qt would otherwise ask the source to delete rows itself.
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def paintEvent(self, event):
        super().paintEvent(event)
        if self.model().rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.viewport().rect().adjusted(20, 20, -20, -20),
                             int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap),
                             "Drag layers here from the palette\n(or double-click one)")
            painter.end()
        if self._drop_row is not None:
            count = self.model().rowCount()
            if count == 0:
                y = 4
            elif self._drop_row < count:
                y = self.visualRect(self.model().index(self._drop_row)).top()
            else:
                y = self.visualRect(self.model().index(count - 1)).bottom()
            painter = QPainter(self.viewport())
            painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 3))
            painter.drawLine(8, y, self.viewport().width() - 8, y)
            painter.end()


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
    """Input block above the list of layer cards."""

    def __init__(self, document: PipelineDocument, undo_stack: QUndoStack, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.setSpacing(2)
        self.input_widget = InputShapeWidget(document, undo_stack)
        layout.addWidget(self.input_widget)
        self.list_widget = PipelineListWidget(document, undo_stack)
        layout.addWidget(self.list_widget, 1)
