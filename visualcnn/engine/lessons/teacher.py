"""The "teacher" section: what a teacher locked or hid for a class (issue 14, teacher mode).

The same form serves a project file's top-level "teacher" section (engine/project_sections.py)
and a lesson's front matter `teacher` table:

    {"lock": ["pipeline", "settings"], "hide": ["palette", "draw"], "note": "Change only the strides."}

- "lock": what the student may look at but not change. "pipeline" = the layers, their
  settings and the input shape; "settings" = the training settings (the student can still
  press Train: a locked network is still trained and explored).
- "hide": panels, tabs and menus taken off the screen (ids below).
- "note": an optional sentence from the teacher, shown in the "Locked by your teacher" banner.
- "unlock_code_sha256": optional; the window's Unlock asks for the code whose code_digest this is.

The locks are classroom guidance, not security (a file can be edited): the window's Unlock lifts
them for the session or removes the section; with a code, only who knows it does so there.
This module only knows the form and the words; gui/teacher_mode.py applies it to the window.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..layers import ConfigError

# id -> how the banner names it ("Locked by your teacher: the pipeline and the training settings")
LOCKS = {
    "pipeline": "the pipeline",
    "settings": "the training settings",
}
# id -> how the banner names it. Panels, tabs and menus of the window.
PANELS = {
    "palette": "the layer palette",
    "inspector": "the inspector",
    "summary": "the summary",
    "train": "the Train tab",
    "draw": "the Draw tab",
    "explain": "the Explain menu",
    "presets": "the Presets menu",
}
KEYS = ("lock", "hide", "note", "unlock_code_sha256")
CODE_SALT = "visualcnn teacher unlock code:"  # so the digest of a short code is not a common one
NOTE_MAX = 300  # one or two sentences: the banner is one strip across the window


@dataclass(frozen=True)
class TeacherSettings:
    """A checked teacher section; the empty one locks and hides nothing."""

    lock: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    note: str = ""
    unlock_code_sha256: str = ""  # "" = anyone may unlock

    def unlocks_with(self, code: str) -> bool:
        """Does this code lift the locks? (always, when the teacher set no code)"""
        return not self.unlock_code_sha256 or code_digest(code) == self.unlock_code_sha256

    @property
    def empty(self) -> bool:
        return not self.lock and not self.hide

    def locks(self, what: str) -> bool:
        return what in self.lock

    def hides(self, panel: str) -> bool:
        return panel in self.hide

    def to_section(self) -> dict:
        """The section as written to a file (keys only when they hold something)."""
        section = {}
        if self.lock:
            section["lock"] = list(self.lock)
        if self.hide:
            section["hide"] = list(self.hide)
        if self.note:
            section["note"] = self.note
        if self.unlock_code_sha256:
            section["unlock_code_sha256"] = self.unlock_code_sha256
        return section


def code_digest(code: str) -> str:
    """What a section stores for an unlock code (the code itself is never written)."""
    return hashlib.sha256((CODE_SALT + code.strip()).encode("utf-8")).hexdigest()


def _quoted(values) -> str:
    return ", ".join(f'"{v}"' for v in values)


def _list_problems(key: str, value, known: dict) -> tuple[list[str], tuple[str, ...]]:
    """(problems, the valid entries in order without repeats) of one list key."""
    if not isinstance(value, (list, tuple)):
        return [f'"{key}" must be a list such as ["{next(iter(known))}"], received {type(value).__name__}'], ()
    bad = [v for v in value if not isinstance(v, str) or v not in known]
    problems = []
    if bad:
        shown = [v if isinstance(v, str) else repr(v) for v in bad]
        entries = "entry" if len(bad) == 1 else "entries"
        problems.append(f'"{key}" has unknown {entries} {_quoted(shown)}; known: {", ".join(known)}')
    good = tuple(dict.fromkeys(v for v in value if isinstance(v, str) and v in known))
    return problems, good


def teacher_problems(value) -> list[str]:
    """Every problem of a teacher section or front-matter table, one line each ([] when fine).

    Each line names the bad entries and the ids that are known, so a lesson checker can print
    them as they are (prefixed with its file:line)."""
    if not isinstance(value, dict):
        return [f'teacher settings must be a table such as {{lock = ["pipeline"]}}, '
                f"received {type(value).__name__}"]
    problems = []
    unknown = [k for k in value if k not in KEYS]
    if unknown:
        problems.append(f"unknown teacher key{'s' if len(unknown) > 1 else ''} {_quoted(unknown)}; "
                        f"known: {', '.join(KEYS)}")
    problems += _list_problems("lock", value.get("lock", []), LOCKS)[0]
    problems += _list_problems("hide", value.get("hide", []), PANELS)[0]
    note = value.get("note", "")
    if not isinstance(note, str):
        problems.append(f'"note" must be text, received {type(note).__name__}')
    elif len(note) > NOTE_MAX:
        problems.append(f'"note" is {len(note)} characters long; keep it under {NOTE_MAX} (it is one banner line)')
    digest = value.get("unlock_code_sha256", "")
    if not isinstance(digest, str) or (digest and not re.fullmatch(r"[0-9a-f]{64}", digest)):
        problems.append('"unlock_code_sha256" must be 64 hexadecimal digits, as File ▸ Teacher ▸ Lock and Hide… '
                        "writes it (leave it out for no code)")
    return problems


def teacher_settings(value) -> TeacherSettings:
    """The checked settings of a section (None = no section = nothing locked); ConfigError names
    every problem in one line."""
    if value is None:
        return TeacherSettings()
    problems = teacher_problems(value)
    if problems:
        raise ConfigError("teacher settings: " + "; ".join(problems))
    return TeacherSettings(lock=_list_problems("lock", value.get("lock", []), LOCKS)[1],
                           hide=_list_problems("hide", value.get("hide", []), PANELS)[1],
                           note=value.get("note", "").strip(),
                           unlock_code_sha256=value.get("unlock_code_sha256", ""))


def check_teacher_section(value):
    """The section as this module accepts it (project_sections already checked its JSON type):
    normalised (repeats dropped, empty keys left out); ConfigError names every bad entry."""
    return teacher_settings(value).to_section()


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def banner_text(settings: TeacherSettings) -> str:
    """The one line the window shows while teacher mode is on, e.g. "Locked by your teacher: the
    pipeline and the training settings. Hidden: the Draw tab." plus the teacher's note."""
    parts = []
    if settings.lock:
        parts.append(f"Locked by your teacher: {_join([LOCKS[k] for k in settings.lock])}.")
    if settings.hide:
        hidden = _join([PANELS[k] for k in settings.hide])
        parts.append(f"Hidden: {hidden}." if settings.lock else f"Hidden by your teacher: {hidden}.")
    if settings.note:
        parts.append(settings.note)
    return " ".join(parts)


