"""The Train tab: settings and controls on the left; live curves on top; filters and
feature maps (or, after a run, the test results) below.

Data flow (ARCHITECTURE.md): the model source builds a fresh engine model from the
pipeline -> a TrainingController runs it in a QThread -> copies arrive as signals ->
the panels update. Snapshots and progress arrive in bursts; a single-shot QTimer keeps
only the newest and applies it, so the GUI thread does a bounded amount of work per
frame however fast the worker reports.

    tab = TrainTabWidget()
    tab.set_model_source(lambda: document_to_model(document))  # ValueError -> Start disabled
    tab.bind_document(document, undo_stack)  # the settings are the document's (else the tab's own)
    tab.run_finished.connect(project.keep_trained_model)

A run is prepared by the engine's recipe (engine.recipe.prepare_run: the checks, memory,
build, compile, labels, batch count), the same function `visualcnn train` uses. The
data set is loaded when a run starts (or the tab is first shown), never while the
window opens: a damaged MNIST file is explained here and the builder still works.
"""

from __future__ import annotations

import gc
import importlib
import threading
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QFrame, QLabel, QScrollArea, QSplitter, QTabWidget, QVBoxLayout, QWidget,
                               QHBoxLayout)

from ..engine.datasets import class_names, load_dataset
from ..engine.memory import available_memory_bytes, estimate_memory, format_bytes, memory_problem
from ..engine.recipe import prepare_run, readiness_problem
from ..engine.training_config import TrainingConfig
from .commands import SetTrainingConfigCommand
from .dataset_source import arrays_summary, cached_arrays, load_arrays, needs_input_shape, readiness_dataset, \
    forget_facts
from .panels.curves import CurvesPanel
from .panels.callback_controls import SchedulePreview
from .continue_training import ContinueTraining
from .cell_tracer import CellTracer, model_with_weights
from .panels.feature_maps import FeatureMapsWidget, MapLayer, has_feature_maps
from .panels.filters import FiltersPanel
from .panels.probe import ProbePickerPanel
from .panels.results import ResultsPanel
from .panels.training_controls import TrainingControlsPanel
from .training_worker import TrainingController, TrainingRequest
from .time_machine_panel import TimeMachine
from .zoom import width_in_em
from .engine_warmup import TrainStatus

APPLY_MS = 100  # newest progress / snapshot applied at most every 100 ms
# The untrained preview builds the network on the GUI thread: only when its weights are
# small enough to allocate in a blink (Conv2D(10**7) must not freeze the window).
PREVIEW_WEIGHT_LIMIT = 64 * 2**20


@dataclass(frozen=True)
class DatasetArrays:
    """One data set, scaled once: x float32 in [0, 1] with a channel axis; y int labels."""

    x_train: np.ndarray  # (60000, 28, 28, 1)
    y_train: np.ndarray  # (60000,)
    x_test: np.ndarray  # (10000, 28, 28, 1)
    y_test: np.ndarray  # (10000,)
    test_images: np.ndarray  # (10000, 28, 28) uint8, for thumbnails
    class_names: tuple


_DATASETS: dict[str, DatasetArrays] = {}
_DATASETS_LOCK = threading.Lock()  # one load at a time: a Start during the background load waits for it


def dataset_arrays(name: str) -> DatasetArrays:
    """Loaded and scaled once per process (60000 float images are 188 MB: do not repeat)."""
    with _DATASETS_LOCK:
        if name not in _DATASETS:
            (x, y), (xt, yt) = load_dataset(name)
            _DATASETS[name] = DatasetArrays((x[..., None] / np.float32(255)).astype(np.float32),
                                            y.astype(np.int64), (xt[..., None] / np.float32(255)).astype(np.float32),
                                            yt.astype(np.int64), xt, class_names(name))
        return _DATASETS[name]


class DatasetLoader(QObject):
    """Loads a data set in a plain background thread (1.5 s for MNIST: not on the GUI thread);
    `loaded` arrives in the GUI thread with the arrays, or `failed` with the reason."""

    loaded = Signal(object)  # DatasetArrays
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.busy = False

    def load(self, spec, input_shape=None) -> None:
        """spec: a "dataset" section (gui/dataset_source.py), or a bundled set's name."""
        if self.busy:
            return
        self.busy = True
        spec = {"source": spec} if isinstance(spec, str) else spec
        threading.Thread(target=self._run, args=(spec, input_shape), name="visualcnn-dataset", daemon=True).start()

    def _run(self, spec, input_shape) -> None:
        try:
            data, message = load_arrays(spec, input_shape), None
        except (ValueError, OSError, MemoryError) as exc:  # DatasetError: a missing or damaged file
            data, message = None, str(exc)
        self.busy = False
        try:
            if message is None:
                self.loaded.emit(data)
            else:
                self.failed.emit(message)
        except RuntimeError:  # the window closed while loading: the data stay cached, nobody to tell
            pass


