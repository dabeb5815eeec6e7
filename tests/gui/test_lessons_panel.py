"""The Lessons panel on a small lesson written here (every step kind), through the real window:
progress kept per user, the live check, hints one at a time, Show me and a predict step's change
as ONE undoable edit each, a wrong / unreadable / right prediction, a train step driving the Train
tab, explain steps done when their window is on screen, reopening at a later step, the welcome."""

from __future__ import annotations

import pytest

LESSON = '''+++
title = "A small lesson"
summary = "Every kind of step, on the seed CNN."
model = "seed_cnn"
+++

The introduction, before the first step.

## Look first

```step
kind = "read"
```

Read this.

## Normalise it

```step
kind = "do"
goal = [ {check="has_layer", class="BatchNormalization", at_least=1}, {check="no_error"} ]
show_me = [ {action="insert_after", layer="flatten", class="BatchNormalization"} ]
hints = ["Normalization is in the palette.", "Put it after flatten."]
```

Add a BatchNormalization after flatten.

## Stride two

```step
kind = "predict"
quantity = "output_shape"
layer = "conv2d"
change = [ {action="set_config", layer="conv2d", config={strides=[2, 2]}} ]
```

What will conv2d output with strides 2?

## Train a little

```step
kind = "train"
settings = { epochs = 1, limit = 300, batch_size = 32 }
question = "What did the loss curve do?"
choices = ["It went up", "It went down"]
answer = 1
explain = "Training lowers the loss on the images it sees."
```

Train it.

## The filters

```step
kind = "explain"
view = "filter_vis"
```

Open the filter view.
'''


@pytest.fixture
def lesson_path(tmp_path):
    path = tmp_path / "01_small.md"
    path.write_text(LESSON)
    return path


@pytest.fixture
def panel(window, lesson_path, monkeypatch):
    panel = window.lessons
    monkeypatch.setattr(panel, "lesson_paths", lambda: [lesson_path])
    panel.max_train_images = 200
    yield panel
    window.explain_windows.stop()


def test_the_window_has_a_hidden_lessons_dock_and_a_help_menu(window):
    assert window.lessons_dock.isHidden()
    menus = [action.text() for action in window.menuBar().actions()]
    assert menus[-1] == "&Help"
    help_items = [action.text() for action in window.help_menu.actions()]
    assert "&Lessons" in help_items and "&Welcome…" in help_items
    window.lessons_action.trigger()
    assert window.lessons_dock.isVisible() and window.lessons.stack.currentIndex() == 0


def test_a_read_then_a_do_step_with_hints_and_show_me_as_one_undo(window, panel, lesson_path):
    assert panel.open_lesson(lesson_path)
    assert window.lessons_dock.isVisible()
    assert "introduction" in panel.view.text.toPlainText()
    assert "Step 1 of 5" in panel.step_label.text()
    panel.next_button.click()
    assert panel.is_done(0) and panel.index == 1
    view = panel.view
    assert not panel.is_done()
    assert "✘ 0 BatchNormalization layers" in view.check.text()
    assert panel.next_button.text() == "Skip ▶"
    assert not view.hints.isVisible()
    view.hint_button.click()
    assert "Normalization is in the palette." in view.hints.text() and "after flatten" not in view.hints.text()
    view.hint_button.click()
    assert "after flatten" in view.hints.text() and not view.hint_button.isEnabled()

    before = window.undo_stack.count()
    view.show_me_button.click()
    assert window.undo_stack.count() == before + 1  # one undoable edit
    assert "batch_normalization" in window.document.names
    assert "✘" not in view.check.text() and "✔ 1 BatchNormalization layer" in view.check.text()
    assert panel.is_done() and panel.next_button.text() == "Next ▶"
    window.undo_stack.undo()
    assert "batch_normalization" not in window.document.names and "✘" in view.check.text()
    window.undo_stack.redo()
    assert "✘" not in view.check.text()


