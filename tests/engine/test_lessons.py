"""The lesson file format: reading (fields, lines, every problem of form), writing, bundled lessons."""

from dataclasses import replace
from pathlib import Path

import pytest

from visualcnn.engine.lessons import (Action, Condition, Lesson, LessonError, Step, bundled_lessons, lesson_text,
                                      load_lesson, parse_lesson)
from visualcnn.resources import preset_path

GOOD = '''+++
title = "Stride and padding"
summary = "How a stride shrinks a feature map."
model = "seed_cnn"
glossary = ["stride", "padding"]
teacher = { lock = ["pipeline"] }
+++

What this lesson is about.

## Read this
```step
kind = "read"
hints = ["first hint", "second hint"]
```
Some **Markdown**.

### A sub-heading stays in the step

```python
## not a step: inside a fence
```

## Predict the shape
```step
kind = "predict"
quantity = "output_shape"
layer = "conv2d"
change = [ {action="set_config", layer="conv2d", config={strides=[2, 2]}} ]
```
What comes out?

## Make it smaller
```step
kind = "do"
goal = [
    {check="total_params", at_most=30000},
    {check="no_error"},
]
show_me = [ {action="insert_after", layer="conv2d_1", class="MaxPooling2D", config={pool_size=[2, 2]}} ]
```
Shrink it.

## Train it
```step
kind = "train"
settings = { epochs = 1, limit = 500, batch_size = 32 }
question = "What happened?"
choices = ["it learned", "nothing"]
answer = 0
explain = "Because."
```
Train.

## Look inside
```step
kind = "explain"
view = "gradcam"
layer = "conv2d"
```
Open Grad-CAM.
'''


def write(tmp_path: Path, text: str, name: str = "01_test.md") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_lesson_reads_into_its_fields(tmp_path):
    lesson = load_lesson(write(tmp_path, GOOD))
    assert (lesson.id, lesson.title, lesson.model) == ("01_test", "Stride and padding", "seed_cnn")
    assert lesson.glossary == ("stride", "padding")
    assert lesson.teacher == {"lock": ["pipeline"]}
    assert lesson.intro == "What this lesson is about."
    assert lesson.model_path == preset_path("seed_cnn")
    assert [s.kind for s in lesson.steps] == ["read", "predict", "do", "train", "explain"]
    assert [s.number for s in lesson.steps] == [1, 2, 3, 4, 5]
    read, predict, do, train, explain = lesson.steps
    assert read.hints == ("first hint", "second hint")
    assert "### A sub-heading stays in the step" in read.text and "## not a step" in read.text
    assert (predict.quantity, predict.layer) == ("output_shape", "conv2d")
    assert predict.change == (Action("set_config", {"layer": "conv2d", "config": {"strides": [2, 2]}}, 29),)
    assert [c.check for c in do.goal] == ["total_params", "no_error"]
    assert [c.line for c in do.goal] == [37, 38]
    assert do.show_me[0].args["class"] == "MaxPooling2D"
    assert (train.settings, train.choices, train.answer, train.explain) == (
        {"epochs": 1, "limit": 500, "batch_size": 32}, ("it learned", "nothing"), 0, "Because.")
    assert (explain.view, explain.layer, explain.text) == ("gradcam", "conv2d", "Open Grad-CAM.")
    assert read.line == 11 and predict.line == 24


