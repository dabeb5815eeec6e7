"""The Train tab's schedule and callback settings: how the learning rate decays (step,
exponential), EarlyStopping (patience, restore the best weights), ReduceLROnPlateau, what
they watch, and the "Continue training" button.

The widgets only mirror TrainingConfig fields (engine/training_config.py); the engine
builds the real callbacks and schedules from those settings (engine/callbacks.py
recipe_callbacks, engine/schedules.py recipe_schedule), the same ones `visualcnn train`
uses. Like the other settings they belong to the document: TrainingControlsPanel.config()
asks `apply_to` for these fields, set_config() shows the document's here, and an edit
emits config_edited(key) for the Train tab's undoable command.

SchedulePreview draws the learning rate the next run will use, step by step
(engine/schedules.py learning_rate_curve), under the loss curve before the run starts.
"""

from __future__ import annotations

import dataclasses
import weakref

from PySide6.QtCore import QObject, QSignalBlocker, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

from .collapsible import CollapsibleSection
from ...engine.schedules import learning_rate_curve
from ...engine.training import steps_per_epoch
from ...engine.training_config import TrainingConfig

MONITOR_LABELS = (("val_loss", "validation loss"), ("val_accuracy", "validation accuracy"),
                  ("loss", "training loss"), ("accuracy", "training accuracy"))
# The settings this panel owns (TrainingConfig field names).
FIELDS = ("decay_rate", "decay_epochs", "monitor", "early_stopping", "patience", "restore_best_weights",
          "reduce_lr_on_plateau", "reduce_lr_factor", "reduce_lr_patience")


