"""Read a lesson file (Markdown + TOML front matter + ```step blocks) into a Lesson.

The reader never stops at the first problem: every problem it can find in the form of the
file (bad TOML, an unknown kind, check or action, a missing key, a wrong type) becomes a
`Problem` with its line, so `visualcnn lesson check` prints them all at once. Whether the
layers a step names exist is the checker's business (check.py): it needs the model.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..training_config import TrainingConfig
from .format import (ACTIONS, CHECKS, COMMON_STEP_KEYS, COMPARISONS, EXTRA_TRAIN_SETTINGS, FRONT_MATTER_KEYS, KINDS,
                     NEEDS_COMPARISON, QUANTITIES, REQUIRED_FRONT_MATTER, STEP_KEYS, VIEWS, Action, Condition,
                     Lesson, LessonError, Step)

MAX_LESSON_BYTES = 2 * 1024 * 1024
_FENCE = re.compile(r"^(```+|~~~+)\s*(.*)$")
_HEADING = re.compile(r"^##(?!#)\s+(.*?)\s*#*\s*$")
_TOML_LINE = re.compile(r"\(at (?:line (\d+), column (\d+)|end of document)\)")
_ACTION_KEY = re.compile(r"\baction\s*=")
_CHECK_KEY = re.compile(r"\bcheck\s*=")


@dataclass(frozen=True)
class Problem:
    """One problem in a lesson file: the line (1-based; 0 = the whole file), the step (or
    None for the front matter) and what is wrong in one line."""

    line: int
    message: str
    step: Step | None = None

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.step.label}: {self.message}" if self.step is not None else f"{where}: {self.message}"


def read_lesson_text(path: str | Path) -> str:
    """The file's text; LessonError (one line) for a missing, unreadable, huge or binary file."""
    from ..layers import ConfigError
    from ..model_io import read_file_bytes

    try:  # the model reader's checks (no FIFOs or devices, a size limit), in a lesson's words
        raw = read_file_bytes(path, limit=MAX_LESSON_BYTES)
    except ConfigError as exc:
        raise LessonError(str(exc).replace("a model file", "a lesson file")) from None
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise LessonError(f"{path}: not a text file: byte {exc.start} is not valid UTF-8") from None


def load_lesson(path: str | Path) -> Lesson:
    """The lesson in `path`; LessonError "FILE:LINE: problem" for the first problem in its form.

    (lesson_problems in check.py lists every problem, including layers that do not exist.)"""
    path = Path(path)
    try:
        text = read_lesson_text(path)
    except LessonError:
        raise
    except Exception as exc:  # a missing file, a folder, a device: read_file_bytes says which
        raise LessonError(str(exc)) from None
    lesson, problems = parse_lesson(text, path)
    if problems:
        raise LessonError(problems[0].format(str(path)))
    return lesson


def parse_lesson(text: str, path: Path | None = None) -> tuple[Lesson | None, list[Problem]]:
    """(the lesson, the problems in its form). The lesson is None only when the front matter
    cannot be read at all; otherwise it holds every step that could be made sense of."""
    problems: list[Problem] = []
    lines = text.removeprefix("\ufeff").splitlines()
    front, body_start = _front_matter(lines, problems)
    if front is None:
        return None, problems
    meta = _check_front_matter(front, problems, lines)
    intro, raw_steps = _split_steps(lines, body_start)
    steps = []
    for number, (title, line, block, block_line, step_text) in enumerate(raw_steps, 1):
        steps.append(_make_step(number, title, line, block, block_line, step_text, problems))
    if not raw_steps:
        problems.append(Problem(body_start + 1, "the lesson has no steps: add a '## Step title' heading followed "
                                                "by a ```step block"))
    lesson = Lesson(title=meta.get("title", ""), summary=meta.get("summary", ""), model=meta.get("model", ""),
                    steps=tuple(steps), intro=intro, teacher=meta.get("teacher"),
                    glossary=tuple(meta.get("glossary", ())), path=path, id=path.stem if path else "")
    return lesson, problems


# --- front matter ------------------------------------------------------------------------------


def _front_matter(lines: list[str], problems: list[Problem]) -> tuple[dict | None, int]:
    """(the parsed front matter, the index of the first body line)."""
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None or lines[first].strip() != "+++":
        problems.append(Problem(1, "a lesson starts with TOML front matter between two '+++' lines "
                                   '(title = "...", summary = "...", model = "seed_cnn")'))
        return None, 0
    end = next((i for i in range(first + 1, len(lines)) if lines[i].strip() == "+++"), None)
    if end is None:
        problems.append(Problem(first + 1, "the front matter has no closing '+++' line"))
        return None, 0
    data = _toml("\n".join(lines[first + 1:end]), first + 2, problems, None, "the front matter")
    return data, end + 1


