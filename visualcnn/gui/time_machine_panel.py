"""The Train tab's time machine (issue 15 item 6): a slider over the moments a run kept
(engine/time_machine.py) that replays, at the chosen moment, the filters and the probe's
feature maps (in the Train tab's own panels), and in its own tab the confusion matrix, the
probe digit's probabilities and its saliency.

    machine = TimeMachine(train_tab)          # the tab's filters, maps and probe are replayed
    plan = machine.begin_run(model, prepared, data, fresh=True)  # before the worker starts
    TrainingRequest(..., moments=plan)        # the worker snapshots exactly those steps
    machine.offer(snapshot)                   # every TrainingSnapshot, in the GUI thread
    machine.end_run(model, prepared.run)      # the thread has ended: the slider wakes up

The moments are kept in the window's thread only; the worker hands over copies. The
confusion matrix of a moment is computed in the background (ExplainRunner: a separate
model with that moment's weights, serial kernels) and cached per moment; the probe (one
image) is quick enough to redo on the GUI thread when the slider moves. The slider works
between runs; during a run it fills up and waits.
"""

from __future__ import annotations

import weakref

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QSplitter,
                               QVBoxLayout, QWidget)

from ..engine.time_machine import (EVALUATION_IMAGES, Moment, SnapshotStore, evaluate_moment, probe_moment,
                                   weights_nbytes, weights_of)
from .draw_tab import ProbabilityBarsWidget, rgb_pixmap, saliency_rgb
from .explain_worker import ExplainRunner
from .panels.results import ConfusionMatrixWidget

EMPTY_HINT = ("Train a network: the time machine keeps its weights before training, during the first epoch "
              "and after every epoch, and this slider replays them.")
SLIDER_TIP = ("Drag to see the network at an earlier moment of training: the filters, the feature maps, and in "
              "the Time machine tab the confusion matrix and the probe's answer and saliency are those of that "
              "moment. The red line on the curves marks it.")


def round_up(value: float, digits: int = 2) -> float:
    """value rounded up to `digits` significant digits (0.5432 -> 0.55)."""
    step = 10.0 ** (np.floor(np.log10(value)) - (digits - 1))
    return float(np.ceil(value / step - 1e-9) * step)


class MomentMatrix(ConfusionMatrixWidget):
    """The confusion matrix of one moment (not clickable: no gallery behind it)."""

    def _apply_fonts(self) -> None:
        super()._apply_fonts()
        self.plot.setTitle("Confusion matrix at this moment", size=f"{self.font().pointSizeF() * 1.1:.1f}pt",
                           color="#333")


