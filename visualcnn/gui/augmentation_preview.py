"""A strip of augmented training images under the Build tab's pipeline: what the Random*
layers (RandomTranslation, RandomRotation, RandomZoom, RandomFlip, RandomContrast) will
show the network while it trains, redrawn whenever their settings change.

The layers at the start of the pipeline that augment are applied in order, each with
its own `preview(x, seed)` (engine/layers/training_only.py: the training forward with a
generator of its own, so nothing about a run changes). The images are the first
training images of the dataset the Train tab has loaded, one per class where it can.
Hidden when the pipeline has no augmentation layer.

    strip = AugmentationPreview()
    strip.bind(document, train_tab)   # follows the document's layers and the tab's data
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from .dataset_browser import class_mosaic, rgb_pixmap

COUNT = 10  # images in the strip when its width is not known yet
MAX_COUNT = 32
REFRESH_MS = 150  # settings typed in the inspector: redraw once they pause


def augmentation_layers(layers) -> list:
    """The augmentation layers the input goes through first (until the first other layer)."""
    chain = []
    for layer in layers:
        if getattr(layer, "family", "") != "augmentation":
            break
        chain.append(layer)
    return chain


def has_augmentation(layers) -> bool:
    return any(getattr(layer, "family", "") == "augmentation" for layer in layers)


def sample_images(x: np.ndarray, y: np.ndarray, count: int = COUNT) -> np.ndarray:
    """count training images, one per class in turn (the first of each), as float32."""
    y = np.asarray(y)
    chosen: list[int] = []
    classes = np.unique(y[: 50 * count]) if len(y) else []
    firsts = [np.flatnonzero(y == c)[:count] for c in classes]
    for round_ in range(count):
        for indices in firsts:
            if round_ < len(indices) and len(chosen) < count:
                chosen.append(int(indices[round_]))
    return np.asarray(x[sorted(chosen)], np.float32)


def augment(layers, images: np.ndarray, seed: int) -> np.ndarray:
    """images through the chain of augmentation layers, as training would pass them on."""
    out = images
    for step, layer in enumerate(layers):
        out = layer.preview(out, seed=seed + 7919 * step)
    return np.clip(out, 0.0, 1.0)


class AugmentationPreview(QGroupBox):
    """The originals over their augmented versions; "New random draw" re-rolls."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Augmentation preview: what the Random layers show the network while it trains", parent)
        self.setObjectName("augmentationPreview")
        self._document = None
        self._train_tab = None
        self._seed = 0
        self._signature = None
        self.originals = QLabel()
        self.augmented = QLabel()
        self.augmented.setObjectName("augmentedStrip")
        for label in (self.originals, self.augmented):
            label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            # the strip takes the width it is given (then holds as many images as fit), never forces it
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #555;")
        self.reroll = QPushButton("New random draw")
        self.reroll.setToolTip("The same layers with new random numbers: every batch of a run gets a different draw")
        self.reroll.clicked.connect(self._on_reroll_clicked)
        grid = QVBoxLayout()
        for caption, label in (("original", self.originals), ("augmented", self.augmented)):
            row = QHBoxLayout()
            text = QLabel(caption)
            text.setMinimumWidth(self.fontMetrics().horizontalAdvance("augmented  "))
            row.addWidget(text)
            row.addWidget(label, 1)
            grid.addLayout(row)
        side = QVBoxLayout()
        side.addWidget(self.note, 1)
        side.addWidget(self.reroll, 0, Qt.AlignmentFlag.AlignBottom)
        self.body = QWidget()  # folded away by unticking the title (a short screen needs the pipeline's room)
        body_layout = QHBoxLayout(self.body)
        body_layout.setContentsMargins(0, 0, 0, 0)
        body_layout.addLayout(grid, 3)
        body_layout.addLayout(side, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.body)
        self.setCheckable(True)
        self.setChecked(True)
        self.setToolTip("Untick to fold the preview away")
        self.toggled.connect(self._on_toggled)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self.hide()

    def bind(self, document, train_tab) -> None:
        """Follow the document's layers and the Train tab's dataset."""
        self._document, self._train_tab = document, train_tab
        document.report_updated.connect(self._on_document_report_updated)
        train_tab.dataset_loaded.connect(self._on_train_tab_dataset_loaded)
        self._on_document_report_updated(None)

    def thumb_side(self) -> int:
        return max(36, int(2.8 * self.fontMetrics().height()))

    def refresh(self, force: bool = False) -> None:
        """Redraw the strip if the augmentation layers, the data or the draw changed."""
        document = self._document
        if document is None:
            return
        chain = augmentation_layers(document.layers)
        visible = has_augmentation(document.layers)
        self.setVisible(visible)
        if not visible:
            return
        if not self.isChecked():
            return  # folded: nothing to draw
        data = self._train_tab.request_dataset() if self._train_tab is not None else None
        shape = tuple(document.input_shape)
        count = self.fitting_count()
        signature = (tuple((layer.class_name, repr(layer.config)) for layer in chain), id(data), shape, self._seed,
                     self.thumb_side(), count)
        if signature == self._signature and not force:
            return
        self._signature = signature
        if not chain:
            self._clear("Put the Random layers first, right after the input, to preview them here "
                        "(they augment the images the network is given).")
            return
        if data is None:
            self._clear("Reading the training images…")
            return
        if tuple(data.x_train.shape[1:]) != shape:
            image = "x".join(map(str, data.x_train.shape[1:]))
            self._clear(f"The dataset's images are {image} but the model's input is {'x'.join(map(str, shape))}: "
                        "change one of them to preview the augmentation.")
            return
        images = sample_images(data.x_train, data.y_train, count)
        try:
            augmented = augment(chain, images, self._seed)
        except Exception as exc:  # noqa: BLE001 - a layer with a setting it refuses: say so, keep the window
            self._clear(f"No preview: {exc}")
            return
        side = self.thumb_side()
        self.originals.setPixmap(rgb_pixmap(class_mosaic(images, len(images), 1, side)))
        self.augmented.setPixmap(rgb_pixmap(class_mosaic(augmented, len(images), 1, side)))
        names = ", ".join(layer.name for layer in chain)
        self.note.setText(f"Through {names}, with new random numbers every time; when predicting they "
                          "pass images unchanged.")

    def fitting_count(self) -> int:
        """As many images as the strip's width holds (a wide screen shows more of them)."""
        width = self.augmented.width()
        if width <= 0 or not self.augmented.isVisible():
            return COUNT
        from .dataset_browser import GAP

        return max(4, min(MAX_COUNT, width // (self.thumb_side() + GAP)))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._timer.start()

    def _clear(self, text: str) -> None:
        self.originals.clear()
        self.augmented.clear()
        self.note.setText(text)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._timer.start()

    def _on_document_report_updated(self, _report) -> None:
        self._timer.start()

    def _on_train_tab_dataset_loaded(self, _data) -> None:
        self._timer.start()

    def _on_toggled(self, shown: bool) -> None:
        self.body.setVisible(shown)
        if shown:
            self.refresh(force=True)

    def _on_reroll_clicked(self) -> None:
        self._seed += 1
        self.refresh()
