"""Watch it slide (issue 13 item 2): a conv or pooling layer's window moving over the probe
image's input to that layer, one output cell at a time, the output map filling in.

The geometry (which input rows and columns each output cell reads, where the padding zeros
are: Keras's odd extra one at the bottom / right for 'same', the gaps of a dilation) is
the engine's explain.window.slide_geometry; the numbers under the picture are the engine's
explain.trace of the current cell; the output values are model.activations. This file
only draws them and runs the clock: play / pause / step / back / speed, a layer chooser.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QSpinBox,
                               QVBoxLayout, QWidget)

from ..engine.explain import trace
from ..engine.explain.text import n
from ..engine.explain.window import SLIDING, SlideGeometry, slide_geometry
from .number_grid import NumberGrid
from .panels.tile_view import colour_image

ORANGE = QColor("#f39c12")


def sliding_layers(model) -> list[str]:
    """The layers of `model` whose window can be watched (a conv or pooling over a map)."""
    names = []
    report = model.analyse()
    for row, layer in zip(report.rows, model.layers):
        shapes = getattr(row, "input_shapes", None) or [getattr(row, "input_shape", None)]
        if layer.class_name in SLIDING and shapes and shapes[0] is not None and len(shapes[0]) == 4:
            names.append(layer.name)
    return names


class SlideCanvas(QWidget):
    """The padded input (one channel) with the window on it, and the output map so far."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.geometry_: SlideGeometry | None = None
        self.input_map: np.ndarray | None = None  # (h, w) the channel shown
        self.output_map: np.ndarray | None = None  # (oh, ow), NaN where not computed yet
        self.output_levels = (0.0, 1.0)
        self.cell: tuple[int, int] | None = None
        self.chosen: tuple[int, int] | None = None  # max pooling: the input cell the max came from
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(12 * self.fontMetrics().height())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(900, 480)

    def _layout(self):
        """Cell side and the two grids' origins: input (with padding) left, output right."""
        g = self.geometry_
        (top, bottom), (left, right) = g.pads
        in_rows, in_cols = g.input_size[0] + top + bottom, g.input_size[1] + left + right
        out_rows, out_cols = g.output_size
        head = 1.6 * self.fontMetrics().height()
        gap_cells = 3
        side = min((self.width() - 8) / (in_cols + out_cols + gap_cells),
                   (self.height() - head - 8) / max(in_rows, out_rows))
        side = max(2.0, side)
        x0 = 4.0
        x1 = x0 + (in_cols + gap_cells) * side
        return side, head, (x0, head), (x1, head), (in_rows, in_cols)

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt override
        g = self.geometry_
        if g is None or self.input_map is None or self.output_map is None:
            return
        painter = QPainter(self)
        side, head, (ix, iy), (ox, oy), (in_rows, in_cols) = self._layout()
        (top, _bottom), (left, _right) = g.pads
        painter.setPen(QColor("#222"))
        bold = QFont(self.font())
        bold.setBold(True)
        painter.setFont(bold)
        painter.drawText(QRectF(ix, 0, in_cols * side + 200, head), Qt.AlignmentFlag.AlignLeft,
                         "input to the layer" + (" (grey: padding zeros)" if g.padding == "same" and any(
                             sum(p) for p in g.pads) else ""))
        painter.drawText(QRectF(ox, 0, 600, head), Qt.AlignmentFlag.AlignLeft, "output map")
        painter.setFont(self.font())
        low, high = float(np.min(self.input_map)), float(np.max(self.input_map))
        span = high - low if high > low else 1.0
        greys = np.clip((self.input_map - low) / span * 255, 0, 255).astype(np.uint8)
        show_zero = side >= self.fontMetrics().horizontalAdvance("0") * 2.2
        for r in range(in_rows):
            for c in range(in_cols):
                rect = QRectF(ix + c * side, iy + r * side, side, side)
                ar, ac = r - top, c - left  # position on the unpadded input
                if 0 <= ar < g.input_size[0] and 0 <= ac < g.input_size[1]:
                    grey = int(greys[ar, ac])
                    painter.fillRect(rect, QColor(grey, grey, grey))
                else:
                    painter.fillRect(rect, QColor("#cfd6dc"))
                    if show_zero:
                        painter.setPen(QColor("#667"))
                        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "0")
        painter.setPen(QPen(QColor("#999"), 1))
        painter.drawRect(QRectF(ix + left * side, iy + top * side, g.input_size[1] * side, g.input_size[0] * side))
        colours = colour_image(np.nan_to_num(self.output_map, nan=self.output_levels[0]), "viridis",
                               self.output_levels)
        out_rows, out_cols = g.output_size
        for r in range(out_rows):
            for c in range(out_cols):
                rect = QRectF(ox + c * side, oy + r * side, side, side)
                if np.isnan(self.output_map[r, c]):
                    painter.fillRect(rect, QColor("#f2f2f2"))
                else:
                    rgba = colours[r, c]
                    painter.fillRect(rect, QColor(int(rgba[0]), int(rgba[1]), int(rgba[2])))
        painter.setPen(QPen(QColor("#bbb"), 1))
        painter.drawRect(QRectF(ox, oy, out_cols * side, out_rows * side))
        if self.cell is not None:
            rows, cols = g.window(*self.cell)
            pen = QPen(ORANGE, max(2.0, side / 6))
            # the window's extent (dilation leaves gaps inside it) ...
            span = QRectF(ix + (cols[0] + left) * side, iy + (rows[0] + top) * side,
                          (cols[-1] - cols[0] + 1) * side, (rows[-1] - rows[0] + 1) * side)
            gaps = g.dilation != (1, 1)
            outline = QPen(ORANGE, max(2.0, side / 6), Qt.PenStyle.DashLine if gaps else Qt.PenStyle.SolidLine)
            painter.setPen(outline)
            painter.drawRect(span.adjusted(-2, -2, 2, 2))
            # ... and the cells it really reads
            for r in rows:
                for c in cols:
                    rect = QRectF(ix + (c + left) * side, iy + (r + top) * side, side, side)
                    painter.fillRect(rect, QColor(243, 156, 18, 150))
                    painter.setPen(pen)
                    painter.drawRect(rect.adjusted(1, 1, -1, -1))
            if self.chosen is not None:
                r, c = self.chosen
                painter.setPen(QPen(QColor("#1f6fd1"), max(2.0, side / 5)))
                painter.drawEllipse(QRectF(ix + (c + left) * side, iy + (r + top) * side, side, side).adjusted(
                    2, 2, -2, -2))
            i, j = self.cell
            painter.setPen(QPen(ORANGE, max(2.0, side / 5)))
            painter.drawRect(QRectF(ox + j * side, oy + i * side, side, side))
        painter.end()