def test_a_lesson_file_gives_paths_relative_to_itself(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.json").write_text(preset_path("seed_cnn").read_text())
    lesson = load_lesson(write(tmp_path, GOOD.replace('model = "seed_cnn"', 'model = "models/net.json"')))
    assert lesson.model_path == tmp_path / "models" / "net.json"
    assert lesson.resolve("pictures/a.png") == tmp_path / "pictures" / "a.png"


@pytest.mark.parametrize("edit, line, fragment", [
    (lambda t: t.replace("+++\ntitle", "title", 1), 1, "front matter between two '+++' lines"),
    (lambda t: t.replace('summary = "How a stride shrinks a feature map."\n', ""), 1, "has no 'summary'"),
    (lambda t: t.replace('lock = ["pipeline"]', 'lock = ["pipeline", "palette"]'), 6, 'teacher: "lock" has unknown'),
    (lambda t: t.replace('kind = "predict"', 'kind = "guess"'), 26, "unknown kind 'guess'"),
    (lambda t: t.replace('check="no_error"', 'check="no_errors"'), 38, "unknown check 'no_errors'"),
    (lambda t: t.replace('action="insert_after"', 'action="insert"'), 40, "unknown action 'insert'"),
    (lambda t: t.replace('quantity = "output_shape"', 'quantity = "shape"'), 27, "quantity must be one of"),
    (lambda t: t.replace('view = "gradcam"', 'view = "xray"'), 58, "view must be one of"),
    (lambda t: t.replace("answer = 0", "answer = 5"), 50, "answer 5 is out of range"),
    (lambda t: t.replace("limit = 500", "limit = -1"), 47, "limit"),
    (lambda t: t.replace("epochs = 1,", "epochs = 0,"), 47, "epochs expected an integer"),
    (lambda t: t.replace("limit = 500,", 'limit = 500, dataset = "cifar",'), 47, 'dataset must be "mnist"'),
    (lambda t: t.replace("limit = 500,", 'limit = 500, dataset = {source = "folder"},'), 47, 'needs "path"'),
    (lambda t: t.replace('layer = "conv2d"\nchange', 'layer = "conv2d"\nlayerz = 3\nchange'), 29, "unknown key 'layerz'"),
    (lambda t: t.replace('hints = ["first hint", "second hint"]', 'hints = "one"'), 14, "hints must be a list"),
    (lambda t: t.replace('kind = "read"\n', 'kind = "read\n'), 13, "a string is not closed"),
    (lambda t: t.replace('```step\nkind = "explain"', 'kind = "explain"'), 55, "followed at once by a ```step block"),
    (lambda t: t.replace('layer = "conv2d"\n```\nOpen', 'layer = "conv2d"\nOpen'), 56, "the ```step block is not closed"),
])
def test_each_problem_of_form_is_named_with_its_line(tmp_path, edit, line, fragment):
    path = write(tmp_path, edit(GOOD))
    with pytest.raises(LessonError) as caught:
        load_lesson(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message
    assert "\n" not in message


def test_the_reader_lists_every_problem_not_only_the_first(tmp_path):
    text = GOOD.replace('kind = "predict"', 'kind = "guess"').replace('view = "gradcam"', 'view = "xray"')
    lesson, problems = parse_lesson(text, tmp_path / "x.md")
    assert [p.line for p in problems] == [26, 58]
    assert problems[0].format("x.md") == ("x.md:26: step 2 'Predict the shape': unknown kind 'guess'; a step's "
                                          "kind is one of read, do, predict, train, explain")
    assert len(lesson.steps) == 5  # the others are still read


def test_a_lesson_without_steps_is_a_problem(tmp_path):
    path = write(tmp_path, '+++\ntitle = "t"\nsummary = "s"\nmodel = "seed_cnn"\n+++\nJust an intro.\n')
    with pytest.raises(LessonError, match="has no steps"):
        load_lesson(path)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(LessonError, match="no such file"):
        load_lesson(tmp_path / "nope.md")


def test_written_lesson_reads_back_the_same(tmp_path):
    lesson = load_lesson(write(tmp_path, GOOD))
    copy = load_lesson(write(tmp_path, lesson_text(lesson), "02_copy.md"))

    def placeless(l: Lesson) -> Lesson:
        def step(s: Step) -> Step:
            return replace(s, line=0, goal=tuple(replace(c, line=0) for c in s.goal),
                           show_me=tuple(replace(a, line=0) for a in s.show_me),
                           change=tuple(replace(a, line=0) for a in s.change))
        return replace(l, path=None, id="", steps=tuple(step(s) for s in l.steps))

    assert placeless(copy) == placeless(lesson)


def test_a_lesson_made_in_code_can_be_written(tmp_path):
    """Save as lesson builds a Lesson from the project and writes it."""
    lesson = Lesson(title='A "quoted" title', summary="Line one.", model="models/mine.json",
                    teacher={"lock": ["pipeline", "settings"], "hide": ["palette"]},
                    steps=(Step("Start here", "read", text="Look at the model.\n\nThen go on."),
                           Step("Shrink it", "do", goal=(Condition("total_params", {"at_most": 50_000}),),
                                hints=("Pool earlier.",))))
    text = lesson_text(lesson)
    again, problems = parse_lesson(text, tmp_path / "x.md")
    assert problems == []
    assert again.title == 'A "quoted" title' and again.teacher == lesson.teacher
    assert again.steps[1].goal[0].to_dict() == {"check": "total_params", "at_most": 50_000}
    assert again.steps[0].text == "Look at the model.\n\nThen go on."


def test_the_writer_refuses_text_that_would_start_a_step():
    lesson = Lesson("t", "s", "seed_cnn", steps=(Step("One", "read", text="ok\n## Sneaky\nmore"),))
    with pytest.raises(LessonError, match="would start a new step"):
        lesson_text(lesson)


def test_bundled_lessons_are_the_md_files_in_order(monkeypatch, tmp_path):
    import visualcnn.engine.lessons.bundled as bundled

    for name in ("02_b.md", "01_a.md", "10_c.md", "notes.txt"):
        (tmp_path / name).write_text("x")
    monkeypatch.setattr(bundled, "lesson_dir", lambda: tmp_path)
    assert [p.name for p in bundled_lessons()] == ["01_a.md", "02_b.md", "10_c.md"]


def test_hostile_files_are_one_line_each(tmp_path):
    nested = GOOD.replace('hints = ["first hint", "second hint"]', "hints = " + "[" * 50_000 + "]" * 50_000)
    _, problems = parse_lesson(nested, tmp_path / "x.md")
    assert [p.format("x.md") for p in problems] == ["x.md:13: step 1 'Read this': the step block is nested too deeply"]
    huge = tmp_path / "huge.md"
    huge.write_bytes(b"+++\n" + b"x" * (3 * 1024 * 1024))
    with pytest.raises(LessonError, match="too large for a lesson file"):
        load_lesson(huge)
    binary = tmp_path / "bin.md"
    binary.write_bytes(b"+++\n\xff\xfe\x80")
    with pytest.raises(LessonError, match="not valid UTF-8"):
        load_lesson(binary)


def test_windows_line_endings_and_a_byte_order_mark_read_the_same(tmp_path):
    plain = load_lesson(write(tmp_path, GOOD))
    path = tmp_path / "01_test_crlf.md"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode("utf-8"))
    windows = load_lesson(path)
    assert windows.steps == plain.steps and windows.intro == plain.intro
