"""The builder window: palette, pipeline, inspector and summary around one document.

Later panels (training curves, filters, feature maps, draw-a-digit) go in the central
tabs "Train" and "Draw"; connect to MainWindow.training_requested (emitted by
MainWindow.train_button, which is enabled only while the pipeline is valid).
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QUndoStack
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
                               QPushButton, QScrollArea, QTabWidget, QVBoxLayout, QWidget)

from ..engine.layers import ConfigError
from ..engine.model_io import (compile_from_config, decode_weights, encode_weights, load_model_file, model_from_json,
                               write_text_atomic)
from ..engine.shapes import format_shape
from .commands import SetTrainedWeightsCommand
from .project_changes import ProjectBaseline, bundled_preset
from .undo_shortcuts import UndoShortcutRouter
from .document import PipelineDocument
from .draw_tab import DrawTabWidget
from .explain_windows import ExplainWindows
from .embedding_panel import open_embedding
from .families import ERROR_COLOUR
from .load_weights import WEIGHTS_FILE_FILTER, weights_for
from .inspector import InspectorWidget
from .palette import PaletteWidget, starter_config
from .pipeline_view import PipelineWidget
from .summary_view import SummaryWidget
from ..engine.recipe import readiness_problem
from ..engine.memory import format_bytes
from .memory_texts import document_memory
from .tab_strip import pin_tab_bar
from .window_fit import initial_window_size, stack_summary_if_short
from .zoom import ZoomController
from .train_tab import TrainTabWidget
from .engine_warmup import EngineWarmup, follow
from .teacher_mode import install_teacher_mode
from .glossary_tips import install_glossary_tips
from .dataset_window import install_dataset_ui
from .dataset_source import readiness_dataset
from .dataset_picker import spec_title
from .answer_mask import MASK, answer_mask

MAX_RECENT = 8
CLOSE_WAIT_MS = 1500  # a close waits this long for the current batch, then hides and waits in the background
FILE_FILTER = "VisualCNN model (*.json);;All files (*)"
# Open also reads Keras files (with their weights); Save always writes our JSON.
OPEN_FILTER = ("Models (*.json *.keras *.h5);;VisualCNN model (*.json);;Keras model (*.keras *.h5);;"
               "All files (*)")
IMPORTED_SUFFIXES = (".keras", ".h5")
# The window draws a card per layer: 1,000 open in about 0.2 s, 40,000 froze it for 8 s.
# Larger files are still read by the command line (`visualcnn summary`, `train`).
WINDOW_MAX_LAYERS = 1000


def preset_paths() -> list[Path]:
    """The bundled presets, seed CNN first (none when the install lacks its resources)."""
    from ..resources import preset_dir, preset_names

    try:
        folder = preset_dir()
        return [folder / f"{name}.json" for name in preset_names()]
    except FileNotFoundError:
        return []


def preset_infos() -> list:
    """The Presets menu's entries (readable titles); none when the resources are missing."""
    from ..resources import preset_titles

    return preset_titles()


def train_blocker(document: PipelineDocument) -> str | None:
    """Why Train is disabled, in the engine's words; None when the pipeline can be trained."""
    if len(document) == 0:
        return "Add layers to the pipeline first."
    return document.report.error


def build_tab_problem(document: PipelineDocument) -> str | None:
    """What the Build tab's "Ready to train" line checks: the engine's readiness_problem, the
    same function the Train tab's refusal calls, so the two can never disagree."""
    return train_blocker(document) or readiness_problem(document.report, document.training,
                                                        dataset=readiness_dataset(document.section("dataset")))


