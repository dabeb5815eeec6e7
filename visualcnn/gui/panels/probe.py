"""Which image the feature maps are computed for: a test digit picked by number, or a
digit drawn on the canvas and pinned here (set_drawn)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QSpinBox, QWidget

from .results import digit_pixmap

THUMB = 64


class ProbePickerPanel(QWidget):
    """probe_changed(image (28, 28) float32) whenever the shown image changes."""

    probe_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._images: np.ndarray | None = None  # (N, 28, 28) test images in [0, 1]
        self._labels: np.ndarray | None = None
        self._class_names = [str(i) for i in range(10)]
        self._drawn: np.ndarray | None = None
        self.index = QSpinBox()
        self.index.setRange(0, 0)
        self.index.setToolTip("Which test image the feature maps show")
        self.index.valueChanged.connect(self._on_index_changed)
        self.thumbnail = QLabel()
        self.thumbnail.setFixedSize(self._thumb(), self._thumb())
        self.thumbnail.setStyleSheet("background: black; border: 1px solid #888;")
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.use_test = QPushButton("Use test digit")
        self.use_test.setToolTip("Unpin the drawn digit and go back to the test digit")
        self.use_test.clicked.connect(self._on_use_test_clicked)
        self.use_test.hide()
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Feature maps of test image #"), 0, 0)  # digits, clothes or shapes
        layout.addWidget(self.index, 0, 1)
        layout.addWidget(self.thumbnail, 1, 0, 2, 1, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.caption, 1, 1)
        layout.addWidget(self.use_test, 2, 1)

    def set_test_images(self, images: np.ndarray, labels: np.ndarray, class_names=None) -> None:
        self._images, self._labels = images, labels
        if class_names is not None:
            self._class_names = [str(n) for n in class_names]
        self.index.blockSignals(True)
        self.index.setRange(0, len(images) - 1)
        self.index.blockSignals(False)
        self._refresh()

    def set_drawn(self, image: np.ndarray | None) -> None:
        """Pin a drawn (28, 28) digit as the probe; None goes back to the test digit."""
        self._drawn = None if image is None else np.array(image, np.float32).reshape(28, 28)
        self._refresh()

    def probe(self) -> np.ndarray | None:
        if self._drawn is not None:
            return self._drawn
        if self._images is None:
            return None
        image = np.asarray(self._images[self.index.value()], np.float32)
        return image.reshape(28, 28) if image.size == 784 else image  # colour / other sizes: as read

    def probe_label(self) -> int | None:
        """The test digit's label (None for a drawn digit or before the test set is loaded)."""
        if self._drawn is not None or self._labels is None:
            return None
        return int(self._labels[self.index.value()])

    def _refresh(self) -> None:
        image = self.probe()
        pinned = self._drawn is not None
        self.use_test.setVisible(pinned)
        self.index.setEnabled(not pinned)
        if image is not None:
            self.thumbnail.setPixmap(digit_pixmap(image, self._thumb()))
        if pinned:
            self.caption.setText("<b>Your drawn digit</b> (pinned from the Draw tab)")
        elif self._labels is not None:
            label = self._class_names[int(self._labels[self.index.value()])]
            self.caption.setText(f"test image #{self.index.value()}, labelled <b>{label}</b>")
        self.probe_changed.emit(image)

    def _thumb(self) -> int:
        """The thumbnail's side: at least THUMB px, larger with the font (View ▸ Zoom)."""
        return max(THUMB, round(4.6 * self.fontMetrics().height()))

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self.thumbnail.setFixedSize(self._thumb(), self._thumb())
            image = self.probe()
            if image is not None:
                self.thumbnail.setPixmap(digit_pixmap(image, self._thumb()))

    def _on_index_changed(self, _value: int) -> None:
        self._refresh()

    def _on_use_test_clicked(self) -> None:
        self.set_drawn(None)
