"""Feature maps of every layer with an image-shaped output, for one image, as image grids.

One pyqtgraph ViewBox + ImageItem per layer, created when the set of layers changes and
afterwards only setImage'd (pyqtgraph examples' rule: create once, then update data).
Hovering a cell says which channel and position it is, its value, and which input
pixels it sees (its receptive field on the model's input image, e.g. 28x28x1 or 32x32x3);
clicking it opens the map enlarged,
or, when the owner set a cell handler (set_cell_handler), traces that cell (gui/trace_panel.py).
"""

from __future__ import annotations

import inspect
import weakref
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from .tile_view import TileDialog
from .tiling import normalise_per_tile, tile, tile_position



def has_feature_maps(output_shape) -> bool:
    """A layer whose output is (batch, height, width, channels) has feature maps, whatever its
    class: the data decides (a Conv2D, a ReLU after it, an Add of two branches alike)."""
    return output_shape is not None and len(output_shape) == 4


@dataclass(frozen=True)
class MapLayer:
    """One layer's feature maps for one image, copied out of the engine."""

    name: str
    class_name: str
    maps: np.ndarray  # (H, W, C) float32
    field_size: tuple  # receptive field (rows, cols) in input pixels
    field_jump: tuple  # input pixels between neighbouring outputs
    field_start: tuple = (0.0, 0.0)  # input coordinate of output (0, 0)'s field centre
    input_shape: tuple | None = None  # the model's input (H, W, C): the fields are clipped to it


def input_words(input_shape) -> str:
    """'the 32x32x3 input' (the model's own size, an image folder's RGB too); 'the input' if unknown."""
    if not input_shape:
        return "the input"
    return "the " + "x".join(str(int(n)) for n in input_shape) + " input"


def field_image_shape(layer: MapLayer) -> tuple[int, int]:
    """The input's (rows, cols) a field is clipped to; unknown: not clipped (the field's own extent)."""
    if layer.input_shape:
        return int(layer.input_shape[0]), int(layer.input_shape[1])
    return 10**9, 10**9