def _check_front_matter(data: dict, problems: list[Problem], lines: list[str]) -> dict:
    def line(key: str) -> int:
        return front_matter_line(lines, key)

    meta: dict = {}
    for key in data:
        if key not in FRONT_MATTER_KEYS:
            problems.append(Problem(line(key), f"unknown front matter key {key!r}; the keys are: {', '.join(FRONT_MATTER_KEYS)}"))
    for key in REQUIRED_FRONT_MATTER:
        value = data.get(key)
        if value is None:
            problems.append(Problem(1, f"the front matter has no {key!r}" + {
                "title": ' (title = "Stride and padding")',
                "summary": " (one sentence saying what the student will learn)",
                "model": ' (a bundled preset such as "seed_cnn" or a file beside the lesson, "models/x.json")'}[key]))
        elif not isinstance(value, str) or not value.strip():
            problems.append(Problem(line(key), f"front matter {key!r} must be a non-empty string, received {value!r}"))
        else:
            meta[key] = value.strip()
    teacher = data.get("teacher")
    if teacher is not None:
        if not isinstance(teacher, dict):
            problems.append(Problem(line("teacher"), "front matter 'teacher' must be a table, e.g. "
                                       'teacher = { lock = ["pipeline"], hide = ["palette"] }'))
        else:
            from .teacher import teacher_problems  # the project section's owner knows its form

            found = teacher_problems(teacher)
            problems.extend(Problem(line("teacher"), "teacher: " + " ".join(str(m).split())) for m in found)
            meta["teacher"] = teacher
    glossary = data.get("glossary")
    if glossary is not None:
        if not isinstance(glossary, list) or not all(isinstance(t, str) and t.strip() for t in glossary):
            problems.append(Problem(line("glossary"), 'front matter \'glossary\' must be a list of terms, e.g. ["stride", "padding"]'))
        else:
            meta["glossary"] = [t.strip() for t in glossary]
    return meta


def front_matter_line(lines: list[str], key: str) -> int:
    """The line of `key = ...` (or a [key] table) in the front matter; 1 when absent."""
    pattern = re.compile(rf"^\s*\[?\s*{re.escape(key)}\s*[\]=.]")
    fences = 0
    for number, text in enumerate(lines, 1):
        if text.strip() == "+++":
            fences += 1
            if fences == 2:
                break
        elif pattern.match(text):
            return number
    return 1


# --- steps -------------------------------------------------------------------------------------


def _split_steps(lines: list[str], start: int) -> tuple[str, list[tuple]]:
    """(intro, [(title, heading line, block text or None, block's first line (negative: the block is
    not closed), step text)]).

    Headings inside fenced code are not headings; the ```step block must come right after the
    heading (blank lines allowed)."""
    headings = []
    fence = None
    for i in range(start, len(lines)):
        m = _FENCE.match(lines[i].strip())
        if fence is not None:
            if m and lines[i].strip().startswith(fence) and not m.group(2):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        h = _HEADING.match(lines[i])
        if h:
            headings.append(i)
    intro = "\n".join(lines[start:headings[0] if headings else len(lines)]).strip()
    steps = []
    for k, head in enumerate(headings):
        end = headings[k + 1] if k + 1 < len(headings) else len(lines)
        title = _HEADING.match(lines[head]).group(1)
        i = head + 1
        while i < end and not lines[i].strip():
            i += 1
        block, block_line, text_start = None, head + 1, i
        m = _FENCE.match(lines[i].strip()) if i < end else None
        if m and m.group(2).split()[:1] == ["step"]:
            close = next((j for j in range(i + 1, end) if lines[j].strip().startswith(m.group(1))
                          and not lines[j].strip()[len(m.group(1)):].strip()), None)
            if close is not None:
                block, block_line, text_start = "\n".join(lines[i + 1:close]), i + 2, close + 1
            else:  # not closed: the parser reports it (block_line < 0 says so)
                block, block_line, text_start = "\n".join(lines[i + 1:end]), -(i + 2), end
        steps.append((title, head + 1, block, block_line, "\n".join(lines[text_start:end]).strip()))
    return intro, steps


