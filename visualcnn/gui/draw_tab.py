"""The Draw tab: draw a digit, see the 28x28 image the network gets, its answer, and
what every conv and pool layer sees of it, with a saliency map.

The tab keeps its own copy of the model (structure + weights copied in), so classifying
on every stroke never touches the arrays a training run is updating; during a run it
takes the worker's weight snapshots. Inference here uses the engine's serial kernels
(the default when another thread trains), which is both threadsafe and fast for one image.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider,
                               QSplitter, QVBoxLayout, QWidget)

from ..engine.model_io import model_from_json
from ..engine.preprocess import NothingDrawnError, canvas_to_mnist
from .cell_tracer import CellTracer
from .panels.digit_canvas import DigitCanvasWidget
from .panels.feature_maps import FeatureMapsWidget, MapLayer, has_feature_maps

NO_MODEL = "Train or load a model to classify."


def copy_model(model):
    """A structurally identical engine model carrying copies of `model`'s weights."""
    clone = model_from_json(model.to_json())
    clone.set_weights(model.get_weights())
    return clone


def grey_pixmap(image: np.ndarray, size: int) -> QPixmap:
    """A (h, w) float image in [0, 1] as a pixelated (nearest-neighbour) square pixmap."""
    data = np.ascontiguousarray((np.clip(image, 0, 1) * 255).astype(np.uint8))
    qimage = QImage(data.data, data.shape[1], data.shape[0], data.strides[0], QImage.Format.Format_Grayscale8)
    return QPixmap.fromImage(qimage.copy()).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                                   Qt.TransformationMode.FastTransformation)