def field_window(layer: MapLayer, y: int, x: int, image_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) input pixels seen by output (y, x), clipped to the image."""
    size_r, size_c = layer.field_size
    jump_r, jump_c = layer.field_jump
    centre_r = layer.field_start[0] + y * jump_r
    centre_c = layer.field_start[1] + x * jump_c
    top = int(np.floor(centre_r - (size_r - 1) / 2))
    left = int(np.floor(centre_c - (size_c - 1) / 2))
    bottom, right = top + int(size_r), left + int(size_c)
    return max(top, 0), max(left, 0), min(bottom, image_shape[0]), min(right, image_shape[1])


class FeatureMapsWidget(QWidget):
    """A column of per-layer map grids. set_layers() replaces the content.

    Tiles keep a readable size (about 2.4 text lines, so they grow with View ▸ Zoom): the
    grid uses as many columns as the width allows and the column scrolls vertically rather
    than shrinking every map to a few pixels. Clicking a tile opens it enlarged."""

    cell_hovered = Signal(str)  # the description of the cell under the mouse ('' when none)
    tile_clicked = Signal(str, int)  # layer name, channel
    cell_clicked = Signal(str, int, int, int)  # layer name, channel, row, column

    TILE_LINES = 3.0  # a tile's side, in text lines (17 px tiles were unreadable on a projector)
    GAP = 1  # mosaic pixels between tiles

    def __init__(self, parent: QWidget | None = None, max_channels: int = 64):
        super().__init__(parent)
        self._max_channels = max_channels
        self._layers: list[MapLayer] = []
        self._items: list[tuple[pg.ViewBox, pg.ImageItem, pg.LabelItem, int]] = []
        self._signature: tuple = ()
        self._total: dict[str, int] = {}
        self._graphics = pg.GraphicsLayoutWidget()
        self._graphics.setBackground("w")
        self._scroll = QScrollArea()
        self._scroll.setObjectName("featureMapsScroll")
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll.setWidget(self._graphics)
        # The columns follow the viewport's width (known only after the scroll area's own layout).
        self._scroll.viewport().installEventFilter(self)
        self._hover = QLabel("Hover a cell to see its value and the input pixels it sees; click it to enlarge it.")
        self._hover.setWordWrap(True)
        self._empty = QLabel("No conv or pool layer outputs to show yet.")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._empty)
        layout.addWidget(self._scroll, 1)
        layout.addWidget(self._hover)
        self._scroll.hide()
        self._graphics.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        self._graphics.scene().sigMouseClicked.connect(self._on_scene_mouse_clicked)
        self._cmap = pg.colormap.get("viridis")
        self._dialog: TileDialog | None = None
        self._stacked = False
        self._cell_handler = None

    def set_cell_handler(self, handler) -> None:
        """handler(layer name, channel, row, column) runs on a click instead of enlarging
        the map (the Draw and Train tabs trace the cell); None: enlarge again. A bound method is
        held weakly: the owner (a tab) keeps this panel, and a strong reference back would be a
        cycle that only the garbage collector frees, at any moment, even inside the owner's
        own paint event (a segfault)."""
        if handler is None:
            self._cell_handler = None
        elif inspect.ismethod(handler):
            self._cell_handler = weakref.WeakMethod(handler)
        else:  # a plain function: called through the same one-step lookup
            self._cell_handler = lambda: handler
        self._hover.setText(self._idle_hint())

    def _idle_hint(self) -> str:
        what = "trace how it was computed" if self._cell_handler else "enlarge it"
        return f"Hover a cell to see its value and the input pixels it sees; click it to {what}."

    def _click_hint(self) -> str:
        return "Click to trace how it was computed." if self._cell_handler else "Click to enlarge."

    def layers(self) -> list[MapLayer]:
        return list(self._layers)

    def set_layers(self, layers: list[MapLayer]) -> None:
        """Show these layers' maps; items are rebuilt only when names or shapes change."""
        total = {layer.name: layer.maps.shape[2] for layer in layers}
        layers = [replace_maps(layer, layer.maps[:, :, : self._max_channels]) for layer in layers]
        signature = tuple((layer.name, layer.maps.shape) for layer in layers)
        if signature != self._signature:
            self._rebuild(layers, total)
            self._signature = signature
        self._layers = layers
        self._fit_columns()
        self._draw()
        has = bool(layers)
        self._scroll.setVisible(has)
        self._empty.setVisible(not has)

    def _draw(self) -> None:
        for (view, image, label, columns), layer in zip(self._items, self._layers):
            image.setImage(tile(normalise_per_tile(layer.maps), columns, self.GAP), autoLevels=False,
                           levels=(0.0, 1.0))

    def tile_side(self) -> int:
        """A tile's side on screen, in pixels (follows the font, hence the zoom)."""
        return max(24, round(self.TILE_LINES * self.fontMetrics().height()))

    def _label_width(self) -> int:
        return 10 * self.fontMetrics().horizontalAdvance("m")

    def _wants_stacked(self) -> bool:
        """Labels above the maps (not beside them) when a label column would leave room for
        fewer than 8 tiles: the Train tab's maps share its width with the filters."""
        return self._scroll.viewport().width() - self._label_width() < 8 * (self.tile_side() + 2)

    def _rebuild(self, layers: list[MapLayer], total: dict[str, int]) -> None:
        self._graphics.clear()
        self._items = []
        self._total = total
        self._stacked = self._wants_stacked()
        for row, layer in enumerate(layers):
            label = pg.LabelItem("", justify="left", color="#222")
            if self._stacked:
                self._graphics.addItem(label, row=2 * row, col=0)
                view = self._graphics.addViewBox(row=2 * row + 1, col=0, lockAspect=True, enableMouse=False)
            else:
                self._graphics.addItem(label, row=row, col=0)
                view = self._graphics.addViewBox(row=row, col=1, lockAspect=True, enableMouse=False)
            view.invertY(True)
            view.setMenuEnabled(False)
            image = pg.ImageItem(axisOrder="row-major")
            image.setColorMap(self._cmap)
            view.addItem(image)
            self._items.append((view, image, label, 1))

    def _style_labels(self) -> None:
        size = self.font().pointSizeF()
        for (_view, _image, label, _columns), layer in zip(self._items, self._layers or []):
            h, w, c = layer.maps.shape
            total = self._total.get(layer.name, c)
            if self._stacked:
                shown = f", first {c} shown" if total > c else ""
                text = f"<b>{layer.name}</b> {layer.class_name}, {h}x{w}x{total}{shown}"
            else:
                shown = f"<br>first {c} of {total}" if total > c else ""
                text = f"<b>{layer.name}</b><br>{layer.class_name}<br>{h}x{w}x{total}{shown}"
            label.setText(text, size=f"{size:.1f}pt")
        if self._items and not self._stacked:
            width = self._label_width()
            for _view, _image, label, _columns in self._items:
                label.setFixedWidth(width)
            self._graphics.ci.layout.setColumnFixedWidth(0, width)

    def _fit_columns(self) -> None:
        """Columns per layer from the width available; rows get the height their tiles need."""
        if not self._items:
            self._graphics.setMinimumHeight(0)
            return
        if self._wants_stacked() != self._stacked:
            self._rebuild(self._layers, self._total)
        self._style_labels()
        side = self.tile_side()
        line = self.fontMetrics().height()
        label_w = 0 if self._stacked else self._label_width()
        available = max(side, self._scroll.viewport().width() - label_w - 24)
        spacing = max(self._graphics.ci.layout.verticalSpacing(), 6)
        layout = self._graphics.ci.layout
        total_height = 0
        changed = False
        items = []
        for row, ((view, image, label, columns), layer) in enumerate(zip(self._items, self._layers)):
            h, w, c = layer.maps.shape
            tile_w = side * max(w, 1) / max(h, 1)
            fit = max(1, min(c, int((available + 2) // (tile_w + 2))))
            changed |= fit != columns
            rows = -(-c // fit)
            maps_height = int(rows * side + (rows - 1) * 2)
            if self._stacked:
                layout.setRowFixedHeight(2 * row, int(1.6 * line))
                layout.setRowFixedHeight(2 * row + 1, maps_height)
                total_height += int(1.6 * line) + maps_height + 2 * spacing
            else:
                label_lines = 4 if self._total.get(layer.name, c) > c else 3
                height = max(maps_height, (label_lines + 1) * line)
                layout.setRowFixedHeight(row, height)
                total_height += height + spacing
            items.append((view, image, label, fit))
        self._items = items
        self._graphics.setMinimumHeight(total_height + 12)
        if changed:
            self._draw()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if watched is self._scroll.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_columns()
        return super().eventFilter(watched, event)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # View ▸ Zoom: tiles and labels follow
            self._fit_columns()

    # --- mouse ------------------------------------------------------------------------

    def tile_at(self, scene_pos) -> tuple[MapLayer, int, int, int] | None:
        """(layer, channel, y, x) under a scene position, or None."""
        for (view, image, _label, columns), layer in zip(self._items, self._layers):
            if not view.sceneBoundingRect().contains(scene_pos):
                continue
            point = image.mapFromScene(scene_pos)
            where = tile_position(int(np.floor(point.y())), int(np.floor(point.x())), layer.maps.shape, columns,
                                  self.GAP)
            return None if where is None else (layer, *where)
        return None

    def scene_position(self, layer_index: int, channel: int, y: int = 0, x: int = 0):
        """Where (in scene coordinates) a cell is drawn: for tests and demos."""
        view, image, _label, columns = self._items[layer_index]
        h, w, _c = self._layers[layer_index].maps.shape
        r, k = divmod(channel, columns)
        return image.mapToScene(pg.Point(k * (w + self.GAP) + x + 0.5, r * (h + self.GAP) + y + 0.5))

    def _on_scene_mouse_moved(self, scene_pos) -> None:
        text = ""
        found = self.tile_at(scene_pos)
        if found is not None:
            layer, channel, y, x = found
            top, left, bottom, right = field_window(layer, y, x, field_image_shape(layer))
            value = float(layer.maps[y, x, channel])
            text = (f"{layer.name}, channel {channel}, position ({y}, {x}): value {value:.3f}. "
                    f"It sees rows {top}-{bottom - 1}, columns {left}-{right - 1} of {input_words(layer.input_shape)} "
                    f"(receptive field {int(layer.field_size[0])}x{int(layer.field_size[1])}). {self._click_hint()}")
        self._hover.setText(text or self._idle_hint())
        self.cell_hovered.emit(text)

    def _on_scene_mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        found = self.tile_at(event.scenePos())
        if found is not None:
            layer, channel, y, x = found
            self.cell_clicked.emit(layer.name, channel, y, x)
            handler = None if self._cell_handler is None else self._cell_handler()
            if handler is not None:
                handler(layer.name, channel, y, x)
            else:
                self.open_tile(layer.name, channel)

    def open_tile(self, layer_name: str, channel: int) -> TileDialog | None:
        """Show one map enlarged (the dialog is reused and updated)."""
        layer = next((layer for layer in self._layers if layer.name == layer_name), None)
        if layer is None or not 0 <= channel < layer.maps.shape[2]:
            return None
        if self._dialog is None:
            self._dialog = TileDialog(self)
        h, w, _c = layer.maps.shape
        self._dialog.set_tile(
            layer.maps[:, :, channel], f"{layer.name} ({layer.class_name}), channel {channel}",
            f"Feature map {channel} of {self._total.get(layer.name, layer.maps.shape[2])}: each square is one output "
            f"value; each sees a {int(layer.field_size[0])}x{int(layer.field_size[1])} patch of "
            f"{input_words(layer.input_shape)} "
            "(its receptive field). Bright = strong response.")
        self._dialog.show()
        self._dialog.raise_()
        self.tile_clicked.emit(layer_name, channel)
        return self._dialog


def replace_maps(layer: MapLayer, maps: np.ndarray) -> MapLayer:
    return MapLayer(layer.name, layer.class_name, maps, layer.field_size, layer.field_jump, layer.field_start,
                    layer.input_shape)