def _make_step(number: int, title: str, line: int, block: str | None, block_line: int, text: str,
               problems: list[Problem]) -> Step:
    step = Step(title=title, kind="read", text=text, number=number, line=line)
    if not title:
        problems.append(Problem(line, f"step {number} has an empty heading: write its title after '## '"))
    if block is None:
        problems.append(Problem(line, "the heading must be followed at once by a ```step block of TOML "
                                      '(kind = "read", ...)', step))
        return step
    if block_line < 0:
        problems.append(Problem(-block_line - 1, "the ```step block is not closed: end it with a line of ```", step))
        return step
    data = _toml(block, block_line, problems, step, "the step block")
    if data is None:
        return step
    kind = data.get("kind")
    if kind not in KINDS:
        problems.append(Problem(block_line, f"unknown kind {kind!r}; a step's kind is one of {', '.join(KINDS)}"
                                if kind is not None else f"the step block has no kind ({', '.join(KINDS)})", step))
        return step
    step = Step(title=title, kind=kind, text=text, number=number, line=line)
    block_lines = block.split("\n")
    ctx = _Context(step, block_lines, block_line, problems)
    allowed = COMMON_STEP_KEYS + STEP_KEYS[kind]
    for key in data:
        if key not in allowed:
            ctx.add(key, f"unknown key {key!r} for a {kind} step; its keys are: {', '.join(allowed)}")
    fields = {"hints": ctx.strings("hints", data)}
    if kind == "read":
        fields["image"] = ctx.optional_str("image", data)
        if not text:
            problems.append(Problem(line, "a read step needs text after its ```step block", step))
    elif kind == "do":
        fields["goal"] = ctx.conditions(data)
        fields["show_me"] = ctx.actions("show_me", data)
    elif kind == "predict":
        quantity = data.get("quantity")
        if quantity not in QUANTITIES:
            ctx.add("quantity", f"quantity must be one of {', '.join(QUANTITIES)}, received {quantity!r}")
            quantity = None
        fields["quantity"] = quantity
        fields["layer"] = ctx.optional_str("layer", data)
        if quantity == "total_params" and fields["layer"] is not None:
            ctx.add("layer", "total_params counts the whole model: remove layer")
        elif quantity not in (None, "total_params") and fields["layer"] is None:
            ctx.add("quantity", f'a {quantity} prediction needs the layer it is about: layer = "conv2d"')
        fields["change"] = ctx.actions("change", data)
    elif kind == "train":
        fields.update(ctx.train_fields(data))
    elif kind == "explain":
        view = data.get("view")
        if view not in VIEWS:
            ctx.add("view", f"view must be one of {', '.join(VIEWS)}, received {view!r}")
            view = None
        fields["view"] = view
        fields["layer"] = ctx.optional_str("layer", data)
    return Step(title=title, kind=kind, text=text, number=number, line=line, **fields)


