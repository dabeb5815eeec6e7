"""Why did it answer that? (issue 13 item 3): for the drawn digit or a test digit, the maps
that show which pixels the answer came from.

- Grad-CAM on a chosen conv layer (where that layer found the evidence for the class);
- occlusion sensitivity with its patch size and stride (hide a patch, watch the class's
  probability drop), computed in the background with a progress bar and Cancel;
- the plain saliency beside SmoothGrad (the same gradient averaged over noisy copies);
- a sanity check: the same map on a randomly re-initialised copy of the network, both shown
  with their rank correlation and one sentence saying what it means.

Every map is the engine's (visualcnn.engine.explain), computed by gui/explain_worker.py off
the GUI thread on this window's own copy of the model, never the Draw tab's or a training
run's. The window only draws what comes back.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QRadioButton, QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from .explain_worker import ExplainRunner
from .heatmap_view import DIVERGING, SEQUENTIAL, MapView

SMOOTHGRAD_COPIES, SMOOTHGRAD_NOISE, SEED = 25, 0.15, 0
MISTAKE_CHUNK = 250  # test digits per prediction while looking for a wrong answer
GRADCAM_CAPTION = "where this layer found the evidence for the class (bright = most)"
NO_MODEL = "Train or load a model, then draw a digit in the Draw tab."

_TEST_DIGITS: tuple | None = None


def mnist_test_digits() -> tuple[np.ndarray, np.ndarray]:
    """MNIST's test images (N, 28, 28) in [0, 1] and their labels, read once."""
    global _TEST_DIGITS
    if _TEST_DIGITS is None:
        from ..engine.datasets import load_mnist

        _, (images, labels) = load_mnist()
        _TEST_DIGITS = ((images / 255.0).astype(np.float32), np.asarray(labels, np.int64))
    return _TEST_DIGITS


def sanity_sentence(rho: float) -> str:
    """What the rank correlation between the trained and the randomised map means, in one sentence."""
    if not np.isfinite(rho):
        return ("One of the two maps is all zero (nothing there speaks for the class), so there is no ranking to "
                "compare: try another layer or the SmoothGrad check.")
    if rho >= 0.5:
        return (f"Careful: the map hardly changed when everything the network learned was wiped out (ρ = {rho:.2f}); "
                "it shows the digit's shape more than the network's reasons.")
    if rho >= 0.2:
        return (f"The map changed partly (ρ = {rho:.2f}): some of it comes from the image itself, some from what "
                "the network learned.")
    return (f"The map changed completely on the random network (ρ = {rho:.2f}): it depends on what the network "
            "learned, as an explanation should.")


def _maps_job(model, x, layer_name: str, class_index):
    def job(progress, cancel):
        from ..engine.explain import gradcam, smoothgrad

        probabilities = np.asarray(model.predict(x[None], serial=True)[0], np.float64)
        cls = int(np.argmax(probabilities)) if class_index is None else int(class_index)
        cam = gradcam(model, x, layer_name, cls, serial=True) if layer_name else None
        progress(1, 2)
        smooth = smoothgrad(model, x, cls, n=SMOOTHGRAD_COPIES, noise=SMOOTHGRAD_NOISE, seed=SEED, serial=True)
        progress(2, 2)
        return {"probabilities": probabilities, "class": cls, "gradcam": cam, "smoothgrad": smooth}
    return job


def _occlusion_job(model, x, class_index, patch: int, stride: int):
    def job(progress, cancel):
        from ..engine.explain import occlusion

        return occlusion(model, x, class_index, patch=patch, stride=stride, serial=True, progress=progress,
                         cancel=cancel)
    return job


def _sanity_job(model, x, class_index, method: str, layer_name: str):
    def job(progress, cancel):
        from ..engine.explain import sanity_check

        options = {"layer_name": layer_name} if method == "gradcam" else \
            {"n": SMOOTHGRAD_COPIES, "noise": SMOOTHGRAD_NOISE, "seed": SEED}
        return sanity_check(model, x, method, class_index, mode="all", **options)
    return job