class CallbackControlsPanel(QWidget):
    config_edited = Signal(str)  # the TrainingConfig field the user changed
    continue_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.decay_rate = QDoubleSpinBox()
        self.decay_rate.setRange(0.01, 1.0)
        self.decay_rate.setSingleStep(0.05)
        self.decay_rate.setDecimals(2)
        self.decay_rate.setPrefix("× ")
        self.decay_rate.setToolTip("Step and exponential schedules: the learning rate is multiplied by this "
                                   "every period (Keras PiecewiseConstantDecay / ExponentialDecay)")
        self.decay_epochs = QSpinBox()
        self.decay_epochs.setRange(1, 10_000)
        self.decay_epochs.setPrefix("every ")
        self.decay_epochs.setSuffix(" epoch(s)")
        self.decay_epochs.setToolTip("The period: step decay drops the rate at the start of every period; "
                                     "exponential decay lowers it a little every batch, by the same factor per period")
        self.early_stopping = QCheckBox()
        self.early_stopping.setToolTip("EarlyStopping: end the run when the watched quantity has not improved for "
                                       "'patience' epochs in a row")
        self.patience = QSpinBox()
        self.patience.setRange(0, 10_000)
        self.patience.setPrefix("after ")
        self.patience.setSuffix(" flat epochs")
        self.patience.setToolTip("EarlyStopping(patience=...): epochs without improvement before stopping")
        self.restore_best = QCheckBox("then go back to the best weights")
        self.restore_best.setToolTip("restore_best_weights=True: at the end, go back to the weights of the best "
                                     "epoch instead of keeping the last one")
        self.reduce_lr = QCheckBox()
        self.reduce_lr.setToolTip("ReduceLROnPlateau: multiply the learning rate by the factor when the watched "
                                  "quantity has not improved for 'patience' epochs (needs a constant schedule)")
        self.reduce_factor = QDoubleSpinBox()
        self.reduce_factor.setRange(0.01, 0.99)
        self.reduce_factor.setSingleStep(0.05)
        self.reduce_factor.setDecimals(2)
        self.reduce_factor.setPrefix("× ")
        self.reduce_factor.setToolTip("ReduceLROnPlateau(factor=...): new rate = rate × factor")
        self.reduce_patience = QSpinBox()
        self.reduce_patience.setRange(0, 10_000)
        self.reduce_patience.setPrefix("after ")
        self.reduce_patience.setSuffix(" flat")
        self.reduce_patience.setToolTip("ReduceLROnPlateau(patience=...): epochs without improvement before lowering")
        self.monitor = QComboBox()
        for key, label in MONITOR_LABELS:
            self.monitor.addItem(label, key)
        self.monitor.setToolTip("What early stopping and lowering the rate watch after every epoch (Keras's "
                                "monitor=). Validation needs a validation split above 0.")
        self.continue_button = QPushButton("Continue")  # short: it shares a row with Start, Pause, Stop
        self.continue_button.setObjectName("continueButton")
        self.continue_button.setToolTip("Train more epochs from exactly where the last run stopped: the same "
                                        "weights as one longer run would give")
        self.continue_button.setEnabled(False)
        self.continue_button.clicked.connect(self.continue_requested)

        for widget, key in ((self.decay_rate, "decay_rate"), (self.decay_epochs, "decay_epochs"),
                            (self.patience, "patience"), (self.reduce_factor, "reduce_lr_factor"),
                            (self.reduce_patience, "reduce_lr_patience")):
            widget.setKeyboardTracking(False)
            widget.valueChanged.connect(lambda _v, key=key: self._edited(key))
        for widget, key in ((self.early_stopping, "early_stopping"), (self.restore_best, "restore_best_weights"),
                            (self.reduce_lr, "reduce_lr_on_plateau")):
            widget.toggled.connect(lambda _on, key=key: self._edited(key))
        self.monitor.currentIndexChanged.connect(lambda _i: self._edited("monitor"))

        # Rarely used: folded under one header that says what they will do (gui/panels/collapsible.py),
        # so the everyday settings fit a 1024x768 projector's column; rows too wide wrap their field
        # under the label instead of widening the column.
        self.details = QWidget()
        form = QFormLayout(self.details)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.decay_row = _row(self.decay_rate, self.decay_epochs)
        form.addRow(_label("Decay", self.decay_rate.toolTip()), self.decay_row)
        form.addRow(_label("Early stop", self.early_stopping.toolTip()), _row(self.early_stopping, self.patience))
        form.addRow("", self.restore_best)
        form.addRow(_label("Lower rate", self.reduce_lr.toolTip()),
                    _row(self.reduce_lr, self.reduce_factor, self.reduce_patience))
        form.addRow(_label("Watch", self.monitor.toolTip()), self.monitor)
        self.section = CollapsibleSection("Callbacks", self.details)
        self.section.setObjectName("callbacksSection")
        # The next run in words (SchedulePreview): batches per epoch, what the callbacks will do;
        # outside the fold, so it is read even when the callbacks are folded away.
        self.plan = QLabel()
        self.plan.setWordWrap(True)
        self.plan.setStyleSheet("color: #555;")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.section)
        outer.addWidget(self.plan)
        self._form = form
        self._running = False
        self._can_continue = False
        self.set_config(TrainingConfig())

    # --- settings -----------------------------------------------------------------

    def apply_to(self, config: TrainingConfig) -> TrainingConfig:
        """config with this panel's fields as the widgets show them."""
        return dataclasses.replace(
            config, decay_rate=float(self.decay_rate.value()), decay_epochs=int(self.decay_epochs.value()),
            monitor=self.monitor.currentData(), early_stopping=self.early_stopping.isChecked(),
            patience=int(self.patience.value()), restore_best_weights=self.restore_best.isChecked(),
            reduce_lr_on_plateau=self.reduce_lr.isChecked(), reduce_lr_factor=float(self.reduce_factor.value()),
            reduce_lr_patience=int(self.reduce_patience.value()))

    def set_config(self, config: TrainingConfig) -> None:
        """Show these settings; emits nothing."""
        for spin, value in ((self.decay_rate, config.decay_rate), (self.decay_epochs, config.decay_epochs),
                            (self.patience, config.patience), (self.reduce_factor, config.reduce_lr_factor),
                            (self.reduce_patience, config.reduce_lr_patience)):
            if spin.value() != value:
                with QSignalBlocker(spin):
                    spin.setValue(value)
        for box, value in ((self.early_stopping, config.early_stopping),
                           (self.restore_best, config.restore_best_weights),
                           (self.reduce_lr, config.reduce_lr_on_plateau)):
            if box.isChecked() != value:
                with QSignalBlocker(box):
                    box.setChecked(value)
        index = max(0, self.monitor.findData(config.monitor))
        if self.monitor.currentIndex() != index:
            with QSignalBlocker(self.monitor):
                self.monitor.setCurrentIndex(index)
        self.show_schedule(config.schedule)
        if config.early_stopping or config.reduce_lr_on_plateau:
            self.section.set_expanded(True)  # a project that uses them shows them

    def show_schedule(self, schedule: str) -> None:
        """The decay row matters only to the step and exponential schedules."""
        self._schedule = schedule
        if schedule in ("step", "exponential"):
            self.section.set_expanded(True)  # its decay row is what the student sets next
        self._sync()

    # --- state --------------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        self._running = running
        self._sync()

    def set_can_continue(self, can: bool, why: str = "") -> None:
        """Continue training is possible (a saved training state fits the weights), or why not."""
        self._can_continue = can
        self.continue_button.setToolTip(why or ("Train more epochs from exactly where the last run stopped: the same "
                                                "weights as one longer run would give" if can else
                                                "Train once first: Continue goes on from the end of a run"))
        self._sync()

    def _sync(self) -> None:
        idle = not self._running
        decays = getattr(self, "_schedule", "constant") in ("step", "exponential")
        self.decay_rate.setEnabled(idle and decays)
        self.decay_epochs.setEnabled(idle and decays)
        for widget in (self.early_stopping, self.reduce_lr, self.monitor):
            widget.setEnabled(idle)
        self.patience.setEnabled(idle and self.early_stopping.isChecked())
        self.restore_best.setEnabled(idle and self.early_stopping.isChecked())
        self.reduce_factor.setEnabled(idle and self.reduce_lr.isChecked())
        self.reduce_patience.setEnabled(idle and self.reduce_lr.isChecked())
        self.continue_button.setEnabled(idle and self._can_continue)
        self.section.set_summary(callbacks_summary(self.early_stopping.isChecked(), self.patience.value(),
                                                   self.reduce_lr.isChecked(), decays))

    def _edited(self, key: str) -> None:
        self._sync()
        self.config_edited.emit(key)


