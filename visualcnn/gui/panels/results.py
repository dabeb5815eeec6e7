"""After a run: test accuracy, a clickable confusion matrix and a gallery of test digits.

The confusion matrix is one ImageItem (10x10 counts; colour on a log scale so the few
mistakes are not lost next to the big diagonal) plus 100 TextItems for the counts, all
created once. Clicking a cell fills the gallery with those test images and their top-3
probabilities; "All mistakes" goes back to every misclassified digit, most confident
mistakes first (the instructive ones).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListView, QListWidget, QListWidgetItem, QPushButton,
                               QSplitter, QVBoxLayout, QWidget)

GALLERY_LIMIT = 300  # thumbnails shown at once; enough to browse, cheap to build
THUMB = 56


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int = 10) -> np.ndarray:
    """(classes, classes) int counts: row = true class, column = predicted class."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def top_k(probabilities: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
    order = np.argsort(probabilities)[::-1][:k]
    return [(int(c), float(probabilities[c])) for c in order]


def digit_pixmap(image: np.ndarray, size: int = THUMB) -> QPixmap:
    """A (28, 28) image in [0, 1] (or uint8) as a scaled grey pixmap: white ink on black, as MNIST.
    An (h, w, 3) image (an image folder in colour) is shown in its colours."""
    image = np.asarray(image)
    colour = image.ndim == 3 and image.shape[2] == 3
    if image.ndim == 3 and not colour:
        image = image[:, :, 0]
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    data = np.ascontiguousarray(image)
    qimage = QImage(data.data, data.shape[1], data.shape[0], data.strides[0],
                    QImage.Format.Format_RGB888 if colour else QImage.Format.Format_Grayscale8)
    return QPixmap.fromImage(qimage.copy()).scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                                   Qt.TransformationMode.FastTransformation)


