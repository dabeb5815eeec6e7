"""The "teacher" section: its checker names every bad entry and the known ids; files keep it."""

from __future__ import annotations

import json

import pytest

from visualcnn.engine.layers import ConfigError
from visualcnn.engine.lessons.teacher import (LOCKS, PANELS, TeacherSettings, banner_text, check_teacher_section,
                                              teacher_problems, teacher_settings)
from visualcnn.engine.model_io import read_model_file
from visualcnn.engine.project_sections import check_section


def test_a_good_section_is_kept_normalised():
    value = {"lock": ["pipeline", "settings", "pipeline"], "hide": ["draw"], "note": "  Only the strides.  "}
    assert check_teacher_section(value) == {"lock": ["pipeline", "settings"], "hide": ["draw"],
                                            "note": "Only the strides."}
    assert check_teacher_section({"lock": [], "hide": []}) == {}


def test_every_bad_entry_and_the_known_ids_are_named():
    with pytest.raises(ConfigError) as info:
        check_teacher_section({"lock": ["pipline", "settings", "setings"], "hide": ["palete", "summary"]})
    message = str(info.value)
    assert "\n" not in message
    assert '"lock" has unknown entries "pipline", "setings"; known: pipeline, settings' in message
    assert '"hide" has unknown entry "palete"; known: ' + ", ".join(PANELS) in message


@pytest.mark.parametrize("value, expected", [
    ({"lok": ["pipeline"]}, 'unknown teacher key "lok"; known: lock, hide, note'),
    ({"lock": "pipeline"}, '"lock" must be a list such as ["pipeline"], received str'),
    ({"hide": [3]}, '"hide" has unknown entry "3"'),
    ({"note": 5}, '"note" must be text, received int'),
    ({"note": "x" * 400}, '"note" is 400 characters long'),
])
def test_each_kind_of_problem_is_one_line(value, expected):
    problems = teacher_problems(value)
    assert len(problems) == 1 and expected in problems[0]


def test_problems_are_listed_one_per_line_for_a_lesson_checker():
    problems = teacher_problems({"lock": ["x"], "hide": ["y"], "colour": "red"})
    assert len(problems) == 3
    assert teacher_problems({"lock": list(LOCKS), "hide": list(PANELS)}) == []
    assert teacher_problems(["pipeline"])[0].startswith("teacher settings must be a table")


def test_settings_and_banner_words():
    settings = teacher_settings({"lock": ["pipeline", "settings"], "hide": ["draw", "explain"],
                                 "note": "Predict before you train."})
    assert settings.locks("pipeline") and settings.hides("draw") and not settings.hides("palette")
    assert banner_text(settings) == ("Locked by your teacher: the pipeline and the training settings. "
                                     "Hidden: the Draw tab and the Explain menu. Predict before you train.")
    assert banner_text(teacher_settings({"hide": ["palette"]})) == "Hidden by your teacher: the layer palette."
    assert teacher_settings(None) == TeacherSettings() and TeacherSettings().empty


def test_a_project_file_reads_and_refuses_the_section():
    from visualcnn.resources import preset_dir

    data = json.loads((preset_dir() / "seed_cnn.json").read_text())
    data["teacher"] = {"lock": ["pipeline"], "hide": ["palette"]}
    assert read_model_file(json.dumps(data)).sections["teacher"] == {"lock": ["pipeline"], "hide": ["palette"]}
    data["teacher"] = {"lock": ["everything"]}
    with pytest.raises(ConfigError, match='"lock" has unknown entry "everything"'):
        read_model_file(json.dumps(data))
    with pytest.raises(ConfigError, match='"teacher" must be an object'):
        check_section("teacher", ["pipeline"])


def test_an_authored_lesson_passes_the_lesson_check(tmp_path):
    from visualcnn.engine.lessons import lesson_problems, load_lesson
    from visualcnn.engine.lessons.teacher import authored_lesson, lesson_model_dict, write_lesson
    from visualcnn.resources import preset_dir

    project = json.loads((preset_dir() / "seed_cnn.json").read_text())
    project.update(teacher={"lock": ["pipeline"]}, runs=[], window={"tab": 1})
    path = tmp_path / "05_strides.md"
    lesson = authored_lesson(path, " Strides ", "A stride of 2\nhalves the image.",
                             teacher=teacher_settings({"hide": ["draw"]}))
    assert write_lesson(path, lesson, lesson_model_dict(project)) == []
    assert lesson_problems(path) == []
    read = load_lesson(path)
    assert (read.title, read.summary, read.model, read.teacher) == (
        "Strides", "A stride of 2 halves the image.", "05_strides.json", {"hide": ["draw"]})
    model = json.loads((tmp_path / "05_strides.json").read_text())
    assert not {"teacher", "runs", "window"} & set(model) and model["layers"] == project["layers"]


def test_authoring_refuses_before_writing(tmp_path):
    from visualcnn.engine.lessons import LessonError
    from visualcnn.engine.lessons.teacher import authored_lesson, write_lesson

    path = tmp_path / "x.md"
    with pytest.raises(ConfigError, match="the lesson needs a title"):
        authored_lesson(path, " ", "summary")
    lesson = authored_lesson(path, "T", "S", intro="## a heading would start a step")
    with pytest.raises(LessonError):
        write_lesson(path, lesson, {"layers": []})
    assert list(tmp_path.iterdir()) == []


def test_an_unlock_code_is_kept_as_its_digest_only():
    from visualcnn.engine.lessons.teacher import code_digest

    digest = code_digest("owl 42")
    settings = teacher_settings({"lock": ["pipeline"], "unlock_code_sha256": digest})
    assert settings.unlocks_with(" owl 42 ") and not settings.unlocks_with("owl") and not settings.unlocks_with("")
    assert check_teacher_section(settings.to_section())["unlock_code_sha256"] == digest
    assert "owl" not in json.dumps(settings.to_section())
    assert teacher_settings({"lock": ["pipeline"]}).unlocks_with("")  # no code: anyone
    problems = teacher_problems({"unlock_code_sha256": "owl 42"})
    assert len(problems) == 1 and "64 hexadecimal digits" in problems[0]