class SchedulePreview(QObject):
    """Keeps the planned learning-rate curve under the loss curve up to date while no run
    is going: settings(), examples() -> the config and training-image count the next run
    would use; draw(x, rates, text) shows them (CurvesPanel.show_planned_learning_rate)."""

    def __init__(self, settings, examples, draw, say=None, parent: QObject | None = None):
        super().__init__(parent)
        # Bound methods held weakly: the tab owns this object, a strong reference back would
        # be a cycle left to the garbage collector (see gui/cell_tracer.py).
        self._settings, self._examples, self._draw, self._say = (_weak(f) for f in (settings, examples, draw, say))

    def on_value_changed(self, _value) -> None:
        """A slot for a widget's valueChanged (the training-image count)."""
        self.refresh()

    def refresh(self) -> None:
        settings, examples, draw, say = (ref() if ref is not None else None for ref in
                                         (self._settings, self._examples, self._draw, self._say))
        if settings is None or examples is None or draw is None:
            return
        config = settings()
        try:
            images = max(1, int(examples()))
            steps = steps_per_epoch(images, config.batch_size, config.validation_split)
            x, rates = learning_rate_curve(config, steps)
        except (ValueError, TypeError, ZeroDivisionError):  # settings being typed: nothing to plan yet
            x, rates, text = [], [], ""
        else:
            text = describe(config, steps)
        draw(x, rates, text)
        if say is not None:
            say(text)


def describe(config: TrainingConfig, steps: int) -> str:
    """One or two plain lines: the schedule and the callbacks of the next run."""
    rate = f"{config.learning_rate:g}"
    every = f"every {config.decay_epochs} epoch{'s' if config.decay_epochs != 1 else ''}"
    schedule = {
        "constant": f"Learning rate {rate} throughout",
        "step": f"Learning rate {rate}, × {config.decay_rate:g} {every}",
        "exponential": f"Learning rate {rate}, smoothly × {config.decay_rate:g} {every}",
        "cosine": f"Learning rate {rate} down to 0 along a cosine",
    }.get(config.schedule, config.schedule)
    lines = [f"{schedule} ({steps:,} batches per epoch)."]
    watched = dict(MONITOR_LABELS).get(config.monitor, config.monitor)
    if config.early_stopping:
        lines.append(f"Stops after {config.patience} epoch(s) without a better {watched}"
                     + (", then goes back to the best weights." if config.restore_best_weights else "."))
    if config.reduce_lr_on_plateau:
        lines.append(f"Rate × {config.reduce_lr_factor:g} after {config.reduce_lr_patience} flat epoch(s) "
                     f"of {watched}.")
    return "\n".join(lines)


def callbacks_summary(early_stopping: bool, patience: int, reduce_lr: bool, decays: bool) -> str:
    """The folded section's header: what the callbacks will do, in a few words."""
    parts = []
    if early_stopping:
        parts.append(f"stop after {patience} flat")
    if reduce_lr:
        parts.append("lower rate on plateau")
    if decays:
        parts.append("decay")
    return ", ".join(parts) if parts else "off"


def _label(text: str, tip: str) -> QLabel:
    """A short form label carrying the long explanation as its tooltip."""
    label = QLabel(text)
    label.setToolTip(tip)
    return label


def _weak(fn):
    """A weak reference to a bound method (or a plain callable kept as it is)."""
    if fn is None:
        return None
    if hasattr(fn, "__self__") and hasattr(fn, "__func__"):
        return weakref.WeakMethod(fn)
    return lambda: fn


def _row(*widgets) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget, 0 if isinstance(widget, QCheckBox) else 1)
    return row


__all__ = ["CallbackControlsPanel", "SchedulePreview", "describe", "callbacks_summary", "FIELDS"]
