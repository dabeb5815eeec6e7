"""The Lessons panel (issue 14 item 2): the bundled lessons, each student's progress, and the
current step with its live check, hints, "Show me", predict-then-reveal, train-and-observe and
explain steps, driving the real window.

Thin over the engine (visualcnn/engine/lessons): the engine reads the lesson files, checks a
do-step's goal, works out and grades a prediction with its derivation; this panel only shows
what it says and turns the lesson's actions into ordinary undoable edits (gui/lesson_actions.py):

    "Show me"           the step's show_me actions as ONE undo step
    predict, revealed   the step's change as ONE undo step, after the answer and its derivation
    train               the step's settings become the document's (undoable), the Train tab
                        trains on the step's number of images; the question opens when the run ends
    explain             opens the view; the step is done once that view's window is on screen,
                        however it was opened (this button, the Explain menu, a feature-map click)

Progress is kept per user (gui/lesson_progress.py). Opening a lesson loads its starting model
as a new untitled project (as a preset does: Save asks for a name); reopening it at a later
step replays the earlier steps' edits first, so the names the step refers to exist.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QDockWidget, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMessageBox,
                               QPushButton, QScrollArea, QStackedWidget, QVBoxLayout, QWidget)

from ..engine.layers import ConfigError
from ..engine.lessons import format as lesson_format
from .answer_mask import answer_mask
from .commands import SetTrainingConfigCommand
from .lesson_actions import apply_silently, perform_actions, training_with
from .lesson_progress import LessonProgress
from .lesson_step_view import MARK_NOT, MARK_OK, LessonStepView

VIEW_NAMES = {"trace": "Trace a Value", "slide": "Watch a Layer Slide", "gradcam": "Why Did It Answer That?",
              "occlusion": "Why Did It Answer That?", "saliency": "Why Did It Answer That?",
              "filter_vis": "What Does a Filter Want to See?", "embedding": "The Learned Space"}
ANSWER_FORMS = {"output_shape": "the output shape, e.g. 13x13x32", "params": "a number of parameters, e.g. 1,234",
                "total_params": "the total number of parameters, e.g. 34,826",
                "receptive_field": "the receptive field, e.g. 5x5", "macs": "a number of MACs, e.g. 1,234,567"}
VIEW_POLL_MS = 400  # an explain step looks this often for its view's window on screen


def lesson_api():
    """The engine's lesson functions (imported late: the window opens without parsing lessons)."""
    from ..engine import lessons

    return lessons


def bundled_lesson_paths() -> list[Path]:
    try:
        return list(lesson_api().bundled_lessons())
    except (FileNotFoundError, AttributeError):
        return []