# --- authoring: File ▸ Save as Lesson… (gui/save_as_lesson.py) --------------------------

# Project parts a lesson's starting model leaves out: the teacher table goes to the lesson's
# front matter; a student starts without the teacher's run history, saved training state
# or window layout.
LESSON_MODEL_DROPS = ("teacher", "resume", "runs", "window")
FIRST_STEP_TITLE = "Look at the model"
FIRST_STEP_TEXT = ("Hover over each block to see how its output shape and parameters are worked out. "
                   "Which block shrinks the image the most?")


def lesson_model_path(lesson_path: Path) -> Path:
    """The starting model's file, beside the lesson: 07_strides.md -> 07_strides.json."""
    return lesson_path.with_suffix(".json")


def lesson_model_dict(project: dict, include_weights: bool = True) -> dict:
    """A project file's dict as a lesson's starting model (model_to_dict form)."""
    model = {k: v for k, v in project.items() if k not in LESSON_MODEL_DROPS}
    if not include_weights:
        model.pop("weights", None)
    return model


def authored_lesson(lesson_path: Path, title: str, summary: str, intro: str = "",
                    teacher: TeacherSettings = TeacherSettings(), step_title: str = FIRST_STEP_TITLE,
                    step_text: str = FIRST_STEP_TEXT):
    """The Lesson a teacher writes from a project: its model beside the file, one read step to
    start from, and the teacher table. ConfigError (one line) for a missing title or summary."""
    from .format import Lesson, Step

    title, summary = " ".join(title.split()), " ".join(summary.split())
    if not title:
        raise ConfigError("the lesson needs a title: type one, e.g. 'Strides shrink the image'")
    if not summary:
        raise ConfigError("the lesson needs a one-sentence summary of what the student learns")
    step = Step(" ".join(step_title.split()) or FIRST_STEP_TITLE, "read", text=step_text.strip())
    return Lesson(title=title, summary=summary, model=lesson_model_path(lesson_path).name, steps=(step,),
                  intro=intro.strip(), teacher=teacher.to_section() or None)


def write_lesson(lesson_path: Path, lesson, model: dict) -> list[str]:
    """Write the starting model, then the lesson (each atomically), and check the result with
    the same checker as `visualcnn lesson check`: its problems, one line each ([] = ok).
    LessonError (before anything is written) for text the format cannot hold; OSError when a
    file cannot be written."""
    import json

    from ..model_io import write_text_atomic
    from .check import lesson_problems
    from .writer import lesson_text

    text = lesson_text(lesson)  # first: a refused text writes nothing
    write_text_atomic(lesson_model_path(lesson_path), json.dumps(model, indent=2) + "\n")
    write_text_atomic(lesson_path, text)
    return lesson_problems(lesson_path)
