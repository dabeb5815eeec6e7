"""The learned space (issue 13 item 5): a 2-D map of one layer's activations for the first N
test digits (visualcnn.engine.explain.embed), coloured by label, with the drawn digit on it.

PCA or t-SNE, computed in the background (gui/explain_worker.py's runner; t-SNE itself in a
child process, engine/explain/tsne_process.py, so the window never freezes while openTSNE
imports scikit-learn). Hovering a point shows its image and label; the drawn digit is a star
that moves when it is redrawn (Embedding.place, also in the background).

New trained weights (the end of a run, loaded weights) recompute the map by themselves, with
the same layer, method and count, so the student sees the clusters move: the old map stays
on screen marked "updating…" until the new one arrives (a job already running is replaced).
A hidden or closed window only marks its map stale and recomputes when it is shown again;
so does a window during a run, whose snapshots would restart the map every few batches: it
follows when the run ends. Recompute stays for asking by hand.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QEvent, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox, QVBoxLayout,
                               QWidget)

from PySide6.QtCore import QSize

from .draw_tab import copy_model, grey_pixmap
from .explain_worker import ExplainRunner
from .window_fit import initial_window_size

MAP, PLACE = "map", "place"
METHOD_NAMES = (("tsne", "t-SNE"), ("pca", "PCA"))
# ten colours told apart also by most colour-blind students (Tableau 10)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
NO_MODEL = "Train or load a model first (the Draw tab's model is used)."
HOVER_PIXELS = 8  # how near the mouse must be to a point to show it
IMAGE_SIDE = 112
NEIGHBOURS = 10  # the star's nearest test images named beside the map


def _test_digits(n: int):
    """The first n MNIST test images as the model sees them, their labels and the class names."""
    from ..engine.datasets import class_names, load_mnist

    _, (x, y) = load_mnist()
    return (x[:n, :, :, None] / 255.0).astype(np.float32), y[:n].astype(np.int64), class_names("mnist")


def _map_job(model, layer: str, method: str, n: int, seed: int):
    def job(progress, cancel):
        from ..engine.explain import embed

        x, y, names = _test_digits(n)
        result = embed(model, x, y, layer, method=method, seed=seed, progress=progress, cancel=cancel,
                       separate_process=method == "tsne")
        return None if result is None else (result, x, names)
    return job


def _place_job(embedding, digit):
    return lambda progress, cancel: embedding.place(digit)


def legend_html(entries) -> str:
    """(name, colour) pairs as one coloured dot and name a line."""
    rows = "".join(f'<tr><td style="color:{colour}; font-size:large">&#9679;</td><td>&nbsp;{name}</td></tr>'
                   for name, colour in entries)
    return f"<b>true label</b><table cellspacing=0>{rows}</table>"


def _same_weights(a, b) -> bool:
    if a is None or b is None:
        return a is b
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(wa, wb))


class EmbeddingWindow(QWidget):
    """The learned-space window: set_source(model copy, digit), then compute()."""

    shown = Signal()  # a finished map is on screen
    placed = Signal()  # the drawn digit's star has moved

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("The learned space: a map of a layer's activations")
        self.runner = ExplainRunner(self)
        self.model = None  # the Draw tab's model (a copy) that the next map uses
        self.digit = None
        self.embedding = None  # the engine's Embedding on screen
        self.images = None  # the mapped test images, for hovering
        self.class_names: tuple = ()
        self.stale = False
        self.digit_point = None  # where the drawn digit landed
        self.source = None  # () -> (model copy, digit): re-read when the window comes to the front
        self.training = False  # a run is training: its snapshots only mark the map stale
        self._request = None  # (model, layer, method, count) of the map being computed
        self._shown_request = None  # ... and of the map on screen: what new weights recompute
        self._build()
        self.runner.progressed.connect(self._on_progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.busy_changed.connect(lambda _busy: self._show_idle())
        # a job cancelled while it still waited (for the last one's thread to end) changes no busy state
        self.runner.cancelled.connect(lambda _key: self._show_idle())
        self._show_idle()

    def _build(self) -> None:
        self.layer = QComboBox()
        self.layer.setToolTip("Whose activations are mapped: every test image becomes one point")
        self.method = QComboBox()
        for key, text in METHOD_NAMES:
            self.method.addItem(text, key)
        self.method.setToolTip("PCA: the two directions of largest spread (a straight projection).\n"
                               "t-SNE: keeps neighbours together (distances between clusters mean little)")
        self.count = QSpinBox()
        self.count.setRange(50, 10000)
        self.count.setSingleStep(500)
        self.count.setValue(2000)
        self.count.setSuffix(" test images")
        self.compute_button = QPushButton("Compute")
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.runner.cancel(MAP))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.status = QLabel()
        self.status.setWordWrap(True)

        controls = QHBoxLayout()
        for text, widget in (("Layer", self.layer), ("Method", self.method), ("Map", self.count)):
            controls.addWidget(QLabel(text))
            controls.addWidget(widget)
        controls.addWidget(self.compute_button)
        controls.addWidget(self.cancel_button)
        controls.addWidget(self.progress, 1)

        self.plot = pg.PlotWidget(background="w")
        self.plot.setAspectLocked(False)
        self.plot.hideButtons()
        self.plot.getPlotItem().hideAxis("left")
        self.plot.getPlotItem().hideAxis("bottom")
        self.scatters: list = []
        self.star = pg.ScatterPlotItem(size=26, symbol="star", pen=pg.mkPen("k", width=2),
                                       brush=pg.mkBrush(255, 215, 0))
        self.star.setZValue(10)
        self.star_label = pg.TextItem("your digit", color="k", anchor=(-0.15, 1.1), fill=pg.mkBrush(255, 255, 255, 200))
        self.star_label.setZValue(10)
        self.ring = pg.ScatterPlotItem(size=16, symbol="o", pen=pg.mkPen("k", width=2), brush=pg.mkBrush(None))
        self.ring.setZValue(9)
        for item in (self.star, self.star_label, self.ring):
            self.plot.addItem(item, ignoreBounds=True)
            item.setVisible(False)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)

        self.hover_image = QLabel()
        self.hover_image.setFixedSize(IMAGE_SIDE, IMAGE_SIDE)
        self.hover_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hover_image.setStyleSheet("background: black; color: #aaa")
        self.hover_text = QLabel("Hover over a point to see its image.")
        self.hover_text.setWordWrap(True)
        self.hover_text.setFixedWidth(IMAGE_SIDE + 40)
        # the legend beside the map, never over a cluster
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setToolTip("Each point is one test image, coloured by its true label")
        side = QVBoxLayout()
        side.addWidget(self.legend)
        side.addSpacing(12)
        side.addWidget(self.hover_image)
        side.addWidget(self.hover_text)
        side.addSpacing(12)
        self.digit_image = QLabel()
        self.digit_image.setFixedSize(IMAGE_SIDE, IMAGE_SIDE)
        self.digit_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.digit_image.setStyleSheet("background: black; color: #aaa")
        self.digit_text = QLabel()
        self.digit_text.setWordWrap(True)
        self.digit_text.setFixedWidth(IMAGE_SIDE + 40)
        side.addWidget(self.digit_image)
        side.addWidget(self.digit_text)
        side.addStretch(1)

        body = QHBoxLayout()
        body.addWidget(self.plot, 1)
        body.addLayout(side)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        layout.addLayout(body, 1)

    # --- inputs -------------------------------------------------------------------------

    def set_source(self, model, digit) -> None:
        """The Draw tab's model (a copy) and drawn digit: new weights make the map stale, a new
        digit moves the star."""
        weights_changed = not _same_weights(model, self.model)
        self.model = model
        if weights_changed:
            self._fill_layers()
            if self.embedding is not None:
                self.stale = not _same_weights(model, self.embedding.model)
                if self.stale:  # the star stays off an old map
                    self.digit_point = None
                    self._show_star()
        self.digit = None if digit is None else np.asarray(digit, np.float32).reshape(28, 28)
        if weights_changed and self.isVisible():
            self.follow_weights()
        self._place_digit()
        self._show_idle()

    def set_training(self, training: bool) -> None:
        """A run started or ended: at its end the map follows the trained weights (if shown)."""
        self.training = training
        if not training and self.isVisible():
            self.refresh()
            self.follow_weights()

    def follow_weights(self) -> bool:
        """Recompute the map (on screen or being computed) for the current weights, with its own
        layer, method and count, unless it already shows them, a run is training, or the map's
        layer is gone. True when a recompute was started."""
        if self.training or self.model is None:
            return False
        running = self.runner.has(MAP)
        request = self._request if running else self._shown_request
        if request is None or _same_weights(self.model, request[0]):
            return False
        if not running and not self.stale:
            return False
        _, layer, method, count = request
        if layer not in [item.name for item in self.model.layers]:
            return False  # a different model: the student chooses its layer and presses Compute
        self.layer.setCurrentText(layer)
        self.method.setCurrentIndex(self.method.findData(method))
        self.count.setValue(count)
        self.compute()
        return True

    def _fill_layers(self) -> None:
        current = self.layer.currentText()
        self.layer.blockSignals(True)
        self.layer.clear()
        if self.model is not None:
            names = [layer.name for layer in self.model.layers]
            self.layer.addItems(names)
            hidden = [layer.name for layer in self.model.layers[:-1] if layer.class_name != "Dropout"]
            default = current if current in names else (hidden[-1] if hidden else names[-1])
            self.layer.setCurrentText(default)
        self.layer.blockSignals(False)

    def compute(self) -> None:
        """Compute (or recompute) the map with the chosen layer, method and count; a map already
        running is replaced, the one on screen stays, marked updating, until the new one arrives."""
        if self.model is None:
            return
        what = (f"the {self.method.currentText()} map of {self.count.value()} test images "
                f"at layer '{self.layer.currentText()}'")
        self.status.setText(f"Updating {what} for the current weights… the map below is the old one until then."
                            if self.embedding is not None else f"Computing {what}…")
        self.progress.setValue(0)
        model = copy_model(self.model)
        self._request = (model, self.layer.currentText(), self.method.currentData(), self.count.value())
        self.runner.submit(MAP, _map_job(model, *self._request[1:], 0))
        self._show_idle()

    def stop(self, wait_ms: int = 3000) -> bool:
        """The window or the application is closing: end the background work and the t-SNE process."""
        done = self.runner.stop(wait_ms)
        if self.embedding is not None:
            self.embedding.close()
        return done

    def refresh(self) -> None:
        """Re-read the source: the Draw tab says nothing on new weights while nothing is drawn."""
        if self.source is not None:
            self.set_source(*self.source())

    def event(self, event) -> bool:  # noqa: D102 - Qt override
        if event.type() == QEvent.Type.WindowActivate:
            self.refresh()
        return super().event(event)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.follow_weights()  # weights that came while hidden

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.runner.cancel(MAP)
        super().closeEvent(event)

    # --- results ------------------------------------------------------------------------

    def _on_progress(self, key: str, done: int, total: int, _value) -> None:
        if key == MAP:
            self.progress.setRange(0, max(1, total))
            self.progress.setValue(done)

    def _on_finished(self, key: str, result) -> None:
        if key == PLACE:
            self.digit_point = None if result is None else np.asarray(result, np.float32).reshape(2)
            self._show_star()
            return
        if result is None:
            return
        embedding, images, names = result
        if self.embedding is not None:
            self.embedding.close()
        self.embedding, self.images, self.class_names = embedding, images, tuple(names)
        self._shown_request = self._request
        self.stale = not _same_weights(self.model, embedding.model)
        self._draw_map()
        self.digit_point = None
        self._show_star()
        self._place_digit()
        self.progress.setValue(0)
        self._show_idle()
        self.shown.emit()

    def _on_failed(self, key: str, message: str) -> None:
        self.status.setText(f"{'The map' if key == MAP else 'Placing your digit'} failed: {message}")

    def _draw_map(self) -> None:
        for item in self.scatters:
            self.plot.removeItem(item)
        self.scatters = []
        coords, labels = self.embedding.coords, self.embedding.labels
        for label in np.unique(labels):
            mask = labels == label
            name = self.class_name(int(label))
            colour = pg.mkColor(PALETTE[int(label) % len(PALETTE)])
            item = pg.ScatterPlotItem(coords[mask, 0], coords[mask, 1], size=6, pen=None,
                                      brush=pg.mkBrush(colour), name=name)
            item.label = int(label)
            self.plot.addItem(item)
            self.scatters.append(item)
        self.legend.setText(legend_html([(self.class_name(int(item.label)), PALETTE[item.label % len(PALETTE)])
                                         for item in self.scatters]))
        self.plot.getPlotItem().enableAutoRange()
        self.plot.getPlotItem().autoRange()

    def _place_digit(self) -> None:
        if self.embedding is None or self.digit is None or self.stale or self.runner.has(MAP):
            if self.digit is None:
                self.digit_point = None
                self._show_star()
            return
        self.runner.submit(PLACE, _place_job(self.embedding, self.digit.reshape(28, 28, 1)))

    def _show_star(self) -> None:
        visible = self.digit_point is not None and self.embedding is not None
        for item in (self.star, self.star_label):
            item.setVisible(visible)
        if self.digit is None:
            self.digit_image.clear()
            self.digit_text.setText("")
        else:
            self.digit_image.setPixmap(grey_pixmap(self.digit, IMAGE_SIDE))
            self.digit_text.setText(f"your digit (the star)\n{self.neighbours_text()}" if visible else
                                    "your digit: not on this map")
        if visible:
            x, y = (float(v) for v in self.digit_point)
            self.star.setData([x], [y])
            self.star_label.setPos(x, y)
            self.placed.emit()

    def _show_idle(self) -> None:
        running = self.runner.has(MAP)
        self.compute_button.setEnabled(self.model is not None and not running)
        self.compute_button.setText("Recompute" if self.embedding is not None else "Compute")
        self.cancel_button.setEnabled(running)
        self.layer.setEnabled(not running)
        self.method.setEnabled(not running)
        self.count.setEnabled(not running)
        self.plot.setTitle("updating…" if running and self.embedding is not None else None)
        if running:
            return
        if self.model is None:
            self.status.setText(NO_MODEL)
        elif self.embedding is None:
            self.status.setText("Choose a layer and a method, then Compute: each test image becomes a point, "
                                "coloured by its label.")
        elif self.stale:
            when = ("It follows when the run ends." if self.training else
                    "Recompute to see the new space." if self.isVisible() else "It follows when shown.")
            self.status.setText("The weights have changed since this map was made (training, or a new model). "
                                f"{when} Your digit is not placed on an old map.")
        else:
            e = self.embedding
            method = dict(METHOD_NAMES)[e.method]
            where = "" if self.digit is not None else " Draw a digit in the Draw tab to see where it lands."
            self.status.setText(f"{method} of layer '{e.layer}' ({e.features_shape[1]:,} values per image) for "
                                f"{len(e.coords):,} test images, {e.seconds:.1f} s.{where}")

    def neighbours_text(self, k: int = NEIGHBOURS) -> str:
        """What the star's nearest mapped test images are: where the digit landed, in words."""
        e = self.embedding
        nearest = np.argsort(((e.coords - self.digit_point) ** 2).sum(axis=1))[:k]
        counts = np.bincount(e.labels[nearest].astype(np.int64))
        order = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c]]
        return f"its {len(nearest)} nearest: " + ", ".join(f"{self.class_name(c)} ×{counts[c]}" for c in order)

    def class_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    # --- hovering -----------------------------------------------------------------------

    def point_near(self, scene_pos) -> int | None:
        """The index of the mapped image nearest scene_pos, if within HOVER_PIXELS."""
        if self.embedding is None:
            return None
        view = self.plot.getPlotItem().vb
        if not self.plot.sceneBoundingRect().contains(scene_pos):
            return None
        mapped = view.mapSceneToView(scene_pos)
        pixel = view.viewPixelSize()
        coords = self.embedding.coords
        dx = (coords[:, 0] - mapped.x()) / max(pixel[0], 1e-12)
        dy = (coords[:, 1] - mapped.y()) / max(pixel[1], 1e-12)
        distance = dx * dx + dy * dy
        best = int(np.argmin(distance))
        return best if distance[best] <= HOVER_PIXELS ** 2 else None

    def show_point(self, index: int | None) -> None:
        if index is None:
            self.ring.setVisible(False)
            return
        e = self.embedding
        name = self.class_name(int(e.labels[index]))
        self.hover_image.setPixmap(grey_pixmap(self.images[e.indices[index], :, :, 0], IMAGE_SIDE))
        self.hover_text.setText(f"test image {int(e.indices[index])}\nlabel: {name}")
        self.ring.setData([float(e.coords[index, 0])], [float(e.coords[index, 1])])
        self.ring.setVisible(True)

    def _on_mouse_moved(self, scene_pos) -> None:
        index = self.point_near(scene_pos)
        if index is not None:
            self.show_point(index)


def open_embedding(window):
    """Explain > The Learned Space…: one window per main window, following its Draw tab."""
    panel = getattr(window, "_embedding_window", None)
    if panel is None:
        panel = EmbeddingWindow(window)
        window._embedding_window = panel
        panel.source = window.draw_panel.explain_source
        panel.resize(initial_window_size(panel, QSize(1100, 720)))
        window.draw_panel.classified.connect(
            lambda _payload: panel.isVisible() and panel.set_source(*window.draw_panel.explain_source()))
        # new trained weights with nothing drawn: the Draw tab says nothing, the document does
        # (connected after the window's own handler, so the Draw tab already has them)
        window.document.weights_changed.connect(lambda: panel.isVisible() and panel.refresh())
        panel.training = bool(getattr(window, "locked", False))  # opened during a run
        window.train_panel.run_started.connect(lambda: panel.set_training(True))
        window.train_panel.run_finished.connect(lambda _model: panel.set_training(False))
        window.window_closed.connect(panel.stop)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(panel.stop)
    panel.refresh()
    panel.show()
    panel.raise_()
    panel.activateWindow()
    return panel


__all__ = ["EmbeddingWindow", "open_embedding"]
