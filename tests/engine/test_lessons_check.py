"""lesson_problems: every problem of a lesson file, one line each, found by following the lesson."""

import re
from pathlib import Path

from visualcnn.engine.lessons import lesson_problems, load_lesson

FILES = Path(__file__).parent / "lesson_files"
BROKEN = FILES / "broken_lesson.md"
GOOD = FILES / "good_lesson.md"

# (line, what the line must say): one problem per entry, in file order
EXPECTED = [
    (5, "glossary term 'flux capacitor' is not in the glossary"),
    (6, "unknown front matter key 'colour'"),
    (9, "the picture 'pictures/nope.png' does not exist"),
    (11, "step 1 'A fine read': the image 'pictures/missing.png' does not exist"),
    (20, "step 2 'Unknown kind': unknown kind 'watch'"),
    (27, "step 3 'Missing layer': goal 1 (output_shape): there is no layer named 'conv2d_9' at this step"),
    (28, "step 3 'Missing layer': goal 2: unknown check 'wobble'"),
    (31, "step 4 'Already met': the goal is already met by the model as it stands at this step"),
    (41, "step 5 'Bad show me': Show me does not reach the goal: ✘ total parameters 121,344 (goal: at most 60,000)"),
    (44, "step 6 'Predict on nothing': the engine cannot answer it: there is no layer named 'dense_7' at this step"),
    (54, "step 7 'Predict a colour': quantity must be one of"),
    (60, "step 8 'Bad toml': the step block is not valid TOML: a string is not closed"),
    (67, "step 9 'Train badly': unknown setting 'speed'"),
    (67, "step 9 'Train badly': training: epochs expected an integer from 1 to 10000, received 0"),
    (70, "step 9 'Train badly': answer 2 is out of range: there are 2 choices (0 to 1)"),
    (76, "step 10 'Explain nothing': view must be one of"),
    (79, "step 11 'No block': the heading must be followed at once by a ```step block"),
]


def test_a_broken_lesson_gives_one_line_per_problem_with_file_and_line():
    problems = lesson_problems(BROKEN)
    assert len(problems) == len(EXPECTED), "\n".join(problems)
    for line, (number, fragment) in zip(problems, EXPECTED):
        assert line.startswith(f"{BROKEN}:{number}: "), line
        assert fragment in line, line
        assert "\n" not in line


def test_a_good_lesson_has_no_problems():
    assert lesson_problems(GOOD) == []
    assert len(load_lesson(GOOD).steps) == 6
    assert load_lesson(GOOD).steps[3].layer == "batch_normalization"


def test_layer_names_follow_earlier_steps(tmp_path):
    """A step after Show me refers to what it made; without that Show me the name does not exist."""
    text = GOOD.read_text()
    start, end = text.index("show_me = ["), text.index("]\n```", text.index("show_me = [")) + 2
    path = tmp_path / "no_show_me.md"
    path.write_text(text[:start] + text[end:])
    problems = lesson_problems(path)
    assert problems == [f"{path}:37: step 4 'Count the normalisation's parameters': the engine cannot answer it: "
                        "there is no layer named 'batch_normalization' at this step (the layers are: conv2d, "
                        "max_pooling2d, conv2d_1, max_pooling2d_1, flatten, dense, dropout, dense_1)"]


def test_a_change_that_breaks_the_model_and_a_missing_model_are_reported(tmp_path):
    text = GOOD.read_text().replace('config={strides=[2, 2]}', 'config={kernel_size=[40, 40]}')
    path = tmp_path / "bad_change.md"
    path.write_text(text)
    problems = lesson_problems(path)
    assert any("step 2 'Predict the jump': the engine cannot answer it after the change: conv2d has no shape"
               in p for p in problems), problems
    path.write_text(GOOD.read_text().replace('model = "seed_cnn"', 'model = "models/nowhere.json"'))
    assert lesson_problems(path) == [f"{path}:4: the model cannot be loaded: the model file 'models/nowhere.json' "
                                     f"does not exist (looked for {tmp_path / 'models' / 'nowhere.json'})"]


def test_unreadable_files_are_one_line(tmp_path):
    assert lesson_problems(tmp_path / "missing.md") == [f"{tmp_path / 'missing.md'}: no such file"]
    (tmp_path / "bin.md").write_bytes(b"\xff\xfe\x00garbage\x80")
    assert len(lesson_problems(tmp_path / "bin.md")) == 1


def test_the_teacher_table_is_checked_by_its_owner_and_against_the_steps(tmp_path):
    text = GOOD.read_text().replace('glossary = ["stride", "padding", "parameters"]\n',
                                    'glossary = ["stride", "padding", "parameters"]\n'
                                    'teacher = { lock = ["settings", "everything"], hide = ["train"] }\n')
    path = tmp_path / "teacher.md"
    path.write_text(text)
    problems = lesson_problems(path)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{path}:6: teacher: ") and '"everything"' in problems[0]
    assert problems[1].startswith(f"{path}:") and "step 5 'Train it': the teacher table hides 'train'" in problems[1]


def test_a_goal_may_name_the_block_the_student_adds(tmp_path):
    """Show me adds 'batch_normalization': a goal about it is fine; a name nothing makes is not."""
    text = GOOD.read_text().replace('    {check="no_error"},\n]',
                                    '    {check="no_error"},\n    {check="params", layer="batch_normalization", '
                                    'equals=256},\n]', 1)
    path = tmp_path / "adds.md"
    path.write_text(text)
    assert lesson_problems(path) == []
    path.write_text(text.replace('layer="batch_normalization", equals=256', 'layer="batch_norm", equals=256'))
    problems = lesson_problems(path)
    assert len(problems) == 1
    assert ("step 3 'Below 30,000 parameters': goal 3 (params): there is no layer named 'batch_norm' at this "
            "step nor after Show me (the layers are: conv2d, max_pooling2d, conv2d_1, max_pooling2d_1, flatten, "
            "dense, dropout, dense_1)") in problems[0]


def test_an_explain_step_names_a_layer_its_view_can_show(tmp_path):
    text = GOOD.read_text()
    path = tmp_path / "views.md"
    path.write_text(text.replace('view = "gradcam"\nlayer = "conv2d_1"', 'view = "slide"\nlayer = "dense"'))
    assert lesson_problems(path) == [f"{path}:60: step 6 'Where does it look?': the slide view shows a layer that "
                                     "slides a window (Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPooling2D, "
                                     "AveragePooling2D); 'dense' is a Dense"]
    path.write_text(text.replace('layer = "conv2d_1"\n```\nOpen', 'layer = "flatten"\n```\nOpen'))
    assert lesson_problems(path) == [f"{path}:60: step 6 'Where does it look?': the gradcam view needs a layer whose "
                                     "output is a feature map; 'flatten' is a Flatten"]


def test_a_locked_pipeline_with_a_goal_to_edit_it_is_a_problem(tmp_path):
    text = GOOD.read_text().replace('glossary = ["stride", "padding", "parameters"]\n',
                                    'glossary = ["stride", "padding", "parameters"]\n'
                                    'teacher = { lock = ["pipeline"] }\n')
    path = tmp_path / "locked.md"
    path.write_text(text)
    assert lesson_problems(path) == [f"{path}:28: step 3 'Below 30,000 parameters': the teacher table locks the "
                                     "pipeline, which the student must edit to reach this goal: remove 'pipeline' "
                                     "from teacher.lock"]