class ConfusionMatrixWidget(pg.GraphicsLayoutWidget):
    """Rows: true class; columns: predicted class. cell_clicked(true, predicted)."""

    cell_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None, classes: int = 10):
        super().__init__(parent)
        self.setBackground("w")
        self.classes = classes
        self.matrix = np.zeros((classes, classes), np.int64)
        self.plot = self.addPlot()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)  # square cells, widened to fit the counts (_fit_cells)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setTextPen("#222")
            self.plot.getAxis(axis).setPen("#666")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(pg.colormap.get("CET-L12"))  # white to deep blue
        self.plot.addItem(self.image)
        self.texts = []
        self.selection = pg.QtWidgets.QGraphicsRectItem(0, 0, 1, 1)
        self.selection.setPen(pg.mkPen("#ff7f0e", width=3))
        self.selection.setVisible(False)
        self.plot.addItem(self.selection)
        self._make_cells(classes)
        self.set_class_names([str(i) for i in range(classes)])
        self.scene().sigMouseClicked.connect(self._on_scene_mouse_clicked)
        self.plot.vb.sigResized.connect(self._on_view_resized)
        self._apply_fonts()

    def _make_cells(self, classes: int) -> None:
        """One count text per cell, created once per number of classes (a dataset's own)."""
        for row in self.texts:
            for text in row:
                self.plot.removeItem(text)
        self.classes = classes
        self.matrix = np.zeros((classes, classes), np.int64)
        self.texts = []
        for r in range(classes):
            row = []
            for c in range(classes):
                text = pg.TextItem("", anchor=(0.5, 0.5), color="#000")
                text.setPos(c + 0.5, r + 0.5)
                self.plot.addItem(text)
                row.append(text)
            self.texts.append(row)
        self._count_font = None  # the new texts get theirs in _fit_cells
        self.plot.setXRange(0, classes, padding=0.02)
        self.plot.setYRange(0, classes, padding=0.02)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # View ▸ Zoom
            self._apply_fonts()

    def _apply_fonts(self) -> None:
        """Title, axis labels, ticks and counts sized from the widget's (zoomed) font."""
        size = self.font().pointSizeF()
        tick = QFont(self.font())
        self.plot.setTitle("Confusion matrix (click a cell)", size=f"{size * 1.1:.1f}pt", color="#333")
        self.plot.setLabel("bottom", "predicted class", **{"font-size": f"{size:.1f}pt"})
        self.plot.setLabel("left", "true class", **{"font-size": f"{size:.1f}pt"})
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).setStyle(tickFont=tick)
        self._count_font = None
        self._fit_cells()

    def set_class_names(self, names) -> None:
        names = [str(name) for name in names]
        if len(names) != self.classes:
            self._make_cells(len(names))
            self._apply_fonts()
        self.class_names = names
        self._fit_ticks()

    def _fit_ticks(self) -> None:
        """Class names under the columns only as long as a column is wide ("cir…", or the class
        numbers, with the numbers then also on the rows): long names overlapped each other."""
        names = getattr(self, "class_names", None)
        if not names:
            return
        (x0, x1), _ = self.plot.vb.viewRange()
        cell = self.plot.vb.width() / max(x1 - x0, 1e-9) if self.plot.vb.width() > 0 else 1e9
        metrics = QFontMetrics(self.plot.getAxis("bottom").style.get("tickFont") or self.font())
        room = cell - metrics.horizontalAdvance(" ")
        columns, rows = names, names
        if max(metrics.horizontalAdvance(n) for n in names) > room:
            columns = None
            for k in range(max(len(n) for n in names) - 1, 1, -1):
                short = [n if len(n) <= k else n[:k] + "…" for n in names]
                if len(set(short)) == len(short) and max(metrics.horizontalAdvance(n) for n in short) <= room:
                    columns = short
                    break
            if columns is None:  # not even two letters fit: numbers, explained on the rows
                columns = [str(i) for i in range(len(names))]
                rows = [f"{name} ({i})" for i, name in enumerate(names)]
        self.plot.getAxis("bottom").setTicks([[(i + 0.5, name) for i, name in enumerate(columns)]])
        self.plot.getAxis("left").setTicks([[(i + 0.5, name) for i, name in enumerate(rows)]])
        self.column_labels = columns

    def _on_view_resized(self, _view=None) -> None:
        self._fit_cells()
        self._fit_ticks()

    # Cells may be up to this many times wider than tall: under the Train tab's curves on a
    # 720-line projector the matrix gets about 190 pixels of height, 19 per row, and square
    # cells that narrow cut "1131" to "113" (the widest count of an MNIST test set).
    MAX_CELL_RATIO = 2.0
    # The counts shrink to fit their cells, down to this size; smaller is unreadable.
    MIN_COUNT_POINTS = 6.0

    def _fit_cells(self) -> None:
        """Cells as wide as the room allows (up to MAX_CELL_RATIO), then the counts' font as
        large as the widget's (x0.9) but no larger than the widest count fits a cell."""
        vb = self.plot.vb
        if vb.width() > 0 and vb.height() > 0:
            ratio = min(max(vb.width() / vb.height(), 1.0), self.MAX_CELL_RATIO)
            if abs(ratio - (vb.state["aspectLocked"] or 0)) > 0.01:
                self.plot.setAspectLocked(True, ratio=ratio)
        (x0, x1), (y0, y1) = vb.viewRange()
        cell_w = vb.width() / max(x1 - x0, 1e-9)
        cell_h = vb.height() / max(y1 - y0, 1e-9)
        widest = str(int(np.abs(self.matrix).max())) if self.matrix.size else "0"
        font = QFont(self.font())
        size = self.font().pointSizeF() * 0.9
        while size > self.MIN_COUNT_POINTS and cell_w > 0:
            font.setPointSizeF(size)
            metrics = QFontMetrics(font)
            if metrics.horizontalAdvance(widest + " ") <= cell_w and metrics.ascent() + metrics.descent() <= cell_h:
                break
            size -= 0.5
        font.setPointSizeF(max(size, self.MIN_COUNT_POINTS))
        if self._count_font is None or font.pointSizeF() != self._count_font.pointSizeF():
            self._count_font = font
            for row in self.texts:
                for text in row:
                    text.setFont(font)

    def set_matrix(self, matrix: np.ndarray) -> None:
        self.matrix = np.asarray(matrix)
        shade = np.log1p(self.matrix.astype(np.float32))
        top = float(shade.max()) or 1.0
        self.image.setImage(shade, autoLevels=False, levels=(0.0, top))
        self.image.setRect(0, 0, self.classes, self.classes)
        for r in range(self.classes):
            for c in range(self.classes):
                count = int(self.matrix[r, c])
                text = self.texts[r][c]
                text.setText(str(count) if count else "")
                text.setColor("#fff" if shade[r, c] > 0.6 * top else "#000")
        self.selection.setVisible(False)
        self._fit_cells()  # the widest count may have changed

    def select(self, true_class: int, predicted: int) -> None:
        self.selection.setRect(predicted, true_class, 1, 1)
        self.selection.setVisible(True)

    def clear_selection(self) -> None:
        self.selection.setVisible(False)

    def _on_scene_mouse_clicked(self, event) -> None:
        point = self.plot.vb.mapSceneToView(event.scenePos())
        c, r = int(np.floor(point.x())), int(np.floor(point.y()))
        if 0 <= r < self.classes and 0 <= c < self.classes and self.matrix.any():
            self.select(r, c)
            self.cell_clicked.emit(r, c)