class SlideView(QWidget):
    """set_model(model, image) then choose_layer(name); step() / play() / pause() / back()."""

    cell_shown = Signal(int, int)  # the output cell just computed

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("slideView")
        self._model = None
        self._image: np.ndarray | None = None
        self._acts: dict = {}
        self.geometry_: SlideGeometry | None = None
        self.layer_name: str | None = None
        self.cells: list[tuple[int, int]] = []
        self.position = -1  # index into cells of the last computed cell
        self.full_output: np.ndarray | None = None  # (oh, ow) the layer's output for the channel shown
        self.shown: np.ndarray | None = None
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._on_tick)

        self.layer = QComboBox()
        self.layer.setToolTip("The conv or pooling layer to watch")
        self.layer.currentTextChanged.connect(self._on_layer_chosen)
        self.filter = QSpinBox()
        self.filter.setToolTip("Which output channel (filter) fills in")
        self.filter.valueChanged.connect(self._restart)
        self.in_channel = QSpinBox()
        self.in_channel.setToolTip("Which input channel is drawn (a conv window reads all of them)")
        self.in_channel.valueChanged.connect(self._restart)
        self.reset_button = QPushButton("Reset")
        self.back_button = QPushButton("◀ Back")
        self.play_button = QPushButton("▶ Play")
        self.step_button = QPushButton("Step ▶")
        self.fill_button = QPushButton("Fill all")
        self.speed = QSlider(Qt.Orientation.Horizontal)
        self.speed.setRange(1, 40)
        self.speed.setValue(4)
        self.speed.setToolTip("Cells per second")
        self.speed_label = QLabel()
        self.reset_button.clicked.connect(self.reset)
        self.back_button.clicked.connect(self.back)
        self.play_button.clicked.connect(self.toggle_play)
        self.step_button.clicked.connect(self.step)
        self.fill_button.clicked.connect(self.fill_all)
        self.speed.valueChanged.connect(self._on_speed)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.canvas = SlideCanvas()
        self.patch = NumberGrid()
        self.kernel = NumberGrid()
        self.times = QLabel("×")
        self.result = QLabel()
        self.result.setWordWrap(True)
        self.progress = QLabel()
        self._build_layout()
        self._on_speed(self.speed.value())
        self._fit_to_font()

    def _build_layout(self) -> None:
        choose = QHBoxLayout()
        choose.addWidget(QLabel("Layer:"))
        choose.addWidget(self.layer, 1)
        choose.addWidget(QLabel("filter:"))
        choose.addWidget(self.filter)
        self.in_channel_label = QLabel("input channel:")
        choose.addWidget(self.in_channel_label)
        choose.addWidget(self.in_channel)
        controls = QHBoxLayout()
        for button in (self.reset_button, self.back_button, self.play_button, self.step_button, self.fill_button):
            controls.addWidget(button)
        controls.addSpacing(12)
        controls.addWidget(QLabel("speed:"))
        controls.addWidget(self.speed, 1)
        controls.addWidget(self.speed_label)
        # the current cell's numbers beside the picture: the picture keeps the whole height
        numbers = QVBoxLayout()
        self.patch_caption = QLabel()
        self.kernel_caption = QLabel()
        numbers.addWidget(self.patch_caption)
        numbers.addWidget(self.patch, 0, Qt.AlignmentFlag.AlignLeft)
        numbers.addWidget(self.times, 0, Qt.AlignmentFlag.AlignLeft)
        numbers.addWidget(self.kernel_caption)
        numbers.addWidget(self.kernel, 0, Qt.AlignmentFlag.AlignLeft)
        numbers.addWidget(self.result)
        numbers.addStretch(1)
        self.result.setMaximumWidth(22 * self.fontMetrics().height())
        picture = QHBoxLayout()
        picture.addWidget(self.canvas, 1)
        picture.addLayout(numbers, 0)
        layout = QVBoxLayout(self)
        layout.addLayout(choose)
        layout.addLayout(controls)
        layout.addWidget(self.description)
        layout.addWidget(self.progress)
        layout.addLayout(picture, 1)

    def _fit_to_font(self) -> None:
        big = QFont(self.font())
        big.setPointSizeF(big.pointSizeF() * 1.3)
        for widget in (self.result, self.progress, self.description):
            widget.setFont(big)
        for grid in (self.patch, self.kernel):
            grid.setFont(big)
        sign = QFont(big)
        sign.setPointSizeF(big.pointSizeF() * 1.5)
        self.times.setFont(sign)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == event.Type.FontChange:
            self._fit_to_font()

    # --- content ----------------------------------------------------------------------

    def set_model(self, model, image: np.ndarray, layer_name: str | None = None) -> None:
        """Watch `model`'s layers over one input `image` (the model's input shape)."""
        self.pause()
        self._model = model
        self._image = np.asarray(image, np.float32).reshape(model.input_shape)
        self._acts = {name: np.asarray(v[0]) for name, v in model.activations(self._image[None]).items()}
        names = sliding_layers(model)
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems(names)
        self.layer.blockSignals(False)
        if not names:
            self.description.setText("This model has no conv or pooling layer over an image to watch.")
            self.geometry_ = None
            self.canvas.geometry_ = None
            self.canvas.update()
            return
        self.choose_layer(layer_name if layer_name in names else names[0])

    def choose_layer(self, name: str) -> None:
        if self.layer.currentText() != name:
            self.layer.setCurrentText(name)  # -> _on_layer_chosen
        else:
            self._on_layer_chosen(name)

    def _on_layer_chosen(self, name: str) -> None:
        if not name or self._model is None:
            return
        self.pause()
        self.layer_name = name
        position = [layer.name for layer in self._model.layers].index(name)
        layer = self._model.layers[position]
        source = self._model.inbound[position][0]
        self._input = self._image if source == -1 else self._acts[self._model.layers[source].name]
        self.geometry_ = slide_geometry(layer, self._input.shape[:2])
        self.cells = self.geometry_.cells()
        out = self._acts[name]
        conv = not self.geometry_.pooling and layer.class_name != "DepthwiseConv2D"
        for spin, top in ((self.filter, out.shape[2] - 1), (self.in_channel, self._input.shape[2] - 1)):
            spin.blockSignals(True)
            spin.setRange(0, top)
            spin.setValue(0)
            spin.blockSignals(False)
        self.in_channel.setVisible(conv and self._input.shape[2] > 1)
        self.in_channel_label.setVisible(self.in_channel.isVisible())
        self.kernel.setVisible(not self.geometry_.pooling)
        self.times.setVisible(not self.geometry_.pooling)
        self.kernel_caption.setVisible(not self.geometry_.pooling)
        self.description.setText(f"<b>{name}</b> ({layer.class_name}): {self.geometry_.describe()}")
        self._restart()

    def _shown_input_channel(self) -> int:
        layer = self._model.get_layer(self.layer_name)
        f = self.filter.value()
        if self.geometry_.pooling:
            return f
        if layer.class_name == "DepthwiseConv2D":
            return f // layer.config["depth_multiplier"]
        return self.in_channel.value()

    def _restart(self) -> None:
        if self.geometry_ is None:
            return
        playing = self.timer.isActive()
        self.full_output = np.asarray(self._acts[self.layer_name][:, :, self.filter.value()], np.float64)
        self.canvas.geometry_ = self.geometry_
        self.canvas.input_map = self._input[:, :, self._shown_input_channel()]
        low, high = float(self.full_output.min()), float(self.full_output.max())
        self.canvas.output_levels = (low, high) if high > low else (low, low + 1.0)
        self.reset()
        if playing:
            self.play()

    # --- the clock --------------------------------------------------------------------

    def reset(self) -> None:
        self.position = -1
        if self.full_output is not None:
            self.shown = np.full(self.full_output.shape, np.nan)
        self._show_current()

    def step(self) -> bool:
        """Compute the next cell; False (and the clock stops) when the map is full."""
        if self.geometry_ is None or self.position >= len(self.cells) - 1:
            self.pause()
            return False
        self.position += 1
        i, j = self.cells[self.position]
        self.shown[i, j] = self.full_output[i, j]
        self._show_current()
        self.cell_shown.emit(i, j)
        if self.position == len(self.cells) - 1:
            self.pause()
        return True

    def back(self) -> None:
        if self.position < 0:
            return
        i, j = self.cells[self.position]
        self.shown[i, j] = np.nan
        self.position -= 1
        self._show_current()

    def fill_all(self) -> None:
        self.pause()
        while self.step():
            pass

    def play(self) -> None:
        if self.geometry_ is None:
            return
        if self.position >= len(self.cells) - 1:
            self.reset()
        self.timer.start()
        self.play_button.setText("❚❚ Pause")

    def pause(self) -> None:
        self.timer.stop()
        self.play_button.setText("▶ Play")

    def toggle_play(self) -> None:
        self.pause() if self.timer.isActive() else self.play()

    def is_playing(self) -> bool:
        return self.timer.isActive()

    def set_speed(self, cells_per_second: int) -> None:
        self.speed.setValue(cells_per_second)

    def _on_speed(self, value: int) -> None:
        self.timer.setInterval(max(1, round(1000 / value)))
        self.speed_label.setText(f"{value} cell{'s' if value > 1 else ''}/s")

    def _on_tick(self) -> None:
        self.step()

    def _show_current(self) -> None:
        cell = self.cells[self.position] if self.position >= 0 else None
        self.canvas.cell = cell
        self.canvas.chosen = None
        self.canvas.output_map = self.shown
        self.canvas.update()
        total = len(self.cells)
        if cell is None:
            self.progress.setText(f"0 of {total} output cells: press Play or Step.")
            self.result.setText("")
            self.patch_caption.setText("")
            self.kernel_caption.setText("")
            self.patch.set_values(np.zeros((0, 0)))
            self.kernel.set_values(np.zeros((0, 0)))
            return
        i, j = cell
        rows, cols = self.geometry_.window(i, j)
        self.progress.setText(f"cell {self.position + 1} of {total}: output row {i}, column {j} reads input rows "
                              f"{rows[0]}..{rows[-1]}, columns {cols[0]}..{cols[-1]}"
                              + (" (outside the input: padding zeros)" if min(rows + cols) < 0 or max(rows) >=
                                 self.geometry_.input_size[0] or max(cols) >= self.geometry_.input_size[1] else ""))
        t = trace(self._model, self._image, self.layer_name, (i, j, self.filter.value()))
        self.canvas.chosen = t.chosen  # the max's place on the input (None unless max pooling)
        c = self._shown_input_channel() if t.patch is not None and t.patch.shape[2] > 1 else 0
        shown = self._shown_input_channel()
        self.patch_caption.setText(f"<b>window</b>, channel {shown}")
        self.kernel_caption.setText(f"<b>kernel</b>, filter {self.filter.value()}")
        if t.patch is not None:
            ring = None
            if t.chosen is not None:
                ring = (t.window_rows.index(t.chosen[0]), t.window_cols.index(t.chosen[1]))
            self.patch.set_values(t.patch[:, :, c], t.padding, ring)
        if t.kernel is not None and t.kernel.ndim == 3 and t.kind != "separable":
            self.kernel.set_values(t.kernel[:, :, c])
        else:  # a separable conv's depthwise kernels are per channel and multiplier: the trace panel lists them
            self.kernel.set_values(np.zeros((0, 0)))
            self.kernel_caption.setText("")
        if t.kind == "max_pool":
            text = f"max = <b>{n(t.computed)}</b><br>(ringed: input row {t.chosen[0]}, column {t.chosen[1]})"
        elif t.kind == "average_pool":
            text = f"average = {n(t.total)} / {int((~t.padding).sum())} = <b>{n(t.computed)}</b>"
        else:
            many = t.channel_sums is not None and len(t.channel_sums) > 1
            if t.kind == "separable":  # each channel filtered on its own, then mixed 1x1
                lines = [f"depthwise results × pointwise weights = {n(t.total)}"]
            else:
                lines = [f"= {n(t.channel_sums[c])} on this channel"]
            if many and t.kind != "separable":
                lines.append(f"{n(t.total)} over all {len(t.channel_sums)} channels")
            if t.bias is not None:
                lines.append(f"+ bias {n(t.bias)} = {n(t.pre_activation)}")
            if t.activation and t.activation != "linear":
                lines.append(f"{t.activation}({n(t.pre_activation)})")
            lines.append(f"= <b>{n(t.computed)}</b>")
            text = "<br>".join(lines)
        self.result.setText(text)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.pause()  # no tick may reach a closed view
        super().closeEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.pause()
        super().hideEvent(event)


class SlideWindow(QWidget):
    """The slide view in its own window (not modal)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("slideWindow")
        self.setWindowTitle("Watch it slide")
        self.view = SlideView()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.view)

    def show_layer(self, model, image, layer_name: str | None = None) -> None:
        self.view.set_model(model, image, layer_name)
        if not self.isVisible():
            screen = self.screen().availableGeometry() if self.screen() else None
            if screen is not None:
                self.resize(min(1200, screen.width() - 40), min(800, screen.height() - 60))
        self.show()
        self.raise_()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.view.pause()
        super().closeEvent(event)
