"""The dataset browser: every class with its counts and a grid of its training images.

Opened from the Train tab (Dataset ▸ Browse…) and View ▸ Dataset Browser…; it shows the
data the Train tab has loaded (the project's "dataset" section) and follows it when the
choice changes. Each class is one heading ("circle: 180 training, 20 test images") over
one mosaic of its first images, built as a single pixmap (thousands of small widgets
would be slow to make and to scroll). The engine's report of what was read and skipped
sits at the top.

    browser = show_dataset_browser(train_tab)   # one per tab, raised when open already
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QDialog, QFrame, QLabel, QPlainTextEdit, QScrollArea, QVBoxLayout, QWidget)

from .dataset_source import arrays_summary, as_uint8, class_counts

ROWS = 2  # rows of examples per class
GAP = 2  # pixels between thumbnails


def class_mosaic(images: np.ndarray, columns: int, rows: int, side: int) -> np.ndarray:
    """Up to columns x rows images (N, h, w[, c]) tiled into one uint8 (H, W, 3) picture,
    each image scaled to side x side pixels (nearest: the pixels a network sees)."""
    images = as_uint8(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    count = min(len(images), columns * rows)
    used_rows = max(1, -(-count // columns))
    out = np.full((used_rows * (side + GAP), columns * (side + GAP), 3), 255, np.uint8)
    if count == 0:
        return out
    h, w = images.shape[1:3]
    ys = (np.arange(side) * h // side).astype(np.intp)
    xs = (np.arange(side) * w // side).astype(np.intp)
    for i in range(count):
        r, c = divmod(i, columns)
        out[r * (side + GAP):r * (side + GAP) + side, c * (side + GAP):c * (side + GAP) + side] = \
            images[i][ys][:, xs]
    return out


def rgb_pixmap(rgb: np.ndarray) -> QPixmap:
    data = np.ascontiguousarray(rgb)
    image = QImage(data.data, data.shape[1], data.shape[0], data.strides[0], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


class DatasetBrowser(QDialog):
    """A scrollable page of classes; set_data(arrays) fills it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Dataset browser")
        self.setObjectName("datasetBrowser")
        self._data = None
        self._columns = 0
        self.title = QLabel("Reading the dataset…")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setObjectName("datasetBrowserReport")
        self.report.hide()
        self.page = QWidget()
        self.page_layout = QVBoxLayout(self.page)
        self.page_layout.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.page)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.report)
        layout.addWidget(self.scroll, 1)
        self.class_labels: list[QLabel] = []  # per class: its heading with the counts
        self.mosaics: list[QLabel] = []
        self._relayout = QTimer(self)
        self._relayout.setSingleShot(True)
        self._relayout.setInterval(120)
        self._relayout.timeout.connect(self._on_relayout_timeout)
        line = self.fontMetrics().height()
        self.resize(70 * self.fontMetrics().averageCharWidth(), 40 * line)

    def thumb_side(self) -> int:
        """Thumbnail side from the font: readable at every View ▸ Zoom."""
        return max(40, 3 * self.fontMetrics().height())

    def set_data(self, data, name: str = "") -> None:
        """Show this dataset (the Train tab's DatasetArrays / FolderArrays)."""
        self._data = data
        counts_train = class_counts(data.y_train, len(data.class_names))
        counts_test = class_counts(data.y_test, len(data.class_names))
        heading = f"<b>{name}</b>: " if name else ""
        self.title.setText(f"<big>{heading}{arrays_summary(data)}</big><br>Each class with its number of "
                           "images and its first training images, as the network gets them (resized to its input).")
        lines = list(getattr(data, "report_lines", ()) or ())
        skipped = list(getattr(data, "skipped", ()) or ())
        if skipped:  # what was skipped first (the reason to look), then the engine's whole report
            lines = [f"{len(skipped)} file(s) skipped:"] + [f"  {line}" for line in skipped] + [""] + lines
        self.report.setPlainText("\n".join(lines))
        self.report.setVisible(bool(skipped))
        self.report.setMaximumHeight(6 * self.fontMetrics().height())
        while self.page_layout.count():
            item = self.page_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.class_labels, self.mosaics = [], []
        for index, class_name in enumerate(data.class_names):
            head = QLabel(f"<b>{class_name}</b>: {counts_train[index]:,} training, {counts_test[index]:,} test images")
            mosaic = QLabel()
            mosaic.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            self.page_layout.addWidget(head)
            self.page_layout.addWidget(mosaic)
            self.class_labels.append(head)
            self.mosaics.append(mosaic)
        self._columns = 0
        self._fill_mosaics()

    def _fit_columns(self) -> int:
        width = self.scroll.viewport().width() - 2 * self.page_layout.contentsMargins().left()
        return max(4, width // (self.thumb_side() + GAP))

    def _fill_mosaics(self) -> None:
        data = self._data
        if data is None:
            return
        columns = self._fit_columns()
        if columns == self._columns:
            return
        self._columns = columns
        side = self.thumb_side()
        labels = np.asarray(data.y_train)
        for index, mosaic in enumerate(self.mosaics):
            chosen = np.flatnonzero(labels == index)[:columns * ROWS]
            mosaic.setPixmap(rgb_pixmap(class_mosaic(data.x_train[chosen], columns, ROWS, side)))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._relayout.start()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self._relayout.start()

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._columns = 0
            self._relayout.start()

    def _on_relayout_timeout(self) -> None:
        self._fill_mosaics()


def show_dataset_browser(train_tab) -> DatasetBrowser:
    """Open (or raise) the browser of the Train tab's dataset; it follows the tab's data."""
    browser = getattr(train_tab, "dataset_browser", None)
    if browser is None:
        browser = train_tab.dataset_browser = DatasetBrowser(train_tab.window())
        train_tab.dataset_loaded.connect(browser_follower(browser, train_tab))
    data = train_tab.request_dataset()
    if data is not None:
        browser.set_data(data, train_tab.controls.dataset.label())
    browser.show()
    browser.raise_()
    return browser


def browser_follower(browser: DatasetBrowser, train_tab):
    """A slot that refreshes the browser with newly loaded data (weak: the tab is not kept alive)."""
    import weakref

    tab = weakref.ref(train_tab)

    def follow(data) -> None:
        owner = tab()
        if owner is not None:
            browser.set_data(data, owner.controls.dataset.label())

    return follow