def saliency_rgb(image: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Grey digit with |gradient| laid over it in red-yellow: (h, w, 3) uint8."""
    heat = np.abs(gradient)
    top = heat.max()
    heat = heat / top if top > 0 else heat
    grey = 0.45 * np.clip(image, 0, 1)
    rgb = np.stack([grey + heat * (1 - grey), grey + heat * heat * 0.8 * (1 - grey), grey * (1 - heat)], axis=-1)
    return np.ascontiguousarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def rgb_pixmap(rgb: np.ndarray, size: int) -> QPixmap:
    qimage = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimage.copy()).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                                   Qt.TransformationMode.FastTransformation)


class ProbabilityBarsWidget(pg.PlotWidget):
    """Ten bars, one per class; created once, then only setOpts(height=...)."""

    def __init__(self, class_names: list[str], parent=None):
        super().__init__(parent, background="w")
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setYRange(0, 1, padding=0.02)
        self.setXRange(-0.6, len(class_names) - 0.4, padding=0)
        axis = self.getAxis("bottom")
        axis.setTicks([[(i, name) for i, name in enumerate(class_names)]])
        self.setLabel("left", "probability")
        self._bars = pg.BarGraphItem(x=np.arange(len(class_names)), height=np.zeros(len(class_names)), width=0.7,
                                     brush="#9ab")
        self.addItem(self._bars)
        self.setMinimumHeight(150)
        self._apply_fonts()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # View ▸ Zoom: the digits under the bars follow
            self._apply_fonts()

    def _apply_fonts(self) -> None:
        size = self.font().pointSizeF()
        self.setLabel("left", "probability", **{"font-size": f"{size:.1f}pt"})
        tick = QFont(self.font())
        tick.setPointSizeF(size * 1.2)  # the class digits are what a student reads here
        for axis in ("left", "bottom"):
            self.getAxis(axis).setStyle(tickFont=tick if axis == "bottom" else QFont(self.font()))
            self.getAxis(axis).setTextPen("#222")  # pyqtgraph's grey is faint on a projector

    def set_probabilities(self, probs: np.ndarray | None) -> None:
        n = len(self._bars.opts["x"])
        heights = np.zeros(n) if probs is None else np.asarray(probs, float)
        brushes = ["#9ab"] * n
        if probs is not None:
            brushes[int(np.argmax(probs))] = "#2a7"
        self._bars.setOpts(height=heights, brushes=brushes)


class DrawTabWidget(QWidget):
    """Canvas, preprocessing preview, probabilities, feature maps and saliency."""

    classified = Signal(object)  # (28, 28) image and probabilities, after every update
    probe_pinned = Signal(object)  # the drawn (28, 28) image, for the training feature-maps probe

    def __init__(self, parent: QWidget | None = None, class_names: list[str] | None = None):
        super().__init__(parent)
        self._class_names = class_names or [str(i) for i in range(10)]
        self._model = None
        self._loss = None
        self._fields: dict[str, tuple] = {}
        self._digit: np.ndarray | None = None
        self.last_latency_ms: float | None = None

        self.canvas = DigitCanvasWidget()
        self._pen = QSlider(Qt.Orientation.Horizontal)
        self._pen.setRange(3, 15)
        self._pen.setValue(round(self.canvas.pen_fraction() * 100))
        self._pen.setToolTip("Pen width")
        self._undo = QPushButton("Undo stroke")
        self._clear = QPushButton("Clear")
        self._pin = QPushButton("Use as training probe")
        self._pin.setToolTip("Show this digit's feature maps in the Train tab while the network learns")
        self._pin.setEnabled(False)

        self._preview = QLabel()
        self._preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._preview.setStyleSheet("background: black; color: #aaa;")
        self._saliency = QLabel()
        self._saliency.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._saliency.setStyleSheet("background: black; color: #aaa;")
        for label in (self._preview, self._saliency):  # their placeholder sentences must not be clipped
            label.setWordWrap(True)
        self._answer = QLabel("?")
        self._answer.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._confidence = QLabel(NO_MODEL)
        self._confidence.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._confidence.setWordWrap(True)
        self._bars = ProbabilityBarsWidget(self._class_names)
        self._maps = FeatureMapsWidget()
        # clicking a map cell traces it (gui/trace_panel.py) on this tab's model and digit
        self.tracer = CellTracer(self)
        self._maps.set_cell_handler(self.trace_cell)

        self._build_layout()
        self._pen.valueChanged.connect(self._on_pen_changed)
        self._undo.clicked.connect(self.canvas.undo_stroke)
        self._clear.clicked.connect(self.canvas.clear)
        self._pin.clicked.connect(self._on_pin_clicked)
        self.canvas.stroke_finished.connect(self._on_canvas_changed)
        self.canvas.drawing_cleared.connect(self._on_canvas_changed)
        QShortcut(QKeySequence.StandardKey.Undo, self.canvas, self.canvas.undo_stroke,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._show_empty()

    def _build_layout(self) -> None:
        tools = QHBoxLayout()
        tools.addWidget(QLabel("Pen"))
        tools.addWidget(self._pen, 1)
        tools.addWidget(self._undo)
        tools.addWidget(self._clear)
        draw = QGroupBox("Draw a digit (white on black, like MNIST)")
        left = QVBoxLayout(draw)
        left.addWidget(self.canvas, 1)
        left.addLayout(tools)
        left.addWidget(self._pin)

        seen = QGroupBox("What the network sees")
        column = QVBoxLayout(seen)
        for image, caption in ((self._preview, "28x28 input: cropped, scaled to 20 px,\ncentred by its centre of mass"),
                               (self._saliency, "saliency: the pixels that most change\nthe top score (yellow = most)")):
            column.addWidget(image, 0, Qt.AlignmentFlag.AlignHCenter)
            label = QLabel(caption)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet("color: #555;")
            column.addWidget(label)
        column.addStretch(1)

        answer = QGroupBox("The network's answer")
        answer_layout = QVBoxLayout(answer)
        answer_layout.addWidget(self._answer)
        answer_layout.addWidget(self._confidence)
        answer_layout.addWidget(self._bars, 1)

        top = QWidget()
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(draw, 3)
        top_layout.addWidget(seen, 2)
        top_layout.addWidget(answer, 3)
        maps = QGroupBox("What each layer sees: the feature maps of your digit (one small image per filter)")
        QVBoxLayout(maps).addWidget(self._maps)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(maps)
        splitter.setChildrenCollapsible(False)
        splitter.setSizes([420, 480])  # the maps are the lesson: give them half the height
        self._maps_box = maps
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self._maps.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._fit_to_font()

    def _image_side(self) -> int:
        """The 28x28 preview's and the saliency's side: 140 px at 9 pt, growing with View ▸ Zoom."""
        return max(140, 10 * self.fontMetrics().height())

    def _fit_to_font(self) -> None:
        side = self._image_side()
        self._preview.setFixedSize(side, side)
        self._saliency.setFixedSize(side, side)
        self.canvas.setMaximumSize(3 * side, 3 * side)
        # The maps scroll inside their box: a row of tiles and its label is enough of a minimum,
        # so the page fits a 720-line projector without scrolling the whole tab.
        self._maps_box.setMinimumHeight(10 * self.fontMetrics().height())
        big = QFont(self.font())
        big.setPointSizeF(big.pointSizeF() * 4)  # the answer, readable from the back of the room
        big.setBold(True)
        self._answer.setFont(big)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_to_font()
            if self._digit is not None:
                self._on_canvas_changed()

    # --- model --------------------------------------------------------------------

    def has_model(self) -> bool:
        return self._model is not None

    def set_model(self, model) -> None:
        """Classify with a copy of this trained engine model (None: no model yet)."""
        self._loss = getattr(model, "loss", None)  # the copy is not compiled: the trace's backward side needs it
        if model is None:
            self._model = None
            self._fields = {}
        else:
            self._model = copy_model(model)
            report = self._model.analyse()  # the model's own (graph) analysis: fields of every node
            self._fields = {r.layer.name: r.inference.field for r in report.rows if r.inference}
        self._on_canvas_changed()

    def set_weights_snapshot(self, weights: dict) -> None:
        """New weights from a running training (layer name -> arrays), then reclassify."""
        if self._model is None:
            return
        flat = [w for layer in self._model.layers for w in weights.get(layer.name, [])]
        self._model.set_weights(flat)
        if self._digit is not None:
            self._classify()

    def trace_cell(self, layer_name: str, channel: int, y: int, x: int):
        """Open (or update) the trace panel for one feature-map cell of the drawn digit; the
        backward side starts from the network's answer (a drawn digit has no label)."""
        if self._model is None or self._digit is None:
            return None
        return self.tracer.trace(self._model, self._digit.reshape(self._model.input_shape), layer_name,
                                 (y, x, channel), loss=self._loss)

    def watch_slide(self, layer_name: str | None = None):
        """Open the sliding-window view over the drawn digit (None: no model or no digit)."""
        if self._model is None or self._digit is None:
            return None
        return self.tracer.slide(self._model, self._digit.reshape(self._model.input_shape), layer_name)

    def explain_source(self):
        """(a copy of this tab's model, a copy of the drawn (28, 28) digit), None where missing: for
        the explanation windows (gui/explain_windows.py), which compute in the background and so
        never use this tab's model itself."""
        return (None if self._model is None else copy_model(self._model),
                None if self._digit is None else self._digit.copy())

    # --- updates ------------------------------------------------------------------

    def _on_pen_changed(self, value: int) -> None:
        self.canvas.set_pen_fraction(value / 100)

    def _on_pin_clicked(self) -> None:
        if self._digit is not None:
            self.probe_pinned.emit(self._digit.copy())

    def _on_canvas_changed(self) -> None:
        try:
            self._digit = canvas_to_mnist(self.canvas.image_array())
        except NothingDrawnError as exc:
            self._digit = None
            self._show_empty(str(exc))
            return
        self._preview.setPixmap(grey_pixmap(self._digit, self._image_side()))
        self._pin.setEnabled(True)
        self._classify()

    def _show_empty(self, message: str = "nothing drawn yet") -> None:
        self._preview.setText(message)
        self._saliency.setText(message)
        self._answer.setText("?")
        self._confidence.setText(NO_MODEL if self._model is None else "Draw a digit to classify it.")
        self._bars.set_probabilities(None)
        self._maps.set_layers([])
        self._pin.setEnabled(False)

    def _classify(self) -> None:
        if self._model is None:
            self._answer.setText("?")
            self._confidence.setText(NO_MODEL)
            self._bars.set_probabilities(None)
            self._saliency.setText(NO_MODEL)
            self._maps.set_layers([])
            return
        start = time.perf_counter()
        x = self._digit.reshape(1, 28, 28, 1)
        outputs = self._model.activations(x)
        probs = np.asarray(list(outputs.values())[-1][0], float)
        top = int(np.argmax(probs))
        self._answer.setText(self._class_names[top])
        self._confidence.setText(f"{probs[top]:.0%} sure")
        self._bars.set_probabilities(probs)
        self.last_latency_ms = (time.perf_counter() - start) * 1000
        # The rest is explanation; it follows right after the answer is on screen.
        QTimer.singleShot(0, lambda: self._explain(x, outputs, top))
        self.classified.emit((self._digit, probs))

    def _explain(self, x: np.ndarray, outputs: dict, top: int) -> None:
        if self._model is None or self._digit is None:
            return
        gradient = self._model.input_gradients(x, top)[0, :, :, 0]
        self._saliency.setPixmap(rgb_pixmap(saliency_rgb(self._digit, gradient), self._image_side()))
        layers = []
        for layer in self._model.layers:
            value = outputs.get(layer.name)
            field = self._fields.get(layer.name)
            if value is not None and has_feature_maps(value.shape) and field is not None:
                layers.append(MapLayer(layer.name, layer.class_name, value[0], field.size, field.jump, field.start,
                                       self._model.input_shape))
        self._maps.set_layers(layers)
