"""The builder's pipeline as a graph: one card per layer, arrows for the links between them.

A linear pipeline is today's plain column of cards (no arrows, cards as wide as the view).
A pipeline that branches is laid out by graph_layout (rows by the longest path from the
input, one column per parallel branch) with an arrow from each block to each consumer; a
merge receives several arrows, one per input, left to right in input order.

Edits, each one QUndoCommand on the window's stack (commands.py):
- drag a card: move it (within a straight run), or drop it on another window to copy it;
- drag from a card's output port (the dot under it) to another card: connect them;
- drop a palette layer between cards of a plain column, or on an arrow: insert it there
  (Add/Concatenate on an arrow insert a merge on that link); on a card: after it;
- Delete, Ctrl+D, Alt+Up/Down, "Wrap in Residual Block" on a selection (Shift extends it).
A refused edit (a cycle, a block's only input) is not pushed: `message_posted` says why.
"""

from __future__ import annotations

import math

from PySide6.QtCore import (QByteArray, QEvent, QMimeData, QModelIndex, QPoint, QPointF, QRect, QRectF, Qt, QTimer,
                            Signal)
from PySide6.QtGui import (QAction, QColor, QCursor, QDrag, QKeySequence, QPainter, QPainterPath, QPalette, QPen,
                           QPixmap, QPolygonF, QUndoStack)
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QFrame, QMenu, QToolTip

from ..engine.layers import LAYER_CLASSES, ConfigError
from .answer_mask import answer_mask
from .commands import (ConnectCommand, DisconnectCommand, InsertAfterCommand, InsertLayerCommand, InsertOnLinkCommand,
                       MoveLayerCommand, RemoveLayerCommand, WrapResidualCommand, duplicate_layer_command)
from .document import PipelineDocument
from .families import ERROR_COLOUR
from .graph_card import CardPainter, block_texts
from .graph_layout import (INPUT, GraphLayout, Placement, gutters_width, layout_graph, output_port, place,
                           segments_cross)
from .graph_model import MEMORY_ROLE, PipelineModel
from .mime import MIME_TYPE, LayerPayload, decode_payload, drop_row, encode_payload

PORT_RADIUS = 5       # the output port's dot
PORT_GRAB = 10        # how close to the port a press starts a connection
LINK_GRAB = 8         # how close to an arrow a drop lands on it


def _distance_to_polyline(x: float, y: float, points) -> float:
    best = math.inf
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        dx, dy = x1 - x0, y1 - y0
        length = dx * dx + dy * dy
        t = 0.0 if length == 0 else max(0.0, min(1.0, ((x - x0) * dx + (y - y0) * dy) / length))
        best = min(best, math.hypot(x - (x0 + t * dx), y - (y0 + t * dy)))
    return best


def _rounded_path(points, radius: float = 8.0) -> QPainterPath:
    """A polyline of horizontal and vertical pieces with rounded bends."""
    path = QPainterPath(QPointF(*points[0]))
    for k in range(1, len(points) - 1):
        (x0, y0), (x1, y1), (x2, y2) = points[k - 1], points[k], points[k + 1]
        r = min(radius, math.hypot(x1 - x0, y1 - y0) / 2, math.hypot(x2 - x1, y2 - y1) / 2)
        def step(a, b):  # r along a -> b (0 when the piece does not move on that axis)
            return math.copysign(r, b - a) if b != a else 0.0
        before = (x1 - step(x0, x1), y1 - step(y0, y1))
        after = (x1 + step(x1, x2), y1 + step(y1, y2))
        path.lineTo(QPointF(*before))
        path.quadTo(QPointF(x1, y1), QPointF(*after))
    path.lineTo(QPointF(*points[-1]))
    return path


def _arrow_head(tip: QPointF, size: float) -> QPolygonF:
    """A small triangle pointing down onto `tip`."""
    return QPolygonF([tip, QPointF(tip.x() - size * 0.6, tip.y() - size),
                      QPointF(tip.x() + size * 0.6, tip.y() - size)])


class DropTarget:
    """Where a drop lands: ("row", index) in a plain column, ("link", n) on arrow n, ("after", row)."""

    def __init__(self, kind: str, value: int):
        self.kind, self.value = kind, value

    def __eq__(self, other) -> bool:
        return isinstance(other, DropTarget) and (self.kind, self.value) == (other.kind, other.value)

    def __repr__(self) -> str:
        return f"DropTarget({self.kind!r}, {self.value})"


