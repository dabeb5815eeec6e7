"""File ▸ Save as Lesson…: a teacher writes a lesson file from the current project.

The lesson (Markdown with TOML front matter, engine/lessons/writer.py) gets a title, a
summary, an optional introduction, one read step to start from, and the teacher table
chosen here (the same check boxes as File ▸ Teacher ▸ Lock and Hide…); the project's
model is written beside it (lesson.md + lesson.json, with the trained weights if asked).
What is written is then checked exactly as `visualcnn lesson check` checks it, and the
dialog says so or lists the problems. The knowledge (what the lesson holds, which parts of
the project the model keeps) is engine/lessons/teacher.py's; this file is the form.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QPushButton, QVBoxLayout)

from ..engine.layers import ConfigError
from ..engine.lessons.teacher import (FIRST_STEP_TEXT, FIRST_STEP_TITLE, authored_lesson, lesson_model_dict,
                                      lesson_model_path, teacher_settings, write_lesson)
from .teacher_mode import TeacherChoicesWidget

LESSON_FILTER = "Lesson (*.md);;All files (*)"
ERROR_STYLE = "color: #8a0010; font-weight: bold;"
OK_STYLE = "color: #14532d; font-weight: bold;"


def _title_from(name: str) -> str:
    """'seed_cnn' -> 'Seed cnn': a starting title the teacher overwrites."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


class SaveAsLessonDialog(QDialog):
    """The form; `save()` writes and checks (tests call it directly)."""

    lesson_saved = Signal(str)  # the lesson file's path, once written and checked

    def __init__(self, window, parent=None):
        super().__init__(parent or window)
        self.setObjectName("saveAsLessonDialog")
        self.setWindowTitle("Save as Lesson")
        self.window = window
        document = window.document
        self.title = QLineEdit(_title_from(window.path.stem if window.path else document.name))
        self.summary = QLineEdit()
        self.summary.setPlaceholderText("One sentence: what the student learns, e.g. 'A stride of 2 halves the "
                                        "image.'")
        self.intro = QPlainTextEdit()
        self.intro.setPlaceholderText("Introduction (Markdown, optional): what the lesson is about")
        self.intro.setTabChangesFocus(True)
        self.step_title = QLineEdit(FIRST_STEP_TITLE)
        self.step_text = QPlainTextEdit(FIRST_STEP_TEXT)
        self.step_text.setTabChangesFocus(True)
        for edit in (self.intro, self.step_text):
            edit.setMinimumHeight(edit.fontMetrics().height() * 4)
        self.weights = QCheckBox("Include the trained weights")
        trained = document.trained_weights is not None
        self.weights.setChecked(trained)
        self.weights.setEnabled(trained)
        self.weights.setToolTip("The students start from this trained network (for steps that explain or probe "
                                "it)" if trained else "This project has no trained weights")
        self.choices = TeacherChoicesWidget(teacher_settings(document.section("teacher")))

        start = (window.path.parent if window.path else Path.home()) / f"{document.name}.md"
        self.path = QLineEdit(str(start))
        self.path.textChanged.connect(lambda _t: self._show_files())
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._on_browse_clicked)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(browse)
        self.files = QLabel()
        self.files.setWordWrap(True)
        self.files.setStyleSheet("color: palette(placeholder-text);")
        self.result = QLabel()
        self.result.setObjectName("lessonCheckResult")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow("Title", self.title)
        form.addRow("Summary", self.summary)
        form.addRow("Introduction", self.intro)
        form.addRow("First step", self.step_title)
        form.addRow("Its text", self.step_text)
        form.addRow("", self.weights)
        form.addRow("Lesson file", path_row)
        form.addRow("", self.files)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.choices)
        layout.addWidget(self.result)
        layout.addWidget(self.buttons)
        self._show_files()

    def lesson_path(self) -> Path:
        path = Path(self.path.text().strip()).expanduser()
        return path if path.suffix.lower() == ".md" else path.with_name(path.name + ".md")

    def _show_files(self) -> None:
        path = self.lesson_path()
        model = lesson_model_path(path)
        replaced = " (replaces the file there)" if model.exists() else ""
        self.files.setText(f"Writes {path.name} and its model {model.name}{replaced} in {path.parent}")

    def _on_browse_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save lesson", str(self.lesson_path()), LESSON_FILTER)
        if path:
            self.path.setText(path)

    def _say(self, text: str, ok: bool) -> None:
        self.result.setStyleSheet(OK_STYLE if ok else ERROR_STYLE)
        self.result.setText(text)

    def save(self) -> bool:
        """Write the model and the lesson, check them; True (and the dialog closes) when the
        check passes. A problem is shown in the dialog, one line each."""
        path = self.lesson_path()
        if not self.path.text().strip():
            self._say("Choose where to save the lesson file.", False)
            return False
        try:
            lesson = authored_lesson(path, self.title.text(), self.summary.text(), self.intro.toPlainText(),
                                     self.choices.settings(), self.step_title.text(), self.step_text.toPlainText())
            model = lesson_model_dict(self.window.document.to_dict(include_weights=self.weights.isChecked()),
                                      include_weights=self.weights.isChecked())
            problems = write_lesson(path, lesson, model)
        except ConfigError as exc:
            self._say(f"Cannot save the lesson: {exc}", False)
            return False
        except OSError as exc:
            self._say(f"Cannot save the lesson: {path}: {exc.strerror or exc}", False)
            return False
        if problems:
            self._say("Saved, but `visualcnn lesson check` finds problems:\n" + "\n".join(problems), False)
            return False
        self._say(f"Saved {path.name}: ok: {len(lesson.steps)} step(s)", True)
        self.window.statusBar().showMessage(f"Saved the lesson {path} (with its model {lesson_model_path(path).name}); "
                                            "edit it in a text editor to add steps, then run visualcnn lesson check",
                                            15000)
        self.lesson_saved.emit(str(path))
        self.accept()
        return True
