"""Feature maps of every conv and pool layer for one image, as image grids.

One pyqtgraph ViewBox + ImageItem per layer, created when the set of layers changes and
afterwards only setImage'd (pyqtgraph examples' rule: create once, then update data).
Hovering a cell says which channel and position it is, its value, and which input
pixels it sees (its receptive field on the 28x28 image).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from .tiling import grid_columns, normalise_per_tile, tile, tile_position

SPATIAL_FAMILIES = ("convolution", "pooling")


@dataclass(frozen=True)
class MapLayer:
    """One layer's feature maps for one image, copied out of the engine."""

    name: str
    class_name: str
    maps: np.ndarray  # (H, W, C) float32
    field_size: tuple  # receptive field (rows, cols) in input pixels
    field_jump: tuple  # input pixels between neighbouring outputs
    field_start: tuple = (0.0, 0.0)  # input coordinate of output (0, 0)'s field centre


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
    """A column of per-layer map grids. set_layers() replaces the content."""

    cell_hovered = Signal(str)  # the description of the cell under the mouse ('' when none)

    def __init__(self, parent: QWidget | None = None, max_channels: int = 64):
        super().__init__(parent)
        self._max_channels = max_channels
        self._layers: list[MapLayer] = []
        self._items: list[tuple[pg.ViewBox, pg.ImageItem, pg.LabelItem, int]] = []
        self._signature: tuple = ()
        self._graphics = pg.GraphicsLayoutWidget()
        self._graphics.setBackground("w")
        self._hover = QLabel("Hover a cell to see its value and the input pixels it sees.")
        self._hover.setWordWrap(True)
        self._empty = QLabel("No conv or pool layer outputs to show yet.")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._empty)
        layout.addWidget(self._graphics, 1)
        layout.addWidget(self._hover)
        self._graphics.hide()
        self._graphics.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        self._cmap = pg.colormap.get("viridis")

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
        for (view, image, label, columns), layer in zip(self._items, layers):
            image.setImage(tile(normalise_per_tile(layer.maps), columns), autoLevels=False, levels=(0.0, 1.0))
        has = bool(layers)
        self._graphics.setVisible(has)
        self._empty.setVisible(not has)

    def _rebuild(self, layers: list[MapLayer], total: dict[str, int]) -> None:
        self._graphics.clear()
        self._items = []
        for row, layer in enumerate(layers):
            h, w, c = layer.maps.shape
            # Wide mosaics: the panel is much wider than tall, and a layer is one row of it.
            columns = grid_columns(c, aspect=10.0 * h / max(w, 1))
            shown = f"<br>first {c} of {total[layer.name]}" if total[layer.name] > c else ""
            label = pg.LabelItem(f"<b>{layer.name}</b><br>{layer.class_name}<br>{h}x{w}x{total[layer.name]}{shown}",
                                 justify="left", color="#222")
            label.setFixedWidth(150)
            self._graphics.addItem(label, row=row, col=0)
            view = self._graphics.addViewBox(row=row, col=1, lockAspect=True, enableMouse=False)
            view.invertY(True)
            image = pg.ImageItem(axisOrder="row-major")
            image.setColorMap(self._cmap)
            view.addItem(image)
            self._items.append((view, image, label, columns))

    def _on_scene_mouse_moved(self, scene_pos) -> None:
        text = ""
        for (view, image, _label, columns), layer in zip(self._items, self._layers):
            if not view.sceneBoundingRect().contains(scene_pos):
                continue
            point = image.mapFromScene(scene_pos)
            where = tile_position(int(np.floor(point.y())), int(np.floor(point.x())), layer.maps.shape, columns)
            if where is None:
                break
            channel, y, x = where
            top, left, bottom, right = field_window(layer, y, x, (28, 28))
            value = float(layer.maps[y, x, channel])
            text = (f"{layer.name}, channel {channel}, position ({y}, {x}): value {value:.3f}. "
                    f"It sees input rows {top}-{bottom - 1}, columns {left}-{right - 1} "
                    f"(receptive field {int(layer.field_size[0])}x{int(layer.field_size[1])}).")
            break
        self._hover.setText(text or "Hover a cell to see its value and the input pixels it sees.")
        self.cell_hovered.emit(text)


def replace_maps(layer: MapLayer, maps: np.ndarray) -> MapLayer:
    return MapLayer(layer.name, layer.class_name, maps, layer.field_size, layer.field_jump, layer.field_start)
