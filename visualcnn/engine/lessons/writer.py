"""Write a Lesson back as a lesson file (File ▸ Save as lesson… uses it).

The output is the format the parser reads: TOML front matter between +++ lines, the
introduction, then per step a `## Title` heading, a ```step block and the step's text.
load_lesson(lesson_text(lesson)) gives the same lesson back (tests check it).
"""

from __future__ import annotations

import math
import re
from typing import Any

from .format import Lesson, LessonError, Step

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def lesson_text(lesson: Lesson) -> str:
    """The lesson file's text; LessonError for a value TOML cannot hold (NaN, a non-string key)."""
    front: dict[str, Any] = {"title": lesson.title, "summary": lesson.summary, "model": lesson.model}
    if lesson.glossary:
        front["glossary"] = list(lesson.glossary)
    if lesson.teacher:
        front["teacher"] = dict(lesson.teacher)
    parts = ["+++", *(f"{_key(k)} = {toml_value(v)}" for k, v in front.items()), "+++", ""]
    if lesson.intro.strip():
        parts += [_markdown(lesson.intro, "the introduction"), ""]
    for step in lesson.steps:
        parts += step_text(step)
    return "\n".join(parts).rstrip("\n") + "\n"


def step_text(step: Step) -> list[str]:
    """One step's lines: heading, ```step block, text, a blank line."""
    title = " ".join(step.title.split())
    if not title:
        raise LessonError("a step needs a title")
    lines = [f"## {title}", "```step"]
    for k, v in step.to_dict().items():
        if isinstance(v, list) and len(v) > 1 and all(isinstance(item, dict) for item in v):
            # one condition or action per line, as people write them
            lines += [f"{_key(k)} = [", *(f"    {toml_value(item)}," for item in v), "]"]
        else:
            lines.append(f"{_key(k)} = {toml_value(v)}")
    lines.append("```")
    if step.text.strip():
        lines.append(_markdown(step.text, step.label))
    lines.append("")
    return lines


def _markdown(text: str, where: str) -> str:
    """Text as written, refused when a line would read as a step heading (a level-2 heading)."""
    from .parser import _HEADING

    fence = False
    for line in text.strip().splitlines():
        if line.strip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and _HEADING.match(line):
            raise LessonError(f"{where}: the line {line.strip()!r} would start a new step; "
                              "use a level-3 heading (### ...) inside a step")
    return text.strip()


def toml_value(value: Any) -> str:
    """A TOML value on one line: strings, whole numbers, floats, booleans, lists, inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LessonError(f"{value} cannot be written in a lesson file (numbers must be finite)")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise LessonError(f"a {type(value).__name__} cannot be written in a lesson file")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise LessonError(f"a key must be a string, received {key!r}")
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
               .replace("\t", "\\t"))
    escaped = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped)
    return f'"{escaped}"'


__all__ = ["lesson_text", "step_text", "toml_value"]