def dataset_arrays_cached(name: str) -> DatasetArrays | None:
    return _DATASETS.get(name)


class TrainTabWidget(QWidget):
    run_started = Signal()
    run_finished = Signal(object)  # the engine model after a completed, stopped or diverged run
    dataset_loaded = Signal(object)  # the DatasetArrays / FolderArrays now used (class names, images)
    message_posted = Signal(str)  # a line for the status bar (errors, "finished", ...)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        if pg.getConfigOption("imageAxisOrder") != "row-major":  # normally done once by create_application
            pg.setConfigOptions(imageAxisOrder="row-major")
        # The engine's training modules import numba (0.3 s): pay that while the window opens,
        # not as a freeze when Start is pressed.
        for module in ("activations", "initializers", "losses", "optimizers", "kernels"):
            importlib.import_module(f"visualcnn.engine.{module}")
        self._model_source = None
        self._document = None  # the PipelineDocument whose settings the controls mirror, if bound
        self._undo_stack = None
        self._data_error: str | None = None  # why the data set could not be loaded
        self._model = None  # the model of the current / last run, or the untrained preview
        self._shown_signature: tuple | None = None  # the pipeline whose filters / maps are shown
        self._data: DatasetArrays | None = None
        self._spatial: list[tuple[str, str, object]] = []  # (name, class_name, receptive Field) per layer with maps
        self._run_active = False
        self._error: str | None = None
        self._last_x = 0.0
        self._last_step = None
        self._pending_report = None
        self._pending_snapshot = None
        self._prepared_run = self._run_config = None  # the run going on: its state is kept when it ends
        self._start_when_loaded = False  # Start was pressed while an image folder was being read

        self.controller = TrainingController(self)
        self.dataset_loader = DatasetLoader(self)
        self.controls = TrainingControlsPanel()
        self.probe_picker = ProbePickerPanel()
        self.curves = CurvesPanel()
        self.filters = FiltersPanel()
        self.feature_maps = FeatureMapsWidget()
        self.tracer = CellTracer(self)  # clicking a probe map cell traces it (gui/trace_panel.py)
        self.feature_maps.set_cell_handler(self.trace_cell)
        self._shown_snapshot = None  # the run's snapshot whose maps are on screen
        self.results = ResultsPanel()
        self.time_machine = TimeMachine(self)  # replays filters, maps and results at a kept moment
        self.train_status = TrainStatus(self.controls)  # "Preparing the engine..." until kernels are ready
        self._build_layout()

        self.controls.start_requested.connect(self._on_controls_start_requested)
        # Callbacks and exact resume (gui/continue_training.py, gui/panels/callback_controls.py)
        self.continuation = ContinueTraining(self)
        self.schedule_preview = SchedulePreview(self.training_settings, self._planned_examples,
                                                self.curves.show_planned_learning_rate,
                                                self.controls.callbacks.plan.setText, self)
        self.controls.callbacks.continue_requested.connect(self.continue_training)
        self.controls.train_images.valueChanged.connect(self.schedule_preview.on_value_changed)
        self.controls.pause_requested.connect(self._on_controls_pause_requested)
        self.controls.resume_requested.connect(self._on_controls_resume_requested)
        self.controls.stop_requested.connect(self._on_controls_stop_requested)
        self.controls.learning_rate_changed.connect(self._on_controls_learning_rate_changed)
        self.controls.config_edited.connect(self._on_controls_config_edited)
        self.dataset_loader.loaded.connect(self._on_dataset_loader_loaded)
        self.dataset_loader.failed.connect(self._on_dataset_loader_failed)
        self.controls.dataset.spec_changed.connect(self._on_dataset_changed)
        self.controls.dataset.browse_requested.connect(self._on_dataset_browse_requested)
        self.probe_picker.probe_changed.connect(self._on_probe_picker_probe_changed)
        self.controller.progressed.connect(self._on_controller_progressed)
        self.controller.epoch_finished.connect(self._on_controller_epoch_finished)
        self.controller.snapshot_taken.connect(self._on_controller_snapshot_taken)
        self.controller.evaluated.connect(self._on_controller_evaluated)
        self.controller.layers_timed.connect(self._on_controller_layers_timed)
        self.controller.errored.connect(self._on_controller_errored)
        self.controller.learning_rate_refused.connect(self._on_controller_learning_rate_refused)
        self.controller.finished.connect(self._on_controller_finished)
        self._apply_timer = QTimer(self)
        self._apply_timer.setSingleShot(True)
        self._apply_timer.setInterval(APPLY_MS)
        self._apply_timer.timeout.connect(self._on_apply_timer_timeout)

        self.controls.set_blocker("no network to train yet (set_model_source was not called)")

    def _build_layout(self) -> None:
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(_heading("Training"))
        left_layout.addWidget(self.controls)
        rule = QFrame()
        rule.setFrameShape(QFrame.Shape.HLine)
        left_layout.addWidget(rule)
        left_layout.addWidget(_heading("Probe image"))
        left_layout.addWidget(self.probe_picker)
        left_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        # Never sideways: when a long message adds the vertical bar, the column narrows instead.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        width_in_em(scroll, 27.5, 32)  # in ems: the column grows with View ▸ Zoom instead of scrolling

        live = QSplitter(Qt.Orientation.Horizontal)
        filters_box = QWidget()
        filters_layout = QVBoxLayout(filters_box)
        filters_layout.setContentsMargins(4, 4, 4, 4)
        filters_layout.addWidget(_heading("Filters (conv kernels)"))
        filters_layout.addWidget(self.filters, 1)
        maps_box = QWidget()
        maps_layout = QVBoxLayout(maps_box)
        maps_layout.setContentsMargins(4, 4, 4, 4)
        maps_layout.addWidget(_heading("Feature maps of the probe image"))
        maps_layout.addWidget(self.feature_maps, 1)
        live.addWidget(filters_box)
        live.addWidget(maps_box)
        live.setStretchFactor(0, 2)
        live.setStretchFactor(1, 3)
        self.lower_tabs = QTabWidget()
        self.lower_tabs.setDocumentMode(True)
        self.lower_tabs.addTab(live, "Filters and feature maps")
        self.lower_tabs.addTab(self.results, "Test results")
        self.lower_tabs.addTab(self.time_machine.view, "Time machine")
        lower = QWidget()  # the time machine's slider above the panels it replays
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.setSpacing(0)
        lower_layout.addWidget(self.time_machine.bar)
        lower_layout.addWidget(self.lower_tabs, 1)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.curves)
        right.addWidget(lower)
        # Half the height each: at 1280x720 a 2:3 share left the loss plot ~20 px tall after a run
        # (its legend and the learning-rate strip take their lines first); the panels below scroll.
        right.setStretchFactor(0, 1)
        right.setStretchFactor(1, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addWidget(right, 1)

    # --- public interface (wired by the main window) --------------------------------

    def set_model_source(self, fn) -> None:
        """fn() -> a fresh, uncompiled engine Sequential, or raises ValueError(reason)."""
        self._model_source = fn
        self.refresh_model_source()

    def refresh_model_source(self) -> str | None:
        """Re-check the pipeline (call after an edit); returns why Start is disabled, or None."""
        reason = self._blocker_reason()
        if not self._run_active:
            self._show_memory()
            self.controls.set_blocker(reason)
            self.schedule_preview.refresh()  # the next run's learning rate, under the loss curve
            self.continuation.refresh()
            if self.isVisible():
                QTimer.singleShot(0, self._preview)
        return reason

    def _show_memory(self) -> None:
        """The training peak at the chosen batch size, next to what the machine has."""
        try:
            model = self._model_source() if self._model_source is not None else None
            report = model.analyse() if model is not None else None
        except ValueError:
            report = None
        if report is None or report.error or not report.rows:
            self.controls.set_memory_text("")
            return
        config = self.training_settings()
        estimate = estimate_memory(report, config.batch_size, optimizer=config.optimizer, momentum=config.momentum)
        available = available_memory_bytes()
        self.controls.set_memory_text(
            f"Memory: training needs about {format_bytes(estimate.training_peak_bytes)} at batch "
            f"{config.batch_size} (weights {format_bytes(estimate.weight_bytes)}); "
            f"{format_bytes(available)} available", too_big=memory_problem(estimate, available=available) is not None)

    def bind_document(self, document, undo_stack) -> None:
        """Mirror document.training in the controls; edits become undoable commands on it."""
        self._document, self._undo_stack = document, undo_stack
        document.training_changed.connect(self._on_document_training_changed)
        document.section_changed.connect(self._on_document_section_changed)
        self.controls.set_config(document.training)
        self.controls.dataset.set_spec(document.section("dataset"))

    def set_training_defaults(self, config: TrainingConfig | None) -> None:
        """Show these settings (unbound tab: they become its settings)."""
        self.controls.set_config(config or TrainingConfig())

    def training_settings(self) -> TrainingConfig:
        """The settings a run uses: the document's when bound, else the controls'."""
        if self._document is not None:
            return self._document.training
        return self.controls.config()

    def set_probe_image(self, image) -> None:
        """Pin a drawn (28, 28) float32 digit as the feature-maps probe; None: back to the test digit."""
        self.probe_picker.set_drawn(image)

    def is_running(self) -> bool:
        return self.controller.running

    def shutdown(self) -> None:
        """Stop the run and wait for the worker thread (the end of its current batch)."""
        self._apply_timer.stop()
        self.time_machine.shutdown()
        self.controller.shutdown()
        if self._run_active:
            self._end_run(completed=False)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._on_shown)

    def _on_shown(self) -> None:
        if self._data is None and self._data_error is None and not self._run_active:
            self._load_in_background()  # Start waits for it if pressed first
        self._preview()

    def dataset_spec(self) -> dict:
        """The chosen data: the project's "dataset" section (MNIST when it has none)."""
        return self.controls.dataset.spec()

    def dataset(self):
        """The loaded DatasetArrays / FolderArrays of the chosen data, or None (not read yet)."""
        return self._data

    def request_dataset(self):
        """The loaded data, or None while it is read in the background (dataset_loaded follows)."""
        if self._data is None and self._data_error is None:
            self._load_in_background()
        return self._data

    def _on_dataset_browse_requested(self) -> None:
        from .dataset_browser import show_dataset_browser

        show_dataset_browser(self)

    def _input_shape(self):
        """The model's input shape (an image folder is read at that size), None if no model."""
        try:
            return tuple(self._model_source().input_shape) if self._model_source is not None else None
        except ValueError:
            return None

    def _load_in_background(self) -> None:
        spec = self.dataset_spec()
        shape = self._input_shape()
        if needs_input_shape(spec) and shape is None:
            return  # read when the pipeline can be built (the blocker says what to fix)
        self.dataset_loader.load(spec, shape)

    def _on_dataset_loader_loaded(self, data) -> None:
        if data is not cached_arrays(self.dataset_spec(), self._input_shape()):
            self._load_in_background()  # the choice or the input shape changed meanwhile
            return
        if data is not self._data:
            self._ensure_dataset()
            self._show_probe_maps()
        if self._start_when_loaded:
            self._start_when_loaded = False
            self.start()

    def _on_dataset_loader_failed(self, message: str) -> None:
        self._start_when_loaded = False
        if needs_input_shape(self.dataset_spec()):  # an image folder: reported here, never re-read on the GUI thread
            self._data = None
            self._set_data_error(f"{self.controls.dataset.label()} could not be read: {message}")
        elif self._data is None:
            self._ensure_dataset()  # the same failure, reported where a run would report it

    def _show_probe_maps(self) -> None:
        """Once the test digits are there, the untrained preview gets its probe's feature maps."""
        image = self.probe_picker.probe()
        if not self._run_active and self._model is not None and self._model.built and image is not None \
                and self._spatial and probe_batch(image, self._model) is not None:
            self._show_maps(self._model.activations(probe_batch(image, self._model)), first_only=True)

    def _preview(self) -> None:
        """Before training: the untrained network's filters and feature maps (random weights).

        Done while idle (tab shown, pipeline edited) so the panels' items already exist
        when a run starts and its first snapshot only has to setImage."""
        if self._run_active or self._model_source is None or not self.isVisible():
            return
        try:
            model = self._model_source()
        except ValueError:
            return
        report = model.analyse()
        signature = tuple((row.name, row.output_shape) for row in report.rows)
        if report.error or signature == self._shown_signature:
            return
        try:
            estimate = estimate_memory(report, 1)
        except (ValueError, TypeError):
            return
        if estimate.inference_peak_bytes > PREVIEW_WEIGHT_LIMIT:
            self._model, self._shown_signature, self._spatial = None, signature, []
            self.filters.set_weights({})
            self.feature_maps.set_layers([])
            self._post(f"No preview of the untrained network: its weights alone take "
                       f"{format_bytes(estimate.weight_bytes)}")
            return
        model.build(seed=self.training_settings().seed)
        self._model = model
        self._shown_signature = signature
        self._spatial = self._spatial_layers(model, report)
        self._show_model(model)

    def show_project_model(self, model) -> None:
        """Between runs: a model with the project's weights (a file opened with them, or File >
        Load Weights) takes the untrained preview's place in the filters and probe maps, until
        the pipeline is edited or a run starts."""
        if self._run_active or model is None or not model.built:
            return
        report = model.analyse()
        self._model = model
        self._shown_signature = tuple((row.name, row.output_shape) for row in report.rows)
        self._spatial = self._spatial_layers(model, report)
        self._show_model(model)

    def _show_model(self, model) -> None:
        """Filters and probe feature maps straight from a model no thread is training."""
        self.filters.set_weights({layer.name: [np.array(w) for w in layer.weights] for layer in model.layers})
        probe = self.probe_picker.probe()
        if probe is not None and self._spatial and probe_batch(probe, model) is not None:
            self._show_maps(model.activations(probe_batch(probe, model)), first_only=True)
        else:
            self.feature_maps.set_layers([])

    @staticmethod
    def _spatial_layers(model, report) -> list:
        shape = tuple(model.input_shape)
        if len(shape) != 3 or shape[2] not in (1, 3):  # maps of images only: a 28x28 digit, a colour photo
            return []
        return [(row.name, row.layer.class_name, row.inference.field) for row in report.rows
                if row.inference is not None and has_feature_maps(row.output_shape)]

    def closeEvent(self, event) -> None:  # when shown on its own (benchmarks, screenshots)
        self.shutdown()
        super().closeEvent(event)

    # --- starting a run -----------------------------------------------------------

    def _blocker_reason(self) -> str | None:
        """Why Start is disabled: the engine's readiness_problem (the Build tab asks the same)."""
        if self._model_source is None:
            return "no network to train yet"
        if self._data_error is not None:
            return self._data_error
        try:
            model = self._model_source()
        except ValueError as exc:
            return str(exc)
        return readiness_problem(model.analyse(), self.training_settings(),
                                 dataset=readiness_dataset(self.dataset_spec()))

    def _planned_examples(self) -> int:
        """Training images the next run would use (before the validation split)."""
        data = self._data
        count = self.controls.train_image_count()
        return min(count, len(data.y_train)) if data is not None else count

    def continue_training(self) -> bool:
        """Continue the last run exactly where it stopped (the project's "resume" section)."""
        if self.controller.running:
            return False
        self.continuation.restore_image_count()
        return self.start(resume=True)

    def start(self, resume: bool = False) -> bool:
        """Start training with the current settings; False (and a message) when it cannot.
        resume: continue the last run for the settings' epochs (gui/continue_training.py)."""
        if self.controller.running:
            return False
        reason = self.refresh_model_source()
        if reason:
            return False
        config = self.training_settings()
        data = self._ensure_dataset()
        if data is None:
            # an image folder being read: the run starts when it is there
            self._start_when_loaded = self._data_error is None and needs_input_shape(self.dataset_spec())
            if self._start_when_loaded:
                self.controls.show_message(f"Reading {self.controls.dataset.label()}: training starts when "
                                           "it is read.", "info")
            return False
        model = self._model_source()
        count = min(self.controls.train_image_count(), len(data.y_train))
        self._model = None  # the last run's model and buffers go before this one's are allocated
        try:
            # The engine's recipe: checks (memory first, before any allocation), build,
            # compile, labels as the loss needs them, and the run with its batch count.
            prepared = (self.continuation.prepare(model, config, data, count) if resume
                        else prepare_run(model, config, data, limit=count))
        except ValueError as exc:  # MemoryLimitError included: one line saying what to reduce
            verb = "continue" if resume else "train"
            self.controls.show_message(f"Cannot {verb}: {exc}", "error")
            self._post(f"Cannot {verb}: {exc}")
            return False
        self._prepared_run, self._run_config = prepared.run, config
        probe = self.probe_picker.probe()
        spatial_input = bool(self._spatial_layers(model, model.analyse())) and probe_batch(probe, model) is not None
        report = model.analyse()
        self._spatial = self._spatial_layers(model, report)
        self._model = model
        self._shown_signature = tuple((row.name, row.output_shape) for row in report.rows)
        self._error = None
        self._last_step = None
        self._pending_report = self._pending_snapshot = None
        request = TrainingRequest(model, None, None, prepared.x_test, data.y_test,
                                  batch_size=config.batch_size, epochs=config.epochs,
                                  validation_split=config.validation_split, seed=config.seed,
                                  probe=probe if spatial_input else None, run=prepared.run,
                                  moments=self.time_machine.begin_run(model, prepared, data, fresh=not resume))
        batches = prepared.steps_per_epoch
        self.curves.begin_run(prepared.initial_epoch + config.epochs)
        self.results.clear()
        self.lower_tabs.setCurrentIndex(0)
        self.controls.begin(config.epochs, batches)
        self.train_status.begin()
        self.controls.set_running(True)
        self.controls.show_message(f"Training on {count:,} images (the network is locked while it trains).",
                                   "info")
        self._run_active = True
        # A full garbage collection walks every Python object (~170,000 with the window open)
        # while holding the GIL: measured 63 ms, a visible stall. Everything alive now lives
        # for the whole run, so it is moved out of the collector's way.
        gc.freeze()
        self.controller.start(request)
        self.run_started.emit()
        schedule = " (cosine decay to 0)" if config.schedule == "cosine" else ""
        if prepared.initial_epoch or resume:
            schedule += f", continued after epoch {prepared.initial_epoch}"
        self._post(f"Training started: {config.optimizer}, learning rate {config.learning_rate:g}{schedule}, "
                   f"batch {config.batch_size}, {config.epochs} epoch(s)")
        return True

    def _load_dataset(self, spec) -> DatasetArrays:
        if needs_input_shape(spec):  # an image folder is read off the GUI thread only
            data = cached_arrays(spec, self._input_shape())
            if data is None:
                raise LookupError("not read yet")
        else:
            data = load_arrays(spec)
        if data is not self._data:
            self._data = data
            self.probe_picker.set_test_images(data.x_test[..., 0] if data.x_test.shape[-1] == 1 else data.x_test,
                                              data.y_test, data.class_names)
            self.results.clear()
            self.controls.dataset.set_report(getattr(data, "report_text", "") or arrays_summary(data), "ok")
            spin = self.controls.train_images  # "Training images" up to what this dataset has
            at_most = spin.value() >= spin.maximum()
            spin.setMaximum(max(spin.minimum(), len(data.y_train)))
            if at_most:
                spin.setValue(spin.maximum())
            self.dataset_loaded.emit(data)
        return data

    def _set_data_error(self, message: str) -> None:
        self._data_error = message
        self.controls.dataset.set_report(message, "error")
        self.controls.set_blocker(self._data_error)
        self._post(f"Cannot train: {self._data_error}")

    def _ensure_dataset(self) -> DatasetArrays | None:
        """The chosen data set, loaded once; None (and the reason shown) when it cannot be.
        An image folder not read yet is read in the background (None meanwhile)."""
        try:
            data = self._load_dataset(self.dataset_spec())
        except LookupError:
            self.controls.dataset.set_report(f"Reading {self.controls.dataset.label()}…", "info")
            self._load_in_background()
            return None
        except (ValueError, OSError) as exc:  # DatasetError: a missing or damaged file
            self._set_data_error(f"the {self.controls.dataset.label()} data could not be loaded: {exc}")
            return None
        if self._data_error is not None:
            self._data_error = None
            self.controls.set_blocker(self._blocker_reason())
        return data

    # --- slots: controls ----------------------------------------------------------

    def _on_controls_start_requested(self) -> None:
        self.start()

    def _on_controls_pause_requested(self) -> None:
        if self.controller.running:
            self.controller.pause()
            self.controls.set_paused(True)
            self._post("Training paused")

    def _on_controls_resume_requested(self) -> None:
        if self.controller.running:
            self.controller.resume()
            self.controls.set_paused(False)
            self._post("Training resumed")

    def _on_controls_stop_requested(self) -> None:
        if self.controller.running:
            self.controller.stop()
            self.controls.show_message("Stopping after this batch...", "info")

    def _on_controls_learning_rate_changed(self, learning_rate: float) -> None:
        if self.controller.running:
            self.controller.set_learning_rate(learning_rate)
            self.curves.mark(self._last_x, f"lr {learning_rate:g}")
            scheduled = self.controls.schedule.currentData() != "constant"
            self._post(f"Starting learning rate {learning_rate:g}: the schedule is rescaled from the next batch"
                       if scheduled else f"Learning rate {learning_rate:g} from the next batch")

    def _on_controls_config_edited(self, key: str) -> None:
        """A settings widget was edited: an undoable change of the document's settings."""
        if self._document is None:
            self.refresh_model_source()  # the batch size moves the memory estimate
            return
        config = self.controls.config()
        if config == self._document.training:  # equality guard: the widget only echoed the document
            return
        self._undo_stack.push(SetTrainingConfigCommand(self._document, config, key))

    def _on_document_training_changed(self, config: TrainingConfig) -> None:
        self.controls.set_config(config)
        if self.controller.running and self.controller.worker is not None:
            self.controller.set_learning_rate(config.learning_rate)  # the one setting a run follows
        else:
            self.refresh_model_source()

    def _on_dataset_changed(self, spec) -> None:
        """The user picked other data: the project's "dataset" section (MNIST: none), then read it."""
        if self._document is not None:
            from ..engine.dataset_spec import check_dataset_section

            try:
                value = None if spec.get("source") == "mnist" else check_dataset_section(spec)
            except ValueError as exc:
                self._set_data_error(str(exc))
                return
            self._document.set_section("dataset", value)  # comes back through section_changed
        else:
            self._reload_dataset()

    def _on_document_section_changed(self, key: str) -> None:
        if key == "dataset":
            self.controls.dataset.set_spec(self._document.section("dataset"))
            self._reload_dataset()

    def _reload_dataset(self) -> None:
        forget_facts()  # the folder is scanned again for its classes
        self._data_error = None
        self._data = None
        self._start_when_loaded = False
        self.results.clear()
        self.refresh_model_source()
        if cached_arrays(self.dataset_spec(), self._input_shape()) is not None:
            self._ensure_dataset()
        else:  # read off the GUI thread (MNIST's first load takes 1.5 s, a folder longer)
            self.controls.dataset.set_report(f"Reading {self.controls.dataset.label()}…", "info")
            self._load_in_background()

    def _on_probe_picker_probe_changed(self, image) -> None:
        if self.controller.running:
            if self._spatial and probe_batch(image, self._model) is not None:  # the model's input size only
                self.controller.set_probe(image)
        elif self._model is not None and self._model.built and self._spatial \
                and probe_batch(image, self._model) is not None:
            self._show_maps(self._model.activations(probe_batch(image, self._model)), first_only=True)

    # --- slots: worker ------------------------------------------------------------

    def _on_controller_progressed(self, report) -> None:
        self._last_x = report.epoch - 1 + report.batch / report.batches
        self._last_step = report
        self.curves.add_step(report)
        self._pending_report = report
        self._schedule()

    def _on_controller_epoch_finished(self, report) -> None:
        self.curves.add_epoch(report)
        if report.val_loss is not None:
            self._post(f"Epoch {report.epoch}: loss {report.loss:.4f}, validation loss {report.val_loss:.4f}, "
                       f"validation accuracy {report.val_accuracy:.2%}")

    def _on_controller_snapshot_taken(self, snapshot) -> None:
        self.time_machine.offer(snapshot)  # the planned moments are kept, before the newest-only coalescing
        self._pending_snapshot = snapshot
        self._schedule()

    def _on_controller_evaluated(self, results) -> None:
        self.results.set_results(results, self._data.test_images, self._data.class_names)
        self.lower_tabs.setCurrentIndex(1)
        self.controls.metrics.setText(f"<b>Test accuracy {results.accuracy:.2%}</b> (test loss {results.loss:.4f})")

    def _on_controller_layers_timed(self, timings) -> None:
        # the pipeline is locked during the run, so these are the document's current layers
        if self._document is not None:
            self._document.set_layer_timings(timings)

    def _on_controller_errored(self, message: str) -> None:
        self._error = message
        self.controls.show_message(message, "error")
        self._post(message)

    def _on_controller_learning_rate_refused(self, message: str) -> None:
        self.controls.show_message(message, "error")
        self._post(message)

    def _on_controller_finished(self, completed: bool) -> None:
        if self._run_active:
            self._end_run(completed)

    def _end_run(self, completed: bool) -> None:
        self._run_active = False
        self.train_status.end()
        # Objects frozen at the start are ordinary again: a model in a reference cycle that
        # stayed frozen could never be collected (one more model kept per run).
        gc.unfreeze()
        self._apply_timer.stop()
        self._on_apply_timer_timeout()
        self.curves.end_run()
        self.controls.set_running(False)
        self.controls.set_blocker(self._blocker_reason())
        model = self._model
        if self._error is None:
            if completed:
                text = "Finished: the trained weights are kept."
            else:
                step = self._last_step
                where = f" at epoch {step.epoch}, batch {step.batch}" if step else ""
                text = f"Stopped{where}: the weights so far are kept."
            said = getattr(self._prepared_run, "messages", [])  # the callbacks' lines ("early stopping")
            text = " ".join([text, *(f"{line}." for line in said)])
            self.controls.show_message(text, "ok")
            self._post(text)
            self.continuation.keep(model, self._prepared_run, self._run_config)
        self.time_machine.end_run(model, self._prepared_run, failed=self._error is not None)
        self._prepared_run = None
        if self._error is not None and model is not None and model.built:
            # No final snapshot follows a failure; the thread has ended, so reading the model
            # here is safe: after a divergence this shows the last good weights.
            self._show_model(model)
        self.run_finished.emit(model)

    # --- applying updates (coalesced) ----------------------------------------------

    def _schedule(self) -> None:
        if not self._apply_timer.isActive():
            self._apply_timer.start()

    def _on_apply_timer_timeout(self) -> None:
        report, self._pending_report = self._pending_report, None
        snapshot, self._pending_snapshot = self._pending_snapshot, None
        if report is not None:
            self.train_status.step(report)
        if snapshot is not None:
            self._shown_snapshot = snapshot
            self.filters.set_weights(snapshot.weights)
            if snapshot.activations:
                self._show_maps(snapshot.activations)

    def _show_maps(self, activations: dict, first_only: bool = False) -> None:
        """activations: layer name -> (H, W, C), or (1, H, W, C) when first_only."""
        layers = []
        for name, class_name, field in self._spatial:
            maps = activations.get(name)
            if maps is None:
                continue
            maps = np.asarray(maps[0] if first_only else maps)
            if maps.ndim == 3:
                layers.append(MapLayer(name, class_name, maps, tuple(field.size), tuple(field.jump),
                                       tuple(field.start), getattr(self._model, "input_shape", None)))
        self.feature_maps.set_layers(layers)

    def _probe_model(self):
        """(model, probe image) the probe's feature maps on screen were computed with, or None.
        During a run: a copy of the model with the snapshot's weights, never the model the
        worker is training."""
        model, probe = self._model, self.probe_picker.probe()
        snapshot = self._shown_snapshot
        if self._run_active and snapshot is not None and snapshot.probe is not None:
            model, probe = model_with_weights(model, snapshot.weights), snapshot.probe
        elif self._run_active:
            self._post("The feature maps of this run are not shown yet: try again in a moment.")
            return None
        if model is None or not model.built or probe is None:
            return None
        return model, np.asarray(probe, np.float32).reshape(model.input_shape)

    def trace_cell(self, layer_name: str, channel: int, y: int, x: int):
        """Open (or update) the trace panel for one cell of the probe's feature maps."""
        found = self._probe_model()
        if found is None:
            return None
        return self.tracer.trace(*found, layer_name, (y, x, channel), self.probe_picker.probe_label(),
                                 self.training_settings().loss)

    def watch_slide(self, layer_name: str | None = None):
        """Open the sliding-window view over the probe image (None: no model or probe yet)."""
        found = self._probe_model()
        return None if found is None else self.tracer.slide(*found, layer_name)

    def _post(self, text: str) -> None:
        self.message_posted.emit(text)


def probe_batch(image, model):
    """The probe as a batch of one for the model's input, or None when it is not that size
    (a 28x28 digit pinned from the Draw tab while the model takes 32x32 colour images)."""
    if image is None or model is None:
        return None
    image = np.asarray(image, np.float32)
    shape = tuple(model.input_shape)
    return image.reshape((1, *shape)) if image.size == int(np.prod(shape)) else None


def _heading(text: str) -> QLabel:
    # <big> is relative to the widget's font, so headings follow View ▸ Zoom (11pt did not).
    return QLabel(f"<big><b>{text}</b></big>")
