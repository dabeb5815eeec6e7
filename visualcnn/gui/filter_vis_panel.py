"""What does a filter want to see? (issue 13 item 4): activation maximisation of a conv
filter or an output class, by gradient ascent from noise (visualcnn.engine.explain.maximise).

The ascent runs in the background (gui/explain_worker.py) on this window's own copy of the
model; the progress bar and the activation curve follow it step by step, Cancel stops it
between two steps and then nothing is shown (a half-climbed picture would look finished).
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

from .explain_worker import ExplainRunner
from .heatmap_view import MapView

FILTER, CLASS = "filter", "class"
CURVE_INTERVAL = 0.2  # seconds between two redraws of the curve during a climb
NO_MODEL = "Train or load a model first (the Draw tab's model is used)."


def _maximise_job(model, target: str, layer_name: str, index: int, steps: int, seed: int):
    def job(progress, cancel):
        from ..engine.explain import maximise

        if target == CLASS:
            return maximise(model, class_index=index, steps=steps, seed=seed, progress=progress, cancel=cancel)
        return maximise(model, layer_name=layer_name, channel=index, steps=steps, seed=seed, progress=progress,
                        cancel=cancel)
    return job


class FilterVisWindow(QWidget):
    """The "What does a filter want to see?" window: set_model(model copy), then start()."""

    shown = Signal()  # a finished picture is on screen

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("What does a filter want to see?")
        self.runner = ExplainRunner(self)
        self.model = None
        self.result = None  # the engine's Maximised now on screen
        self._channels: dict[str, int] = {}
        self._curve_x: list[int] = []
        self._curve_y: list[float] = []
        self._drawn_at = 0.0
        self._build()
        self.runner.progressed.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.runner.busy_changed.connect(lambda _busy: self._show_idle())
        self._show_idle()

    def _build(self) -> None:
        self.target = QComboBox()
        self.target.addItem("a filter of a conv layer", FILTER)
        self.target.addItem("an output class", CLASS)
        self.layer = QComboBox()
        self.layer.setToolTip("The layer whose filter (output channel) is maximised")
        self.index = QSpinBox()
        self.index.setToolTip("Which filter of the layer, or which class")
        self.index_label = QLabel("filter")
        self.steps = QSpinBox()
        self.steps.setRange(1, 2000)
        self.steps.setValue(128)
        self.steps.setToolTip("Gradient-ascent steps")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("The start noise and the jitter come from this seed: the same seed, the same picture")
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.status = QLabel()
        self.status.setWordWrap(True)

        controls = QGridLayout()
        controls.addWidget(QLabel("Maximise"), 0, 0)
        controls.addWidget(self.target, 0, 1)
        self.layer_label = QLabel("layer")
        controls.addWidget(self.layer_label, 0, 2)
        controls.addWidget(self.layer, 0, 3)
        controls.addWidget(self.index_label, 0, 4)
        controls.addWidget(self.index, 0, 5)
        controls.addWidget(QLabel("steps"), 1, 0)
        row = QHBoxLayout()
        row.addWidget(self.steps)
        row.addWidget(QLabel("seed"))
        row.addWidget(self.seed)
        row.addStretch(1)
        controls.addLayout(row, 1, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        controls.addLayout(buttons, 1, 2, 1, 4)
        controls.setColumnStretch(3, 1)

        self.picture = MapView("The picture it wants", "starts as noise; each step moves the pixels up the gradient "
                               "(jitter, blur and decay keep it smooth)", lines=16)
        self.curve = pg.PlotWidget(background="w")
        self.curve.setMouseEnabled(False, False)
        self.curve.hideButtons()
        self.curve.setLabel("bottom", "step")
        self.curve.setLabel("left", "activation")
        self.curve.showGrid(x=True, y=True, alpha=0.3)
        self.curve.setMinimumSize(260, 200)
        # Not antialiased: a 2-pixel antialiased path of 2,000 steps took 30 ms to draw and stalled
        # the window for ~70 ms when a long climb ended (9 ms without; measured with grab()).
        self._line = self.curve.plot([], [], pen=pg.mkPen("#c33", width=2), antialias=False)
        for axis in ("left", "bottom"):
            self.curve.getAxis(axis).setTextPen("#222")
            self.curve.getAxis(axis).enableAutoSIPrefix(False)  # "x0.001" beside the axis reads as a different number
        curve_box = QGroupBox("How strongly it responds, step by step")
        QVBoxLayout(curve_box).addWidget(self.curve)
        shown = QHBoxLayout()
        shown.addWidget(self.picture, 0, Qt.AlignmentFlag.AlignTop)
        shown.addWidget(curve_box, 1)

        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        layout.addLayout(shown, 1)

        self.target.currentIndexChanged.connect(lambda _i: self._fit_index())
        self.layer.currentIndexChanged.connect(lambda _i: self._fit_index())
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)

    # --- inputs ---------------------------------------------------------------------

    def set_model(self, model) -> None:
        """This window's own copy of the model (None: none yet). A run in progress goes on with the old one."""
        self.model = model
        current = self.layer.currentText()
        self.layer.blockSignals(True)
        self.layer.clear()
        self._channels = {}
        if model is not None:
            for row in model.analyse().rows:
                if "Conv" in row.layer.class_name and row.inference is not None \
                        and len(row.inference.output_shape) == 4:
                    self._channels[row.layer.name] = int(row.inference.output_shape[-1])
            self.layer.addItems(list(self._channels))
            if current in self._channels:
                self.layer.setCurrentText(current)
        self.layer.blockSignals(False)
        self._fit_index()
        self._show_idle()

    def choose(self, target: str, layer_name: str | None = None, index: int = 0) -> None:
        self.target.setCurrentIndex(self.target.findData(target))
        if layer_name is not None:
            self.layer.setCurrentText(layer_name)
        self.index.setValue(index)

    def _fit_index(self) -> None:
        is_filter = self.target.currentData() == FILTER
        self.layer.setVisible(is_filter)
        self.layer_label.setVisible(is_filter)
        self.index_label.setText("filter" if is_filter else "class")
        if is_filter:
            self.index.setRange(0, max(0, self._channels.get(self.layer.currentText(), 1) - 1))
        else:
            units = self.model.output_shape[-1] if self.model is not None else 10
            self.index.setRange(0, max(0, units - 1))

    # --- running --------------------------------------------------------------------

    def start(self) -> None:
        if self.model is None:
            self.status.setText(NO_MODEL)
            return
        target = self.target.currentData()
        if target == FILTER and not self._channels:
            self.status.setText("This model has no conv layer: choose an output class.")
            return
        self.result = None
        self._curve_x, self._curve_y = [], []
        self._line.setData([], [])
        # the step axis is fixed for the whole climb: re-ranging it on every point redraws the
        # axes, and that painting (Python, under the GIL the climb shares) stalled the window
        self.curve.setXRange(0, self.steps.value(), padding=0.02)
        self.curve.enableAutoRange(x=False, y=True)
        self._drawn_at = 0.0
        self.progress.setRange(0, self.steps.value())
        self.progress.setValue(0)
        self.picture.show_text("climbing…")
        what = f"filter {self.index.value()} of {self.layer.currentText()}" if target == FILTER \
            else f"class {self.index.value()}"
        self.status.setText(f"Climbing toward the picture that excites {what} most…")
        self.curve.setLabel("left", "mean activation" if target == FILTER else "class score")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.runner.submit("maximise", _maximise_job(self.model, target, self.layer.currentText(),
                                                     self.index.value(), self.steps.value(), self.seed.value()))

    def cancel(self) -> None:
        self.runner.cancel("maximise")

    def stop(self, wait_ms: int = 3000) -> bool:
        return self.runner.stop(wait_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.runner.cancel()
        super().closeEvent(event)

    # --- results --------------------------------------------------------------------

    def _show_idle(self) -> None:
        running = self.runner.has("maximise")
        self.start_button.setEnabled(self.model is not None and not running)
        self.cancel_button.setEnabled(running)
        if self.model is None:
            self.status.setText(NO_MODEL)
            self.picture.show_text("")

    def _on_progress(self, key: str, step: int, total: int, value) -> None:
        if key != "maximise":
            return
        self.progress.setRange(0, total)
        self.progress.setValue(step)
        if value is not None:
            self._curve_x.append(step)
            self._curve_y.append(float(value))
            now = time.monotonic()
            if now - self._drawn_at >= CURVE_INTERVAL:  # ~5 redraws a second: the eye sees it climb
                self._drawn_at = now
                self._line.setData(self._curve_x, self._curve_y)

    def _on_finished(self, key: str, result) -> None:
        if key != "maximise":
            return
        self.result = result
        image = np.asarray(result.image)[..., 0] if result.image.ndim == 3 else np.asarray(result.image)
        self.picture.show_image(image)
        self.picture.set_title(result.target)
        self._line.setData(np.arange(1, len(result.curve) + 1), result.curve)
        self.progress.setValue(self.progress.maximum())
        self.status.setText(f"{result.target}: from {result.initial:.3g} on the start noise to {result.final:.3g} "
                            f"after {result.steps} steps.")
        self._show_idle()
        self.shown.emit()

    def _on_cancelled(self, key: str) -> None:
        if key == "maximise" and not self.runner.has("maximise"):
            self.picture.show_text("cancelled: press Start")
            self.status.setText("Cancelled; nothing is shown for a climb that did not finish.")
            self.progress.setValue(0)
            self._show_idle()

    def _on_failed(self, key: str, message: str) -> None:
        if key == "maximise":
            self.picture.show_text("")
            self.status.setText(message)
            self._show_idle()


__all__ = ["FilterVisWindow", "FILTER", "CLASS"]
