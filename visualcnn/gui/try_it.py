"""The "Try it" tab: classify an image file with the trained network, for datasets that are
not handwritten digits (Fashion-MNIST, an image folder), where drawing makes no sense.

Open or drop a PNG/JPEG/BMP file: it is read exactly like the training images (the
engine's image_folder.decode_image: grayscale or RGB by the model's input channels,
resized with the dataset's interpolation), shown as the network gets it, and classified
with the dataset's class names. "A test image" picks one of the dataset's own test images.

Like the Draw tab it keeps its own copy of the model (weights copied in), so classifying
never touches the arrays a training run is updating; during a run it takes the worker's
weight snapshots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget)

from .draw_tab import copy_model
from .panels.results import digit_pixmap

NO_MODEL = "Train or load a model to classify."
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.PNG *.JPG *.JPEG *.BMP)"
TOP = 5  # the answers listed in words under the bars


class ClassBarsWidget(pg.PlotWidget):
    """One horizontal bar per class, its name on the left axis (long names stay readable)."""

    def __init__(self, parent=None):
        super().__init__(parent, background="w")
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.getPlotItem().invertY(True)
        self.setXRange(0, 1, padding=0.02)
        self.setLabel("bottom", "probability")
        self._bars = None
        self.names: list[str] = []
        self.setMinimumHeight(150)
        self.set_class_names([str(i) for i in range(10)])

    def set_class_names(self, names) -> None:
        names = [str(n) for n in names]
        if names == self.names:
            return
        self.names = names
        if self._bars is not None:
            self.removeItem(self._bars)
        n = len(names)
        self._bars = pg.BarGraphItem(x0=np.zeros(n), y=np.arange(n), height=0.7, width=np.zeros(n), brush="#9ab")
        self.addItem(self._bars)
        self.getAxis("left").setTicks([[(i, name) for i, name in enumerate(names)]])
        self.setYRange(-0.6, n - 0.4, padding=0)
        self._apply_fonts()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._apply_fonts()

    def _apply_fonts(self) -> None:
        size = self.font().pointSizeF()
        self.setLabel("bottom", "probability", **{"font-size": f"{size:.1f}pt"})
        for axis in ("left", "bottom"):
            self.getAxis(axis).setStyle(tickFont=QFont(self.font()))
            self.getAxis(axis).setTextPen("#222")
        self.setMinimumHeight(max(150, int(1.6 * self.fontMetrics().height() * len(self.names))))

    def set_probabilities(self, probs) -> None:
        n = len(self.names)
        widths = np.zeros(n) if probs is None else np.asarray(probs, float)[:n]
        brushes = ["#9ab"] * n
        if probs is not None and n:
            brushes[int(np.argmax(widths))] = "#2a7"
        self._bars.setOpts(width=widths, brushes=brushes)


class TryItWidget(QWidget):
    """Open / drop an image, see it as the network does, and its answer."""

    classified = Signal(object)  # the probabilities, after every classification

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self._model = None
        self._class_names: list[str] = [str(i) for i in range(10)]
        self._interpolation = "bilinear"
        self._data = None  # the dataset's arrays: its test images for "A test image"
        self._image: np.ndarray | None = None  # float32 (H, W, C) in [0, 1], as the network gets it
        self._source_text = ""
        self._rng = np.random.default_rng(0)
        self.probabilities: np.ndarray | None = None

        self.open_button = QPushButton("Open image…")
        self.open_button.setObjectName("tryItOpen")
        self.open_button.clicked.connect(self.open_dialog)
        self.test_button = QPushButton("A test image")
        self.test_button.setToolTip("Classify a random image from the dataset's test images")
        self.test_button.clicked.connect(self.try_test_image)
        self.test_button.setEnabled(False)
        self.drop_hint = QLabel("Drop an image file (PNG, JPEG or BMP) anywhere on this page, or open one.")
        self.drop_hint.setWordWrap(True)
        self.seen = QLabel("no image yet")
        self.seen.setObjectName("tryItImage")
        self.seen.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.seen.setWordWrap(True)
        self.seen.setStyleSheet("background: #222; color: #ccc;")
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.caption.setStyleSheet("color: #555;")
        self.answer = QLabel("?")
        self.answer.setObjectName("tryItAnswer")
        self.answer.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.answer.setWordWrap(True)
        self.confidence = QLabel(NO_MODEL)
        self.confidence.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.confidence.setWordWrap(True)
        self.bars = ClassBarsWidget()

        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.test_button)
        buttons.addStretch(1)
        image_box = self.image_box = QGroupBox("Your image, as the network gets it")
        image_layout = QVBoxLayout(image_box)
        image_layout.addLayout(buttons)
        image_layout.addWidget(self.drop_hint)
        image_layout.addWidget(self.seen, 0, Qt.AlignmentFlag.AlignHCenter)
        image_layout.addWidget(self.caption)
        image_layout.addStretch(1)
        answer_box = QGroupBox("The network's answer")
        answer_layout = QVBoxLayout(answer_box)
        answer_layout.addWidget(self.answer)
        answer_layout.addWidget(self.confidence)
        answer_layout.addWidget(self.bars, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(image_box, 2)
        layout.addWidget(answer_box, 3)
        self._fit_to_font()

    # --- what it classifies with -----------------------------------------------------

    def set_dataset(self, data, interpolation: str = "bilinear") -> None:
        """The dataset's class names and test images (DatasetArrays / FolderArrays)."""
        self._data = data
        self._interpolation = interpolation or "bilinear"
        self._class_names = [str(n) for n in data.class_names]
        self.bars.set_class_names(self._class_names)
        self.test_button.setEnabled(data is not None and len(data.y_test) > 0)
        self._classify()

    def has_model(self) -> bool:
        return self._model is not None

    def set_model(self, model) -> None:
        """Classify with a copy of this engine model (None: no trained model)."""
        self._model = None if model is None else copy_model(model)
        self._classify()

    def set_weights_snapshot(self, weights: dict) -> None:
        """New weights from a running training (layer name -> arrays), then reclassify."""
        if self._model is None:
            return
        self._model.set_weights([w for layer in self._model.layers for w in weights.get(layer.name, [])])
        self._classify()

    # --- images ------------------------------------------------------------------------

    def open_dialog(self) -> bool:
        path, _ = QFileDialog.getOpenFileName(self, "Classify an image", str(Path.home()), IMAGE_FILTER)
        return bool(path) and self.open_image(path)

    def open_image(self, path) -> bool:
        """Read the file like the training images and classify it; False (and why) if unreadable."""
        from ..engine.image_folder import decode_image

        shape = self._input_image_shape()
        if shape is None:
            self._show_problem("Train or load a model with an image input (height x width x 1 or 3) first.")
            return False
        try:
            pixels = decode_image(path, shape, self._interpolation)
        except ValueError as exc:  # DatasetError: one line saying what is wrong with the file
            self._show_problem(f"{Path(path).name} cannot be classified: {exc}")
            return False
        self._set_image(pixels.astype(np.float32) / np.float32(255), f"{Path(path).name}, read as "
                        f"{shape[0]}x{shape[1]} {'RGB' if shape[2] == 3 else 'grayscale'}")
        return True

    def try_test_image(self, index: int | None = None) -> None:
        data = self._data
        if data is None or not len(data.y_test):
            return
        index = int(self._rng.integers(len(data.y_test))) if index is None else int(index)
        image = np.asarray(data.x_test[index], np.float32)
        label = self._class_names[int(data.y_test[index])]
        self._set_image(image if image.ndim == 3 else image[..., None], f"test image #{index}, labelled {label}")

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_image(files[0])

    # --- internals -------------------------------------------------------------------

    def _input_image_shape(self):
        if self._model is None:
            return None
        shape = tuple(self._model.input_shape)
        return shape if len(shape) == 3 and shape[2] in (1, 3) else None

    def _set_image(self, image: np.ndarray, text: str) -> None:
        self._image = image
        self._source_text = text
        self._classify()

    def _show_problem(self, text: str) -> None:
        self.caption.setText(f"<span style='color:#8a0010'><b>{text}</b></span>")

    def _image_side(self) -> int:
        """At least 11 lines of text high (View ▸ Zoom), larger when the page has room."""
        room = min(self.image_box.width() - 4 * self.fontMetrics().height(), self.height() // 2)
        return max(160, 11 * self.fontMetrics().height(), room)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self.seen.width() != self._image_side():
            self._fit_to_font()

    def _fit_to_font(self) -> None:
        side = self._image_side()
        self.seen.setFixedSize(side, side)
        big = QFont(self.font())
        big.setPointSizeF(big.pointSizeF() * 3)
        big.setBold(True)
        self.answer.setFont(big)
        if self._image is not None:
            self.seen.setPixmap(digit_pixmap(self._image if self._image.shape[-1] == 3 else self._image[..., 0],
                                             side))

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_to_font()

    def _classify(self) -> None:
        image = self._image
        if image is not None:
            self.seen.setPixmap(digit_pixmap(image if image.shape[-1] == 3 else image[..., 0], self._image_side()))
            self.caption.setText(self._source_text)
        if self._model is None or image is None:
            self.answer.setText("?")
            self.confidence.setText(NO_MODEL if self._model is None else "Open or drop an image to classify it.")
            self.bars.set_probabilities(None)
            self.probabilities = None
            return
        if tuple(image.shape) != tuple(self._model.input_shape):
            self.answer.setText("?")
            self.confidence.setText(f"The model's input is {'x'.join(map(str, self._model.input_shape))}: "
                                    "open the image again to read it at that size.")
            self.bars.set_probabilities(None)
            self.probabilities = None
            return
        outputs = self._model.activations(image[None].astype(np.float32))
        probs = np.asarray(list(outputs.values())[-1][0], float)
        top = int(np.argmax(probs))
        names = self._class_names if len(self._class_names) == probs.size else [str(i) for i in range(probs.size)]
        if self.bars.names != names:
            self.bars.set_class_names(names)
        self.answer.setText(names[top])
        order = np.argsort(probs)[::-1][:TOP]
        self.confidence.setText(f"{probs[top]:.0%} sure · then " + ", ".join(f"{names[i]} {probs[i]:.0%}"
                                                                           for i in order[1:3]))
        self.bars.set_probabilities(probs)
        self.probabilities = probs
        self.classified.emit(probs)
