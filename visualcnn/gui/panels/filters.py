"""The kernels of one conv layer as a grid of small images, diverging colours centred on 0.

A conv kernel has the Keras layout (kh, kw, c_in, c_out): for the chosen input channel
the c_out filters are tiled into one mosaic and shown by one ImageItem (created once,
then only setImage'd). Blue is negative, white zero, red positive; the colour range is
symmetric (+-max |w|) so zero is always white. The first conv layer sees the grey input
(one channel); deeper layers have one kernel slice per input channel, chosen in a combo,
or "mean over input channels".
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from .tile_view import TileDialog
from .tiling import grid_columns, nice_ceiling, symmetric_level, tile, tile_position

MEAN_CHANNEL = -1


class FiltersPanel(QWidget):
    """Pick a conv layer (and an input channel); its filters update with every set_weights().
    Clicking a filter opens it enlarged with its weights' range."""

    tile_clicked = Signal(int)  # filter index

    def __init__(self, parent: QWidget | None = None):
        self._level: float | None = None
        self._fixed_levels: dict = {}  # layer name -> colour range kept fixed (the time machine's moments)
        super().__init__(parent)
        self._kernels: dict[str, np.ndarray] = {}  # conv layer name -> (kh, kw, c_in, c_out)
        self._shown: np.ndarray | None = None  # (kh, kw, c_out) currently drawn
        self._columns = 1
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("Which convolution layer's filters to draw")
        self.layer_combo.currentIndexChanged.connect(self._on_layer_combo_changed)
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip("A deeper conv layer has one 2-D kernel per input channel for each filter; "
                                      "pick which input channel to draw")
        self.channel_combo.currentIndexChanged.connect(self._on_channel_combo_changed)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Layer"))
        bar.addWidget(self.layer_combo, 1)
        bar.addWidget(QLabel("input channel"))
        bar.addWidget(self.channel_combo, 1)

        self._graphics = pg.GraphicsLayoutWidget()
        self._graphics.setBackground("w")
        # A QLabel, not a label inside the plot: it wraps, where a long one-line title made
        # the plot wider than the panel and pushed the colour bar out of sight.
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self._view = self._graphics.addViewBox(row=1, col=0, lockAspect=True, enableMouse=False)
        self._view.setMenuEnabled(False)
        self._view.invertY(True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(pg.colormap.get("CET-D1"))  # blue - white - red
        self._view.addItem(self.image)
        self.colour_bar = pg.ColorBarItem(values=(-1.0, 1.0), colorMap=pg.colormap.get("CET-D1"),
                                          interactive=False, width=14, label="weight")
        self.colour_bar.setImageItem(self.image)
        self._graphics.addItem(self.colour_bar, row=1, col=1)
        self._graphics.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        self._graphics.scene().sigMouseClicked.connect(self._on_scene_mouse_clicked)
        self._dialog: TileDialog | None = None
        self._hover = QLabel("")
        self._hover.setStyleSheet("color: #333;")
        self._empty = QLabel("The filters appear here once training starts.")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.title)
        layout.addWidget(self._empty, 1)
        layout.addWidget(self._graphics, 1)
        layout.addWidget(self._hover)
        self._graphics.hide()

    # --- data in ------------------------------------------------------------------

    def set_weights(self, weights: dict) -> None:
        """weights: layer name -> [kernel, bias...] (copies). Only 4-D kernels are conv layers."""
        kernels = {name: arrays[0] for name, arrays in weights.items()
                   if arrays and getattr(arrays[0], "ndim", 0) == 4}
        names_changed = list(kernels) != list(self._kernels)
        self._kernels = kernels
        if names_changed:
            current = self.layer_combo.currentText()
            with QSignalBlocker(self.layer_combo):
                self.layer_combo.clear()
                self.layer_combo.addItems(list(kernels))
                if current in kernels:
                    self.layer_combo.setCurrentText(current)
            self._fill_channels()
        has = bool(kernels)
        self._graphics.setVisible(has)
        self.title.setVisible(has)
        self._empty.setVisible(not has)
        if not has:
            self._empty.setText("This network has no Conv2D layer, so there are no filters to draw."
                                if weights else "The filters appear here once training starts.")
        self._redraw()

    def clear(self) -> None:
        self.set_weights({})

    def set_fixed_levels(self, levels: dict | None) -> None:
        """Layer name -> colour range (+-level) to keep whatever the weights shown, so moments of
        one run compare on one scale (gui/time_machine_panel.py); None: each set is scaled alone."""
        self._fixed_levels = dict(levels or {})
        self._redraw()

    def current_kernel(self) -> np.ndarray | None:
        return self._kernels.get(self.layer_combo.currentText())

    def shown(self) -> np.ndarray | None:
        """The (kh, kw, c_out) slice being drawn (for tests and hover)."""
        return self._shown

    # --- internals ----------------------------------------------------------------

    def _fill_channels(self) -> None:
        kernel = self.current_kernel()
        c_in = 0 if kernel is None else kernel.shape[2]
        previous = self.channel_combo.currentData()
        with QSignalBlocker(self.channel_combo):
            self.channel_combo.clear()
            if c_in == 1:
                self.channel_combo.addItem("0 (grey)", 0)  # short: the box is narrow at 1024x768
            else:
                for c in range(c_in):
                    self.channel_combo.addItem(f"{c}", c)
                if c_in > 1:
                    self.channel_combo.addItem("mean over all", MEAN_CHANNEL)
            index = self.channel_combo.findData(previous)
            self.channel_combo.setCurrentIndex(max(index, 0))
        self.channel_combo.setEnabled(c_in > 1)

    def _redraw(self) -> None:
        kernel = self.current_kernel()
        if kernel is None:
            self._shown = None
            return
        kh, kw, c_in, c_out = kernel.shape
        channel = self.channel_combo.currentData()
        if channel == MEAN_CHANNEL:
            shown = kernel.mean(axis=2)
            which = f"mean over {c_in} input channels"
        else:
            channel = int(channel or 0)
            shown = kernel[:, :, channel, :]
            which = f"input channel {channel} of {c_in}"
        self._shown = shown
        self._columns = grid_columns(c_out, aspect=self._room_aspect() * kh / max(kw, 1))
        mosaic = tile(shown, self._columns)
        level = self._fixed_levels.get(self.layer_combo.currentText()) or nice_ceiling(symmetric_level(mosaic))
        self.image.setImage(mosaic, autoLevels=False, levels=(-level, level))
        if level != self._level:
            # Relabelling the colour bar relayouts and repaints the whole plot (measured up to
            # 63 ms); a 'nice' range changes only a few times a run, and one fixed scale lets a
            # student see the filters grow stronger instead of being renormalised each time.
            self.colour_bar.setLevels((-level, level))
            self._level = level
        self.title.setText(f"<b>{self.layer_combo.currentText()}</b>: {c_out} filters of {kh}x{kw}, {which}; "
                           f"colour range +-{level:.3g}"
                           f"{' (the same at every moment)' if self._fixed_levels else ''}")

    def _room_aspect(self) -> float:
        """Width / height of the room the mosaic has (the colour bar takes its column):
        the grid takes the same shape, so the filters come out as large as possible."""
        width = self._graphics.width() - 6 * self.fontMetrics().horizontalAdvance("m")
        height = self._graphics.height()
        if width <= 0 or height <= 0 or not self._graphics.isVisible():
            return 1.6
        return max(0.2, min(8.0, width / height))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        kernel = self.current_kernel()
        if kernel is not None:
            kh, kw, _c_in, c_out = kernel.shape
            if grid_columns(c_out, aspect=self._room_aspect() * kh / max(kw, 1)) != self._columns:
                self._redraw()

    def _on_layer_combo_changed(self, _index: int) -> None:
        self._fill_channels()
        self._redraw()

    def _on_channel_combo_changed(self, _index: int) -> None:
        self._redraw()

    def filter_at(self, scene_pos) -> tuple[int, int, int] | None:
        """(filter, kernel row, kernel column) under a scene position, or None."""
        if self._shown is None or not self._view.sceneBoundingRect().contains(scene_pos):
            return None
        point = self.image.mapFromScene(scene_pos)
        return tile_position(int(np.floor(point.y())), int(np.floor(point.x())), self._shown.shape, self._columns)

    def scene_position(self, index: int, y: int = 0, x: int = 0):
        """Where (in scene coordinates) a filter's weight is drawn: for tests and demos."""
        kh, kw, _c = self._shown.shape
        r, k = divmod(index, self._columns)
        return self.image.mapToScene(pg.Point(k * (kw + 1) + x + 0.5, r * (kh + 1) + y + 0.5))

    def _on_scene_mouse_moved(self, scene_pos) -> None:
        where = self.filter_at(scene_pos)
        if where is None:
            self._hover.setText("")
            return
        f, y, x = where
        self._hover.setText(f"filter {f}, kernel row {y}, column {x}: weight {self._shown[y, x, f]:+.4f} "
                            "(click to enlarge)")

    def _on_scene_mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        where = self.filter_at(event.scenePos())
        if where is not None:
            self.open_filter(where[0])

    def open_filter(self, index: int) -> TileDialog | None:
        """Show one filter enlarged, on the panel's colour scale (the dialog is reused)."""
        if self._shown is None or not 0 <= index < self._shown.shape[2]:
            return None
        if self._dialog is None:
            self._dialog = TileDialog(self)
        kh, kw, c_out = self._shown.shape
        level = self._level or nice_ceiling(symmetric_level(self._shown))
        self._dialog.set_tile(
            self._shown[:, :, index], f"{self.layer_combo.currentText()}, filter {index}",
            f"Filter {index} of {c_out} ({kh}x{kw}, {self.channel_combo.currentText()}): each square is one weight. "
            "Red is positive, blue negative, white zero: the filter responds where the image looks like its red "
            "part and not its blue part.", colormap="CET-D1", levels=(-level, level))
        self._dialog.show()
        self._dialog.raise_()
        self.tile_clicked.emit(index)
        return self._dialog
