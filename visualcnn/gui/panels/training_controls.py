"""The training settings form, Start / Pause / Stop, the progress bar and a message banner.

The panel only holds widgets and emits requests (start_requested...); the Train tab owns
the run. While a run is active every setting but the learning rate is locked: the
learning rate is sent to the worker and takes effect at the next batch (with a cosine
schedule it is the schedule's starting rate, and the curve is rescaled from that batch).

The settings themselves belong to the document (two-way binding, napari style): a user
edit emits `config_edited(key)`, the Train tab turns it into an undoable command, and
the document's change comes back through set_config(), which updates the widgets
inside QSignalBlockers and only where the value differs, so nothing loops.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (QAbstractSpinBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ..dataset_picker import DatasetPicker
from ..zoom import width_in_em
from .callback_controls import CallbackControlsPanel
from ...engine.training_config import DEFAULT_LEARNING_RATES, TrainingConfig

OPTIMIZER_LABELS = (("adam", "Adam"), ("sgd", "SGD"), ("rmsprop", "RMSprop"))
SCHEDULE_LABELS = (("constant", "Constant"), ("step", "Step decay"), ("exponential", "Exponential decay"),
                   ("cosine", "Cosine decay"))
TRAIN_IMAGES = 60000

BANNER_STYLES = {
    "error": "background: #fde7e9; color: #8a0010; border: 1px solid #e0a0a8; padding: 6px; font-weight: bold;",
    "info": "background: #e8f1fb; color: #0b3d6b; border: 1px solid #a8c8ec; padding: 6px;",
    "ok": "background: #e7f6ea; color: #14532d; border: 1px solid #9fd3ab; padding: 6px;",
}


NO_BREAK_SLASH = "\u2060/\u2060"  # a slash glued to its neighbours by word joiners


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, s = divmod(seconds, 60)
    return f"{minutes}\u00a0min {s:02d}\u00a0s" if minutes else f"{s}\u00a0s"


class TrainingControlsPanel(QWidget):
    start_requested = Signal()
    pause_requested = Signal()
    resume_requested = Signal()
    stop_requested = Signal()
    learning_rate_changed = Signal(float)
    config_edited = Signal(str)  # the user changed this TrainingConfig field ("batch_size", ...)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._running = False
        self._paused = False
        self._blocker: str | None = None
        self._total_steps = 1

        self.dataset = DatasetPicker()  # MNIST, Fashion-MNIST or an image folder (gui/dataset_picker.py)
        self.optimizer = QComboBox()
        for key, label in OPTIMIZER_LABELS:
            self.optimizer.addItem(label, key)
        self.optimizer.currentIndexChanged.connect(self._on_optimizer_changed)
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(6)
        self.learning_rate.setRange(0.000001, 10.0)
        self.learning_rate.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.learning_rate.setValue(0.001)
        self.learning_rate.setKeyboardTracking(False)
        self.learning_rate.setToolTip("Step size of the optimizer. You can change it while training runs: "
                                      "it takes effect at the next batch. With cosine decay it is the starting rate.")
        self.learning_rate.valueChanged.connect(self._on_learning_rate_changed)
        self.schedule = QComboBox()
        for key, label in SCHEDULE_LABELS:
            self.schedule.addItem(label, key)
        self.schedule.setToolTip("Constant: the learning rate above for the whole run. Step / exponential decay: "
                                 "multiply it by the decay factor every few epochs, at once or smoothly (Keras "
                                 "PiecewiseConstantDecay / ExponentialDecay). Cosine decay: start at the "
                                 "learning rate above and lower it along half a cosine to 0 at the last batch "
                                 "(Keras CosineDecay): big steps early, fine steps at the end.")
        self.schedule.currentIndexChanged.connect(lambda _i: self.config_edited.emit("schedule"))
        # Decay, EarlyStopping, ReduceLROnPlateau and Continue training (gui/panels/callback_controls.py)
        self.callbacks = CallbackControlsPanel()
        self.callbacks.config_edited.connect(self.config_edited)
        self.schedule.currentIndexChanged.connect(
            lambda _i: self.callbacks.show_schedule(self.schedule.currentData()))
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 65536)  # what a file may hold; the memory check says what fits
        self.batch_size.setValue(64)
        self.batch_size.setToolTip("Images per training step")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 10_000)
        self.epochs.setValue(1)
        self.epochs.setToolTip("Passes over the training images")
        self.validation_split = QDoubleSpinBox()
        self.validation_split.setRange(0.0, 0.9)
        self.validation_split.setSingleStep(0.05)
        self.validation_split.setDecimals(2)
        self.validation_split.setToolTip("Fraction of the training images (the last ones) held back to measure "
                                         "validation loss and accuracy after every epoch")
        self.train_images = QSpinBox()
        self.train_images.setRange(100, TRAIN_IMAGES)
        self.train_images.setSingleStep(1000)
        self.train_images.setValue(TRAIN_IMAGES)
        self.train_images.setGroupSeparatorShown(True)
        self.train_images.setToolTip("Train on the first N training images only: fewer images, quicker experiments")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Seed for the initial weights, shuffling and dropout: the same seed repeats a run")
        self._momentum, self._nesterov, self._loss = 0.0, False, "sparse_categorical_crossentropy"
        self.batch_size.valueChanged.connect(lambda _v: self.config_edited.emit("batch_size"))
        self.epochs.valueChanged.connect(lambda _v: self.config_edited.emit("epochs"))
        self.validation_split.valueChanged.connect(lambda _v: self.config_edited.emit("validation_split"))
        self.seed.valueChanged.connect(lambda _v: self.config_edited.emit("seed"))

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        # A field too wide for a projector's narrow column goes under its label, not past the edge.
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow("Dataset", self.dataset)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Schedule", self.schedule)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Epochs", self.epochs)
        form.addRow("Validation split", self.validation_split)
        form.addRow("Training images", self.train_images)
        form.addRow("Seed", self.seed)
        self._settings = (self.dataset, self.optimizer, self.schedule, self.batch_size, self.epochs,
                          self.validation_split, self.train_images, self.seed)

        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("startButton")
        self.start_button.clicked.connect(self.start_requested)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.clicked.connect(self._on_pause_button_clicked)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.clicked.connect(self.stop_requested)
        # Four buttons share the column's width: they may shrink to their text (in ems, so zoom
        # keeps them readable) below the style's 80 px, or Stop is cut at 1024x768.
        for button, ems in ((self.start_button, 4.5), (self.callbacks.continue_button, 6.5),
                            (self.pause_button, 6), (self.stop_button, 4.5)):
            width_in_em(button, ems)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.callbacks.continue_button)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.stop_button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.progress_label = QLabel("Not started")
        self.progress_label.setWordWrap(True)
        self.banner = QLabel()
        self.banner.setObjectName("trainBanner")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.hide()
        self.metrics = QLabel("")
        self.metrics.setWordWrap(True)
        self.memory = QLabel("")
        self.memory.setObjectName("trainMemory")
        self.memory.setWordWrap(True)
        self.memory.setToolTip("The engine's estimate of the training peak (weights, gradients, optimizer state, "
                               "activations and their gradients) at this batch size")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.callbacks)
        layout.addWidget(self.memory)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.metrics)
        layout.addWidget(self.banner)
        self._sync_buttons()

    # --- settings -----------------------------------------------------------------

    def config(self) -> TrainingConfig:
        config = TrainingConfig(optimizer=self.optimizer.currentData(),
                                learning_rate=float(self.learning_rate.value()),
                                loss=self._loss, batch_size=int(self.batch_size.value()),
                                epochs=int(self.epochs.value()),
                                validation_split=float(self.validation_split.value()), momentum=self._momentum,
                                nesterov=self._nesterov, seed=int(self.seed.value()),
                                schedule=self.schedule.currentData())
        return self.callbacks.apply_to(config)  # decay, early stopping, reduce on plateau

    def set_config(self, config: TrainingConfig) -> None:
        """Show these settings; emits nothing (the document is where they came from)."""
        index = max(0, self.optimizer.findData(config.optimizer))
        if self.optimizer.currentIndex() != index:
            with QSignalBlocker(self.optimizer):
                self.optimizer.setCurrentIndex(index)
        index = max(0, self.schedule.findData(config.schedule))
        if self.schedule.currentIndex() != index:
            with QSignalBlocker(self.schedule):
                self.schedule.setCurrentIndex(index)
        for spin, value in ((self.learning_rate, config.learning_rate), (self.batch_size, config.batch_size),
                            (self.epochs, config.epochs), (self.validation_split, config.validation_split),
                            (self.seed, config.seed)):
            if spin.value() != value:
                with QSignalBlocker(spin):
                    spin.setValue(value)
        self._momentum, self._nesterov, self._loss = config.momentum, config.nesterov, config.loss
        self.callbacks.set_config(config)

    def dataset_name(self) -> str:
        return self.dataset.source_key()

    def train_image_count(self) -> int:
        return int(self.train_images.value())

    # --- state --------------------------------------------------------------------

    def set_blocker(self, reason: str | None) -> None:
        """Why Start is disabled (the model cannot be built or trained), or None."""
        self._blocker = reason
        if reason and not self._running:
            self.show_message(f"Cannot train: {reason}", "error")
        elif not reason and self.banner.text().startswith("Cannot train:"):
            self.banner.hide()
        self.start_button.setToolTip(f"Cannot train: {reason}" if reason else "Train this network")
        self._sync_buttons()

    def set_memory_text(self, text: str, too_big: bool = False) -> None:
        """The training-peak line under the settings; red when the machine cannot give it."""
        self.memory.setText(text)
        self.memory.setStyleSheet("color: #8a0010; font-weight: bold;" if too_big else "")
        self.memory.setVisible(bool(text))

    def set_running(self, running: bool) -> None:
        self._running = running
        self._paused = False
        for widget in self._settings:
            widget.setEnabled(not running)
        self.callbacks.set_running(running)
        self._sync_buttons()

    def set_paused(self, paused: bool) -> None:
        self._paused = paused
        self._sync_buttons()
        if paused:
            self.progress_label.setText("Paused. " + self.progress_label.text())

    def show_message(self, text: str, kind: str = "info") -> None:
        self.banner.setStyleSheet(BANNER_STYLES[kind])
        self.banner.setText(text)
        self.banner.show()

    def hide_message(self) -> None:
        self.banner.hide()

    def begin(self, epochs: int, batches: int) -> None:
        self._total_steps = max(1, epochs * batches)
        self.progress.setValue(0)
        self.progress_label.setText("Starting...")
        self.metrics.setText("")

    def show_step(self, report) -> None:
        done = (report.epoch - 1) * report.batches + report.batch
        total = report.epochs * report.batches
        self.progress.setValue(int(1000 * done / max(total, 1)))
        remaining = report.eta + (report.epochs - report.epoch) * report.batches * (report.elapsed / report.batch)
        # The line wraps in a narrow column: word joiners (invisible) keep "images/s" whole,
        # where Qt would break after the slash ("images/ s").
        text = (f"Epoch {report.epoch}/{report.epochs} · batch {report.batch}/{report.batches} · "
                f"{report.images_per_second:,.0f} images{NO_BREAK_SLASH}s · ETA {format_seconds(remaining)}")
        self.progress_label.setText(("Paused. " if self._paused else "") + text)
        accuracy = "" if report.accuracy is None else f" · accuracy {report.accuracy:.2%}"
        rate = getattr(report, "learning_rate", None)
        # Only worth a line when a schedule moves it; a constant rate is in the box above.
        scheduled = rate is not None and self.schedule.currentData() != "constant"
        current = f" · learning rate now {rate:.3g}" if scheduled else ""
        self.metrics.setText(f"Epoch so far: loss {report.loss:.4f}{accuracy}{current}")

    def _sync_buttons(self) -> None:
        self.start_button.setEnabled(not self._running and not self._blocker)
        self.pause_button.setEnabled(self._running)
        self.pause_button.setText("Resume" if self._paused else "Pause")
        self.stop_button.setEnabled(self._running)

    # --- slots --------------------------------------------------------------------

    def _on_pause_button_clicked(self) -> None:
        if self._paused:
            self.resume_requested.emit()
        else:
            self.pause_requested.emit()

    def _on_optimizer_changed(self, _index: int) -> None:
        # Keras's default for the new optimizer (SGD learns far slower at Adam's 0.001);
        # one edit of the settings, not two.
        with QSignalBlocker(self.learning_rate):
            self.learning_rate.setValue(DEFAULT_LEARNING_RATES[self.optimizer.currentData()])
        self.config_edited.emit("optimizer")

    def _on_learning_rate_changed(self, value: float) -> None:
        self.learning_rate_changed.emit(float(value))
        self.config_edited.emit("learning_rate")
