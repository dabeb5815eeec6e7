"""One lesson step on screen: its text (Markdown, pictures fitted to the panel), the live check
with its marks, the controls of its kind, and the hints one at a time.

Display only: every button is a signal the Lessons panel (gui/lessons_panel.py) acts on, and
the panel tells the view what to show (the engine's words, never worked out here).

    read     the text (and picture)
    do       "Show me" and the goal's conditions, each ✔ or ✘, checked after every edit and run
    predict  an answer field, Check, "Show the answer"; the feedback, then the derivation
    train    the step's settings, "Train with these settings", then the question's choices
    explain  a button opening the view (the Explain menu opens it too)
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QImage, QTextDocument
from PySide6.QtWidgets import (QButtonGroup, QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton, QRadioButton,
                               QSizePolicy, QTextBrowser, QVBoxLayout, QWidget)

from .families import ERROR_COLOUR

OK_COLOUR = "#1a7f37"
MARK_OK, MARK_NOT = "✔", "✘"
KIND_LABELS = {"read": "Read", "do": "Your turn", "predict": "Predict, then check",
               "train": "Train and observe", "explain": "Look inside"}


def coloured_lines(lines, met_prefix: str = MARK_OK) -> str:
    """Condition lines as HTML: a ✔ line green, any other red (the engine writes the marks)."""
    out = []
    for line in lines:
        colour = OK_COLOUR if str(line).lstrip().startswith(met_prefix) else ERROR_COLOUR
        out.append(f'<span style="color:{colour}">{html.escape(str(line))}</span>')
    return "<br>".join(out)


class LessonTextBrowser(QTextBrowser):
    """Markdown with its pictures read beside the lesson file and scaled down to the panel's
    width (a 600 px picture in a 300 px dock would otherwise need a sideways scroll)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setOpenExternalLinks(True)
        self.setObjectName("lessonText")
        self._folder: Path | None = None
        self._markdown = ""
        self._width = 0

    def set_markdown(self, text: str, folder: Path | None) -> None:
        self._folder, self._markdown = folder, text
        self.document().clear()  # drop the cached pictures of the previous step
        if folder is not None:
            self.setSearchPaths([str(folder)])
        self._width = self._picture_width()
        self.setMarkdown(text)

    def loadResource(self, kind: int, url: QUrl):  # noqa: N802 - Qt override
        if getattr(kind, "value", kind) == QTextDocument.ResourceType.ImageResource.value and self._folder is not None:
            name = url.toLocalFile() or url.path() or url.toString()
            path = Path(name) if Path(name).is_absolute() else self._folder / name
            image = QImage(str(path))
            if not image.isNull():
                width = self._picture_width()
                if image.width() > width:
                    image = image.scaledToWidth(width, Qt.TransformationMode.SmoothTransformation)
                return image
        return super().loadResource(kind, url)

    def _picture_width(self) -> int:
        return max(120, self.viewport().width() - 24)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self._markdown and abs(self._picture_width() - self._width) > 40 and "![" in self._markdown:
            self.set_markdown(self._markdown, self._folder)  # pictures refitted to the new width

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        # Small: the panel's scroll area sizes its page from the preferred heights, and the step's
        # controls and feedback must fit first; with room to spare the text takes all of it.
        return QSize(320, 8 * self.fontMetrics().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(160, 4 * self.fontMetrics().height())  # a few lines at least; the panel scrolls


def _note(object_name: str) -> QLabel:
    label = QLabel()
    label.setObjectName(object_name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


class LessonStepView(QWidget):
    show_me_requested = Signal()
    answer_submitted = Signal(str)      # the typed prediction
    reveal_requested = Signal()         # "Show the answer" without a right prediction
    train_requested = Signal()
    choice_submitted = Signal(int)      # the chosen answer's index
    explain_requested = Signal()
    hint_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.kind_label = QLabel()
        self.kind_label.setObjectName("lessonStepKind")
        self.text = LessonTextBrowser()

        # do
        self.show_me_button = QPushButton("Show me")
        self.show_me_button.setObjectName("lessonShowMe")
        self.show_me_button.setToolTip("Make this step's change for you, as one edit: Undo takes it back")
        self.show_me_button.clicked.connect(self.show_me_requested)

        # predict
        self.answer_field = QLineEdit()
        self.answer_field.setObjectName("lessonAnswer")
        self.answer_field.returnPressed.connect(self._on_check_clicked)
        self.check_button = QPushButton("Check")
        self.check_button.setObjectName("lessonCheckAnswer")
        self.check_button.clicked.connect(self._on_check_clicked)
        self.reveal_button = QPushButton("Show the answer")
        self.reveal_button.setObjectName("lessonReveal")
        self.reveal_button.clicked.connect(self.reveal_requested)
        self.predict_box = QWidget()
        rows = QVBoxLayout(self.predict_box)
        rows.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.answer_field, 1)
        row.addWidget(self.check_button)
        rows.addLayout(row)
        rows.addWidget(self.reveal_button, 0, Qt.AlignmentFlag.AlignLeft)  # the way out, below: not beside Check

        # train
        self.settings_label = _note("lessonTrainSettings")
        self.train_button = QPushButton("Train with these settings")
        self.train_button.setObjectName("lessonTrain")
        self.train_button.clicked.connect(self.train_requested)
        self.question_label = _note("lessonQuestion")
        self.choice_group = QButtonGroup(self)
        self.choice_box = QWidget()
        self.choice_layout = QVBoxLayout(self.choice_box)
        self.choice_layout.setContentsMargins(0, 0, 0, 0)
        self.answer_button = QPushButton("Answer")
        self.answer_button.setObjectName("lessonAnswerChoice")
        self.answer_button.clicked.connect(self._on_answer_clicked)

        # explain
        self.explain_button = QPushButton("Open")
        self.explain_button.setObjectName("lessonExplain")
        self.explain_button.clicked.connect(self.explain_requested)

        self.feedback = _note("lessonFeedback")
        self.derivation = _note("lessonDerivation")
        self.derivation.setTextFormat(Qt.TextFormat.PlainText)
        self.derivation.setStyleSheet("font-family: monospace; background: palette(alternate-base); padding: 6px;")
        self.check = _note("lessonCheck")
        self.check.setToolTip("Checked after every edit and every training run")

        self.hint_button = QPushButton("Hint")
        self.hint_button.setObjectName("lessonHint")
        self.hint_button.setToolTip("One hint at a time")
        self.hint_button.clicked.connect(self.hint_requested)
        self.hints = _note("lessonHints")

        for button in (self.show_me_button, self.train_button, self.answer_button, self.explain_button,
                       self.hint_button):
            button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        box = QFrame()
        box.setObjectName("lessonStepBox")
        controls = QVBoxLayout(box)
        controls.setContentsMargins(0, 0, 0, 0)
        buttons = (self.train_button, self.answer_button, self.show_me_button, self.explain_button)
        for widget in (self.settings_label, self.train_button, self.question_label, self.choice_box,
                       self.answer_button, self.predict_box, self.show_me_button, self.explain_button, self.check,
                       self.feedback, self.derivation):
            # buttons as wide as their words, on the left (a full-width bar reads as a banner)
            controls.addWidget(widget, 0, Qt.AlignmentFlag.AlignLeft if widget in buttons else Qt.AlignmentFlag(0))
        hint_row = QHBoxLayout()
        hint_row.addWidget(self.hint_button, 0, Qt.AlignmentFlag.AlignTop)
        hint_row.addWidget(self.hints, 1)
        hint_row.addStretch(0)  # the button stays as wide as its words while no hint is shown

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.kind_label)
        layout.addWidget(self.text, 1)
        layout.addWidget(box)
        layout.addLayout(hint_row)

    # --- what the panel shows -----------------------------------------------------------

    def show_step(self, kind: str, markdown: str, folder: Path | None) -> None:
        """A new step: its text, and the controls of its kind (all of them reset)."""
        self.kind_label.setText(f"<b>{html.escape(KIND_LABELS.get(kind, kind))}</b>")
        self.text.set_markdown(markdown, folder)
        self.text.verticalScrollBar().setValue(0)
        self.show_me_button.setVisible(False)
        self.predict_box.setVisible(kind == "predict")
        self.answer_field.clear()
        self.answer_field.setEnabled(True)
        self.check_button.setEnabled(True)
        self.reveal_button.setEnabled(True)
        for widget in (self.settings_label, self.question_label):
            widget.setVisible(False)
        self.train_button.setVisible(kind == "train")
        self.train_button.setEnabled(True)
        self.set_choices([], enabled=False)
        self.explain_button.setVisible(kind == "explain")
        for label in (self.feedback, self.derivation, self.check, self.hints):
            label.clear()
            label.hide()

    def set_show_me(self, available: bool) -> None:
        self.show_me_button.setVisible(available)

    def set_answer_placeholder(self, text: str) -> None:
        self.answer_field.setPlaceholderText(text)

    def set_train_settings(self, text: str) -> None:
        self.settings_label.setText(html.escape(text))
        self.settings_label.show()

    def set_question(self, question: str, choices: list[str], enabled: bool) -> None:
        self.question_label.setText(f"<b>{html.escape(question)}</b>")
        self.question_label.show()
        self.set_choices(choices, enabled)

    def set_choices(self, choices: list[str], enabled: bool) -> None:
        if [b.text() for b in self.choice_group.buttons()] != list(choices):
            for button in self.choice_group.buttons():
                self.choice_group.removeButton(button)
                button.deleteLater()
            for index, text in enumerate(choices):
                button = QRadioButton(text)
                button.setObjectName(f"lessonChoice{index}")
                self.choice_group.addButton(button, index)
                self.choice_layout.addWidget(button)
        self.choice_box.setVisible(bool(choices))
        self.choice_box.setEnabled(enabled)
        self.answer_button.setVisible(bool(choices))
        self.answer_button.setEnabled(enabled)

    def choose(self, index: int) -> None:
        """Select choice `index` (as a click on it would)."""
        self.choice_group.button(index).setChecked(True)

    def set_explain_label(self, text: str) -> None:
        self.explain_button.setText(text)

    def set_check(self, lines: list[str], met: bool = False) -> None:
        """The goal's conditions, one line each with the engine's ✔ / ✘, under a heading; the
        verdict last."""
        if not lines:
            self.check.clear()
            self.check.hide()
            return
        verdict = (f'<br><b style="color:{OK_COLOUR}">{MARK_OK} Goal met: press Next.</b>' if met else "")
        self.check.setText(f"<b>Goal</b> <small>(checked after every edit and every run)</small><br>"
                           f"{coloured_lines(lines)}{verdict}")
        self.check.show()

    def set_feedback(self, text: str, ok: bool | None) -> None:
        """One line: green when right, red when wrong, plain for a note (None)."""
        colour = "" if ok is None else (OK_COLOUR if ok else ERROR_COLOUR)
        style = f' style="color:{colour}"' if colour else ""
        self.feedback.setText(f"<span{style}>{html.escape(text)}</span>")
        self.feedback.setVisible(bool(text))

    def set_derivation(self, text: str) -> None:
        """The engine's working (plain text, one step a line), under a caption."""
        self.derivation.setText(f"How it is worked out:\n{text}" if text else "")
        self.derivation.setVisible(bool(text))

    def set_hints(self, hints: list[str], shown: int) -> None:
        """The first `shown` hints; the button offers the next one while there is one."""
        shown = min(shown, len(hints))
        self.hint_button.setVisible(bool(hints))
        self.hint_button.setEnabled(shown < len(hints))
        self.hint_button.setText(f"Hint ({shown + 1} of {len(hints)})" if shown < len(hints) else "No more hints")
        text = "<br>".join(f"<b>Hint {i + 1}:</b> {html.escape(h)}" for i, h in enumerate(hints[:shown]))
        self.hints.setText(text)
        self.hints.setVisible(shown > 0)

    def set_predict_locked(self, locked: bool) -> None:
        """After the reveal the answer is known: no more checking."""
        for widget in (self.answer_field, self.check_button, self.reveal_button):
            widget.setEnabled(not locked)

    # --- slots --------------------------------------------------------------------------

    def _on_check_clicked(self) -> None:
        if self.check_button.isEnabled():
            self.answer_submitted.emit(self.answer_field.text())

    def _on_answer_clicked(self) -> None:
        index = self.choice_group.checkedId()
        if index >= 0:
            self.choice_submitted.emit(index)


__all__ = ["LessonStepView", "LessonTextBrowser", "coloured_lines", "MARK_OK", "MARK_NOT", "OK_COLOUR"]
