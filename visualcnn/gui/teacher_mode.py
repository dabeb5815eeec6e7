"""Teacher mode: the project's "teacher" section applied to the window (issue 14).

What the section means lives in engine/lessons/teacher.py; this file only draws it:

- lock "pipeline": MainWindow.set_teacher_locked, the same widgets and actions a training run
  locks (set_pipeline_locked), but Train stays available: a locked network can still be trained;
- lock "settings": every widget of the Train tab's settings form (and any widget marked with
  the dynamic property trainingSetting=True) is disabled, again after each run (a run's end
  re-enables the form);
- hide: docks, tabs and menus leave the screen and their View-menu toggles disappear; a hidden
  dock that something shows again (Reset Layout, returning to the Build tab) is hidden again;
- a yellow "Locked by your teacher" banner across the window says what is locked and hidden,
  with the teacher's note, and an "Unlock…" button; File ▸ Teacher has "Lock and Hide…" (set
  the section from check boxes) and "Unlock…" (for this session, or remove the section).

The window follows its document: opening a project (or a lesson setting the section) applies
the section; `apply(section)` applies one without writing it to the project (until another
project or lesson is loaded).
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QMenu, QPushButton, QSizePolicy, QToolBar, QVBoxLayout,
                               QWidget)

from ..engine.layers import ConfigError
from ..engine.lessons.teacher import LOCKS, PANELS, TeacherSettings, banner_text, code_digest, teacher_settings

BANNER_STYLE = ("QWidget#teacherBannerBody { background: #fff3cd; border-bottom: 1px solid #e5c96b; }"
                "QLabel#teacherBannerText { color: #664d03; }")
SETTING_PROPERTY = "trainingSetting"  # widgets outside the settings form that a "settings" lock disables
HIDDEN_DOCKS_KEY = "teacher/hidden_docks"  # QSettings: the docks hidden by a teacher (not by the user)
# How the check boxes name each id (the banner's words, capitalised, with what they do).
LOCK_LABELS = {"pipeline": "Lock the pipeline (layers, their settings, the input shape)",
               "settings": "Lock the training settings (Train still works)"}


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def menu_of(action: QAction) -> QMenu | None:
    """The menu an action was added to (None if none)."""
    for owner in action.associatedObjects():
        if isinstance(owner, QMenu):
            return owner
    return None


class TeacherChoicesWidget(QWidget):
    """Check boxes for every lock and hide id, and the teacher's note (Lock and Hide…, Save as Lesson…)."""

    def __init__(self, settings: TeacherSettings = TeacherSettings(), parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        locks = QGroupBox("Lock")
        locks_layout = QVBoxLayout(locks)
        self.lock_boxes = {}
        for key in LOCKS:
            box = QCheckBox(LOCK_LABELS.get(key, _capitalised(LOCKS[key])))
            box.setChecked(settings.locks(key))
            locks_layout.addWidget(box)
            self.lock_boxes[key] = box
        locks_layout.addStretch(1)  # the boxes at the top, beside the longer Hide list
        hides = QGroupBox("Hide")
        hides_layout = QVBoxLayout(hides)
        self.hide_boxes = {}
        for key, words in PANELS.items():
            box = QCheckBox(_capitalised(words))
            box.setChecked(settings.hides(key))
            hides_layout.addWidget(box)
            self.hide_boxes[key] = box
        self.note = QLineEdit(settings.note)
        self.note.setPlaceholderText("e.g. Change only the strides, then predict the output shape.")
        self.note.setToolTip("One sentence shown to the students in the yellow banner")
        self._code_digest = settings.unlock_code_sha256
        self.code = QLineEdit()
        self.code.setEchoMode(QLineEdit.EchoMode.Password)
        self.code.setPlaceholderText("unchanged (set)" if self._code_digest else "none: anyone can unlock")
        self.code.setToolTip("Optional: Unlock then asks for this code. Only its digest is saved, never the code.")
        note_form = QFormLayout()
        note_form.addRow("Note for the students", self.note)
        note_form.addRow("Unlock code", self.code)
        row = QHBoxLayout()
        row.addWidget(locks, 1)
        row.addWidget(hides, 1)
        layout.addLayout(row)
        layout.addLayout(note_form)

    def settings(self) -> TeacherSettings:
        typed = self.code.text().strip()
        return teacher_settings({"lock": [k for k, box in self.lock_boxes.items() if box.isChecked()],
                                 "hide": [k for k, box in self.hide_boxes.items() if box.isChecked()],
                                 "note": self.note.text(),
                                 "unlock_code_sha256": code_digest(typed) if typed else self._code_digest})


class TeacherBannerWidget(QWidget):
    """The yellow strip: what the teacher locked and hid, and the Unlock… button. Its text wraps:
    the bar's height follows the text's height at the window's width."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("teacherBannerBody")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(BANNER_STYLE)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 6)
        self.text = QLabel()
        self.text.setObjectName("teacherBannerText")
        self.text.setWordWrap(True)
        # Bold through the font, not the style sheet: the label's heightForWidth measures with
        # its font, and a style-sheet weight made it measure one line where two were drawn.
        bold = self.text.font()
        bold.setBold(True)
        self.text.setFont(bold)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.text, 1)
        self.unlock_button = QPushButton("Unlock (teacher)…")
        self.unlock_button.setObjectName("teacherUnlockButton")
        self.unlock_button.setToolTip("For the teacher: lift the locks for this session or remove them from the "
                                      "project")
        layout.addWidget(self.unlock_button, 0, Qt.AlignmentFlag.AlignVCenter)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 - Qt override
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt override
        return self.layout().totalHeightForWidth(width)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._fit_height(event.size().width())

    def event(self, event) -> bool:
        # New text (another lesson's note) or the bold style sheet taking effect changes the
        # wrapped height without a resize: refit then too, else a two-line text sat clipped
        # in a one-line bar (measured before polish, in the normal weight, it fitted one line).
        if event.type() == QEvent.Type.LayoutRequest:
            self._fit_height(self.width())
        return super().event(event)

    def _fit_height(self, width: int) -> None:
        # A tool bar does not ask for the height at a width: fix it to the wrapped text's height
        # at this width (one line on a wide window, two or three on a narrow one).
        self.text.ensurePolished()
        wanted = self.heightForWidth(width)
        if wanted > 0 and wanted != self.height():
            self.setFixedHeight(wanted)
        # Lay the label and button out in the height now in force: a label laid out while the
        # bar was narrower kept that taller box and drew its lines centred below the bar's edge.
        self.layout().setGeometry(self.rect())


class TeacherMode(QObject):
    """Applies a teacher section to one MainWindow; created by install_teacher_mode."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.settings = TeacherSettings()   # what is in force now
        self.unlocked_for_session = False   # the teacher lifted the project's section until it changes
        self._disabled_settings: dict = {}  # widget -> enabled before the lock (what Unlock gives back)
        self._hidden_docks: list = []
        names = window.settings.value(HIDDEN_DOCKS_KEY, []) or []  # read before the first apply rewrites it
        self._hidden_at_last_close = [names] if isinstance(names, str) else list(names)

        self.banner = TeacherBannerWidget()
        self.banner.unlock_button.clicked.connect(lambda _=False: self.unlock_dialog())
        self.toolbar = QToolBar("Teacher")
        self.toolbar.setObjectName("teacherBanner")
        self.toolbar.setMovable(False)
        self.toolbar.setFloatable(False)
        self.toolbar.toggleViewAction().setVisible(False)  # not the student's to hide
        self.toolbar.setContextMenuPolicy(Qt.ContextMenuPolicy.PreventContextMenu)
        self.toolbar.setStyleSheet("QToolBar#teacherBanner { border: none; padding: 0; spacing: 0; }")
        self.toolbar.addWidget(self.banner)
        window.addToolBarBreak(Qt.ToolBarArea.TopToolBarArea)
        window.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)
        self.toolbar.hide()

        self._build_menu()
        window.document.section_changed.connect(self._on_document_section_changed)
        window.document.pipeline_reset.connect(self._on_document_pipeline_reset)
        window.train_panel.run_started.connect(self._on_run_state_changed)
        window.train_panel.run_finished.connect(self._on_run_state_changed)
        window.tabs.currentChanged.connect(lambda _index: self._apply_hidden())
        for dock in self._docks().values():
            dock.installEventFilter(self)

    # --- menus ----------------------------------------------------------------------

    def _build_menu(self) -> None:
        file_menu = menu_of(self.window.save_as_action)
        actions = file_menu.actions() if file_menu is not None else []
        after = actions[actions.index(self.window.save_as_action) + 1] if file_menu is not None else None
        self.save_as_lesson_action = QAction("Save as &Lesson…", self.window)
        self.save_as_lesson_action.setStatusTip("Write a lesson file from this project, its model beside it, "
                                                "with the locks you choose")
        self.save_as_lesson_action.triggered.connect(lambda _=False: self.save_as_lesson_dialog())
        self.teacher_menu = QMenu("&Teacher", self.window)
        self.teacher_menu.setObjectName("teacherMenu")
        self.lock_action = self.teacher_menu.addAction("&Lock and Hide…")
        self.lock_action.setStatusTip("Choose what the students may not change or see; saved with the project")
        self.lock_action.triggered.connect(lambda _=False: self.lock_dialog())
        self.unlock_action = self.teacher_menu.addAction("&Unlock…")
        self.unlock_action.triggered.connect(lambda _=False: self.unlock_dialog())
        self.unlock_action.setEnabled(False)
        if file_menu is not None:
            file_menu.insertAction(after, self.save_as_lesson_action)
            file_menu.insertMenu(after, self.teacher_menu)

    # --- applying -------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return not self.settings.empty

    def _on_document_section_changed(self, key: str) -> None:
        if key != "teacher":
            return
        self.unlocked_for_session = False  # a new project (or new locks) applies again
        self.apply(self.window.document.section("teacher"))

    def _on_document_pipeline_reset(self) -> None:
        # Another project (or lesson) replaced this one: its own section, or none, holds now,
        # also when the earlier locks came from apply() rather than from the project.
        self.unlocked_for_session = False
        self.apply(self.window.document.section("teacher"))

    def apply(self, section) -> None:
        """Apply a teacher section (dict as in a file, a TeacherSettings, or None = nothing).

        The project is not changed: a lesson's locks applied this way are not saved with the
        student's work (document.set_section("teacher", ...) applies and saves them)."""
        try:
            settings = section if isinstance(section, TeacherSettings) else teacher_settings(section)
        except ConfigError as exc:  # the file reader checked it already; never lock on a bad value
            self.window.statusBar().showMessage(f"Teacher settings ignored: {exc}", 10000)
            settings = TeacherSettings()
        self.settings = settings
        self.window.set_teacher_locked(settings.locks("pipeline"))
        self._apply_settings_lock()
        self._apply_hidden()
        self.banner.text.setText(banner_text(settings))
        self.toolbar.setVisible(self.active)
        self.unlock_action.setEnabled(self.active)

    def _setting_widgets(self) -> list[QWidget]:
        """The Train tab's settings: every field of its settings form, plus marked widgets."""
        controls = self.window.train_panel.controls
        widgets = []
        for form in controls.findChildren(QFormLayout):
            for row in range(form.rowCount()):
                item = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
                # a field's buttons are actions (Continue training), not settings
                if item is not None and item.widget() is not None and not isinstance(item.widget(), QPushButton):
                    widgets.append(item.widget())
        widgets += [w for w in self.window.train_panel.findChildren(QWidget) if w.property(SETTING_PROPERTY)]
        return list(dict.fromkeys(widgets))

    def _apply_settings_lock(self) -> None:
        if self.settings.locks("settings"):
            for widget in self._setting_widgets():
                # Remember the state the form's own logic gave it (a run's start or end re-enables
                # the form before the lock applies again; a patience box stays off without its check).
                if widget.isEnabled() or widget not in self._disabled_settings:
                    self._disabled_settings[widget] = widget.isEnabled()
                widget.setEnabled(False)
                widget.setToolTip(_with_lock_line(widget.toolTip()))
            return
        # Lifted: each widget as it was, but during a run only the learning rate (as a run has it).
        running = self.window.train_panel.is_running()
        learning_rate = self.window.train_panel.controls.learning_rate
        for widget, enabled in self._disabled_settings.items():
            if not shiboken6.isValid(widget):  # a panel rebuilt its widgets meanwhile
                continue
            widget.setEnabled(enabled and (not running or widget is learning_rate))
            widget.setToolTip(_without_lock_line(widget.toolTip()))
        self._disabled_settings = {}

    def _on_run_state_changed(self, *_args) -> None:
        # The run's own start/end toggles the settings form; the lock wins afterwards.
        if self.settings.locks("settings"):
            QTimer.singleShot(0, self._apply_settings_lock)

    def _docks(self) -> dict:
        w = self.window
        return {"palette": w.palette_dock, "inspector": w.inspector_dock, "summary": w.summary_dock}

    def _pages(self) -> dict:
        return {"train": self.window.train_page, "draw": self.window.draw_page}

    def _menus(self) -> dict:
        explain = menu_of(self.window.watch_slide_action)
        return {"explain": explain.menuAction() if explain is not None else None,
                "presets": self.window.presets_menu.menuAction()}

    def _apply_hidden(self) -> None:
        w = self.window
        for key, dock in self._docks().items():
            hidden = self.settings.hides(key)
            dock.toggleViewAction().setVisible(not hidden)
            if hidden and dock.isVisible():
                dock.hide()
                self._hidden_docks.append(dock)
            elif not hidden and dock in self._hidden_docks:
                self._hidden_docks.remove(dock)
                if w.tabs.currentIndex() == 0:  # the other tabs hide the builder's docks anyway
                    dock.show()
        for key, page in self._pages().items():
            index = w.tabs.indexOf(page)
            hidden = self.settings.hides(key)
            if hidden and w.tabs.currentIndex() == index:
                w.tabs.setCurrentIndex(0)
            w.tabs.setTabVisible(index, not hidden)
            w.tab_bar.setTabVisible(index, not hidden)
        w.train_button.setVisible(not self.settings.hides("train"))
        # "Ready to train" / "Cannot train: ..." speaks of a tab the student cannot open.
        w.train_status.setVisible(not self.settings.hides("train"))
        for key, action in self._menus().items():
            if action is not None:
                action.setVisible(not self.settings.hides(key))
        # The window saves its docks' visibility when it closes: remember which were the
        # teacher's doing, so the next start (without the locks) shows them again.
        hidden = [dock.objectName() for key, dock in self._docks().items() if self.settings.hides(key)]
        if hidden or w.settings.contains(HIDDEN_DOCKS_KEY):  # nothing written for a class without a teacher
            w.settings.setValue(HIDDEN_DOCKS_KEY, hidden)

    def _after_layout_restored(self) -> None:
        """Once the window has restored the saved layout: docks a teacher hid when it was last
        closed come back (their hiding was not the user's layout), and the banner shows only
        while locks hold (the saved state remembers tool bars too)."""
        for key, dock in self._docks().items():
            if dock.objectName() in self._hidden_at_last_close and not self.settings.hides(key) and self.window.tabs.currentIndex() == 0:
                dock.show()
        self._apply_hidden()  # rewrites the key for the settings in force now
        self.toolbar.setVisible(self.active)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Show:
            for key, dock in self._docks().items():
                if watched is dock and self.settings.hides(key):
                    QTimer.singleShot(0, dock.hide)  # Reset Layout or the Build tab showed it again
        return False

    # --- the teacher's actions --------------------------------------------------------

    def lock_dialog(self) -> QDialog:
        """File ▸ Teacher ▸ Lock and Hide…: choose the section; OK writes it to the project."""
        dialog = QDialog(self.window)
        dialog.setObjectName("teacherLockDialog")
        dialog.setWindowTitle("Lock and hide for the students")
        layout = QVBoxLayout(dialog)
        intro = QLabel("The choices are saved in the project: a student who opens it sees the pipeline and panels "
                       "as you set them here, with a yellow banner that says so.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        choices = TeacherChoicesWidget(teacher_settings(self.window.document.section("teacher")))
        layout.addWidget(choices)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(dialog.accept)
        buttons.rejected.connect(dialog.reject)
        layout.addWidget(buttons)
        dialog.choices = choices

        def _on_accepted():
            settings = choices.settings()
            self.window.document.set_section("teacher", None if settings.empty and not settings.note
                                             else settings.to_section())
            self.window.statusBar().showMessage("Teacher settings set: save the project to keep them", 10000)

        dialog.accepted.connect(_on_accepted)
        dialog.open()
        return dialog

    def unlock_for_session(self) -> None:
        """Lift every lock and show every panel until the project (or its section) changes."""
        self.unlocked_for_session = True
        self.apply(None)
        self.window.statusBar().showMessage("Unlocked for this session: the project still holds the teacher "
                                            "settings (File ▸ Teacher ▸ Lock and Hide… changes them)", 10000)

    def remove_from_project(self) -> None:
        """Remove the section (the project is then modified; saving writes it without)."""
        self.window.document.set_section("teacher", None)
        if self.active:  # the locks came from a lesson (apply), not from the project
            self.apply(None)
        self.window.statusBar().showMessage("Teacher settings removed: save the project to keep it unlocked", 10000)

    def unlock_dialog(self) -> "UnlockDialog":
        dialog = UnlockDialog(self)
        dialog.open()
        return dialog

    def save_as_lesson_dialog(self):
        from .save_as_lesson import SaveAsLessonDialog

        dialog = SaveAsLessonDialog(self.window)
        dialog.open()
        return dialog


class UnlockDialog(QDialog):
    """Unlock for now (until the project is opened again) or remove the locks from the project;
    asks for the unlock code when the teacher set one."""

    def __init__(self, mode: TeacherMode):
        super().__init__(mode.window)
        self.setObjectName("teacherUnlockDialog")
        self.setWindowTitle("Unlock")
        self.mode = mode
        layout = QVBoxLayout(self)
        text = QLabel("This is for your teacher. Unlock for Now: everything can be edited and is shown until this "
                      "project is opened again. Remove the Locks: the project is saved without them.")
        text.setWordWrap(True)
        layout.addWidget(text)
        self.code = QLineEdit()
        self.code.setEchoMode(QLineEdit.EchoMode.Password)
        self.code.setPlaceholderText("unlock code")
        self.code.setVisible(bool(mode.settings.unlock_code_sha256))
        layout.addWidget(self.code)
        self.message = QLabel()
        self.message.setStyleSheet("color: #8a0010; font-weight: bold;")
        self.message.hide()
        layout.addWidget(self.message)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.now_button = buttons.addButton("Unlock for Now", QDialogButtonBox.ButtonRole.AcceptRole)
        self.remove_button = buttons.addButton("Remove the Locks", QDialogButtonBox.ButtonRole.DestructiveRole)
        self.now_button.clicked.connect(lambda: self._unlock(remove=False))
        self.remove_button.clicked.connect(lambda: self._unlock(remove=True))
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        layout.addWidget(buttons)

    def _unlock(self, remove: bool) -> None:
        if not self.mode.settings.unlocks_with(self.code.text()):
            self.message.setText("That is not the unlock code: ask your teacher.")
            self.message.show()
            self.code.selectAll()
            self.code.setFocus()
            return
        if remove:
            self.mode.remove_from_project()
        else:
            self.mode.unlock_for_session()
        self.accept()


LOCK_LINE = "Locked by your teacher."


def _with_lock_line(tip: str) -> str:
    return tip if tip.endswith(LOCK_LINE) else (f"{tip}\n\n{LOCK_LINE}" if tip else LOCK_LINE)


def _without_lock_line(tip: str) -> str:
    return tip[: -len(LOCK_LINE)].rstrip("\n") if tip.endswith(LOCK_LINE) else tip


def install_teacher_mode(window) -> TeacherMode:
    """Teacher mode for a MainWindow, following its document's "teacher" section."""
    mode = TeacherMode(window)
    mode.apply(window.document.section("teacher"))
    QTimer.singleShot(0, mode._after_layout_restored)  # the window restores its saved layout after this
    return mode