def test_a_predict_step_unreadable_wrong_then_right_applies_the_change_once(window, panel, lesson_path):
    assert panel.open_lesson(lesson_path, step=2)
    # reopening at step 3 replayed step 2's edit: the names the lesson uses exist
    assert "batch_normalization" in window.document.names and window.undo_stack.count() == 0
    view = panel.view
    view.answer_field.setText("thirteen")
    view.check_button.click()
    assert "write it like" in view.feedback.text() and "✘" not in view.feedback.text()
    view.answer_field.setText("26x26x32")  # the shape before the change
    view.check_button.click()
    assert "✘" in view.feedback.text() and not panel.is_done()
    assert window.document.entry(0).config.get("strides") in (None, [1, 1])  # not applied yet
    assert not view.derivation.isVisible()
    view.answer_field.setText("(None, 13, 13, 32)")
    view.check_button.click()
    assert "✔" in view.feedback.text() and panel.is_done()
    assert "out_h" in view.derivation.text() and view.derivation.isVisible()
    assert window.document.entry(0).config["strides"] == [2, 2]
    assert window.undo_stack.count() == 1 and not view.check_button.isEnabled()
    view.answer_field.setText("13x13x32")
    panel.submit_prediction("13x13x32")  # no second change
    assert window.undo_stack.count() == 1


def test_show_the_answer_reveals_the_derivation_then_the_change(window, panel, lesson_path):
    assert panel.open_lesson(lesson_path, step=2)
    panel.view.reveal_button.click()
    assert "13x13x32" in panel.view.feedback.text() and "out_h" in panel.view.derivation.text()
    assert window.document.entry(0).config["strides"] == [2, 2] and panel.is_done()


def test_a_train_step_trains_in_the_train_tab_then_asks(qtbot, window, panel, lesson_path):
    assert panel.open_lesson(lesson_path, step=3)
    view = panel.view
    assert not view.choice_box.isEnabled()
    assert "200 training images" in view.settings_label.text() and "asks for 300" in view.settings_label.text()
    with qtbot.waitSignal(window.train_panel.run_finished, timeout=120_000):
        view.train_button.click()
        assert window.tabs.currentWidget() is window.train_page
        assert window.train_panel.controls.train_image_count() == 200
        assert window.document.training.batch_size == 32
    assert window.lessons_dock.isVisible()  # the lesson stays beside the Train tab
    assert view.choice_box.isEnabled() and window.document.trained_weights is not None
    view.choose(0)
    view.answer_button.click()
    assert "✘" in view.feedback.text() and not panel.is_done()
    view.choose(1)
    view.answer_button.click()
    assert "✔" in view.feedback.text() and "lowers the loss" in view.feedback.text() and panel.is_done()


def test_an_explain_step_is_done_when_its_window_is_on_screen(window, panel, lesson_path):
    assert panel.open_lesson(lesson_path, step=4)
    assert not panel.is_done()
    window.filter_vis_action.trigger()  # the Explain menu, not the step's button
    panel._check_view_opened()  # what the step's timer does
    assert panel.is_done() and "✔" in panel.view.feedback.text()


def test_progress_is_kept_per_user_and_shown_in_the_list(window, panel, lesson_path):
    from PySide6.QtCore import QSettings

    from visualcnn.gui.lesson_progress import LessonProgress

    assert panel.open_lesson(lesson_path)
    panel.next_button.click()
    panel.view.show_me_button.click()
    window.settings.sync()
    progress = LessonProgress(QSettings(window.settings.fileName(), QSettings.Format.IniFormat))
    assert progress.done("01_small") == {0, 1} and progress.step("01_small") == 1
    panel.show_list()
    assert "2 of 5 steps done" in panel.lesson_list.item(0).text()
    window.undo_stack.setClean()
    assert panel.open_lesson(lesson_path)  # where the student left it
    assert panel.index == 1 and "batch_normalization" not in window.document.names  # step 2 not replayed


def test_the_welcome_shows_once_and_opens_lesson_1(window, panel, lesson_path):
    from visualcnn.gui.welcome import maybe_show_welcome

    dialog = maybe_show_welcome(window)
    assert dialog is not None and dialog.isVisible()
    dialog.start_button.click()
    assert panel.lesson is not None and panel.lesson.id == "01_small" and panel.index == 0
    assert window.lessons_dock.isVisible()
    assert maybe_show_welcome(window) is None  # the first launch only