def scrollable(page: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setWidget(page)
    return area


def check_weights(model_file) -> None:
    """Refuse a file whose trained weights do not fit its own model (ConfigError names why)."""
    if model_file.weights is None:
        return
    model = model_file.model
    model.build()
    decode_weights(model, model_file.weights)


class MainWindow(QMainWindow):
    training_requested = Signal()      # the Train button; the training panel connects here
    file_opened = Signal(str)
    file_saved = Signal(str)
    window_closed = Signal()           # the close was accepted (after a run's last batch, if one was running)

    def __init__(self, settings: QSettings | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.settings = settings if settings is not None else QSettings()
        self.zoom = ZoomController(self.settings, self)  # first: the panels are sized from the zoomed font
        self.document = PipelineDocument(self)
        self.undo_stack = QUndoStack(self)
        self.path: Path | None = None
        self.preset_name: str | None = None
        self.imported_from: Path | None = None  # the Keras file this untitled project was opened from
        self._draw_weights = None  # (weights object, pipeline) the Draw tab's model was built from
        self._hidden_docks: list | None = None  # builder docks hidden while another tab shows
        self.locked = False  # True while a training run owns the pipeline
        self.teacher_locked = False  # True while a teacher's lock holds the pipeline (gui/teacher_mode.py)
        self._close_after_run: str | None = None  # "keep" / "discard": closing once the run has stopped
        self._waiting_in_close = False
        self._hidden_for_close = False  # hidden by a close that waits for the run's last batch
        self._baseline = ProjectBaseline.of(self.document)  # what the project was when last saved / opened

        self.tabs = QTabWidget()
        self.tabs.setObjectName("centralTabs")
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.pipeline = PipelineWidget(self.document, self.undo_stack)
        self.tabs.addTab(self._build_tab(), "Build")
        self.train_panel = TrainTabWidget()
        self.draw_panel = DrawTabWidget()
        # In scroll areas: the Train and Draw pages fill the window when there is room and
        # scroll when there is not, instead of forcing their minimum size on the Build tab's
        # docks (the Train page alone asks for 1,107 px of width).
        self.train_page = scrollable(self.train_panel)
        self.draw_page = scrollable(self.draw_panel)
        self.tabs.addTab(self.train_page, "Train")
        self.tabs.addTab(self.draw_page, "Draw")
        self.tab_bar = pin_tab_bar(self, self.tabs)

        self.palette_widget = PaletteWidget()
        self.inspector = InspectorWidget(self.document, self.undo_stack)
        self.summary = SummaryWidget(self.document)
        inspector_scroll = QScrollArea()
        inspector_scroll.setWidgetResizable(True)
        inspector_scroll.setWidget(self.inspector)
        self.palette_dock = self._dock("Layers", "paletteDock", self.palette_widget,
                                       Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector_dock = self._dock("Inspector", "inspectorDock", inspector_scroll,
                                         Qt.DockWidgetArea.RightDockWidgetArea)
        self.summary_dock = self._dock("Summary", "summaryDock", self.summary,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        # Palette and inspector run the full height; the summary sits under the pipeline.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self._default_state = None

        self.pipeline.list_widget.current_row_changed.connect(self.inspector.set_row)
        self.pipeline.list_widget.message_posted.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.palette_widget.layer_activated.connect(self._on_palette_layer_activated)
        self.document.report_updated.connect(self._on_document_report_updated)
        self.document.weights_changed.connect(self._on_document_weights_changed)
        self.tabs.currentChanged.connect(self._on_tabs_current_changed)
        self.train_panel.set_model_source(self.build_engine_model)
        self.train_panel.bind_document(self.document, self.undo_stack)  # the settings are the document's
        self.training_requested.connect(self._on_training_requested)
        self.train_panel.run_started.connect(self._on_train_panel_run_started)
        from .run_recording import RunHistoryRecorder

        # Every run joins the "runs" section. Made before the next line: Qt calls slots in the
        # order they were connected, so the run is recorded before a close that waited for it saves.
        self.run_recorder = RunHistoryRecorder(self.train_panel, self.document, self)
        self.run_history_window = None  # View ▸ Run History… (gui/run_history_window.py), made when first opened
        self.train_panel.run_finished.connect(self._on_train_panel_run_finished)
        self.train_panel.message_posted.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.train_panel.controller.snapshot_taken.connect(self._on_training_snapshot_taken)
        self.document.pipeline_reset.connect(self._on_document_pipeline_reset)
        self.document.weights_dropped.connect(self._on_document_weights_dropped)
        # the batch size and optimizer move the memory estimate the Build tab's status line shows
        self.document.training_changed.connect(lambda _config: self._on_document_report_updated(self.document.report))
        answer_mask(self.document).changed.connect(lambda: self._on_document_report_updated(self.document.report))
        self.document.section_changed.connect(lambda _key: self._update_title())
        self.document.section_changed.connect(self._on_document_section_changed_train_tooltip)
        self.draw_panel.probe_pinned.connect(self._on_draw_panel_probe_pinned)
        self.undo_stack.cleanChanged.connect(self._update_title)
        # Compile the engine's kernels for this pipeline in the background (first run only).
        self.engine_warmup = EngineWarmup(self)
        self.train_panel.train_status.attach(self.engine_warmup)
        follow(self.engine_warmup, self.document.report_updated, self._warmup_model)

        self._build_menus()
        from .lessons_panel import install_lessons

        self.lessons = install_lessons(self)  # the Lessons dock and the Help menu (gui/lessons_panel.py)
        self.undo_router = UndoShortcutRouter(self)  # Ctrl+Z reaches the undo stack from any field
        self.teacher_mode = install_teacher_mode(self)  # the project's "teacher" section (gui/teacher_mode.py)
        install_glossary_tips(self)  # the glossary's words on the window's technical terms
        self.dataset_ui = install_dataset_ui(self)  # Try it, Dataset Browser, augmentation preview
        # A learning-rate edit during a run is pushed like any edit, and the stack then re-enables
        # its actions: keep them off while locked (undoing a pipeline edit mid-run would give the
        # run's weights to a pipeline they were not trained for).
        self.undo_stack.canUndoChanged.connect(self._on_undo_stack_can_change)
        self.undo_stack.canRedoChanged.connect(self._on_undo_stack_can_change)
        app = QCoreApplication.instance()
        if app is not None:  # the app quitting under a run waits for its batch: never destroy a running QThread
            app.aboutToQuit.connect(self.train_panel.shutdown)
        self.setMinimumSize(820, 540)
        self.resize(initial_window_size(self, QSize(1440, 900)))
        self.fit_docks()
        self._default_state = self.saveState()
        self._restore_layout()
        self._on_document_report_updated(self.document.report)
        self._update_title()

    # --- construction -----------------------------------------------------------------

    def _build_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        self.lock_banner = QLabel("Training in progress: the pipeline is locked until the run ends "
                                  "(pause or stop it in the Train tab).")
        self.lock_banner.setObjectName("lockBanner")
        self.lock_banner.setStyleSheet("background: #fff3cd; color: #664d03; padding: 8px; font-weight: bold;")
        self.lock_banner.setWordWrap(True)
        self.lock_banner.hide()
        layout.addWidget(self.lock_banner)
        layout.addWidget(self.pipeline, 1)
        bar = QHBoxLayout()
        bar.setContentsMargins(12, 6, 12, 10)
        self.train_status = QLabel()
        self.train_status.setObjectName("trainStatus")
        self.train_status.setWordWrap(True)
        self.train_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bar.addWidget(self.train_status, 1)
        self.train_button = QPushButton("Train ▶")
        self.train_button.setObjectName("trainButton")
        self.train_button.setMinimumWidth(self.train_button.fontMetrics().horizontalAdvance("Train ▶") + 48)
        self.train_button.setDefault(False)
        self.train_button.clicked.connect(self.training_requested)
        bar.addWidget(self.train_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(bar)
        return page

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)  # saveState/restoreState need stable names
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self):
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.new_action = self._add(file_menu, "&New", QKeySequence.StandardKey.New, self.new_project)
        self.open_action = self._add(file_menu, "&Open…", QKeySequence.StandardKey.Open, self.open_dialog)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        self.save_action = self._add(file_menu, "&Save", QKeySequence.StandardKey.Save, self.save)
        self.save_as_action = self._add(file_menu, "Save &As…", QKeySequence.StandardKey.SaveAs, self.save_as)
        file_menu.addSeparator()
        self.load_weights_action = self._add(file_menu, "Load &Weights…", None, self.load_weights_dialog)
        self.export_action = self._add(file_menu, "&Export…", QKeySequence("Ctrl+E"), self.export_dialog)
        file_menu.addSeparator()
        self._add(file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)

        edit_menu = bar.addMenu("&Edit")
        self.undo_action = self.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        edit_menu.addSeparator()
        lw = self.pipeline.list_widget
        for action in (lw.duplicate_action, lw.delete_action, lw.move_up_action, lw.move_down_action):
            edit_menu.addAction(action)
        edit_menu.addSeparator()
        edit_menu.addAction(lw.connect_action)
        edit_menu.addAction(lw.wrap_action)

        presets_menu = self.presets_menu = bar.addMenu("&Presets")
        for info in preset_infos():
            action = presets_menu.addAction(info.title)  # the file's readable "title"
            action.setStatusTip(info.description)
            action.setToolTip(info.description)
            action.triggered.connect(lambda _=False, p=info.path: self.load_preset(p))
        presets_menu.setToolTipsVisible(True)

        view_menu = bar.addMenu("&View")
        for dock in (self.palette_dock, self.inspector_dock, self.summary_dock):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        self.run_history_action = self._add(view_menu, "Run &History…", QKeySequence("Ctrl+H"), self.open_run_history)
        self._add(view_menu, "Reset &Layout", None, self.reset_layout)
        view_menu.addSeparator()
        self.zoom.add_actions(view_menu)

        # Explanations get a menu of their own: a class looks for "Explain", not inside View.
        explain_menu = bar.addMenu("E&xplain")
        explain_menu.setToolTipsVisible(True)
        tip = explain_menu.addAction("Trace a Value: click any feature-map cell (Draw tab or Train probe)")
        tip.setEnabled(False)  # a hint, not a command: the trace opens from the cell itself
        explain_menu.addSeparator()
        self.watch_slide_action = self._add(explain_menu, "&Watch a Layer Slide…", None, self.watch_slide)
        self.explain_windows = ExplainWindows(self)  # gui/explain_windows.py
        self.explain_action = self._add(explain_menu, "Why Did It Answer &That?…", None,
                                        self.explain_windows.open_maps)
        self.filter_vis_action = self._add(explain_menu, "What Does a &Filter Want to See?…", None,
                                           self.explain_windows.open_filters)
        self.embedding_action = self._add(explain_menu, "The Learned &Space (PCA / t-SNE)…", None,
                                          lambda: open_embedding(self))  # gui/embedding_panel.py

    def open_run_history(self):
        """View ▸ Run History…: the project's recorded runs, compared (one window, raised if open)."""
        if self.run_history_window is None:
            from .run_history_window import RunHistoryWindow

            self.run_history_window = RunHistoryWindow(self.document, self.undo_stack, self)
            self.run_history_window.message_posted.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.run_history_window.show()
        self.run_history_window.raise_()
        self.run_history_window.activateWindow()
        return self.run_history_window

    def watch_slide(self):
        """Explain > Watch a Layer Slide…: a conv or pooling window sliding over the drawn digit
        (gui/slide_view.py, on the Draw tab's model), else over the Train tab's probe image; a
        status line says what is missing."""
        window = self.draw_panel.watch_slide() or self.train_panel.watch_slide()
        if window is None:
            self.statusBar().showMessage("Watch a layer slide: train or load a model, then draw a digit in the "
                                         "Draw tab.", 10000)
        return window

    def _add(self, menu, text, shortcut, slot) -> QAction:
        action = menu.addAction(text)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(lambda _=False: slot())
        return action

    def fit_docks(self) -> None:
        """Default dock sizes for the current window size (the pipeline keeps most of the room)."""
        em = self.fontMetrics().horizontalAdvance("m")
        line = self.fontMetrics().height()
        self.resizeDocks([self.palette_dock, self.inspector_dock],
                         [min(18 * em, int(0.2 * self.width())), min(36 * em, int(0.34 * self.width()))],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.summary_dock], [min(24 * line, int(0.36 * self.height()))], Qt.Orientation.Vertical)
        stack_summary_if_short(self, self.summary_dock, self.inspector_dock)

    # --- engine models of the pipeline ------------------------------------------------

    def build_engine_model(self):
        """A fresh, untrained engine model of the current pipeline; ConfigError says why not."""
        reason = train_blocker(self.document)
        if reason is not None:
            raise ConfigError(reason)
        return model_from_json(json.dumps(self.document.to_dict(include_weights=False)))

    def _warmup_model(self):
        """The pipeline compiled with the Train tab's settings, for the warm-up (None while training)."""
        if self.locked:
            return None
        model = self.build_engine_model()
        compile_from_config(model, self.train_panel.training_settings())
        return model

    def trained_model(self):
        """The pipeline with the project's trained weights, or None if it has none that fit."""
        weights = self.document.trained_weights
        if weights is None or train_blocker(self.document) is not None:
            return None
        model = self.build_engine_model()
        model.build()
        model.set_weights(decode_weights(model, weights))
        return model

    def _refresh_draw_model(self) -> None:
        weights = self.document.trained_weights
        # Weights survive edits that keep their shapes (an activation, a Dropout rate): the
        # Draw tab's model is rebuilt for the edited pipeline, with the same weights.
        key = None if weights is None else (weights, self.document.structure_signature())
        if key == self._draw_weights:  # a tuple compares its weights by identity first: cheap
            return
        self._draw_weights = key
        try:
            model = self.trained_model()
        except ConfigError as exc:  # weights that do not fit were refused when opening; be safe
            model = None
            self.statusBar().showMessage(f"Trained weights ignored: {exc}", 10000)
        self.draw_panel.set_model(model)

    def _on_document_weights_changed(self) -> None:
        self._refresh_draw_model()

    # --- training -----------------------------------------------------------------------

    def _on_training_requested(self) -> None:
        """The Build tab's Train button: show the Train tab and start with its settings."""
        self.tabs.setCurrentWidget(self.train_page)
        self.train_panel.start()

    def _editing_actions(self) -> list[QAction]:
        lw = self.pipeline.list_widget
        return [self.undo_action, self.redo_action, self.new_action, self.open_action, self.load_weights_action,
                lw.duplicate_action,
                lw.delete_action, lw.move_up_action, lw.move_down_action, lw.connect_action, lw.wrap_action,
                *self.presets_menu.actions(),
                self.recent_menu.menuAction()]

    def set_pipeline_locked(self, locked: bool) -> None:
        """While a run trains the pipeline's snapshot, nothing may edit or replace the pipeline."""
        self.locked = locked
        self.lock_banner.setVisible(locked)
        editable = not locked and not self.teacher_locked  # a run's end does not lift a teacher's lock
        for widget in (self.pipeline, self.palette_widget, self.inspector):
            widget.setEnabled(not locked)
        # A teacher's lock keeps the blocks readable: select one, hover it, read its derivation.
        self.palette_widget.setEnabled(editable)
        self.pipeline.input_widget.setEnabled(editable)
        self.pipeline.list_widget.read_only = not editable
        self.inspector.form_host.setEnabled(editable)
        for action in self._editing_actions():
            action.setEnabled(editable)
        if editable:  # give the context-dependent actions their proper state back
            self.undo_action.setEnabled(self.undo_stack.canUndo())
            self.redo_action.setEnabled(self.undo_stack.canRedo())
            lw = self.pipeline.list_widget
            lw.select_row(lw.current_row())
        self.train_button.setEnabled(not locked and build_tab_problem(self.document) is None)

    def set_teacher_locked(self, locked: bool) -> None:
        """A teacher's lock: the pipeline cannot be edited, but it can still be trained."""
        self.teacher_locked = locked
        self.set_pipeline_locked(self.locked)

    def _on_undo_stack_can_change(self, _can: bool) -> None:
        if self.locked or self.teacher_locked:
            self.undo_action.setEnabled(False)
            self.redo_action.setEnabled(False)

    def _on_train_panel_run_started(self) -> None:
        self.set_pipeline_locked(True)
        # The Draw tab follows the run: it classifies with the worker's weight snapshots.
        self._draw_weights = None
        try:
            self.draw_panel.set_model(self.build_engine_model())
        except ConfigError:
            pass

    def _on_training_snapshot_taken(self, snapshot) -> None:
        self.draw_panel.set_weights_snapshot(snapshot.weights)

    def _on_train_panel_run_finished(self, model) -> None:
        self.set_pipeline_locked(False)
        if model is not None and model.built:
            self.undo_stack.push(SetTrainedWeightsCommand(self.document, encode_weights(model)))
        if self._close_after_run is not None and not self._waiting_in_close and self._settle_close():
            QTimer.singleShot(0, self.close)  # from the event loop, not inside the worker's signal

    def _on_document_weights_dropped(self, cause: str) -> None:
        self.statusBar().showMessage(f"The trained weights were dropped because {cause}; Undo brings them back.",
                                     20000)

    def _on_document_pipeline_reset(self) -> None:
        self.train_panel.set_training_defaults(self.document.training)

    def _on_draw_panel_probe_pinned(self, image) -> None:
        self.train_panel.set_probe_image(image)
        self.statusBar().showMessage("Your digit is now the probe of the Train tab's feature maps.", 8000)

    # --- tabs -------------------------------------------------------------------------

    def _builder_docks(self) -> tuple[QDockWidget, ...]:
        return (self.palette_dock, self.inspector_dock, self.summary_dock)

    def _on_tabs_current_changed(self, index: int) -> None:
        """The palette, inspector and summary belong to the Build tab; Train and Draw get the room."""
        building = index == 0
        if not building and self._hidden_docks is None:
            self._hidden_docks = [dock for dock in self._builder_docks() if dock.isVisible()]
            for dock in self._hidden_docks:
                dock.hide()
        elif building and self._hidden_docks is not None:
            for dock in self._hidden_docks:
                dock.show()
            self._hidden_docks = None

    # --- live state -------------------------------------------------------------------

    def _on_document_report_updated(self, report):
        self._refresh_draw_model()
        self.train_panel.refresh_model_source()
        reason = build_tab_problem(self.document)
        self.train_button.setEnabled(reason is None and not self.locked)
        if reason is None:
            self.train_status.setStyleSheet("")
            memory = document_memory(self.document)
            peak = (f"; training needs about {format_bytes(memory.training_peak_bytes)} at batch "
                    f"{memory.batch_size}" if memory is not None else "")
            total, output = f"{report.total_params:,}", format_shape(report.output_shape)
            mask = answer_mask(self.document)  # a lesson's predict step may be asking for one of them
            if mask.hides_totals():
                total = MASK
            if report.rows and mask.masked(report.rows[-1].name, "output_shape"):
                output = MASK
            self.train_status.setText(f"Ready to train: {total} parameters, output {output}{peak}")
            self.train_button.setToolTip(self._train_tooltip())
        else:
            self.train_status.setStyleSheet(f"color: {ERROR_COLOUR}; font-weight: bold;")
            self.train_status.setText(f"Cannot train: {reason}")
            self.train_button.setToolTip(f"Cannot train: {reason}")

    def _train_tooltip(self) -> str:
        """The Build tab's Train button names the project's data ("the image folder 'shapes'")."""
        return f"Train this network on {spec_title(self.document.section('dataset'))}"

    def _on_document_section_changed_train_tooltip(self, key: str) -> None:
        if key == "dataset" and self.train_button.toolTip().startswith("Train this network on "):
            self.train_button.setToolTip(self._train_tooltip())

    def _update_title(self):
        if self.path is not None:
            shown = self.path.name
        elif self.preset_name:
            shown = f"{self.preset_name} (preset)"
        elif self.imported_from is not None:
            shown = f"{self.imported_from.name} (imported)"
        else:
            shown = "Untitled"
        self.setWindowTitle(f"{shown}[*] — VisualCNN")
        self.setWindowModified(self.is_modified)

    @property
    def is_modified(self) -> bool:
        # A run recorded in the history (or any project section set) changes the project
        # without being an undoable edit.
        return not self.undo_stack.isClean() or self._baseline.sections != self.document.sections

    def _on_palette_layer_activated(self, class_name: str):
        lw = self.pipeline.list_widget
        lw.insert_layer(lw.insertion_row(), class_name, starter_config(class_name))

    # --- files ------------------------------------------------------------------------

    def _show_error(self, title: str, message: str) -> None:
        QMessageBox.critical(self, title, message)

    def _confirm_discard(self) -> bool:
        """True if the current project may be replaced (saved, discarded, or unmodified)."""
        if not self.is_modified:
            return True
        answer = QMessageBox.question(
            self, "Unsaved changes", f"{self.unsaved_changes_text()} Save them first?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def unsaved_changes_text(self) -> str:
        """What the unsaved changes are: "The pipeline and the trained weights have unsaved changes." """
        return self._baseline.describe(self.document)

    def _after_load(self, path: Path | None, preset: str | None, window: dict | None):
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self._baseline = ProjectBaseline.of(self.document)
        self.path, self.preset_name = path, preset
        self.imported_from = None
        window = window or {}
        selected = window.get("selected", 0)
        self.pipeline.list_widget.select_row(selected if isinstance(selected, int) else 0)
        tab = window.get("tab")
        if isinstance(tab, int) and 0 <= tab < self.tabs.count():
            self.tabs.setCurrentIndex(tab)
        self._update_title()

    def new_project(self) -> None:
        if not self._confirm_discard():
            return
        self.document.reset()
        self._after_load(None, None, None)

    def open_dialog(self) -> None:
        if not self._confirm_discard():
            return
        start = str(self.path.parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open model", start, OPEN_FILTER)
        if path:
            self.open_file(path, confirm=False)

    def open_file(self, path, confirm: bool = True) -> bool:
        """Load a model file; a file that does not parse is reported and changes nothing."""
        if confirm and not self._confirm_discard():
            return False
        path = Path(path)
        try:
            model_file = load_model_file(path)
            check_window_size(model_file)
            check_weights(model_file)
        except ConfigError as exc:
            self._show_error("Cannot open model", str(exc))
            self._forget_recent(path) if not path.exists() else None
            return False
        self.document.load_model_file(model_file)
        self._show_project_model()
        preset = bundled_preset(path)
        if preset is not None:
            # A bundled preset opened by path is a read-only template: Save goes to Save As.
            self._after_load(None, preset, model_file.window)
            self.statusBar().showMessage(f"Opened the bundled preset {path.name}: Save asks for a new name "
                                         "(presets are read-only templates)", 10000)
            self.file_opened.emit(str(path))
            return True
        if path.suffix.lower() in IMPORTED_SUFFIXES:
            # A Keras file opens as a new project: Save writes our JSON, never over the Keras file.
            self._after_load(None, None, model_file.window)
            self.imported_from = path.resolve()
            self._update_title()
            self._remember_recent(path.resolve())
            weights = "with its trained weights" if model_file.weights is not None else "without weights"
            self.statusBar().showMessage(f"Imported {path} {weights}: Save writes it as a VisualCNN model", 10000)
            self.file_opened.emit(str(path))
            return True
        self._after_load(path.resolve(), None, model_file.window)
        self._remember_recent(path.resolve())
        self.statusBar().showMessage(f"Opened {path}", 5000)
        self.file_opened.emit(str(path))
        return True

    def load_preset(self, path, sections: dict | None = None) -> bool:
        if not self._confirm_discard():
            return False
        path = Path(path)
        try:
            model_file = load_model_file(path)
            if sections:  # a lesson's teacher section opens with its model, not as an unsaved change
                model_file.sections.update(sections)
            check_window_size(model_file)
        except ConfigError as exc:
            self._show_error("Cannot open preset", str(exc))
            return False
        self.document.load_model_file(model_file)
        # A preset opens as a new, untitled project so Save never overwrites the bundled file.
        self._after_load(None, path.stem, model_file.window)
        if model_file.description:
            self.statusBar().showMessage(model_file.description, 10000)
        return True

    def export_dialog(self):
        """File ▸ Export…: the pipeline with the project's trained weights (fresh ones if none)."""
        from .export_dialog import ExportDialog

        try:
            model = self.trained_model()
            trained = model is not None
            if model is None:
                model = self.build_engine_model()
        except ConfigError as exc:
            self._show_error("Cannot export", f"Cannot export this pipeline: {exc}")
            return None
        source = self.path or self.imported_from  # exports go beside the file they came from
        folder = source.parent if source is not None else Path.home()
        name = self.path.stem if self.path is not None else self.document.name
        dialog = ExportDialog(model, self.document.training, trained, name, folder, self)
        if self.document.section("dataset"):  # the scripts read the project's data (a relative path: beside it)
            from ..engine.dataset_spec import spec_for_project

            dialog.dataset = spec_for_project(self.document.section("dataset"), self.path)
        dialog.exported.connect(lambda _format, path: self.statusBar().showMessage(f"Exported to {path}", 10000))
        dialog.open()
        return dialog

    def load_weights_dialog(self) -> None:
        start = str(self.path.parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Load weights", start, WEIGHTS_FILE_FILTER)
        if path:
            self.load_weights_file(path)

    def load_weights_file(self, path) -> bool:
        """Give the current pipeline the weights of a file (undoable); a mismatch changes nothing."""
        try:
            weights = weights_for(self.build_engine_model(), path)
        except ConfigError as exc:
            self._show_error("Cannot load weights", str(exc))
            return False
        self.undo_stack.push(SetTrainedWeightsCommand(self.document, weights))
        self._show_project_model()
        self.statusBar().showMessage(f"Loaded the weights of {Path(path).name}", 10000)
        return True

    def _show_project_model(self) -> None:
        """The Train tab's filters and probe maps show the weights a file brought (the Draw tab
        follows the project's weights by itself)."""
        try:
            model = self.trained_model()
        except ConfigError:
            return
        self.train_panel.show_project_model(model)

    def window_settings(self) -> dict:
        """Window-only settings stored in the project under "window" (the engine ignores them)."""
        return {"selected": self.pipeline.list_widget.current_row(), "tab": self.tabs.currentIndex()}

    def save(self) -> bool:
        if self.path is None or bundled_preset(self.path) is not None:
            return self.save_as()
        return self.save_to(self.path)

    def save_as(self) -> bool:
        start = str(self.path) if self.path else f"{self.document.name}.json"
        path, _ = QFileDialog.getSaveFileName(self, "Save model", start, FILE_FILTER)
        if not path:
            return False
        if not Path(path).suffix:
            path += ".json"
        return self.save_to(path)

    def save_to(self, path) -> bool:
        """Write the project atomically (temporary file + rename)."""
        path = Path(path)
        if bundled_preset(path) is not None:
            self._show_error("Cannot save model", f"{path}: the bundled presets are read-only templates; "
                             "save under another name or in another folder")
            return False
        try:
            write_text_atomic(path, self.document.to_json(self.window_settings()))
        except OSError as exc:
            self._show_error("Cannot save model", f"{path}: {exc.strerror or exc}")
            return False
        self.path, self.preset_name, self.imported_from = path.resolve(), None, None
        self.undo_stack.setClean()
        self._baseline = ProjectBaseline.of(self.document)
        self._remember_recent(self.path)
        self._update_title()
        self.statusBar().showMessage(f"Saved {path}", 5000)
        self.file_saved.emit(str(path))
        return True

    # --- settings: layout and recent files -----------------------------------------------

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember_recent(self, path: Path):
        files = [str(path)] + [f for f in self.recent_files() if f != str(path)]
        self.settings.setValue("recent_files", files[:MAX_RECENT])

    def _forget_recent(self, path: Path):
        self.settings.setValue("recent_files", [f for f in self.recent_files() if f != str(path.resolve())])

    def _fill_recent_menu(self):
        self.recent_menu.clear()
        files = self.recent_files()
        for f in files:
            action = self.recent_menu.addAction(Path(f).name)
            action.setStatusTip(f)
            action.triggered.connect(lambda _=False, p=f: self.open_file(p))
        if not files:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _restore_layout(self):
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def save_layout(self):
        self._on_tabs_current_changed(0)  # docks hidden for the Train/Draw tabs are not a layout choice
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()

    def reset_layout(self):
        if self._default_state is not None:
            self.restoreState(self._default_state)
        for dock in (self.palette_dock, self.inspector_dock, self.summary_dock):
            dock.setFloating(False)
            dock.show()
        self.fit_docks()

    def closeEvent(self, event: QCloseEvent):
        if self.train_panel.is_running() and not self._close_during_run():
            event.ignore()  # cancelled, or closed once the run's current batch has ended
            return
        if self._close_after_run != "discard" and not self._confirm_discard():
            event.ignore()
            return
        self._close_after_run = None
        hidden_for_close, self._hidden_for_close = self._hidden_for_close, False
        self.save_layout()
        event.accept()
        self.window_closed.emit()
        app = QCoreApplication.instance()
        if hidden_for_close and app is not None and app.quitOnLastWindowClosed() and not any(
                w.isVisible() for w in app.topLevelWidgets() if w.isWindow()):
            # Closing a window that was already hidden does not count as closing the last
            # window, so the application would wait for ever: quit as that would have.
            app.quit()

    # --- closing during a run -----------------------------------------------------------

    def _close_during_run(self) -> bool:
        """Ask what to do with the run and stop it after its current batch. True: close now.

        Never blocks for a long batch (one batch of a big network can take minutes) and
        never destroys the running QThread (that aborts the process): a batch that ends
        within CLOSE_WAIT_MS is waited for here; otherwise the window hides (discard) or
        says it is stopping (keep), and closes when the run's end arrives."""
        if self._close_after_run is not None:  # already stopping: a second close just waits
            return False
        answer = QMessageBox.question(
            self, "Training is running",
            "A training run is in progress. Save: stop after the current batch, keep the weights trained "
            "so far and save the project. Discard: stop and close without saving. Cancel: keep training."
            + (f" {self.unsaved_changes_text()}" if self.is_modified else ""),
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Save:
            self._close_after_run = "keep"
        elif answer == QMessageBox.StandardButton.Discard:
            self._close_after_run = "discard"
        else:
            return False
        controller = self.train_panel.controller
        controller.stop()
        self._waiting_in_close = True
        try:  # the run's end (weights joining the project) is delivered inside when it comes in time
            ended = controller.wait_for_end(CLOSE_WAIT_MS)
        finally:
            self._waiting_in_close = False
        if ended:
            return self._settle_close()
        if self._close_after_run == "discard":
            self._hidden_for_close = True
            self.hide()  # gone for the user; the window closes (and the app exits) when the batch ends
        else:
            text = "Stopping after this batch; then the project is saved and the window closes."
            self.train_panel.controls.show_message(text, "info")
            self.statusBar().showMessage(text)
        return False

    def _settle_close(self) -> bool:
        """The run has stopped and its weights joined the project: save them (keep). True: close."""
        if self._close_after_run == "keep" and not self.save():
            self._close_after_run = None  # Save As cancelled or failed: nothing is lost, stay open
            self.show()
            return False
        self._close_after_run = "discard"  # saved, or discarded on purpose: no second question
        return True


def check_window_size(model_file) -> None:
    """Refuse, with what to do instead, a file with more layers than the window can draw."""
    count = len(model_file.model.layers)
    if count > WINDOW_MAX_LAYERS:
        raise ConfigError(f"this model has {count:,} layers; the window builds models of up to "
                          f"{WINDOW_MAX_LAYERS:,} layers. The command line reads it: visualcnn summary FILE")
