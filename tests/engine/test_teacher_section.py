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