def test_a_lessons_teacher_settings_open_with_it_and_are_no_unsaved_change(window, panel, lesson_path, dialogs):
    text = LESSON.replace('model = "seed_cnn"\n', 'model = "seed_cnn"\nteacher = { hide = ["draw"] }\n')
    taught = lesson_path.with_name("02_taught.md")
    taught.write_text(text)
    assert panel.open_lesson(taught)
    assert window.document.section("teacher") == {"hide": ["draw"]}
    assert not window.is_modified
    assert panel.open_lesson(lesson_path)  # no "unsaved changes" question on the way
    assert not [d for d in dialogs if d[0] == "question"]
    assert window.document.section("teacher") is None


def test_a_train_step_counts_a_run_started_from_the_build_tab(qtbot, window, panel, lesson_path):
    assert panel.open_lesson(lesson_path, step=3)
    window.train_panel.controls.train_images.setValue(200)
    with qtbot.waitSignal(window.train_panel.run_finished, timeout=120_000):
        window.train_button.click()
    assert panel.view.choice_box.isEnabled()
    panel.view.choose(1)
    panel.view.answer_button.click()
    assert panel.is_done()


def test_help_glossary_and_a_finished_lessons_words(window, panel, lesson_path):
    from visualcnn.engine.glossary import term

    window.glossary_action.trigger()
    dialog = window._glossary_dialog
    assert dialog.isVisible() and term("stride") in dialog.text.toPlainText()
    dialog.filter.setText("receptive")
    assert "receptive field" in dialog.text.toPlainText() and term("epoch") not in dialog.text.toPlainText()
    dialog.close()

    taught = lesson_path.with_name("03_words.md")
    taught.write_text(LESSON.replace('model = "seed_cnn"\n', 'model = "seed_cnn"\nglossary = ["stride", "padding"]\n')
                      .split("\n## Normalise it")[0])
    assert panel.open_lesson(taught)
    panel.next_button.click()  # the only step: a read step
    assert panel.progress.finished("03_words", 1)
    assert term("stride") in panel.view.text.toPlainText() and term("padding") in panel.view.text.toPlainText()


def test_the_end_of_a_lesson_offers_the_next_one(window, panel, lesson_path, monkeypatch):
    first = lesson_path.with_name("00_first.md")
    first.write_text(LESSON.split("\n## Normalise it")[0])  # one read step
    monkeypatch.setattr(panel, "lesson_paths", lambda: [first, lesson_path])
    assert panel.open_lesson(first)
    panel.next_button.click()
    assert "Lesson complete" in panel.view.feedback.text() and panel.next_button.text() == "Next lesson ▶"
    assert "✔ finished" in panel.lesson_list.item(0).text()
    panel.next_button.click()
    assert panel.lesson.id == "01_small" and panel.index == 0


def test_start_over_forgets_the_progress_of_one_lesson(window, panel, lesson_path):
    assert panel.open_lesson(lesson_path)
    panel.next_button.click()
    panel.show_list()
    assert panel.open_button.text() == "Continue lesson"
    window.undo_stack.setClean()
    panel.restart_button.click()
    assert panel.lesson.id == "01_small" and panel.index == 0 and not panel.progress.done("01_small")
    panel.show_list()
    assert "not started" in panel.lesson_list.item(0).text() and panel.open_button.text() == "Open lesson"


def test_a_read_steps_picture_is_fitted_to_the_panel(window, panel, lesson_path):
    from PySide6.QtCore import QUrl
    from PySide6.QtGui import QImage, QTextDocument

    (lesson_path.parent / "pictures").mkdir()
    wide = QImage(1200, 300, QImage.Format.Format_RGB32)
    wide.fill(0x336699)
    assert wide.save(str(lesson_path.parent / "pictures" / "wide.png"))
    pictured = lesson_path.with_name("04_picture.md")
    pictured.write_text(LESSON.replace('kind = "read"\n', 'kind = "read"\nimage = "pictures/wide.png"\n'))
    assert panel.open_lesson(pictured)
    browser = panel.view.text
    image = browser.document().resource(QTextDocument.ResourceType.ImageResource.value, QUrl("pictures/wide.png"))
    assert isinstance(image, QImage) and not image.isNull()
    assert image.width() <= browser.viewport().width() < 1200