class DigitGalleryWidget(QListWidget):
    """Thumbnails of test digits, each with its true class and top-3 predictions."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._widest_name = "7"  # the longest class name: each cell fits "name: 100%"
        self.setViewMode(QListView.ViewMode.IconMode)
        self._fit_grid()
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setWordWrap(True)
        self.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.indices: list[int] = []

    def _fit_grid(self) -> None:
        """Thumbnail and cell sizes from the font: four lines of text ('true 7', three guesses)
        must fit under each digit at any zoom (fixed pixels cut them to '100...')."""
        fm = self.fontMetrics()
        thumb = max(THUMB, 4 * fm.height())
        self.setIconSize(QSize(thumb, thumb))
        widest = fm.horizontalAdvance(f"true {self._widest_name}: 100%")
        self.setGridSize(QSize(max(thumb, widest) + fm.horizontalAdvance("mm"),
                               thumb + 4 * fm.height() + fm.height() // 2 + 8))

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._fit_grid()

    def show_digits(self, indices, images, probabilities, labels, class_names) -> None:
        self.clear()
        widest = max((str(n) for n in class_names), key=self.fontMetrics().horizontalAdvance, default="7")
        if widest != self._widest_name:
            self._widest_name = widest
            self._fit_grid()
        self.indices = [int(i) for i in indices[:GALLERY_LIMIT]]
        for index in self.indices:
            guesses = top_k(probabilities[index])
            true = int(labels[index])
            lines = [f"true {class_names[true]}"] + [f"{class_names[c]}: {p:.0%}" for c, p in guesses]
            item = QListWidgetItem(QIcon(digit_pixmap(images[index], self.iconSize().width())), "\n".join(lines))
            item.setToolTip(f"test image #{index}: true class {class_names[true]}\n"
                            + "\n".join(f"{class_names[c]}: {p:.1%}" for c, p in guesses))
            if guesses[0][0] != true:
                item.setForeground(QColor("#b00020"))
            self.addItem(item)


class ResultsPanel(QWidget):
    """Test accuracy, the confusion matrix and the gallery, filled by set_results()."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._images = None
        self._probabilities = None
        self._labels = None
        self._predicted = None
        self._class_names = [str(i) for i in range(10)]
        self.summary = QLabel("Test results appear here after a run that finishes all its epochs.")
        self.summary.setWordWrap(True)
        self.matrix = ConfusionMatrixWidget()
        self.matrix.cell_clicked.connect(self._on_matrix_cell_clicked)
        self.gallery_title = QLabel("")
        self.gallery_title.setWordWrap(True)
        self.all_mistakes = QPushButton("All mistakes")
        self.all_mistakes.setToolTip("Show every misclassified test digit, most confident mistakes first")
        self.all_mistakes.clicked.connect(self._on_all_mistakes_clicked)
        self.gallery = DigitGalleryWidget()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(self.gallery_title, 1)
        head.addWidget(self.all_mistakes)
        right_layout.addLayout(head)
        right_layout.addWidget(self.gallery, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.matrix)
        split.addWidget(right)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 5)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        self.all_mistakes.setEnabled(False)

    def set_results(self, results, images: np.ndarray, class_names=None) -> None:
        """results: TestResults (loss, accuracy, probabilities (N, 10), labels (N,));
        images: the (N, 28, 28[, 1]) test images in the same order."""
        self._images = images
        self._probabilities = np.asarray(results.probabilities)
        self._labels = np.asarray(results.labels).astype(np.int64)
        self._predicted = self._probabilities.argmax(axis=1)
        if class_names is not None:
            self._class_names = [str(n) for n in class_names]
            self.matrix.set_class_names(self._class_names)
        n = self._labels.size
        wrong = int((self._predicted != self._labels).sum())
        # <big>, not a point size: it follows View ▸ Zoom
        self.summary.setText(f"<big><b>Test accuracy {results.accuracy:.2%}</b> on {n:,} test images "
                             f"({n - wrong:,} right, {wrong:,} wrong) · test loss {results.loss:.4f}</big>")
        self.matrix.set_matrix(confusion_matrix(self._labels, self._predicted, len(self._class_names)))
        self.all_mistakes.setEnabled(True)
        # The thumbnails are the slow part: built in a later event-loop turn, so the
        # accuracy and the matrix appear first and the window never stalls on both at once.
        QTimer.singleShot(0, self.show_mistakes)

    def clear(self) -> None:
        self._probabilities = None
        self.summary.setText("Test results appear here after a run that finishes all its epochs.")
        self.matrix.set_matrix(np.zeros((self.matrix.classes, self.matrix.classes), np.int64))
        self.gallery.clear()
        self.gallery_title.setText("")
        self.all_mistakes.setEnabled(False)

    def show_mistakes(self) -> None:
        if self._probabilities is None:
            return
        wrong = np.flatnonzero(self._predicted != self._labels)
        confidence = self._probabilities[wrong, self._predicted[wrong]]
        wrong = wrong[np.argsort(-confidence, kind="stable")]
        shown = min(wrong.size, GALLERY_LIMIT)
        things = "digits" if self._class_names == [str(i) for i in range(10)] else "images"
        self.gallery_title.setText(f"<b>Misclassified test {things}</b>: {wrong.size:,}"
                                   + (f" (the {shown} most confident mistakes shown)" if wrong.size > shown else "")
                                   + ". Red: the top guess was wrong.")
        self.matrix.clear_selection()
        self._fill(wrong)

    def show_cell(self, true_class: int, predicted: int) -> None:
        if self._probabilities is None:
            return
        chosen = np.flatnonzero((self._labels == true_class) & (self._predicted == predicted))
        confidence = self._probabilities[chosen, predicted]
        chosen = chosen[np.argsort(-confidence, kind="stable")]
        names = self._class_names
        verdict = "correct" if true_class == predicted else "mistakes"
        self.gallery_title.setText(f"<b>True {names[true_class]}, predicted {names[predicted]}</b> ({verdict}): "
                                   f"{chosen.size:,} test images"
                                   + (f", first {GALLERY_LIMIT} shown" if chosen.size > GALLERY_LIMIT else ""))
        self.matrix.select(true_class, predicted)
        self._fill(chosen)

    def _fill(self, indices: np.ndarray) -> None:
        self.gallery.show_digits(indices, self._images, self._probabilities, self._labels, self._class_names)

    def _on_matrix_cell_clicked(self, true_class: int, predicted: int) -> None:
        self.show_cell(true_class, predicted)

    def _on_all_mistakes_clicked(self) -> None:
        self.show_mistakes()