class PipelineGraphView(QAbstractScrollArea):
    """The blocks and their links: select, connect, insert, reorder, delete, duplicate, wrap."""

    current_row_changed = Signal(int)   # -1 when nothing is selected
    message_posted = Signal(str)        # why an edit was refused, for the status bar

    def __init__(self, document: PipelineDocument, undo_stack: QUndoStack, parent=None):
        super().__init__(parent)
        self._document = document
        self._undo_stack = undo_stack
        self._document_id = f"{id(document):x}"
        self.read_only = False  # set by the window under a teacher's lock (MainWindow.set_pipeline_locked)
        self._model = PipelineModel(document, self)
        self._current = -1
        self._anchor = -1                       # the other end of a Shift-extended selection
        self._layout: GraphLayout | None = None
        self._placement: Placement | None = None
        self._painter: CardPainter | None = None
        self._drop: DropTarget | None = None    # drop indicator while a drag hovers
        self._connect_source: int | None = None  # connecting: the row whose output is dragged
        self._connect_pos = QPointF()            # ... and where the pointer is (scene coordinates)
        self._connect_checked: dict[int, bool] = {}  # target row -> may take the output (asked lazily)
        self._connect_by_mouse = False  # a mouse drag follows the pointer when the view scrolls
        self._press: tuple[QPointF, int] | None = None  # press position and card, until a drag starts
        self._hover = -1
        self._hover_link = -1
        self._scroll_step = 0  # autoscroll while a drag rests near an edge
        self._scroll_timer = QTimer(self)
        self._scroll_timer.setInterval(40)
        self._scroll_timer.timeout.connect(self._on_scroll_timer_timeout)
        self.setObjectName("pipelineList")
        self.setAccessibleName("Pipeline")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self.viewport().setAcceptDrops(True)
        self.viewport().setMouseTracking(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_context_menu_requested)
        self.verticalScrollBar().setSingleStep(20)
        self.horizontalScrollBar().setSingleStep(20)

        for signal in (document.layer_inserted, document.layer_removed, document.layer_moved,
                       document.layer_changed, document.graph_changed):
            signal.connect(self._invalidate)
        document.layer_inserted.connect(self._on_document_layer_inserted)
        document.layer_moved.connect(self._on_document_layer_moved)
        document.layer_removed.connect(self._on_document_layer_removed)
        document.pipeline_reset.connect(self._on_document_pipeline_reset)
        document.report_updated.connect(self._on_document_report_updated)
        document.training_changed.connect(lambda _config: self.viewport().update())
        answer_mask(document).changed.connect(self.viewport().update)  # a lesson's "?" comes and goes

        self.delete_action = self._action("&Delete Block", QKeySequence.StandardKey.Delete, self.delete_current)
        self.duplicate_action = self._action("D&uplicate Block", QKeySequence("Ctrl+D"), self.duplicate_current)
        self.move_up_action = self._action("Move Block &Up", QKeySequence("Alt+Up"), lambda: self.move_current(-1))
        self.move_down_action = self._action("Move Block Do&wn", QKeySequence("Alt+Down"),
                                             lambda: self.move_current(1))
        self.wrap_action = self._action("&Wrap in Residual Block", QKeySequence("Ctrl+R"), self.wrap_selection)
        self.wrap_action.setStatusTip("Add a skip connection around the selected blocks and an Add after them")
        self.connect_action = self._action("&Connect Output To\u2026", QKeySequence("Ctrl+L"),
                                           self.connect_from_current)
        self.connect_action.setStatusTip("Feed the selected block's output to another block (Up/Down, Enter), "
                                         "or drag from the dot under a block")
        self._update_actions()

    def _action(self, text: str, shortcut, slot) -> QAction:
        action = QAction(text, self)
        action.setShortcut(shortcut)
        # Only while the pipeline has focus: Del in an inspector spin box edits the number.
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(lambda _=False: slot())
        self.addAction(action)
        return action

    # --- the item model (data for tests, the inspector and accessibility) ------------------

    def model(self) -> PipelineModel:
        return self._model

    # --- layout ------------------------------------------------------------------------------

    def _invalidate(self, *_args) -> None:
        self._placement = None
        self._hover_link = -1  # arrows are numbered per layout
        self.viewport().update()

    def _ensure_layout(self) -> Placement:
        if self._placement is not None:
            return self._placement
        report = self._document.report
        self._painter = CardPainter(self.font(), self.palette())
        layout = layout_graph(self._document.graph_inbound)
        em = self.fontMetrics().horizontalAdvance("m")
        available = self.viewport().width()  # the view lays out again when a scroll bar takes room
        if layout.linear:  # as a list view: each card as wide as the view
            width = max(100, available)
            geometry = dict(gap=0.0, spacing=0.0)
        else:
            lane = round(1.2 * em)
            spacing = round(1.0 * em)
            fixed = gutters_width(layout, spacing=spacing, lane_width=lane)
            width = max(round(10 * em), (available - 2 - fixed) / max(1, layout.column_count))
            geometry = dict(gap=round(1.8 * em), spacing=spacing, lane_width=lane, level_step=round(0.6 * em))
        rows, painter = report.rows, self._painter
        self._layout = layout
        self._placement = place(layout, lambda i, card_width: painter.height(rows[i], card_width), width, **geometry)
        self._update_scroll_ranges()
        return self._placement

    def _update_scroll_ranges(self) -> None:
        placement = self._placement
        viewport = self.viewport().size()
        linear = self._layout is None or self._layout.linear
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff if linear
                                          else Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        bottom = placement.height + (0 if linear else 8)
        self.verticalScrollBar().setRange(0, max(0, math.ceil(bottom - viewport.height())))
        self.verticalScrollBar().setPageStep(viewport.height())
        self.horizontalScrollBar().setRange(0, 0 if linear else max(0, math.ceil(placement.width - viewport.width())))
        self.horizontalScrollBar().setPageStep(viewport.width())

    @property
    def graph_layout(self) -> GraphLayout:
        self._ensure_layout()
        return self._layout

    @property
    def placement(self) -> Placement:
        return self._ensure_layout()

    def _offset(self) -> QPointF:
        return QPointF(self.horizontalScrollBar().value(), self.verticalScrollBar().value())

    def _to_scene(self, pos) -> QPointF:
        return QPointF(pos) + self._offset()

    def card_rect(self, row: int) -> QRectF:
        """The card's cell in scene coordinates (margins included)."""
        r = self.placement.cards[row]
        return QRectF(r.x, r.y, r.width, r.height)

    def visualRect(self, index: QModelIndex) -> QRect:  # noqa: N802 - the QListView name callers use
        """The card of a row in viewport coordinates (empty for an invalid index)."""
        if not index.isValid() or not 0 <= index.row() < len(self.placement.cards):
            return QRect()
        return self.card_rect(index.row()).translated(-self._offset()).toAlignedRect()

    def sizeHintForRow(self, row: int) -> int:  # noqa: N802 - the QListView name callers use
        return round(self.card_rect(row).height()) if 0 <= row < len(self.placement.cards) else -1

    def output_port(self, row: int) -> QPointF:
        """Scene position of a card's output port (the dot under the card); row -1: the input's
        (the dot under the input block, in a graph)."""
        if row == INPUT:
            x, y = self.placement.input_port
            return QPointF(x, y + PORT_RADIUS)
        x, y = output_port(self.placement.cards[row])
        return QPointF(x, y - CardPainter.MARGIN / 2)

    def input_port(self, row: int, slot: int = 0) -> QPointF:
        layout, placement = self.graph_layout, self.placement
        ports = placement.input_ports(row, len(layout.inputs[row]))
        x, y = ports[min(slot, len(ports) - 1)]
        return QPointF(x, y + CardPainter.MARGIN / 2)

    def link_path(self, n: int) -> QPainterPath:
        """Arrow n (in graph_layout.links order), scene coordinates, ending on the card's edge."""
        points = list(self.placement.paths[n])
        link = self.graph_layout.links[n]
        if link.source != INPUT:
            points[0] = (points[0][0], points[0][1] - CardPainter.MARGIN / 2)
        points[-1] = (points[-1][0], points[-1][1] + CardPainter.MARGIN / 2)
        return _rounded_path(points)

    def card_tooltip(self, row: int) -> str:
        """The card's tooltip (its derivation); a narrow card, which may cut its name short,
        starts it with the full name and type."""
        text = self._model.data(self._model.index(row), Qt.ItemDataRole.ToolTipRole) or ""
        if self._painter is not None and self._painter.narrow(self.placement.cards[row].width):
            report = self._document.report.rows[row]
            text = f"{report.name} ({report.layer.class_name})\n\n{text}"
        return text

    def link_text(self, n: int) -> str:
        """What arrow n is, for its tooltip: 'conv_a -> add (input 2 of 3)' and what can be done with it."""
        link, names = self.graph_layout.links[n], self._document.names
        source = self._document.input_name if link.source == INPUT else names[link.source]
        inputs = len(self.graph_layout.inputs[link.target])
        which = f" (input {link.slot + 1} of {inputs})" if inputs > 1 else ""
        return (f"{source} \u2192 {names[link.target]}{which}\nDrop a layer here to insert it on this link; "
                "right-click to remove the link.")

    def card_at(self, scene: QPointF) -> int:
        for row, card in enumerate(self.placement.cards):
            if card.contains(scene.x(), scene.y()):
                return row
        return -1

    def port_at(self, scene: QPointF) -> int | None:
        """The row whose output port is under the point (-1: the input's, in a graph), else None."""
        count = len(self.placement.cards)
        rows = range(count) if self.graph_layout.linear else range(INPUT, count)
        for row in rows:
            port = self.output_port(row)
            if math.hypot(port.x() - scene.x(), port.y() - scene.y()) <= PORT_GRAB:
                return row
        return None

    def link_at(self, scene: QPointF) -> int:
        """The arrow under the point (graph layouts only), else -1."""
        if self.graph_layout.linear:
            return -1
        best, found = LINK_GRAB, -1
        for n, points in enumerate(self.placement.paths):
            distance = _distance_to_polyline(scene.x(), scene.y(), points)
            if distance <= best:
                best, found = distance, n
        return found

    # --- selection ------------------------------------------------------------------------

    def current_row(self) -> int:
        return self._current

    def selected_rows(self) -> tuple[int, ...]:
        """The selected blocks in document order: the current one, or the Shift-extended run."""
        if self._current < 0:
            return ()
        if self._anchor < 0:
            return (self._current,)
        low, high = sorted((self._anchor, self._current))
        return tuple(range(low, high + 1))

    def select_row(self, row: int, extend: bool = False) -> None:
        previous = self._current
        if 0 <= row < len(self._document):
            if extend and self._current >= 0:
                if self._anchor < 0:
                    self._anchor = self._current
            else:
                self._anchor = -1
            self._current = row
            self.ensure_visible(row)
        else:
            self._current, self._anchor = -1, -1
        self._update_actions()
        self._update_accessible_text()
        self.viewport().update()
        if self._current != previous:
            self.current_row_changed.emit(self._current)

    def clearSelection(self) -> None:  # noqa: N802 - the QListView name
        self.select_row(-1)

    def ensure_visible(self, row: int) -> None:
        if not 0 <= row < len(self.placement.cards):
            return
        card = self.placement.cards[row]
        view = self.viewport().size()
        bar = self.verticalScrollBar()
        if card.y < bar.value():
            bar.setValue(int(card.y))
        elif card.bottom > bar.value() + view.height():
            bar.setValue(int(min(card.y, card.bottom - view.height())))
        bar = self.horizontalScrollBar()
        if card.x < bar.value():
            bar.setValue(int(card.x))
        elif card.right > bar.value() + view.width():
            bar.setValue(int(min(card.x, card.right - view.width())))

    def _update_accessible_text(self) -> None:
        row = self._current
        if row < 0:
            self.setAccessibleDescription(f"{len(self._document)} blocks; none selected")
        else:
            self.setAccessibleDescription(str(self._model.data(self._model.index(row), Qt.ItemDataRole.DisplayRole)))

    def _update_actions(self) -> None:
        row, count = self._current, len(self._document)
        self.delete_action.setEnabled(row >= 0)
        self.duplicate_action.setEnabled(row >= 0)
        self.connect_action.setEnabled(0 <= row < count - 1)
        self.move_up_action.setEnabled(self._move_target(row, -1) is not None)
        self.move_down_action.setEnabled(self._move_target(row, 1) is not None)
        selected = self.selected_rows()
        self.wrap_action.setEnabled(bool(selected) and row < count
                                    and self._document.wrap_problem(selected[0], selected[-1]) is None)
        if not self.isEnabled() or self.read_only:  # locked: a new selection or report enables nothing
            for action in (self.delete_action, self.duplicate_action, self.connect_action, self.move_up_action,
                           self.move_down_action, self.wrap_action):
                action.setEnabled(False)

    def _move_target(self, row: int, step: int) -> int | None:
        target = row + step
        if row < 0 or not 0 <= target < len(self._document):
            return None
        return None if self._document.move_problem(row, target) is not None else target


    def _on_document_layer_inserted(self, index: int):
        self.select_row(index)

    def _on_document_layer_moved(self, _source: int, target: int):
        self.select_row(target)

    def _on_document_layer_removed(self, index: int):
        self.select_row(min(index, len(self._document) - 1))

    def _on_document_pipeline_reset(self):
        self._invalidate()
        self._current, self._anchor = -1, -1
        self._update_actions()
        self.current_row_changed.emit(-1)

    def _on_document_report_updated(self, _report):
        # Card heights depend on the error text, positions on the links: lay out again.
        if self.connecting:  # the rows it was checked against may have moved
            self.cancel_connect()
        self._invalidate()
        self._update_actions()
        self._update_accessible_text()

    # --- edits (each one undoable) ------------------------------------------------------------

    def _push(self, make) -> bool:
        """Build a command and push it; a refused edit (ConfigError) is said, not pushed."""
        if self.read_only:  # a teacher's lock: the blocks can be read, not edited
            return False
        try:
            command = make()
        except ConfigError as exc:
            self.message_posted.emit(str(exc))
            return False
        self._undo_stack.push(command)
        return True

    def delete_current(self):
        row = self._current
        if row >= 0:
            self._push(lambda: RemoveLayerCommand(self._document, row))

    def duplicate_current(self):
        row = self._current
        if row >= 0:
            self._push(lambda: duplicate_layer_command(self._document, row))

    def move_current(self, step: int):
        row = self._current
        target = self._move_target(row, step)
        if target is not None:
            self._push(lambda: MoveLayerCommand(self._document, row, target))

    def insert_layer(self, row: int, class_name: str, config: dict) -> None:
        if self.read_only:  # a teacher's lock: the blocks can be read, not edited
            return
        self._undo_stack.push(InsertLayerCommand(self._document, row, class_name, config))

    def insertion_row(self) -> int:
        """Where a double-clicked palette entry goes: after the selected block, else at the end."""
        row = self._current
        return row + 1 if row >= 0 else len(self._document)

    def connect_blocks(self, source: int, target: int) -> bool:
        """Feed `target` from `source`'s output (one undo step). False (and a message) if refused."""
        return self._push(lambda: ConnectCommand(self._document, source, target))

    def disconnect_link(self, n: int) -> bool:
        link = self.graph_layout.links[n]
        return self._push(lambda: DisconnectCommand(self._document, link.source, link.target))

    def insert_on_link(self, n: int, class_name: str, config: dict | None = None) -> bool:
        """Insert a block on arrow n: it takes the arrow's source as its input and feeds the target
        in the source's place (a merge dropped there joins that link; more inputs come by dragging)."""
        link = self.graph_layout.links[n]
        return self._push(lambda: InsertOnLinkCommand(self._document, link.source, link.target, class_name, config))

    def insert_after(self, row: int, class_name: str, config: dict | None = None) -> bool:
        """Insert a block after `row` (-1: the input); it takes over the row's consumers."""
        return self._push(lambda: InsertAfterCommand(self._document, row, class_name, config))

    def wrap_selection(self) -> bool:
        """Wrap the selected run of blocks in a residual block (skip + Add), one undo step."""
        rows = self.selected_rows()
        if not rows:
            return False
        return self._push(lambda: WrapResidualCommand(self._document, rows[0], rows[-1]))

    def connect_problem(self, source: int, target: int) -> str | None:
        """Why `source` cannot feed `target` (one line), or None."""
        return self._document.connect_problem(source, target)

    # --- connecting by dragging from an output port ------------------------------------------------

    def begin_connect(self, source: int) -> None:
        if self.read_only:  # a teacher's lock: the blocks can be read, not edited
            return
        self._connect_by_mouse = False
        self._connect_source = source
        self._connect_pos = self.output_port(source)
        self._connect_checked = {}
        self.viewport().update()

    def can_take(self, target: int) -> bool:
        """While connecting: may `target` take the dragged output? (asked once per card, for the
        cards painted or pointed at only: each question works the edit out on the graph)."""
        source = self._connect_source
        if source is None or target == source or not 0 <= target < len(self._document):
            return False
        if target not in self._connect_checked:
            self._connect_checked[target] = self.connect_problem(source, target) is None
        return self._connect_checked[target]

    def update_connect(self, scene: QPointF) -> None:
        self._connect_pos = QPointF(scene)
        self.viewport().update()

    def connect_target(self) -> int:
        """The valid card under the pointer while connecting, else -1."""
        if self._connect_source is None:
            return -1
        row = self.card_at(self._connect_pos)
        return row if self.can_take(row) else -1

    def finish_connect(self, scene: QPointF | None = None) -> bool:
        if scene is not None:
            self._connect_pos = QPointF(scene)
        source, target = self._connect_source, self.connect_target()
        self.cancel_connect()
        if source is None:
            return False
        if target < 0:
            row = self.card_at(self._connect_pos) if scene is not None else -1
            if row >= 0 and row != source:
                self.message_posted.emit(self.connect_problem(source, row) or "")
            return False
        return self.connect_blocks(source, target)

    def cancel_connect(self) -> None:
        self._scroll_timer.stop()
        self._connect_source = None
        self._connect_checked = {}
        self.viewport().update()

    @property
    def connecting(self) -> bool:
        return self._connect_source is not None

    # --- mouse and keyboard ---------------------------------------------------------------

    def mousePressEvent(self, event):  # noqa: N802 - Qt override
        scene = self._to_scene(event.position())
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if event.button() == Qt.MouseButton.LeftButton:
            port = self.port_at(scene)
            if port is not None:
                if port != INPUT:
                    self.select_row(port)
                self.begin_connect(port)
                self._connect_by_mouse = True
                return
            row = self.card_at(scene)
            extend = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.select_row(row, extend=extend)
            self._press = (QPointF(event.position()), row) if row >= 0 else None
            return
        if event.button() == Qt.MouseButton.RightButton:
            row = self.card_at(scene)
            if row >= 0 and row not in self.selected_rows():
                self.select_row(row)
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):  # noqa: N802 - Qt override
        scene = self._to_scene(event.position())
        if self.connecting:
            self.update_connect(scene)
            self._autoscroll(event.position())
            return
        if self._press is not None and event.buttons() & Qt.MouseButton.LeftButton:
            start, row = self._press
            if (event.position() - start).manhattanLength() >= QApplication.startDragDistance():
                self._press = None
                self._start_card_drag(row)
            return
        hover = self.card_at(scene)
        on_port = self.port_at(scene) is not None
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if on_port else Qt.CursorShape.ArrowCursor)
        link = self.link_at(scene) if hover < 0 and not on_port else -1  # right-click it to remove it
        if (hover, link) != (self._hover, self._hover_link):
            self._hover, self._hover_link = hover, link
            self.viewport().update()

    def mouseReleaseEvent(self, event):  # noqa: N802 - Qt override
        self._press = None
        if self.connecting and event.button() == Qt.MouseButton.LeftButton:
            self.finish_connect(self._to_scene(event.position()))
            return
        super().mouseReleaseEvent(event)

    def leaveEvent(self, event):  # noqa: N802 - Qt override
        if (self._hover, self._hover_link) != (-1, -1):
            self._hover, self._hover_link = -1, -1
            self.viewport().update()
        super().leaveEvent(event)

    def keyPressEvent(self, event):  # noqa: N802 - Qt override
        key, modifiers = event.key(), event.modifiers()
        extend = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
        if key == Qt.Key.Key_Escape and self.connecting:
            self.cancel_connect()
            return
        if self.connecting and key in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._connect_by_key(key)
            return
        if modifiers & (Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ControlModifier):
            super().keyPressEvent(event)
            return
        count, row = len(self._document), self._current
        target = {Qt.Key.Key_Up: row - 1 if row > 0 else 0, Qt.Key.Key_Down: min(row + 1, count - 1),
                  Qt.Key.Key_Home: 0, Qt.Key.Key_End: count - 1}.get(key)
        if key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            target = self._beside(row, -1 if key == Qt.Key.Key_Left else 1)
        if target is not None and count:
            self.select_row(max(0, target), extend=extend)
            return
        super().keyPressEvent(event)

    def connect_from_current(self) -> None:
        """Connect without a mouse: the selected block's output follows Up/Down over the blocks
        that can take it; Enter connects, Esc cancels."""
        if self._current < 0:
            return
        self.begin_connect(self._current)
        self._connect_by_key(Qt.Key.Key_Down)
        self.message_posted.emit("Connecting: Up/Down choose the block to feed, Enter connects, Esc cancels")

    def _connect_by_key(self, key) -> None:
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.finish_connect()
            return
        step = -1 if key == Qt.Key.Key_Up else 1
        row = self.connect_target()
        row = self._connect_source if row < 0 else row
        for candidate in range(row + step, len(self._document) if step > 0 else -1, step):
            if self.can_take(candidate):
                self.ensure_visible(candidate)
                self.update_connect(self.card_rect(candidate).center())
                return

    def _beside(self, row: int, step: int) -> int | None:
        """The nearest card left or right of `row` in its layout row (graph layouts)."""
        if row < 0:
            return None
        layout = self.graph_layout
        same = [r for r in range(len(layout.rows)) if layout.rows[r] == layout.rows[row]
                and (layout.columns[r] - layout.columns[row]) * step > 0]
        return min(same, key=lambda r: abs(layout.columns[r] - layout.columns[row])) if same else None

    def _autoscroll(self, pos: QPointF) -> None:
        """Near the top or bottom edge while dragging, scroll, and keep scrolling while the
        pointer rests there (a long ResNet's merge is screens away from its fork)."""
        margin = 24
        self._scroll_step = -12 if pos.y() < margin else 12 if pos.y() > self.viewport().height() - margin else 0
        if self._scroll_step and not self._scroll_timer.isActive():
            self._scroll_timer.start()
        elif not self._scroll_step:
            self._scroll_timer.stop()

    def _on_scroll_timer_timeout(self) -> None:
        dragging = self.connecting or self._drop is not None
        bar = self.verticalScrollBar()
        if not dragging or not self._scroll_step or bar.value() == (bar.minimum() if self._scroll_step < 0
                                                                   else bar.maximum()):
            self._scroll_timer.stop()
            return
        bar.setValue(bar.value() + self._scroll_step)

    def viewportEvent(self, event):  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.ToolTip:
            scene = self._to_scene(event.position() if hasattr(event, "position") else event.pos())
            row = self.card_at(scene)
            if row >= 0 and self.port_at(scene) is None:
                QToolTip.showText(event.globalPos(), self.card_tooltip(row), self.viewport())
            elif self.port_at(scene) is not None:
                QToolTip.showText(event.globalPos(), "Drag from this output to another block to feed it this "
                                  "block's output", self.viewport())
            elif self.link_at(scene) >= 0:
                QToolTip.showText(event.globalPos(), self.link_text(self.link_at(scene)), self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)

    def resizeEvent(self, event):  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._invalidate()
        self._ensure_layout()

    def changeEvent(self, event):  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.PaletteChange):  # View > Zoom
            self._invalidate()

    def scrollContentsBy(self, dx, dy):  # noqa: N802 - Qt override
        if self.connecting and self._connect_by_mouse:  # the pointer stays put: the band follows it
            self._connect_pos = self._to_scene(QPointF(self.viewport().mapFromGlobal(QCursor.pos())))
        self.viewport().update()

    def _on_context_menu_requested(self, pos: QPoint):
        if self.read_only:  # a teacher's lock: the blocks can be read, not edited
            return
        scene = self._to_scene(QPointF(pos))
        menu = QMenu(self)
        row = self.card_at(scene)
        link = self.link_at(scene) if row < 0 else -1
        if link >= 0:
            action = menu.addAction("Remove This &Connection")
            action.triggered.connect(lambda _=False, n=link: self.disconnect_link(n))
        else:
            if row >= 0 and row not in self.selected_rows():
                self.select_row(row)
            for action in (self.duplicate_action, self.delete_action, None, self.connect_action, self.wrap_action, None,
                           self.move_up_action, self.move_down_action):
                menu.addSeparator() if action is None else menu.addAction(action)
        menu.exec(self.viewport().mapToGlobal(pos))

    # --- drag and drop ---------------------------------------------------------

    def mime_data_for_row(self, row: int) -> QMimeData:
        entry = self._document.entry(row)
        payload = LayerPayload("pipeline", entry.class_name, entry.config, row, self._document_id)
        mime = QMimeData()
        mime.setData(MIME_TYPE, QByteArray(encode_payload(payload)))
        return mime

    def _payload(self, mime: QMimeData) -> LayerPayload | None:
        if not mime.hasFormat(MIME_TYPE):
            return None
        try:
            return decode_payload(bytes(mime.data(MIME_TYPE).data()))
        except ValueError:
            return None

    def handle_drop(self, mime: QMimeData, row: int) -> bool:
        """Insert or move the block a drag carries so that it lands at `row`. Returns True if accepted."""
        if self.read_only:  # a teacher's lock: the blocks can be read, not edited
            return False
        payload = self._payload(mime)
        if payload is None:
            return False
        row = max(0, min(row, len(self._document)))
        if payload.is_move_within(self._document_id):
            source = payload.index
            if source >= len(self._document):
                return False
            target = row - 1 if row > source else row
            if target != source:
                self._push(lambda: MoveLayerCommand(self._document, source, target))
            return True
        config = {k: v for k, v in payload.config.items() if k != "name"}
        try:
            self.insert_layer(row, payload.class_name, config)
        except ValueError:  # a class this version does not know (ConfigError is a ValueError)
            return False
        return True

    def handle_drop_at(self, mime: QMimeData, target: DropTarget) -> bool:
        """A drop on an arrow inserts on that link, on a card after it, elsewhere at a row."""
        if self.read_only:  # a teacher's lock: the blocks can be read, not edited
            return False
        if target.kind == "row":
            return self.handle_drop(mime, target.value)
        payload = self._payload(mime)
        if payload is None or payload.class_name not in LAYER_CLASSES:
            return False
        if payload.is_move_within(self._document_id):
            # a block moves within its straight run; elsewhere, drag its links instead
            row = target.value + 1 if target.kind == "after" else self.graph_layout.links[target.value].target
            return self.handle_drop(mime, row)
        config = {k: v for k, v in payload.config.items() if k != "name"}
        if target.kind == "link":
            return self.insert_on_link(target.value, payload.class_name, config)
        return self.insert_after(target.value, payload.class_name, config)

    def drop_target_at(self, pos: QPointF) -> DropTarget:
        """Where a drop at viewport position `pos` lands."""
        placement, layout = self.placement, self.graph_layout
        scene = self._to_scene(pos)
        if layout.linear:
            return DropTarget("row", drop_row([(c.y, c.height) for c in placement.cards], int(scene.y())))
        link = self.link_at(scene)
        if link >= 0:
            return DropTarget("link", link)
        row = self.card_at(scene)
        if row >= 0:
            card = placement.cards[row]
            into = [n for n, lk in enumerate(layout.links) if lk.target == row]
            if scene.y() < card.y + card.height / 2 and len(into) == 1:
                return DropTarget("link", into[0])
            return DropTarget("after", row)
        return DropTarget("row", len(self._document))

    def _start_card_drag(self, row: int) -> None:
        if self.read_only:  # a teacher's lock: the blocks can be read, not edited
            return
        drag = QDrag(self)
        drag.setMimeData(self.mime_data_for_row(row))
        rect = self.visualRect(self._model.index(row))
        pixmap = QPixmap(rect.size() * self.devicePixelRatioF())
        pixmap.setDevicePixelRatio(self.devicePixelRatioF())
        pixmap.fill(Qt.GlobalColor.transparent)
        self.viewport().render(pixmap, QPoint(), rect)
        drag.setPixmap(pixmap)
        drag.setHotSpot(QPoint(rect.width() // 4, rect.height() // 2))
        drag.exec(Qt.DropAction.MoveAction | Qt.DropAction.CopyAction, Qt.DropAction.MoveAction)

    def dragEnterEvent(self, event):  # noqa: N802 - Qt override
        if event.mimeData().hasFormat(MIME_TYPE) and not self.read_only:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event):  # noqa: N802 - Qt override
        if not event.mimeData().hasFormat(MIME_TYPE):
            event.ignore()
            return
        self._drop = self.drop_target_at(event.position())
        self._autoscroll(event.position())
        event.acceptProposedAction()
        self.viewport().update()

    def dragLeaveEvent(self, event):  # noqa: N802 - Qt override
        self._scroll_timer.stop()
        self._drop = None
        self.viewport().update()
        event.accept()

    def dropEvent(self, event):  # noqa: N802 - Qt override
        self._scroll_timer.stop()
        target = self.drop_target_at(event.position())
        self._drop = None
        self.viewport().update()
        if self.handle_drop_at(event.mimeData(), target):
            # Report a copy, never a move: Qt would otherwise ask the source to delete rows itself.
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    # --- painting ------------------------------------------------------------------------------

    def paintEvent(self, event):  # noqa: N802 - Qt override
        placement, layout = self._ensure_layout(), self._layout
        painter = QPainter(self.viewport())
        palette = self.palette()
        if not placement.cards:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.viewport().rect().adjusted(20, 20, -20, -20),
                             int(Qt.AlignmentFlag.AlignCenter) | int(Qt.TextFlag.TextWordWrap),
                             "Drag layers here from the palette\n(or double-click one)")
            self._paint_drop_line(painter, 4)
            painter.end()
            return
        painter.translate(-self._offset())
        visible = QRectF(event.rect()).translated(self._offset())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if not layout.linear:
            self._paint_links(painter, palette, visible)
        report = self._document.report
        selected = set(self.selected_rows())
        highlight = palette.color(QPalette.ColorRole.Highlight)
        for row, card in enumerate(placement.cards):
            rect = QRectF(card.x, card.y, card.width, card.height)
            if not rect.intersects(visible):
                continue
            texts = self._model.data(self._model.index(row), MEMORY_ROLE) or block_texts(report.rows[row])
            outline = None
            if self.connecting and self.can_take(row):
                outline = QColor(highlight) if row == self.connect_target() else QColor(highlight).lighter(150)
            self._painter.paint(painter, rect, report.rows[row], texts, row + 1, row in selected, outline)
        self._paint_ports(painter, palette)
        if self.connecting:
            self._paint_rubber_band(painter, highlight)
        if self._drop is not None:
            self._paint_drop(painter, highlight)
        painter.end()

    def _link_colour(self, n: int, palette) -> QColor:
        target = self._document.report.rows[self._layout.links[n].target]
        if target.status == "error" and getattr(target.layer, "merge", False):
            return QColor(ERROR_COLOUR)
        colour = QColor(palette.color(QPalette.ColorRole.Text))
        colour.setAlpha(150)
        return colour

    def _paint_links(self, painter: QPainter, palette, visible: QRectF) -> None:
        size = max(7.0, self.fontMetrics().height() * 0.45)
        for n, points in enumerate(self._placement.paths):
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            if max(xs) < visible.left() - size or min(xs) > visible.right() + size or \
                    max(ys) < visible.top() - size or min(ys) > visible.bottom() + size:
                continue  # off screen (a long pipeline has a thousand arrows)
            colour = self._link_colour(n, palette)
            if n == self._hover_link:
                colour = palette.color(QPalette.ColorRole.Highlight)
            path = self.link_path(n)
            painter.setPen(QPen(colour, 2.6 if n == self._hover_link else 1.6, Qt.PenStyle.SolidLine,
                                Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            painter.drawPolygon(_arrow_head(path.currentPosition(), size))
        if any(link.source == INPUT for link in self._layout.links):
            x, y = self._placement.input_port  # the input's output port: drag from it too
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Base), 1.5))
            painter.setBrush(palette.color(QPalette.ColorRole.Highlight) if self._connect_source == INPUT
                             else palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawEllipse(QPointF(x, y + PORT_RADIUS), PORT_RADIUS, PORT_RADIUS)

    def _paint_ports(self, painter: QPainter, palette) -> None:
        """The output ports: always in a graph; in a plain column only under the pointer (or while
        connecting), so a plain pipeline looks exactly as the list always did."""
        layout = self._layout
        rows = range(len(self._placement.cards)) if not layout.linear else \
            sorted({r for r in (self._hover, self._connect_source) if r is not None and r >= 0})
        border = palette.color(QPalette.ColorRole.Base)
        for row in rows:
            port = self.output_port(row)
            painter.setPen(QPen(border, 1.5))
            painter.setBrush(palette.color(QPalette.ColorRole.Highlight) if row in (self._hover, self._connect_source)
                             else palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawEllipse(port, PORT_RADIUS, PORT_RADIUS)

    def _paint_rubber_band(self, painter: QPainter, highlight: QColor) -> None:
        start, end = self.output_port(self._connect_source), self._connect_pos
        target = self.connect_target()
        if target >= 0:  # snap onto the target's top edge
            end = QPointF(self.card_rect(target).center().x(), self.card_rect(target).top() + CardPainter.MARGIN / 2)
        path = self._rubber_band_path(start, end, target)
        painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Base), 6, Qt.PenStyle.SolidLine,
                            Qt.PenCapStyle.RoundCap))  # a halo keeps it legible where it crosses a card
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        painter.setPen(QPen(highlight, 2.2, Qt.PenStyle.DashLine, Qt.PenCapStyle.RoundCap))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(highlight)
        painter.drawPolygon(_arrow_head(end, max(8.0, self.fontMetrics().height() * 0.5)))

    def _rubber_band_path(self, start: QPointF, end: QPointF, target: int) -> QPainterPath:
        """A curve from the port to the pointer; when that would cross cards, a path down the
        nearest free gap beside them (as the arrow it will become does). A plain column has no
        gaps: there the curve crosses, with a halo."""
        others = [card for row, card in enumerate(self.placement.cards) if row not in (self._connect_source, target)]
        direct = [(start.x(), start.y()), (start.x(), end.y()), (end.x(), end.y())]
        if end.y() < start.y() + 20 or not any(segments_cross(direct, card) for card in others):
            path = QPainterPath(start)
            bend = max(30.0, abs(end.y() - start.y()) / 2)
            path.cubicTo(QPointF(start.x(), start.y() + bend), QPointF(end.x(), end.y() - bend), end)
            return path
        below, above = start.y() + LINK_GRAB, end.y() - 2 * LINK_GRAB
        middle = (start.x() + end.x()) / 2
        sides = sorted({x for card in self.placement.cards for x in (card.x - 6, card.right + 6)
                        if 0 < x < max(self.placement.width, self.viewport().width())},
                       key=lambda x: abs(x - middle))
        for side in sides:
            points = [(start.x(), start.y()), (start.x(), below), (side, below), (side, above), (end.x(), above),
                      (end.x(), end.y())]
            if not any(segments_cross(points, card) for card in others):
                return _rounded_path(points, radius=10)
        path = QPainterPath(start)
        bend = max(30.0, abs(end.y() - start.y()) / 2)
        path.cubicTo(QPointF(start.x(), start.y() + bend), QPointF(end.x(), end.y() - bend), end)
        return path

    def _paint_drop(self, painter: QPainter, highlight: QColor) -> None:
        drop, placement = self._drop, self._placement
        if drop.kind == "link":
            painter.setPen(QPen(highlight, 4, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(self.link_path(drop.value))
            return
        if drop.kind == "after":
            card = placement.cards[drop.value]
            self._paint_drop_line(painter, card.bottom, card.x, card.right)
            return
        count = len(placement.cards)
        if drop.value < count:
            card = placement.cards[drop.value]
            self._paint_drop_line(painter, card.y, card.x, card.right)
        else:
            last = placement.cards[-1]
            self._paint_drop_line(painter, max(c.bottom for c in placement.cards), last.x, last.right)

    def _paint_drop_line(self, painter: QPainter, y: float, left: float | None = None,
                         right: float | None = None) -> None:
        if self._drop is None:
            return
        left = 8 if left is None else left + 8
        right = self.viewport().width() - 8 if right is None else right - 8
        painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 3))
        painter.drawLine(QPointF(left, y), QPointF(right, y))


__all__ = ["PipelineGraphView", "DropTarget"]