class _Context:
    """Type checks of one step's TOML with the line of the key at fault."""

    def __init__(self, step: Step, block_lines: list[str], first_line: int, problems: list[Problem]):
        self.step, self.block_lines, self.first_line, self.problems = step, block_lines, first_line, problems

    def line_of(self, key: str) -> int:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i, text in enumerate(self.block_lines):
            if pattern.match(text):
                return self.first_line + i
        return self.first_line

    def nth_line(self, pattern: re.Pattern, n: int, after_key: str) -> int:
        start = self.line_of(after_key) - self.first_line
        count = 0
        for i in range(start, len(self.block_lines)):
            for _ in pattern.finditer(self.block_lines[i]):
                if count == n:
                    return self.first_line + i
                count += 1
        return self.first_line + start

    def add(self, key: str, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(self.line_of(key) if line is None else line, message, self.step))

    def strings(self, key: str, data: dict) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.add(key, f'{key} must be a list of strings, e.g. {key} = ["...", "..."]')
            return ()
        return tuple(value)

    def optional_str(self, key: str, data: dict) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(key, f"{key} must be a non-empty string, received {value!r}")
            return None
        return value

    def conditions(self, data: dict) -> tuple[Condition, ...]:
        goal = data.get("goal")
        if goal is None:
            self.add("kind", 'a do step needs a goal, e.g. goal = [ {check="total_params", at_most=60000} ]')
            return ()
        if not isinstance(goal, list) or not goal or not all(isinstance(g, dict) for g in goal):
            self.add("goal", 'goal must be a list of conditions, e.g. goal = [ {check="no_error"} ]')
            return ()
        found = []
        for n, entry in enumerate(goal):
            line = self.nth_line(_CHECK_KEY, n, "goal")
            condition = self.condition(entry, n + 1, line)
            if condition is not None:
                found.append(condition)
        return tuple(found)

    def condition(self, entry: dict, n: int, line: int) -> Condition | None:
        check = entry.get("check")
        where = f"goal {n}"
        if check not in CHECKS:
            self.add("goal", f"{where}: unknown check {check!r}; the checks are: {', '.join(CHECKS)}"
                     if check is not None else f"{where}: has no check (check = \"params\", ...)", line)
            return None
        required, optional = CHECKS[check]
        args = {k: v for k, v in entry.items() if k != "check"}
        ok = True
        for key in args:
            if key not in required + optional:
                self.add("goal", f"{where} ({check}): unknown argument {key!r}; it takes "
                                 f"{', '.join(required + optional) or 'no arguments'}", line)
                ok = False
        for key in required:
            if key not in args:
                self.add("goal", f"{where} ({check}): missing {key!r}", line)
                ok = False
        if check in NEEDS_COMPARISON and not any(k in args for k in COMPARISONS):
            self.add("goal", f"{where} ({check}): needs at_most, at_least or equals", line)
            ok = False
        for key in ("layer", "class", "key"):
            if key in args and (not isinstance(args[key], str) or not args[key]):
                self.add("goal", f"{where} ({check}): {key} must be a name (a string), received {args[key]!r}", line)
                ok = False
        if ok:
            ok = self._comparison_types(check, args, where, line)
        return Condition(check, args, line) if ok else None

    def _comparison_types(self, check: str, args: dict, where: str, line: int) -> bool:
        from ..layers import LAYER_CLASSES

        ok = True
        if check == "output_shape":
            shape = args["equals"]
            if not isinstance(shape, list) or not shape or not all(_is_int(d) and d > 0 for d in shape):
                self.add("goal", f"{where} (output_shape): equals must be the shape without the batch axis, "
                                 f"e.g. [13, 13, 32]; received {shape!r}", line)
                ok = False
        elif check == "has_layer" and args["class"] not in LAYER_CLASSES:
            self.add("goal", f"{where} (has_layer): unknown layer class {args['class']!r}", line)
            ok = False
        elif check == "setting":
            fields = list(TrainingConfig.__dataclass_fields__)
            if args["key"] not in fields:
                self.add("goal", f"{where} (setting): unknown setting {args['key']!r}; the settings are: "
                                 f"{', '.join(fields)}", line)
                ok = False
            if any(k in args for k in ("at_most", "at_least")) and not all(
                    _is_number(args[k]) for k in ("at_most", "at_least") if k in args):
                self.add("goal", f"{where} (setting): at_most / at_least take numbers", line)
                ok = False
        else:
            for key in COMPARISONS:
                if key in args and not _is_number(args[key]) and not (
                        check == "receptive_field" and key == "equals" and isinstance(args[key], list)
                        and len(args[key]) == 2 and all(_is_int(v) for v in args[key])):
                    self.add("goal", f"{where} ({check}): {key} must be a number, received {args[key]!r}", line)
                    ok = False
        return ok

    def actions(self, key: str, data: dict) -> tuple[Action, ...]:
        value = data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(a, dict) for a in value):
            self.add(key, f'{key} must be a list of actions, e.g. {key} = [ {{action="remove", layer="dropout"}} ]')
            return ()
        found = []
        for n, entry in enumerate(value):
            line = self.nth_line(_ACTION_KEY, n, key)
            action = self.action(entry, f"{key} {n + 1}", line, key)
            if action is not None:
                found.append(action)
        return tuple(found)

    def action(self, entry: dict, where: str, line: int, key: str) -> Action | None:
        from ..layers import LAYER_CLASSES

        name = entry.get("action")
        if name not in ACTIONS:
            self.add(key, f"{where}: unknown action {name!r}; the actions are: {', '.join(ACTIONS)}"
                     if name is not None else f"{where}: has no action (action = \"remove\", ...)", line)
            return None
        required, optional = ACTIONS[name]
        args = {k: v for k, v in entry.items() if k != "action"}
        ok = True
        for k in args:
            if k not in required + optional:
                self.add(key, f"{where} ({name}): unknown argument {k!r}; it takes {', '.join(required + optional)}",
                         line)
                ok = False
        for k in required:
            if k not in args:
                self.add(key, f"{where} ({name}): missing {k!r}", line)
                ok = False
        for k in ("layer", "first", "last", "class"):
            if k in args and (not isinstance(args[k], str) or not args[k]):
                self.add(key, f"{where} ({name}): {k} must be a name (a string), received {args[k]!r}", line)
                ok = False
        for k in ("config", "settings"):
            if k in args and not isinstance(args[k], dict):
                self.add(key, f"{where} ({name}): {k} must be a table, e.g. {k}={{...}}", line)
                ok = False
        if ok and name == "insert_after" and args["class"] not in LAYER_CLASSES:
            self.add(key, f"{where} (insert_after): unknown layer class {args['class']!r}", line)
            ok = False
        if ok and name == "set_input_shape" and not (
                isinstance(args["shape"], list) and args["shape"] and all(_is_int(d) and d > 0 for d in args["shape"])):
            self.add(key, f"{where} (set_input_shape): shape must be a list such as [200, 200, 1]", line)
            ok = False
        return Action(name, args, line) if ok else None

    def train_fields(self, data: dict) -> dict:
        fields: dict = {}
        settings = data.get("settings", {})
        if not isinstance(settings, dict):
            self.add("settings", "settings must be a table, e.g. settings = { epochs = 1, limit = 2000 }")
            settings = {}
        known = list(TrainingConfig.__dataclass_fields__) + list(EXTRA_TRAIN_SETTINGS)
        config = {k: v for k, v in settings.items() if k in TrainingConfig.__dataclass_fields__}
        for key in settings:
            if key not in known:
                self.add("settings", f"unknown setting {key!r}; the settings are: {', '.join(known)}")
        try:
            TrainingConfig.from_dict(config)
        except Exception as exc:  # ConfigError: the engine's own words
            self.add("settings", str(exc))
        dataset = settings.get("dataset")
        if dataset is not None:
            problem = _dataset_problem(dataset)
            if problem:
                self.add("settings", problem)
        limit = settings.get("limit")
        if limit is not None and not (_is_int(limit) and limit > 0):
            self.add("settings", f"limit (training images used) must be a positive whole number, received {limit!r}")
        fields["settings"] = dict(settings)
        question = data.get("question")
        if not isinstance(question, str) or not question.strip():
            self.add("kind" if question is None else "question", "a train step needs a question = \"...\" "
                                                                  "to answer about what the run showed")
            question = ""
        fields["question"] = question
        choices = data.get("choices")
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c.strip()
                                                                         for c in choices):
            self.add("kind" if choices is None else "choices",
                     'a train step needs choices = ["...", "..."] (at least two answers)')
            choices = []
        fields["choices"] = tuple(choices)
        answer = data.get("answer")
        if not _is_int(answer):
            self.add("kind" if answer is None else "answer",
                     "a train step needs answer = N, the index of the right choice (0 = the first)")
            answer = None
        elif choices and not 0 <= answer < len(choices):
            self.add("answer", f"answer {answer} is out of range: there are {len(choices)} choices "
                               f"(0 to {len(choices) - 1})")
        fields["answer"] = answer
        explain = data.get("explain", "")
        if not isinstance(explain, str):
            self.add("explain", "explain must be a string")
            explain = ""
        fields["explain"] = explain
        return fields