def _mistake_job(model, start: int):
    """The first test digit from `start` on (wrapping round) that the model answers wrongly, or None."""
    def job(progress, cancel):
        images, labels = mnist_test_digits()
        order = np.roll(np.arange(len(images)), -start)
        for done in range(0, len(order), MISTAKE_CHUNK):
            if cancel.is_set():
                return None
            chunk = order[done:done + MISTAKE_CHUNK]
            answers = model.predict(images[chunk][..., None], batch_size=MISTAKE_CHUNK, serial=True).argmax(axis=-1)
            wrong = np.flatnonzero(answers != labels[chunk])
            progress(done + len(chunk), len(order))
            if len(wrong):
                return int(chunk[wrong[0]])
        return None
    return job


class ExplainMapsWindow(QWidget):
    """The "Why did it answer that?" window: set_source(model, drawn digit) from the Draw tab."""

    maps_shown = Signal()  # Grad-CAM and SmoothGrad of the current image are on screen
    occlusion_shown = Signal()
    sanity_shown = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Why did it answer that?")
        self.runner = ExplainRunner(self)
        self.model = None  # this window's own copy
        self.drawn: np.ndarray | None = None
        self.result: dict = {}  # the engine's results now on screen: "maps", "occlusion", "sanity"
        self._build()
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.progressed.connect(self._on_progress)
        self.runner.cancelled.connect(self._on_cancelled)
        self._show_state()

    # --- building -------------------------------------------------------------------

    def _build(self) -> None:
        self.drawn_button = QRadioButton("the drawn digit")
        self.test_button = QRadioButton("test digit no.")
        self.drawn_button.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.drawn_button)
        group.addButton(self.test_button)
        self.test_index = QSpinBox()
        self.test_index.setRange(0, 9999)
        self.test_index.setToolTip("Which of the 10,000 MNIST test digits")
        self.next_mistake = QPushButton("Next mistake")
        self.next_mistake.setToolTip("The next test digit the network answers wrongly")
        self.class_choice = QComboBox()
        self.class_choice.addItem("its answer", None)
        for k in range(10):
            self.class_choice.addItem(str(k), k)
        self.class_choice.setToolTip("Explain the network's answer, or why it might have said another digit")
        self.answer = QLabel()
        self.answer.setWordWrap(True)
        top = QHBoxLayout()
        for widget in (QLabel("Explain"), self.drawn_button, self.test_button, self.test_index, self.next_mistake,
                       QLabel("  class:"), self.class_choice):
            top.addWidget(widget)
        top.addWidget(self.answer, 1)

        self.input_view = MapView("The image", "what the network gets (28x28)")
        self.layer_choice = QComboBox()
        self.layer_choice.setToolTip("The conv layer whose feature maps Grad-CAM weighs")
        self.gradcam_view = MapView("Grad-CAM", GRADCAM_CAPTION)
        cam_box = QGroupBox("Grad-CAM")
        cam = QVBoxLayout(cam_box)
        row = QHBoxLayout()
        row.addWidget(QLabel("layer"))
        row.addWidget(self.layer_choice, 1)
        cam.addLayout(row)
        cam.addWidget(self.gradcam_view)

        self.patch = QSpinBox()
        self.patch.setRange(1, 28)
        self.patch.setValue(6)  # a pen stroke is ~3 px wide: a smaller patch hides too little
        self.patch.setSuffix(" px")
        self.patch.setToolTip("Side of the grey square hidden over the image")
        self.stride = QSpinBox()
        self.stride.setRange(1, 28)
        self.stride.setValue(2)
        self.stride.setSuffix(" px")
        self.stride.setToolTip("How far the square moves between two tries")
        self.occlusion_progress = QProgressBar()
        self.occlusion_progress.setTextVisible(True)
        self.occlusion_cancel = QPushButton("Cancel")
        self.occlusion_run = QPushButton("Recompute")
        self.occlusion_view = MapView("Occlusion", "drop in the class's probability when a patch hides the pixel "
                                      "(red = hiding hurts the answer)")
        occ_box = QGroupBox("Occlusion sensitivity")
        occ = QVBoxLayout(occ_box)
        row = QHBoxLayout()
        for widget in (QLabel("patch"), self.patch, QLabel("stride"), self.stride):
            row.addWidget(widget)
        row.addStretch(1)
        occ.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.occlusion_progress, 1)
        row.addWidget(self.occlusion_cancel)
        row.addWidget(self.occlusion_run)
        occ.addLayout(row)
        occ.addWidget(self.occlusion_view)

        self.saliency_view = MapView("Saliency", "|gradient| of the class score per pixel")
        self.smooth_view = MapView("SmoothGrad", f"the gradient averaged over {SMOOTHGRAD_COPIES} noisy copies")
        grad_box = QGroupBox("Gradients")
        grads = QHBoxLayout(grad_box)
        grads.addWidget(self.saliency_view)
        grads.addWidget(self.smooth_view)

        self.sanity_method = QComboBox()
        self.sanity_method.addItem("Grad-CAM", "gradcam")
        self.sanity_method.addItem("SmoothGrad", "smoothgrad")
        self.sanity_run = QPushButton("Sanity check")
        self.sanity_run.setToolTip("Repeat the map on a copy of the network whose weights are random again")
        self.sanity_trained = MapView("Trained network", "")
        self.sanity_random = MapView("Random network", "same layers, weights re-initialised")
        self.sanity_text = QLabel("Does the map show what the network learned, or just the digit? "
                                  "Press Sanity check.")
        self.sanity_text.setWordWrap(True)
        self.sanity_text.setMinimumHeight(3 * self.fontMetrics().lineSpacing() + 4)
        sanity_box = QGroupBox("Sanity check")
        sanity = QVBoxLayout(sanity_box)
        row = QHBoxLayout()
        row.addWidget(self.sanity_method)
        row.addWidget(self.sanity_run)
        row.addStretch(1)
        sanity.addLayout(row)
        pair = QHBoxLayout()
        pair.addWidget(self.sanity_trained)
        pair.addWidget(self.sanity_random)
        sanity.addLayout(pair)
        sanity.addWidget(self.sanity_text)

        self.status = QLabel()
        self.status.setWordWrap(True)
        grid = QGridLayout()
        grid.addWidget(self.input_view, 0, 0, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(cam_box, 0, 1)
        grid.addWidget(occ_box, 0, 2)
        grid.addWidget(grad_box, 1, 0, 1, 2)
        grid.addWidget(sanity_box, 1, 2)
        page = QWidget()
        column = QVBoxLayout(page)
        column.addLayout(top)
        column.addWidget(self.status)
        column.addLayout(grid)
        column.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(page)
        QVBoxLayout(self).addWidget(scroll)

        self.drawn_button.toggled.connect(lambda _checked: self.recompute())
        self.test_index.valueChanged.connect(self._on_test_index_changed)
        self.class_choice.currentIndexChanged.connect(lambda _i: self.recompute())
        self.layer_choice.currentIndexChanged.connect(self._on_layer_changed)
        self.patch.valueChanged.connect(lambda _v: self.recompute_occlusion())
        self.stride.valueChanged.connect(lambda _v: self.recompute_occlusion())
        self.occlusion_run.clicked.connect(self.recompute_occlusion)
        self.occlusion_cancel.clicked.connect(lambda: self.runner.cancel("occlusion"))
        self.sanity_run.clicked.connect(self.run_sanity_check)
        self.next_mistake.clicked.connect(self.find_next_mistake)
        self.sanity_method.currentIndexChanged.connect(lambda _i: self._clear_sanity())

    # --- inputs ---------------------------------------------------------------------

    def set_source(self, model, drawn: np.ndarray | None) -> None:
        """A new model copy (or None) and the drawn (28, 28) digit (or None); recompute."""
        self.model = model
        self.drawn = None if drawn is None else np.asarray(drawn, np.float32)
        if model is not None:
            from ..engine.explain.gradcam import conv_layers

            current = self.layer_choice.currentText()
            names = conv_layers(model)
            self.layer_choice.blockSignals(True)
            self.layer_choice.clear()
            self.layer_choice.addItems(names)
            # the last conv layer by default: the most abstract evidence still laid out in space
            convs = [row.layer.name for row in model.analyse().rows if "Conv" in row.layer.class_name]
            default = convs[-1] if convs else (names[-1] if names else "")
            self.layer_choice.setCurrentIndex(names.index(current if current in names else default) if names else -1)
            self.layer_choice.blockSignals(False)
        self.recompute()

    def set_layer(self, name: str) -> None:
        self.layer_choice.setCurrentText(name)

    def use_test_digit(self, index: int) -> None:
        self.test_index.blockSignals(True)
        self.test_index.setValue(index)
        self.test_index.blockSignals(False)
        if self.test_button.isChecked():
            self.recompute()
        else:
            self.test_button.setChecked(True)  # recompute() follows the toggle

    def _on_test_index_changed(self, _value: int) -> None:
        """Choosing a number means explaining that test digit."""
        if self.test_button.isChecked():
            self.recompute()
        else:
            self.test_button.setChecked(True)  # toggles the drawn digit off: recompute() follows

    def _on_layer_changed(self, _index: int) -> None:
        self._clear_sanity()  # a Grad-CAM check was of the previous layer
        self._recompute_maps()

    def find_next_mistake(self) -> None:
        """Look (in the background) for the next test digit the network gets wrong, then explain it."""
        if self.model is None:
            return
        start = self.test_index.value() + 1 if self.test_button.isChecked() else 0
        self.next_mistake.setEnabled(False)
        self.status.setText("Looking for a test digit the network gets wrong…")
        self.runner.submit("mistake", _mistake_job(self.model, start % len(mnist_test_digits()[0])))

    def image(self) -> np.ndarray | None:
        """The (28, 28) image explained now."""
        if self.test_button.isChecked():
            return mnist_test_digits()[0][self.test_index.value()]
        return self.drawn

    def _x(self) -> np.ndarray | None:
        image = self.image()
        if self.model is None or image is None:
            return None
        return np.asarray(image, np.float32).reshape(self.model.input_shape)

    # --- computing --------------------------------------------------------------------

    def recompute(self) -> None:
        """Every map of the current image (the sanity check only when asked)."""
        self._clear_sanity()
        self._show_state()
        if self._x() is None:
            return
        self._recompute_maps()
        self.recompute_occlusion()

    def _recompute_maps(self) -> None:
        x = self._x()
        if x is None:
            return
        for view in (self.gradcam_view, self.saliency_view, self.smooth_view):
            view.show_text("computing…")
        self.runner.submit("maps", _maps_job(self.model, x, self.layer_choice.currentText(),
                                             self.class_choice.currentData()))

    def recompute_occlusion(self) -> None:
        x = self._x()
        if x is None:
            return
        self.result.pop("occlusion", None)
        self.occlusion_view.show_text("computing…")
        self.occlusion_progress.setValue(0)
        self.occlusion_cancel.setEnabled(True)
        self.runner.submit("occlusion", _occlusion_job(self.model, x, self.class_choice.currentData(),
                                                       self.patch.value(), self.stride.value()))

    def run_sanity_check(self) -> None:
        x = self._x()
        if x is None:
            return
        self._clear_sanity()
        for view in (self.sanity_trained, self.sanity_random):
            view.show_text("computing…")
        self.sanity_text.setText("Re-initialising a copy of the network and repeating the map…")
        self.runner.submit("sanity", _sanity_job(self.model, x, self.class_choice.currentData(),
                                                 self.sanity_method.currentData(), self.layer_choice.currentText()))

    def _clear_sanity(self) -> None:
        self.runner.cancel("sanity")
        self.result.pop("sanity", None)
        for view in (self.sanity_trained, self.sanity_random):
            view.show_text("")
        self.sanity_text.setText("Does the map show what the network learned, or just the digit? "
                                 "Press Sanity check.")

    def stop(self, wait_ms: int = 3000) -> bool:
        """Cancel every computation and wait for the running one to end (the window goes away)."""
        return self.runner.stop(wait_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.runner.cancel()  # nothing computes for a window nobody sees; the thread ends by itself
        super().closeEvent(event)

    # --- results ----------------------------------------------------------------------

    def _show_state(self) -> None:
        image = self.image() if (self.drawn is not None or self.test_button.isChecked()) else None
        if image is not None:
            self.input_view.show_image(image)
        else:
            self.input_view.show_text("nothing drawn yet")
        if self.test_button.isChecked():
            label = int(mnist_test_digits()[1][self.test_index.value()])
            self.input_view.set_caption(f"test digit no. {self.test_index.value()}, labelled {label}")
        else:
            self.input_view.set_caption("your drawing, as the network gets it (28x28)")
        if self._x() is None:
            self.status.setText(NO_MODEL if self.model is None else "Draw a digit in the Draw tab, or choose a "
                                                                    "test digit.")
            for view in (self.gradcam_view, self.occlusion_view, self.saliency_view, self.smooth_view):
                view.show_text("")
            self.answer.setText("")
        else:
            self.status.setText("")
        enabled = self._x() is not None
        for widget in (self.sanity_run, self.occlusion_run, self.occlusion_cancel):
            widget.setEnabled(enabled)
        self.next_mistake.setEnabled(self.model is not None and not self.runner.has("mistake"))

    def _on_finished(self, key: str, result) -> None:
        image = self.image()
        if key == "maps":
            self.result["maps"] = result
            probabilities, cls = result["probabilities"], result["class"]
            top = int(np.argmax(probabilities))
            self.answer.setText(f"The network answers <b>{top}</b> ({probabilities[top]:.0%} sure); "
                                f"explaining class <b>{cls}</b> ({probabilities[cls]:.0%}).")
            cam = result["gradcam"]
            if cam is None:
                self.gradcam_view.show_text("this model has no conv layer")
            else:
                self.gradcam_view.show_map(image, cam.heatmap[0], SEQUENTIAL)
                self.gradcam_view.set_title(f"Grad-CAM of {cam.layer_name}")
                self.gradcam_view.set_caption(
                    f"nothing in {cam.layer_name} speaks for class {cls}: every weighted sum is below zero"
                    if not np.any(cam.heatmap[0]) else GRADCAM_CAPTION)
            smooth = result["smoothgrad"]
            self.saliency_view.show_map(image, smooth.saliency_map[0], SEQUENTIAL)
            self.smooth_view.show_map(image, smooth.smooth_map[0], SEQUENTIAL)
            self.maps_shown.emit()
        elif key == "occlusion":
            self.result["occlusion"] = result
            self.occlusion_view.show_map(image, result.heatmap[0], DIVERGING)
            largest = float(np.max(np.abs(result.heatmap[0])))
            caption = (f"p({result.classes[0]}) = {result.base[0]:.2f}; red where hiding the pixel under a "
                       f"{result.patch[0]} px patch lowers it, blue where that raises it")
            if largest < 0.01:  # a sure network: the map is the noise of tiny differences, say so
                caption = (f"no {result.patch[0]} px patch changes p({result.classes[0]}) = {result.base[0]:.2f} "
                           f"by even 0.01: the rest is enough. Try a larger patch.")
            self.occlusion_view.set_caption(caption)
            self.occlusion_progress.setValue(self.occlusion_progress.maximum())
            self.occlusion_cancel.setEnabled(False)
            self.occlusion_shown.emit()
        elif key == "mistake":
            self.next_mistake.setEnabled(True)
            if result is None:
                self.status.setText("The network answers every test digit correctly.")
            else:
                self.status.setText("")
                self.use_test_digit(result)
        elif key == "sanity":
            self.result["sanity"] = result
            step = result.steps[0]
            rho = float(step.spearman[0])
            self.sanity_trained.show_map(image, result.maps[0], SEQUENTIAL)
            self.sanity_random.show_map(image, step.maps[0], SEQUENTIAL)
            name = self.sanity_method.currentText()
            self.sanity_trained.set_title(f"{name}, trained network")
            self.sanity_random.set_title(f"{name}, random network")
            text = "flat map, no ranking" if not np.isfinite(rho) else f"{rho:.2f}"
            self.sanity_trained.set_caption(f"rank correlation ρ = {text}")
            self.sanity_text.setText(sanity_sentence(rho))
            self.sanity_shown.emit()

    def _on_progress(self, key: str, done: int, total: int, _value) -> None:
        if key == "occlusion":
            self.occlusion_progress.setMaximum(max(1, total))
            self.occlusion_progress.setValue(done)

    def _on_cancelled(self, key: str) -> None:
        if key == "mistake" and not self.runner.has("mistake"):
            self.next_mistake.setEnabled(self.model is not None)
        if key == "occlusion" and not self.runner.has("occlusion"):  # not replaced by a newer one
            self.occlusion_view.show_text("cancelled: press Recompute")
            self.occlusion_progress.setValue(0)
            self.occlusion_cancel.setEnabled(False)

    def _on_failed(self, key: str, message: str) -> None:
        if key == "mistake":
            self.next_mistake.setEnabled(True)
            self.status.setText(message)
            return
        views = {"maps": (self.gradcam_view, self.saliency_view, self.smooth_view), "occlusion": (self.occlusion_view,),
                 "sanity": (self.sanity_trained, self.sanity_random)}[key]
        for view in views:
            view.show_text(message)
        if key == "occlusion":
            self.occlusion_cancel.setEnabled(False)


__all__ = ["ExplainMapsWindow", "sanity_sentence", "mnist_test_digits"]