class LessonsPanel(QWidget):
    """The dock's contents: a list page and a lesson page (one step at a time)."""

    lesson_opened = Signal(str)        # lesson id
    step_shown = Signal(int)           # the step's index
    step_completed = Signal(int)       # the step's index, the first time it is completed
    lesson_finished = Signal(str)      # lesson id, when its last step was left with every step done

    def __init__(self, window, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("lessonsPanel")
        self.window = window
        self.document = window.document
        self.undo_stack = window.undo_stack
        self.progress = LessonProgress(window.settings)
        # At most this many training images in a train step (None: the step's own `limit`).
        # The scripted walk sets it to keep the suite fast; the Train tab shows the count used.
        self.max_train_images: int | None = None
        self.lesson = None
        self.index = 0
        self._hints_shown = 0
        self._state: dict = {}
        self._train_started_for: int | None = None
        self._results = None  # (test results of the last run, the weights they were measured on)
        self._pending_results = None

        self.stack = QStackedWidget()
        self.stack.addWidget(self._list_page())
        self.stack.addWidget(self._lesson_page())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.stack)

        self._view_timer = QTimer(self)
        self._view_timer.setInterval(VIEW_POLL_MS)
        self._view_timer.timeout.connect(self._check_view_opened)

        self.answer_mask = answer_mask(self.document)  # the views' "?" while a prediction is awaited
        # another project opened over the lesson's: its numbers are no lesson's answer (opening a
        # lesson resets the document first, then shows its step, which masks again)
        self.document.pipeline_reset.connect(self.answer_mask.clear)

        for signal in (self.document.report_updated, self.document.training_changed, self.document.weights_changed):
            signal.connect(self._on_document_changed)
        panel = window.train_panel
        panel.controller.evaluated.connect(self._on_controller_evaluated)
        panel.run_started.connect(self._on_train_panel_run_started)
        panel.run_finished.connect(self._on_train_panel_run_finished)
        self.refresh_list()

    # --- pages --------------------------------------------------------------------------

    def _list_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("<big><b>Lessons</b></big>")
        intro = QLabel("Guided exercises that check your answers. Pick one and press Open; your progress is "
                       "kept.")
        intro.setWordWrap(True)
        self.lesson_list = QListWidget()
        self.lesson_list.setObjectName("lessonList")
        self.lesson_list.setWordWrap(True)
        self.lesson_list.itemActivated.connect(lambda _item: self._on_open_clicked())
        self.lesson_list.currentRowChanged.connect(self._on_lesson_list_current_row_changed)
        self.summary_label = QLabel()
        self.summary_label.setObjectName("lessonSummary")
        self.summary_label.setWordWrap(True)
        self.open_button = QPushButton("Open lesson")
        self.open_button.setObjectName("lessonOpen")
        self.open_button.clicked.connect(self._on_open_clicked)
        self.restart_button = QPushButton("Start over")
        self.restart_button.setToolTip("Forget your progress in this lesson and open it at its first step")
        self.restart_button.clicked.connect(self._on_restart_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.restart_button)
        buttons.addStretch(1)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addWidget(self.lesson_list, 1)
        layout.addWidget(self.summary_label)
        layout.addLayout(buttons)
        return page

    def _lesson_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        self.back_to_list = QPushButton("◀ All lessons")
        self.back_to_list.setObjectName("lessonBackToList")
        self.back_to_list.clicked.connect(self.show_list)
        self.title_label = QLabel()
        self.title_label.setObjectName("lessonTitle")
        self.title_label.setWordWrap(True)
        self.step_label = QLabel()
        self.step_label.setObjectName("lessonStepLabel")
        self.step_label.setWordWrap(True)
        self.view = LessonStepView()
        self.back_button = QPushButton("◀ Back")
        self.back_button.setObjectName("lessonBack")
        self.back_button.clicked.connect(self.previous_step)
        self.next_button = QPushButton("Next ▶")
        self.next_button.setObjectName("lessonNext")
        self.next_button.clicked.connect(self.next_step)
        top = QHBoxLayout()
        top.addWidget(self.back_to_list)
        top.addStretch(1)
        nav = QHBoxLayout()
        nav.addWidget(self.back_button)
        nav.addStretch(1)
        nav.addWidget(self.next_button)
        # The step scrolls when the dock is short (1024x768 with the inspector below it): its
        # feedback and derivation must never run under the next dock; Back / Next stay in view.
        body = QWidget()
        inner = QVBoxLayout(body)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.view, 1)
        self.body_scroll = QScrollArea()
        self.body_scroll.setWidgetResizable(True)
        self.body_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.body_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.body_scroll.setWidget(body)
        layout.addLayout(top)
        layout.addWidget(self.title_label)  # where the student is stays in view when the step scrolls
        layout.addWidget(self.step_label)
        layout.addWidget(self.body_scroll, 1)
        layout.addLayout(nav)

        self.view.show_me_requested.connect(self.show_me)
        self.view.answer_submitted.connect(self.submit_prediction)
        self.view.reveal_requested.connect(self.reveal)
        self.view.train_requested.connect(self.train)
        self.view.choice_submitted.connect(self.answer_question)
        self.view.explain_requested.connect(self.open_view)
        self.view.hint_requested.connect(self.next_hint)
        return page

    # --- the list -----------------------------------------------------------------------

    def lesson_paths(self) -> list[Path]:
        return bundled_lesson_paths()

    def refresh_list(self) -> None:
        current = self.lesson_list.currentRow()
        self.lesson_list.clear()
        for number, path in enumerate(self.lesson_paths(), 1):
            try:
                lesson = lesson_api().load_lesson(path)
            except (ConfigError, OSError) as exc:
                item = QListWidgetItem(f"{number}. {path.stem}\n   cannot be read: {exc}")
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
                self.lesson_list.addItem(item)
                continue
            item = QListWidgetItem(f"{number}. {lesson.title}\n   {self._status(lesson)}")
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setData(Qt.ItemDataRole.UserRole + 1, lesson.summary)
            item.setToolTip(lesson.summary)
            self.lesson_list.addItem(item)
        self.lesson_list.setCurrentRow(max(0, min(current, self.lesson_list.count() - 1)))

    def _status(self, lesson) -> str:
        count = len(lesson.steps)
        done = self.progress.done(lesson.id) & set(range(count))
        if self.progress.finished(lesson.id, count):
            return f"{MARK_OK} finished"
        if not done and self.progress.step(lesson.id) == 0:
            return f"{count} steps, not started"
        return f"{len(done)} of {count} steps done"

    def show_list(self) -> None:
        self._view_timer.stop()
        self.refresh_list()
        self.stack.setCurrentIndex(0)
        self.update_answer_mask()

    def _on_lesson_list_current_row_changed(self, row: int) -> None:
        item = self.lesson_list.item(row) if row >= 0 else None
        summary = item.data(Qt.ItemDataRole.UserRole + 1) if item is not None else None
        self.summary_label.setText(summary or "")
        path = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        self.open_button.setEnabled(bool(path))
        started = bool(path) and (self.progress.step(Path(path).stem) > 0 or bool(self.progress.done(Path(path).stem)))
        self.open_button.setText("Continue lesson" if started else "Open lesson")

    def _selected_path(self) -> Path | None:
        item = self.lesson_list.currentItem()
        path = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return Path(path) if path else None

    def _on_open_clicked(self) -> None:
        path = self._selected_path()
        if path is not None:
            self.open_lesson(path)

    def _on_restart_clicked(self) -> None:
        path = self._selected_path()
        if path is not None:
            self.open_lesson(path, step=0, restart=True)

    # --- opening a lesson ---------------------------------------------------------------

    def open_lesson(self, path, step: int | None = None, restart: bool = False) -> bool:
        """Open a lesson file at `step` (None: where this student left it); loads its model.
        False (and the reason shown) when it cannot be read or the student kept their project."""
        if self.window.locked:
            self._tell("A training run is in progress: stop it (Train tab) before opening a lesson.")
            return False
        api = lesson_api()
        try:
            lesson = api.load_lesson(Path(path))
            model_path = lesson.model_path
        except (ConfigError, OSError) as exc:
            QMessageBox.critical(self.window, "Cannot open lesson", str(exc))
            return False
        count = len(lesson.steps)
        start = self.progress.step(lesson.id) if step is None else step
        start = max(0, min(start, count - 1)) if count else 0
        sections = self._teacher_section(lesson)
        if not self.window.load_preset(model_path, sections=sections):  # asks about unsaved work first
            return False
        try:
            for earlier in lesson.steps[:start]:  # the edits the earlier steps made, in order
                apply_silently(self.document, self._step_actions(earlier))
        except ConfigError:
            start = 0  # a lesson edited since: start it again rather than show a broken step
            self.window.load_preset(model_path, sections=sections)
        if restart:
            self.progress.reset(lesson.id)
        self.window.tabs.setCurrentIndex(0)
        self.lesson = lesson
        self.title_label.setText(f"<big><b>{html.escape(lesson.title)}</b></big>")
        self.stack.setCurrentIndex(1)
        self.show_dock()
        self.lesson_opened.emit(lesson.id)
        self.show_step(start)
        self.window.statusBar().showMessage(f"Lesson: {lesson.title}. The network of this lesson is loaded as a new "
                                            "project.", 10000)
        return True

    def _teacher_section(self, lesson) -> dict | None:
        """The lesson's teacher settings as the project's "teacher" section (gui/teacher_mode.py
        applies it: hidden panels, locks, the banner); opened with the model, so they are part of
        the lesson's project, not an unsaved change."""
        if not lesson.teacher:
            return None
        from ..engine.lessons.teacher import check_teacher_section

        try:
            return {"teacher": check_teacher_section(lesson.teacher)}
        except ConfigError as exc:  # `lesson check` names it; the lesson still opens
            self.window.statusBar().showMessage(f"The lesson's teacher settings were not applied: {exc}", 10000)
            return None

    @staticmethod
    def _step_actions(step) -> tuple:
        """The edits a completed step leaves in the pipeline (a predict step's change, a do-step's
        demonstration: later steps name what they made)."""
        if step.kind == "predict":
            return tuple(step.change)
        if step.kind == "do":
            return tuple(step.show_me)
        if step.kind == "train":
            settings = {k: v for k, v in step.settings.items() if k not in lesson_format.EXTRA_TRAIN_SETTINGS}
            return ({"action": "set_training", "settings": settings},) if settings else ()
        return ()

    def show_dock(self) -> None:
        dock = self.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        if dock is not None:
            was_hidden = dock.isHidden()
            dock.show()
            dock.raise_()
            if was_hidden and not dock.isFloating():
                # The right column narrower than the inspector's own default: the Train tab beside
                # a lesson needs the room (its page asks for ~1,100 px).
                em = self.fontMetrics().horizontalAdvance("m")
                self.window.resizeDocks([dock], [min(30 * em, int(0.3 * self.window.width()))],
                                        Qt.Orientation.Horizontal)
                inspector = self.window.inspector_dock
                if inspector.isVisible() and not inspector.isFloating():
                    # the lesson is read first: it gets most of the column, the inspector the rest
                    height = self.window.height()
                    self.window.resizeDocks([dock, inspector], [int(0.62 * height), int(0.38 * height)],
                                            Qt.Orientation.Vertical)

    # --- steps --------------------------------------------------------------------------

    @property
    def step(self):
        return self.lesson.steps[self.index] if self.lesson is not None and self.lesson.steps else None

    def is_done(self, index: int | None = None) -> bool:
        if self.lesson is None:
            return False
        return (self.index if index is None else index) in self.progress.done(self.lesson.id)

    def show_step(self, index: int) -> None:
        lesson = self.lesson
        if lesson is None or not lesson.steps:
            return
        self.index = index = max(0, min(index, len(lesson.steps) - 1))
        step = lesson.steps[index]
        self.progress.set_step(lesson.id, index)
        self._hints_shown = 0
        self._state = {}
        self._train_started_for = None
        text = step.text  # the title is in the header above
        if index == 0 and lesson.intro.strip():
            text = f"{lesson.intro.strip()}\n\n---\n\n{text}"
        if step.kind == "read" and step.image:
            text += f"\n\n![{step.title}]({step.image})"
        self.view.show_step(step.kind, text, lesson.folder)
        self.view.set_hints(list(step.hints), 0)
        self.back_button.setEnabled(index > 0)
        self._view_timer.stop()
        done = self.is_done()
        if step.kind == "do":
            self.view.set_show_me(bool(step.show_me))
        elif step.kind == "predict":
            self.view.set_answer_placeholder(ANSWER_FORMS.get(step.quantity, "your answer"))
            if done:  # its change is already in the pipeline: nothing left to predict
                self.view.set_predict_locked(True)
                self.view.set_feedback(f"{MARK_OK} You completed this step (its change is in the pipeline).", True)
        elif step.kind == "train":
            self.view.set_train_settings(self._settings_text(step.settings))
            self.view.set_question(step.question, list(step.choices), enabled=done)
        elif step.kind == "explain":
            self.view.set_explain_label(f"Open {VIEW_NAMES.get(step.view, step.view)}")
            self._view_timer.start()
        self._focus_layer(step)
        self._refresh_step()
        self.update_answer_mask()
        self.step_shown.emit(index)

    def _focus_layer(self, step) -> None:
        """Select the layer the step is about in the pipeline (its inspector shows it)."""
        names = [step.layer] if step.layer else []
        names += [c.args.get("layer") for c in step.goal] + [a.args.get("layer") or a.args.get("first")
                                                             for a in (*step.show_me, *step.change)]
        for name in names:
            if isinstance(name, str) and name in self.document.names:
                self.window.pipeline.list_widget.select_row(self.document.row_named(name))
                return

    def _settings_text(self, settings: dict) -> str:
        limit = settings.get("limit")
        used = self._train_limit(settings)
        parts = [f"{settings['epochs']} epoch{'s' if settings['epochs'] != 1 else ''}" if "epochs" in settings
                 else None,
                 f"{used:,} training images" if used is not None else "all 60,000 training images",
                 f"batch {settings['batch_size']}" if "batch_size" in settings else None]
        for key in ("optimizer", "learning_rate", "loss", "validation_split", "schedule", "seed", "dataset"):
            if key in settings:
                parts.append(f"{key.replace('_', ' ')} {settings[key]}")
        note = f" (the lesson asks for {limit:,}; capped here)" if limit is not None and used != limit else ""
        return "This step trains with: " + ", ".join(p for p in parts if p) + note + "."

    def _train_limit(self, settings: dict) -> int | None:
        limit = settings.get("limit")
        if self.max_train_images is not None:
            limit = min(limit, self.max_train_images) if limit is not None else self.max_train_images
        return limit

    def _refresh_step(self) -> None:
        """The header (step n of N, the marks of every step) and a do-step's live check."""
        step = self.step
        if step is None:
            return
        if step.kind == "do":
            self._evaluate_goal()
        done = self.progress.done(self.lesson.id)
        marks = "".join(MARK_OK if i in done else ("●" if i == self.index else "○")
                        for i in range(len(self.lesson.steps)))
        mark = f' <span style="color:#1a7f37">{MARK_OK}</span>' if self.index in done else ""
        self.step_label.setText(f"Step {self.index + 1} of {len(self.lesson.steps)}: "
                                f"<b>{html.escape(step.title)}</b>{mark}<br><small>{marks}</small>")
        last = self.index == len(self.lesson.steps) - 1
        font = self.next_button.font()
        font.setBold(self.is_done())  # the way on, once this step is done
        self.next_button.setFont(font)
        if self._state.get("ended"):
            pass  # "Next lesson ▶" / "All lessons" stays
        elif last:
            self.next_button.setText("Finish ✔" if self.is_done() or step.kind == "read" else "Finish")
        else:
            self.next_button.setText("Next ▶" if self.is_done() or step.kind == "read" else "Skip ▶")

    def complete(self, index: int | None = None) -> None:
        """Mark a step completed (progress saved) and update the header."""
        if self.lesson is None:
            return
        index = self.index if index is None else index
        if self.progress.mark_done(self.lesson.id, index):
            self.step_completed.emit(index)
        self._refresh_step()

    def next_step(self) -> None:
        step = self.step
        if step is None:
            return
        if self._state.get("ended"):  # the button became "Next lesson ▶"
            following = self.following_lesson()
            if following is not None:
                self.open_lesson(following)
            else:
                self.show_list()
            return
        if step.kind == "read":
            self.complete()
        if self.index + 1 < len(self.lesson.steps):
            self.show_step(self.index + 1)
            return
        lesson = self.lesson
        if self.progress.finished(lesson.id, len(lesson.steps)):
            self.view.set_feedback(f"{MARK_OK} Lesson complete: every step done.", True)
            self._show_lesson_words(lesson)
            self.lesson_finished.emit(lesson.id)
        else:
            missing = [str(i + 1) for i in range(len(lesson.steps)) if not self.is_done(i)]
            self.view.set_feedback(f"Lesson ended with step{'s' if len(missing) > 1 else ''} "
                                   f"{', '.join(missing)} not done yet: go back to finish them.", None)
        self._state["ended"] = True
        self.update_answer_mask()
        self.next_button.setText("Next lesson ▶" if self.following_lesson() is not None else "All lessons")
        self.refresh_list()

    def following_lesson(self) -> Path | None:
        """The bundled lesson after the open one (None: it is the last, or not bundled)."""
        paths = [Path(p).resolve() for p in self.lesson_paths()]
        here = self.lesson.path.resolve() if self.lesson is not None and self.lesson.path else None
        if here in paths and paths.index(here) + 1 < len(paths):
            return paths[paths.index(here) + 1]
        return None

    def _show_lesson_words(self, lesson) -> None:
        """The words this lesson introduced, from the glossary, in place of the last step's text."""
        from .glossary_window import lesson_words_markdown

        words = lesson_words_markdown(lesson.glossary)
        if words:
            self.view.text.set_markdown(f"**{lesson.title}: complete.** The words it introduced:\n\n{words}\n\n"
                                        "Help ▸ Glossary has every word.", lesson.folder)

    def previous_step(self) -> None:
        if self.index > 0:
            self.show_step(self.index - 1)

    def next_hint(self) -> None:
        step = self.step
        if step is None:
            return
        self._hints_shown = min(self._hints_shown + 1, len(step.hints))
        self.view.set_hints(list(step.hints), self._hints_shown)

    # --- do steps: the live check and "Show me" -------------------------------------------

    def goal_status(self):
        """The engine's GoalStatus of the current do-step on the document as it stands."""
        from ..engine.lessons.goals import evaluate_goal

        return evaluate_goal(self.step.goal, self.document.report, self.document.training, self.run_facts())

    def run_facts(self):
        """What the goal checks may know of the last run: whether the pipeline has trained
        weights, and the test accuracy measured on exactly those weights (None otherwise)."""
        from ..engine.lessons.goals import RunFacts

        current = self.document.trained_weights
        accuracy = None
        if self._results is not None and current is not None and current is self._results[1]:
            accuracy = float(self._results[0].accuracy)
        return RunFacts(trained=current is not None, test_accuracy=accuracy)

    def _evaluate_goal(self) -> None:
        try:
            status = self.goal_status()
        except ConfigError as exc:
            self.view.set_check([f"{MARK_NOT} {exc}"])
            return
        self.view.set_check(list(status.lines), status.met)
        if status.met and not self.is_done():
            self.complete()

    def show_me(self) -> bool:
        """Perform the do-step's demonstration as one undoable edit."""
        step = self.step
        if step is None or step.kind != "do" or not step.show_me:
            return False
        if self.window.locked:
            self._tell("The pipeline is locked while the network trains: wait for the run to end.")
            return False
        try:
            done = perform_actions(self.document, self.undo_stack, step.show_me, f"Show me: {step.title}")
        except ConfigError as exc:
            self._tell(str(exc))
            return False
        if done:
            self.window.statusBar().showMessage("Done for you as one edit: Edit ▸ Undo takes it back.", 10000)
        return done

    def _on_document_changed(self, *_args) -> None:
        step = self.step
        if step is not None and step.kind == "do" and self.stack.currentIndex() == 1:
            self._refresh_step()

    # --- predict steps ------------------------------------------------------------------

    def update_answer_mask(self) -> None:
        """Hide the asked quantity in the card, Summary and Inspector while a predict step about
        the model as it stands is on screen and unanswered (gui/answer_mask.py); give it back
        when it is answered, revealed, skipped or left, or the lesson or its dock is closed.
        A step with a change asks about the model AFTER it: the numbers on screen are not the
        answer then, so nothing is hidden."""
        step = self.step
        dock = self.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parentWidget()
        waiting = (step is not None and step.kind == "predict" and not step.change
                   and self.stack.currentIndex() == 1 and not (dock is not None and dock.isHidden())
                   and not self._state.get("revealed") and not self._state.get("ended") and not self.is_done())
        self.answer_mask.set_pairs({(step.layer, step.quantity)} if waiting else ())

    def submit_prediction(self, typed: str) -> bool | None:
        """Grade the typed answer: True right (the answer, its derivation, then the change),
        False wrong (try again, or Show the answer), None not understood (how to write it)."""
        from ..engine.lessons.predict import grade

        step = self.step
        if step is None or step.kind != "predict" or self._state.get("revealed"):
            return None
        try:
            result = grade(step, self.document, typed)
        except ConfigError as exc:
            self.view.set_feedback(f"Cannot check this step: {exc}", False)
            return None
        if not result.understood:  # how to write it, not a wrong answer
            self.view.set_feedback(result.feedback, None)
            return None
        self._state["attempts"] = self._state.get("attempts", 0) + 1
        self.view.set_feedback(result.feedback, result.correct)
        self._scroll_to_feedback()
        if result.correct:
            self._reveal(result.derivation)
        return result.correct

    def reveal(self) -> None:
        """Show the engine's answer and derivation without a right prediction; the change follows."""
        from ..engine.lessons.predict import true_answer

        step = self.step
        if step is None or step.kind != "predict" or self._state.get("revealed"):
            return
        try:
            answer = true_answer(step, self.document)
        except ConfigError as exc:
            self.view.set_feedback(f"Cannot work out the answer: {exc}", False)
            return
        self.view.set_feedback(f"The answer: {answer.sentence}.", None)
        self._reveal(answer.derivation)
        self._scroll_to_feedback()

    def _reveal(self, derivation) -> None:
        step = self.step
        self._state["revealed"] = True
        self.update_answer_mask()  # the numbers come back with the answer
        self.view.set_derivation("\n".join(derivation) if not isinstance(derivation, str) else derivation)
        self.view.set_predict_locked(True)
        if step.change:
            try:
                perform_actions(self.document, self.undo_stack, step.change, f"Lesson: {step.title}")
            except ConfigError as exc:
                self._tell(str(exc))
                return
            self.window.statusBar().showMessage("The change is now in the pipeline (one edit: Undo takes it back).",
                                                10000)
        self.complete()

    # --- train steps --------------------------------------------------------------------

    def train(self) -> bool:
        """The step's settings into the document (one undoable edit), its number of training
        images into the Train tab, then a run there; the question opens when it ends."""
        step = self.step
        if step is None or step.kind != "train":
            return False
        if self.window.locked:
            self._tell("A run is already in progress: wait for it to end (Train tab).")
            return False
        settings = {k: v for k, v in step.settings.items() if k not in lesson_format.EXTRA_TRAIN_SETTINGS}
        try:
            config = training_with(self.document, settings)
        except ConfigError as exc:
            self._tell(f"This step's settings cannot be used: {exc}")
            return False
        if config != self.document.training:
            self.undo_stack.push(SetTrainingConfigCommand(self.document, config))
        controls = self.window.train_panel.controls
        limit = self._train_limit(step.settings)
        controls.train_images.setValue(controls.train_images.maximum() if limit is None else int(limit))
        if "dataset" in step.settings and not self._use_dataset(step.settings["dataset"]):
            return False
        self.window.tabs.setCurrentWidget(self.window.train_page)
        self._train_started_for = self.index
        if not self.window.train_panel.start():
            self._train_started_for = None
            self.view.set_feedback("The run could not start: the Train tab says why.", False)
            return False
        self.view.train_button.setEnabled(False)
        self.view.set_feedback("Training… watch the curves in the Train tab; the question opens when the run ends.",
                               None)
        return True

    def _use_dataset(self, dataset) -> bool:
        """A train step's data set ("mnist", "fashion_mnist" or a dataset section) as the project's
        "dataset" section, as the Train tab's picker stores a choice (MNIST: none)."""
        from ..engine.dataset_spec import check_dataset_section

        spec = dict(dataset) if isinstance(dataset, dict) else {"source": str(dataset)}
        try:
            value = None if spec.get("source") == "mnist" and len(spec) == 1 else check_dataset_section(spec)
        except ValueError as exc:
            self._tell(f"This step's data set cannot be used: {exc}")
            return False
        if self.document.section("dataset") != value:
            self.document.set_section("dataset", value)
        return True

    def _on_train_panel_run_started(self) -> None:
        self._pending_results = None
        step = self.step
        if step is not None and step.kind == "train" and self.stack.currentIndex() == 1:
            # Started from the Train tab or the Build tab's Train button, not the step's own button:
            # it counts as this step's run all the same (the student chose the settings).
            self._train_started_for = self.index
            self.view.train_button.setEnabled(False)

    def _on_controller_evaluated(self, results) -> None:
        self._pending_results = results

    def _on_train_panel_run_finished(self, _model) -> None:
        # Connected after the window's own handler: the run's weights are the document's now.
        weights = self.document.trained_weights
        self._results = (self._pending_results, weights) if self._pending_results is not None else None
        self._pending_results = None
        step = self.step
        if step is None or self.stack.currentIndex() != 1:
            return
        if step.kind == "train" and self._train_started_for == self.index:
            self._train_started_for = None
            self._state["trained"] = True
            self.view.train_button.setEnabled(True)
            self.view.set_question(step.question, list(step.choices), enabled=True)
            self.view.set_feedback("The run has ended: look at the Train tab, then answer.", None)
        elif step.kind == "do":
            self._refresh_step()

    def answer_question(self, index: int) -> bool:
        """A train step's multiple-choice answer: right completes the step; both say so."""
        step = self.step
        if step is None or step.kind != "train":
            return False
        correct = index == step.answer
        if correct:
            text = f"{MARK_OK} Right. {step.explain}".strip()
            self.complete()
        else:
            text = f"{MARK_NOT} Not quite: look at the Train tab again and try another answer."
        self.view.set_feedback(text, correct)
        self._scroll_to_feedback()
        return correct

    # --- explain steps ------------------------------------------------------------------

    def open_view(self):
        """Open the explain step's view (the Explain menu's window); None when it cannot open yet
        (no trained network: the feedback says what to do first)."""
        step = self.step
        if step is None or step.kind != "explain":
            return None
        window = self.window
        view = step.view
        opened = None
        if view in ("gradcam", "occlusion", "saliency"):
            opened = window.explain_windows.open_maps()
            if step.layer and hasattr(opened, "set_layer"):
                opened.set_layer(step.layer)
        elif view == "filter_vis":
            opened = window.explain_windows.open_filters()
        elif view == "embedding":
            from .embedding_panel import open_embedding

            opened = open_embedding(window)
        elif view == "slide":
            opened = window.draw_panel.watch_slide(step.layer) or window.train_panel.watch_slide(step.layer)
        elif view == "trace":
            layer, cell = self._trace_cell(step.layer)
            if layer is not None:
                opened = window.draw_panel.trace_cell(layer, *cell) or window.train_panel.trace_cell(layer, *cell)
        if opened is None:
            self.view.set_feedback("Nothing to show yet: train the network first (a train step or the Train tab), "
                                   "then open this view.", False)
            return None
        self._check_view_opened()
        return opened

    def _trace_cell(self, name: str | None):
        """(layer, (channel, row, column)): the step's layer (else the first with feature maps),
        its middle cell of channel 0."""
        for row in self.document.report.rows:
            shape = row.output_shape
            if shape is None or len(shape) != 4 or (name is not None and row.name != name):
                continue
            return row.name, (0, int(shape[1]) // 2, int(shape[2]) // 2)
        return None, None

    def view_windows(self, view: str) -> list:
        """The windows that show `view` (None where not opened yet)."""
        window = self.window
        explain = window.explain_windows
        if view in ("gradcam", "occlusion", "saliency"):
            return [explain.maps_window]
        if view == "filter_vis":
            return [explain.filter_window]
        if view == "embedding":
            return [getattr(window, "_embedding_window", None)]
        attribute = "trace_window" if view == "trace" else "slide_window"
        return [getattr(getattr(panel, "tracer", None), attribute, None)
                for panel in (window.draw_panel, window.train_panel)]

    def _check_view_opened(self) -> None:
        step = self.step
        if step is None or step.kind != "explain":
            self._view_timer.stop()
            return
        if any(w is not None and w.isVisible() for w in self.view_windows(step.view)):
            self._view_timer.stop()
            if not self.is_done():
                self.complete()
            self.view.set_feedback(f"{MARK_OK} {VIEW_NAMES.get(step.view, step.view)} is open.", True)

    # --- messages -----------------------------------------------------------------------

    def _scroll_to_feedback(self) -> None:
        """Bring the newest words (the derivation, else the feedback) into view in a short dock."""
        def scroll() -> None:  # as little as needed: the question above stays in view when it can
            for label in (self.view.derivation, self.view.feedback):
                if label.isVisible():
                    self.body_scroll.ensureWidgetVisible(label, 0, 4)
                    return

        QTimer.singleShot(50, scroll)  # after the layout has made room for them

    def _tell(self, text: str) -> None:
        self.view.set_feedback(text, False)
        self.window.statusBar().showMessage(text, 10000)


def install_lessons(window) -> LessonsPanel:
    """The Lessons dock (hidden until a lesson opens), its View menu entry and the Help menu."""
    from .glossary_window import open_glossary
    from .welcome import show_welcome

    panel = LessonsPanel(window)
    dock = QDockWidget("Lessons", window)
    dock.setObjectName("lessonsDock")  # saveState/restoreState need a stable name
    dock.setWidget(panel)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                     | QDockWidget.DockWidgetFeature.DockWidgetClosable)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    # Above the inspector: the step is read first; both stay on the Build tab, and the lesson
    # stays when Train or Draw hides the builder's docks.
    window.splitDockWidget(dock, window.inspector_dock, Qt.Orientation.Vertical)
    dock.hide()
    # closing the dock closes the lesson for the views: a hidden question hides no number
    dock.visibilityChanged.connect(lambda _visible: panel.update_answer_mask())
    window.lessons_dock = dock
    view_menu = next((a.menu() for a in window.menuBar().actions() if a.menu() and a.text() == "&View"), None)
    if view_menu is not None:
        first = view_menu.actions()[3] if len(view_menu.actions()) > 3 else None
        view_menu.insertAction(first, dock.toggleViewAction())
    help_menu = window.menuBar().addMenu("&Help")
    window.help_menu = help_menu
    window.lessons_action = help_menu.addAction("&Lessons")
    window.lessons_action.setStatusTip("Guided exercises that check your answers")
    window.lessons_action.triggered.connect(lambda _=False: (panel.show_list(), panel.show_dock()))
    window.welcome_action = help_menu.addAction("&Welcome…")
    window.welcome_action.triggered.connect(lambda _=False: show_welcome(window))
    window.glossary_action = help_menu.addAction("&Glossary…")
    window.glossary_action.setStatusTip("Every technical word on screen, in one or two plain sentences")
    window.glossary_action.triggered.connect(lambda _=False: open_glossary(window))
    help_menu.addSeparator()
    about = help_menu.addAction("&About VisualCNN")
    about.triggered.connect(lambda _=False: QMessageBox.about(
        window, "About VisualCNN", "VisualCNN: build, train and look inside convolutional networks, with its own "
        "engine and the Keras API. Help ▸ Lessons has guided exercises."))
    return panel


__all__ = ["LessonsPanel", "install_lessons", "bundled_lesson_paths", "VIEW_NAMES"]