def _dataset_problem(value) -> str | None:
    """Why a train step's dataset setting is not one ("mnist", "fashion_mnist" or the project's "dataset"
    section form, checked by its owner engine/dataset_spec.py), or None."""
    from ..dataset_spec import SOURCES, check_dataset_section
    from ..layers import ConfigError

    if isinstance(value, str):
        return None if value in SOURCES and value != "folder" else (
            f'dataset must be "mnist", "fashion_mnist" or a table such as {{ source = "folder", path = "..." }}, '
            f"received {value!r}")
    if not isinstance(value, dict):
        return f"dataset must be a name or a table, received {value!r}"
    try:
        check_dataset_section(value)
    except ConfigError as exc:
        message = str(exc)
        return message if message.startswith("dataset") else f"dataset: {message}"
    return None


def _toml(text: str, first_line: int, problems: list[Problem], step: Step | None, what: str) -> dict | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOML_LINE.search(message)
        if m and m.group(1):
            line = first_line + int(m.group(1)) - 1
        else:  # "at end of document": the block's last line
            line = first_line + max(0, len(text.split("\n")) - 1)
        reason = _TOML_LINE.sub("", message).strip().rstrip(".")
        if reason in ("Illegal character '\\n'", "Unterminated string"):
            reason = "a string is not closed (a missing quote?)"
        problems.append(Problem(line, f"{what} is not valid TOML: {reason}", step))
        return None
    except RecursionError:
        problems.append(Problem(first_line, f"{what} is nested too deeply", step))
        return None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


__all__ = ["Problem", "load_lesson", "parse_lesson", "read_lesson_text"]