class TimeMachineBar(QWidget):
    """The slider strip above the Train tab's lower panels: one line (the curves above need
    the height on a 720-line projector); a second line only when memory thinned the moments."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setPageStep(1)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.setToolTip(SLIDER_TIP)
        self.moment = QLabel("")
        self.moment.setToolTip(EMPTY_HINT)
        self.latest = QPushButton("Latest")
        self.latest.setToolTip("Back to the last moment kept (the network as training left it)")
        self.usage = QLabel("")
        self.usage.setStyleSheet("color: #555;")
        self.usage.setWordWrap(True)
        self.usage.hide()
        title = QLabel("<b>Time machine</b>")
        title.setToolTip(EMPTY_HINT)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(title)
        top.addWidget(self.slider, 3)
        top.addWidget(self.moment, 2)
        top.addWidget(self.latest)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(1)
        layout.addLayout(top)
        layout.addWidget(self.usage)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)


class TimeMachineView(QWidget):
    """The "Time machine" tab: the moment's confusion matrix and the probe seen at that moment."""

    shown = Signal()  # the tab came into view: its confusion matrices are computed only then

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.summary = QLabel(EMPTY_HINT)
        self.summary.setWordWrap(True)
        self.matrix = MomentMatrix()
        self.digit_caption = QLabel("")
        self.digit_caption.setWordWrap(True)
        self.answer = QLabel("")
        self.answer.setWordWrap(True)
        self.saliency = QLabel()
        self.saliency.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.saliency.setStyleSheet("background: black; color: #aaa;")
        self.saliency.setWordWrap(True)
        self.bars = ProbabilityBarsWidget([str(i) for i in range(10)])
        self.bars.setMinimumHeight(120)
        probe = QGroupBox("The probe digit at this moment")
        column = QVBoxLayout(probe)
        row = QHBoxLayout()
        row.addWidget(self.saliency, 0, Qt.AlignmentFlag.AlignTop)
        words = QVBoxLayout()
        words.addWidget(self.answer)
        words.addWidget(self.digit_caption)
        words.addStretch(1)
        row.addLayout(words, 1)
        column.addLayout(row)
        column.addWidget(self.bars, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.matrix)
        split.addWidget(probe)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        self._fit_to_font()

    def _fit_to_font(self) -> None:
        side = max(112, 8 * self.fontMetrics().height())
        self.saliency.setFixedSize(side, side)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == event.Type.FontChange:
            self._fit_to_font()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.shown.emit()

    def set_class_names(self, names) -> None:
        names = [str(n) for n in names]
        self.matrix.set_class_names(names)
        if len(names) != len(self.bars._bars.opts["x"]):
            old = self.bars
            self.bars = ProbabilityBarsWidget(names)
            self.bars.setMinimumHeight(120)
            old.parentWidget().layout().replaceWidget(old, self.bars)
            old.deleteLater()
        else:
            self.bars.getAxis("bottom").setTicks([[(i, n) for i, n in enumerate(names)]])


