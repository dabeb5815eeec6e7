"""Every problem in a lesson file, one line each: what `visualcnn lesson check` prints.

Beyond the form (parser.py), the checker walks the lesson on its starting model the way a
student who follows every step would: each do-step's Show me, each predict step's change
and each train step's settings are applied in order, so a layer a step names must exist
in the model as it stands at that step. It also reports goals that are already met
before the student does anything, Show me actions that do not reach their goal, predict
steps whose answer the engine cannot compute, missing pictures and unknown glossary terms.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..layers import ConfigError
from ..training_config import TrainingConfig
from .format import RUN_CHECKS, Lesson, LessonError, Step
from .goals import RunFacts, check_condition, find_row
from .parser import Problem, front_matter_line, parse_lesson, read_lesson_text
from .predict import true_answer
from .simulate import ActionError, ModelState, apply_action, merged_training

_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def lesson_problems(path: str | Path) -> list[str]:
    """Every problem in the lesson file, each one line "FILE:LINE: step N 'Title': problem";
    [] when the lesson is fine."""
    path = Path(path)
    try:
        text = read_lesson_text(path)
    except LessonError as exc:
        return [str(exc)]
    except Exception as exc:  # a missing file, a folder, a device: read_file_bytes says which
        return [str(exc)]
    lesson, problems = parse_lesson(text, path)
    if lesson is not None:
        problems += walk_problems(lesson, text)
    problems.sort(key=lambda p: p.line)
    return [p.format(str(path)) for p in problems]


def walk_problems(lesson: Lesson, text: str) -> list[Problem]:
    """The problems found by following the lesson on its model (and its pictures and terms)."""
    lines = text.splitlines()
    problems: list[Problem] = []
    problems += _picture_problems(lesson, lines)
    problems += _glossary_problems(lesson, lines)
    problems += _teacher_problems(lesson)
    if not lesson.model:
        return problems
    try:
        state = ModelState.from_file(lesson.model_path)
    except (FileNotFoundError, ConfigError, OSError) as exc:
        problems.append(Problem(front_matter_line(lines, "model"), f"the model cannot be loaded: {_one_line(exc)}"))
        return problems
    trained = False
    for step in lesson.steps:
        state, trained = _walk_step(step, state, trained, problems)
    return problems


def _walk_step(step: Step, state: ModelState, trained: bool, problems: list[Problem]) -> tuple[ModelState, bool]:
    def add(line: int, message: str) -> None:
        problems.append(Problem(line or step.line, message, step))

    if step.kind == "do":
        facts = RunFacts(trained=trained, test_accuracy=None)
        report = state.report()
        static = [c for c in step.goal if c.check not in RUN_CHECKS]
        if static and len(static) == len(step.goal) and all(
                check_condition(c, report, state.training, facts).met for c in static):
            add(step.line, "the goal is already met by the model as it stands at this step: the student has "
                           "nothing to do (change the goal, or the model before this step)")
        after = state
        for n, action in enumerate(step.show_me, 1):
            try:
                after = apply_action(after, action)
            except ActionError as exc:
                add(action.line, f"show_me {n} ({action.action}): {exc}")
                return state, trained
        # A goal may name a block the student is to add (Show me adds it too): a name is wrong only
        # when it exists neither before nor after Show me.
        after_report = after.report()
        missing = set()
        for n, condition in enumerate(step.goal, 1):
            if "layer" in condition.args and condition.check not in RUN_CHECKS:
                name = condition.args["layer"]
                row, problem = find_row(report, name)
                if row is None and "there is no layer" in problem and find_row(after_report, name)[0] is None:
                    missing.add(n)
                    where = " at this step" + (" nor after Show me" if step.show_me else "")
                    add(condition.line, f"goal {n} ({condition.check}): {_at_this_step(problem, where)}")
        if step.show_me and static:
            unmet = [s.line for n, c in enumerate(step.goal, 1) if c in static and n not in missing
                     for s in [check_condition(c, after_report, after.training, facts)] if not s.met]
            if unmet:
                add(step.show_me[0].line, f"Show me does not reach the goal: {'; '.join(unmet)}")
        if any(c.check in RUN_CHECKS for c in step.goal):
            trained = True  # the student trains to meet it
        return after, trained
    if step.kind == "predict" and step.quantity:
        after = state
        for n, action in enumerate(step.change, 1):
            try:
                after = apply_action(after, action)
            except ActionError as exc:
                add(action.line, f"change {n} ({action.action}): {exc}")
                return state, trained
        try:
            true_answer(step, state)
        except ActionError as exc:
            add(step.line, "the engine cannot answer it" + (" after the change" if step.change else "") +
                f": {_at_this_step(str(exc))}")
        return after, trained
    if step.kind == "train":
        fields = {k: v for k, v in step.settings.items() if k in TrainingConfig.__dataclass_fields__}
        try:
            state = ModelState(state.input_shape, state.entries, merged_training(state.training, fields),
                               state.input_name, state.name)
        except ConfigError:
            pass  # the parser already reported the settings
        report = state.report()
        if report.error:
            add(step.line, f"the model cannot be trained at this step: {report.error}")
        return state, True
    if step.kind == "explain" and step.layer:
        row, problem = find_row(state.report(), step.layer)
        if row is None:
            add(step.line, _at_this_step(problem))
        else:
            problem = _view_problem(step.view, row.layer, state)
            if problem:
                add(step.line, problem)
    return state, trained


def _view_problem(view: str | None, layer, state: ModelState) -> str | None:
    """Why the explain view cannot open on this layer (the explain engine's own rules), or None."""
    if view == "slide":
        from ..explain.window import SLIDING

        if layer.class_name not in SLIDING:
            return (f"the slide view shows a layer that slides a window ({', '.join(SLIDING)}); "
                    f"'{layer.name}' is a {layer.class_name}")
    elif view in ("gradcam", "occlusion", "saliency", "trace"):
        from ..explain.gradcam import conv_layers

        class _Analysed:  # conv_layers asks a model for its analysis
            analyse = staticmethod(state.report)

        if layer.name not in conv_layers(_Analysed()):
            return f"the {view} view needs a layer whose output is a feature map; '{layer.name}' is a {layer.class_name}"
    return None


def _picture_problems(lesson: Lesson, lines: list[str]) -> list[Problem]:
    problems = []
    for step in lesson.steps:
        if step.kind == "read" and step.image and not lesson.resolve(step.image).is_file():
            problems.append(Problem(step.line, f"the image {step.image!r} does not exist (looked for "
                                               f"{lesson.resolve(step.image)})", step))
    for number, line in enumerate(lines, 1):
        for m in _IMAGE.finditer(line):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # http:, data: ... not files
            if not lesson.resolve(target).is_file():
                problems.append(Problem(number, f"the picture {target!r} does not exist (looked for "
                                                f"{lesson.resolve(target)})"))
    return problems


def _glossary_problems(lesson: Lesson, lines: list[str]) -> list[Problem]:
    from ..glossary import has_term

    return [Problem(front_matter_line(lines, "glossary"), f"glossary term {name!r} is not in the glossary "
                                                    "(resources/glossary.toml): add it there or fix the spelling")
            for name in lesson.glossary if not has_term(name)]


def _teacher_problems(lesson: Lesson) -> list[Problem]:
    """What the teacher table takes away that a step needs: a hidden Train tab for a train step,
    a locked pipeline for a goal the student must reach by editing it, locked settings for a
    goal on a setting. (The table's own form is the parser's: teacher.teacher_problems.)"""
    if lesson.teacher is None:
        return []
    problems = []

    def listed(key: str) -> list:
        value = lesson.teacher.get(key, [])
        return value if isinstance(value, list) else []

    hidden, locked = listed("hide"), listed("lock")
    needs = {"train": "train", "explain": "explain"}  # step kind -> the panel it needs
    for step in lesson.steps:
        panel = needs.get(step.kind)
        if panel in hidden:
            problems.append(Problem(step.line, f"the teacher table hides {panel!r}, which this {step.kind} step "
                                               "needs: remove it from teacher.hide", step))
        if step.kind != "do":
            continue
        checks = {c.check for c in step.goal}
        if "pipeline" in locked and checks - {"setting", *RUN_CHECKS}:
            problems.append(Problem(step.line, "the teacher table locks the pipeline, which the student must edit "
                                               "to reach this goal: remove 'pipeline' from teacher.lock", step))
        if "settings" in locked and "setting" in checks:
            problems.append(Problem(step.line, "the teacher table locks the settings, which the student must change "
                                               "to reach this goal: remove 'settings' from teacher.lock", step))
    return problems


def _at_this_step(problem: str, where: str = " at this step") -> str:
    return problem.replace(" (the layers are", f"{where} (the layers are", 1)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


__all__ = ["lesson_problems", "walk_problems"]
