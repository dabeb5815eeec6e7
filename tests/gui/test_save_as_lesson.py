"""File ▸ Save as Lesson…: a lesson file from the current project, its model beside it, with the
teacher's locks; what it writes passes `visualcnn lesson check`."""

from __future__ import annotations

import json

from visualcnn.cli import main as cli_main
from visualcnn.engine.lessons import load_lesson, lesson_problems
from visualcnn.engine.model_io import encode_weights, load_model_file


def fill(dialog, path, summary="A stride of 2 halves the image."):
    dialog.title.setText("Strides shrink the image")
    dialog.summary.setText(summary)
    dialog.intro.setPlainText("The seed network, *locked*: look before you change.")
    dialog.path.setText(str(path))


def test_save_as_lesson_writes_a_lesson_that_passes_lesson_check(qtbot, seed_window, tmp_path, capsys):
    seed_window.document.set_section("runs", [])  # (whatever the project holds) a student starts without it
    dialog = seed_window.teacher_mode.save_as_lesson_dialog()
    assert dialog.isVisible() and dialog.title.text() == "Seed cnn"
    fill(dialog, tmp_path / "strides")  # ".md" is added
    dialog.choices.lock_boxes["pipeline"].setChecked(True)
    dialog.choices.lock_boxes["settings"].setChecked(True)
    dialog.choices.hide_boxes["draw"].setChecked(True)
    dialog.choices.note.setText("Predict first.")
    assert "strides.md and its model strides.json" in dialog.files.text()
    with qtbot.waitSignal(dialog.lesson_saved):
        assert dialog.save()
    assert not dialog.isVisible()
    path = tmp_path / "strides.md"
    assert lesson_problems(path) == []
    assert cli_main(["lesson", "check", str(path)]) in (0, None)
    assert capsys.readouterr().out.strip().endswith("ok: 1 steps")
    lesson = load_lesson(path)
    assert lesson.title == "Strides shrink the image" and lesson.model == "strides.json"
    assert lesson.teacher == {"lock": ["pipeline", "settings"], "hide": ["draw"], "note": "Predict first."}
    assert lesson.intro == "The seed network, *locked*: look before you change."
    assert [(s.kind, s.title) for s in lesson.steps] == [("read", "Look at the model")]
    model = json.loads((tmp_path / "strides.json").read_text())
    assert not {"teacher", "runs", "resume", "window", "weights"} & set(model)  # untrained: no weights either
    assert [layer["class_name"] for layer in model["layers"]] == \
        [seed_window.document.entry(i).class_name for i in range(len(seed_window.document))]
    assert "Saved the lesson" in seed_window.statusBar().currentMessage()


def test_the_trained_weights_go_with_the_model_when_asked(qtbot, seed_window, tmp_path):
    model = seed_window.build_engine_model()
    model.build()
    seed_window.document.set_trained_weights(encode_weights(model))
    dialog = seed_window.teacher_mode.save_as_lesson_dialog()
    assert dialog.weights.isEnabled() and dialog.weights.isChecked()
    fill(dialog, tmp_path / "trained.md")
    assert dialog.save()
    assert load_model_file(tmp_path / "trained.json").weights is not None
    dialog = seed_window.teacher_mode.save_as_lesson_dialog()
    fill(dialog, tmp_path / "fresh.md")
    dialog.weights.setChecked(False)
    assert dialog.save()
    assert load_model_file(tmp_path / "fresh.json").weights is None


def test_a_missing_summary_or_a_step_heading_in_the_text_writes_nothing(qtbot, seed_window, tmp_path):
    tmp_path = tmp_path / "lessons"  # (the window's settings file is in tmp_path)
    tmp_path.mkdir()
    dialog = seed_window.teacher_mode.save_as_lesson_dialog()
    fill(dialog, tmp_path / "x.md", summary="  ")
    assert not dialog.save() and dialog.isVisible()
    assert dialog.result.text() == ("Cannot save the lesson: the lesson needs a one-sentence summary of what the "
                                    "student learns")
    fill(dialog, tmp_path / "x.md")
    dialog.intro.setPlainText("## Not a step\ntext")
    assert not dialog.save()
    assert dialog.result.text().startswith("Cannot save the lesson:") and "\n" not in dialog.result.text()
    assert list(tmp_path.iterdir()) == []
    dialog.path.setText(str(tmp_path / "missing_folder" / "y.md"))
    dialog.intro.setPlainText("")
    assert not dialog.save() and "Cannot save the lesson:" in dialog.result.text()