class TimeMachine(QObject):
    """The moments of this session's runs and their replay in the Train tab."""

    moment_shown = Signal(object)  # the Moment now on screen

    def __init__(self, tab):
        super().__init__(tab)
        # The Train tab, whose filters, feature maps and probe picker are replayed. Weakly: the
        # tab keeps this object, and a strong reference back would be a cycle that only the
        # garbage collector frees, at any moment, even inside the tab's paint event.
        self._tab_ref = weakref.ref(tab)
        self.store = SnapshotStore()
        self.plan = None
        self.bar = TimeMachineBar()
        self.view = TimeMachineView()
        self.runner = ExplainRunner(self)
        self._structure: str | None = None  # the run's model as JSON: moments are replayed on copies
        self._batches = 0
        self._x_test = self._y_test = None
        self._test_total = 0
        self._class_names = [str(i) for i in range(10)]
        self._evaluations: dict = {}  # moment key -> MomentEvaluation (cached per moment)
        self._recording = False
        self._shown: Moment | None = None
        self._waiting: list = []  # moments whose confusion matrix is still to compute
        self._lines: list = []  # the moment's vertical line on the loss and accuracy curves
        self.bar.slider.valueChanged.connect(self._on_slider_value_changed)
        self.bar.latest.clicked.connect(self.show_latest)
        self.view.shown.connect(self._pump)
        self.runner.finished.connect(self._on_runner_finished)
        self.runner.failed.connect(self._on_runner_failed)
        tab.probe_picker.probe_changed.connect(self._on_probe_changed)
        self._refresh_bar()

    @property
    def _tab(self):
        return self._tab_ref()

    # --- a run ------------------------------------------------------------------------

    def begin_run(self, model, prepared, data, fresh: bool = True):
        """Plan the run's moments before it starts (the model is built, no thread runs yet).
        Returns the SnapshotPlan for the worker, or None when nothing can be kept."""
        self.runner.cancel()
        self._waiting = []
        self._watch_document()
        snapshot_bytes = weights_nbytes(model)
        first = prepared.initial_epoch + 1
        last = prepared.initial_epoch + prepared.config.epochs
        structure = model.to_json()
        resume = not fresh
        if not fresh and structure != self._structure:
            fresh = True  # another network: a new timeline
        if fresh:
            self._evaluations = {}
        self._structure = structure
        self._batches = prepared.steps_per_epoch
        # only the images a moment is evaluated on: not the whole test set alive after the run
        self._x_test = np.array(prepared.x_test[:EVALUATION_IMAGES])
        self._y_test = np.array(data.y_test[:EVALUATION_IMAGES])
        self._test_total = len(data.y_test)
        self._class_names = [str(n) for n in data.class_names]
        self.view.set_class_names(self._class_names)
        # the start is a moment only when the run begins from untrained weights (not a continuation,
        # even one that opens a new timeline because the project was reopened)
        self.plan = self.store.plan_run(self._batches, first, last, snapshot_bytes, fresh=fresh,
                                        with_start=not resume)
        self._evaluations = {k: v for k, v in self._evaluations.items() if self.store.find(k) is not None}
        if self.plan.wants(0, 0):
            self.store.add(Moment(0, 0, self._batches, weights_of(model)))
        self._recording = True
        self._shown = None
        self._mark_curves(None)
        self._tab.filters.set_fixed_levels(None)  # live filters scale themselves
        self._refresh_bar()
        return self.plan if self.plan.points else None

    def _watch_document(self) -> None:
        """Once bound: another project or preset starts an empty timeline; an edit of the
        pipeline is said on the bar (the slider still replays the last run's network)."""
        document = getattr(self._tab, "_document", None)
        if document is None or document is getattr(self, "_document", None):
            return
        self._document = document
        document.pipeline_reset.connect(self.clear)
        document.report_updated.connect(self._on_document_report_updated)

    def _on_document_report_updated(self, _report) -> None:
        if self._recording or not self.store.moments:
            return
        try:
            now = self._tab._model_source().to_json()
        except Exception:  # noqa: BLE001 - a pipeline with an error is a changed one
            now = None
        if now != self._structure:
            self._shown = None
            self._mark_curves(None)
            self._tab.filters.set_fixed_levels(None)
            self.bar.moment.setText("<b>the pipeline changed</b>: the slider replays the last run's network")

    def clear(self) -> None:
        """Forget every moment (another project): the slider waits for the next run."""
        if self._recording:
            return
        self.runner.cancel()
        self.store.clear()
        self.plan, self._shown, self._waiting, self._evaluations = None, None, [], {}
        self._mark_curves(None)
        self._tab.filters.set_fixed_levels(None)
        self._refresh_bar()
        self.view.summary.setText(EMPTY_HINT)
        self.view.matrix.set_matrix(np.zeros((self.view.matrix.classes,) * 2, np.int64))
        self.view.answer.setText("")
        self.view.digit_caption.setText("")
        self.view.saliency.clear()
        self.view.bars.set_probabilities(None)

    def offer(self, snapshot) -> None:
        """A TrainingSnapshot from the worker: kept when it is one of the planned moments."""
        if self._recording and self.plan is not None and self.plan.wants(snapshot.epoch, snapshot.batch) \
                and self.store.find((snapshot.epoch, snapshot.batch)) is None:
            self.store.add(Moment(snapshot.epoch, snapshot.batch, self._batches, snapshot.weights))
            self._refresh_bar()

    def end_run(self, model=None, run=None, failed: bool = False) -> None:
        """The run ended (its thread too). A run stopped between planned moments keeps where it
        stopped as one more moment, so Latest is the network training left. After a failure
        (divergence) nothing is added and the tab keeps showing the last good weights."""
        self._recording = False
        position = getattr(run, "position", None)
        if failed:
            self._refresh_bar()
            if self.store.moments:
                self.bar.moment.setText("The run failed: the slider replays the moments kept before it did.")
            return
        if model is not None and getattr(model, "built", False) and position is not None and self.store.moments \
                and position.batch > 0:
            stopped = Moment(position.epoch + 1, position.batch, self._batches, weights_of(model))
            if self.store.find(stopped.key) is None and self.store.nbytes + stopped.nbytes <= self.store.cap_bytes:
                self.store.add(stopped)
        self._refresh_bar()
        if self.store.moments:
            self.show_latest()
            for moment in reversed(self.store.moments):  # evaluated in the background, newest first
                self._evaluate(moment)

    # --- the slider -------------------------------------------------------------------

    def _refresh_bar(self) -> None:
        count = len(self.store.moments)
        bar = self.bar
        bar.slider.blockSignals(True)
        bar.slider.setRange(0, max(0, count - 1))
        bar.slider.blockSignals(False)
        usable = count > 0 and not self._recording
        bar.slider.setEnabled(usable)
        bar.latest.setEnabled(usable)
        note = self.plan.note if self.plan is not None and self.plan.note else ""
        bar.usage.setText(note)
        bar.usage.setVisible(bool(note))
        usage = f"Kept: {self.store.usage_text()}." if count else ""
        bar.slider.setToolTip(f"{SLIDER_TIP} {usage}".strip())
        bar.moment.setToolTip(f"{EMPTY_HINT} {usage}".strip())
        if self._recording:
            bar.moment.setText(f"recording: {count} moment{'s' if count != 1 else ''} so far")
        elif not count:
            bar.moment.setText("train to record moments")

    def show_latest(self) -> None:
        if self.store.moments:
            last = len(self.store.moments) - 1
            if self.bar.slider.value() != last:
                self.bar.slider.setValue(last)
            else:
                self.show_moment(last)

    def _on_slider_value_changed(self, index: int) -> None:
        if not self._recording:
            self.show_moment(index)

    def show_moment(self, index: int) -> Moment | None:
        """Replay moment `index` (0 = the first kept) in the filters, the maps and this tab."""
        if not 0 <= index < len(self.store.moments) or self._structure is None:
            return None
        moment = self.store.moments[index]
        self._shown = moment
        last = index == len(self.store.moments) - 1
        name = ("before training" if moment.epoch == 0 else f"after epoch {moment.epoch}" if moment.is_epoch_end
                else f"epoch {moment.epoch}, batch {moment.batch:,}")
        self.bar.moment.setText(f"<b>{name}</b> "
                                f"(step {moment.step:,}, {index + 1} of {len(self.store.moments)}"
                                f"{', latest' if last else ''})")
        self._tab.filters.set_fixed_levels(self._filter_levels())  # one colour scale for every moment
        self._tab.filters.set_weights(moment.weights)
        self._mark_curves(moment)
        self._show_probe(moment)
        evaluation = self._evaluations.get(moment.key)
        if evaluation is not None:
            self._show_evaluation(moment, evaluation)
        else:
            self.view.summary.setText(f"<big>{moment.label.capitalize()}:</big> evaluating on the first "
                                      f"{len(self._y_test):,} test images…")
            self._evaluate(moment)
        self.moment_shown.emit(moment)
        return moment

    def _filter_levels(self) -> dict:
        """Each conv layer's colour range over all the moments (its largest |weight|, rounded up):
        with one scale, filters that grow stronger look stronger."""
        levels = {}
        for moment in self.store.moments:
            for name, arrays in moment.weights.items():
                if arrays and getattr(arrays[0], "ndim", 0) == 4 and arrays[0].size:
                    levels[name] = max(levels.get(name, 0.0), float(np.abs(arrays[0]).max()))
        # two significant digits, rounded up: a 'nice' 1.0 for weights of at most 0.55 left the
        # filters pale at every moment
        return {name: round_up(level) for name, level in levels.items() if level > 0}

    def _mark_curves(self, moment: Moment | None) -> None:
        """A vertical line on the loss and accuracy curves where the moment shown was taken
        (their x axis is in epochs: 1.5 is half-way through epoch 2); None hides it."""
        curves = getattr(self._tab, "curves", None)
        if curves is None:
            return
        if not self._lines:
            for plot in (curves.loss_plot, curves.accuracy_plot):
                line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#d62728", width=2))
                line.setZValue(20)
                plot.addItem(line, ignoreBounds=True)
                self._lines.append(line)
        for line in self._lines:
            line.setVisible(moment is not None)
            if moment is not None:
                line.setPos(0.0 if moment.epoch == 0 else moment.epoch - 1 + moment.batch / moment.batches)

    def _on_probe_changed(self, _image) -> None:
        if self._shown is not None and not self._recording:
            self._show_probe(self._shown)

    def _show_probe(self, moment: Moment) -> None:
        tab = self._tab
        image = tab.probe_picker.probe()
        shape = tuple(tab._model.input_shape) if getattr(tab, "_model", None) is not None else None
        if image is None or shape is None or np.asarray(image).size != int(np.prod(shape)):
            self.view.saliency.setText("no probe image")
            self.view.answer.setText("")
            self.view.bars.set_probabilities(None)
            return
        seen = probe_moment(self._structure, moment, image)
        if tab._spatial:
            tab._show_maps(seen.activations, first_only=True)
        probabilities = seen.probabilities
        top = int(np.argmax(probabilities))
        name = self._class_names[top] if top < len(self._class_names) else str(top)
        label = tab.probe_picker.probe_label()
        truth = "" if label is None else f" (it is a {self._class_names[label]})"
        self.view.answer.setText(f"<big>Says <b>{name}</b>, {probabilities[top]:.0%} sure</big>{truth}")
        what = "Your drawn digit" if label is None else "The probe test digit"
        self.view.digit_caption.setText(f"{what}; yellow: the pixels that most change the top score "
                                        f"(saliency).")
        self.view.digit_caption.setToolTip("Pick the probe in the Probe image box; pin a drawn digit with the "
                                           "Draw tab's 'Use as training probe'.")
        grey = np.asarray(image, np.float32)
        grey = grey if grey.ndim == 2 else grey.reshape(shape).mean(axis=-1)
        side = self.view.saliency.width()
        self.view.saliency.setPixmap(rgb_pixmap(saliency_rgb(grey, seen.saliency.reshape(grey.shape)), side))
        self.view.bars.set_probabilities(probabilities)

    # --- the confusion matrix, in the background ------------------------------------------

    def _evaluate(self, moment: Moment) -> None:
        """Queue a moment's evaluation; one job at a time, the moment on screen first."""
        if moment.key not in self._evaluations and moment not in self._waiting:
            self._waiting.append(moment)
        self._pump()

    def _pump(self) -> None:
        """Start the next evaluation: only while the Time machine tab is in view (no work for
        a student who never looks, and none started while the window closes)."""
        if self.runner.is_busy() or self._structure is None or not self.view.isVisible():
            return
        self._waiting = [m for m in self._waiting if m.key not in self._evaluations
                         and self.store.find(m.key) is m]
        if not self._waiting:
            return
        moment = self._shown if self._shown in self._waiting else self._waiting[0]
        self._waiting.remove(moment)
        structure, x, y, classes = self._structure, self._x_test, self._y_test, len(self._class_names)
        total = self._test_total

        def job(_progress, cancel):
            return moment.key, evaluate_moment(structure, moment, x, y, classes, total=total, cancel=cancel)

        self.runner.submit(f"moment {moment.epoch},{moment.batch}", job)

    def _on_runner_finished(self, _key: str, result) -> None:
        key, evaluation = result
        if evaluation is None:  # cancelled between batches
            return
        self._evaluations[key] = evaluation
        if self._shown is not None and self._shown.key == key:
            self._show_evaluation(self._shown, evaluation)
        self._pump()

    def _on_runner_failed(self, _key: str, message: str) -> None:
        self.view.summary.setText(f"The confusion matrix at this moment could not be computed: {message}")
        self._pump()

    def evaluation(self, moment: Moment):
        """The cached evaluation of a moment, or None (not computed yet)."""
        return self._evaluations.get(moment.key)

    def _show_evaluation(self, moment: Moment, evaluation) -> None:
        right = int(np.trace(evaluation.matrix))
        self.view.summary.setText(f"<big><b>{moment.label.capitalize()}: accuracy {evaluation.accuracy:.1%}</b> "
                                  f"on {evaluation.subset_text}</big> ({right:,} right, "
                                  f"{evaluation.count - right:,} wrong) · loss {evaluation.loss:.3f}")
        self.view.matrix.set_matrix(evaluation.matrix)

    def shutdown(self) -> None:
        self.runner.stop()
