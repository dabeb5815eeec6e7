"""The "teacher" section: what a teacher locked or hid for a class (issue 14, teacher mode).

The same form serves a project file's top-level "teacher" section (engine/project_sections.py)
and a lesson's front matter `teacher` table:

    {"lock": ["pipeline", "settings"], "hide": ["palette", "draw"], "note": "Change only the strides."}

- "lock": what the student may look at but not change. "pipeline" = the layers, their
  settings and the input shape; "settings" = the training settings (the student can still
  press Train: a locked network is still trained and explored).
- "hide": panels, tabs and menus taken off the screen (ids below).
- "note": an optional sentence from the teacher, shown in the "Locked by your teacher" banner.

The locks are classroom guidance, not security: the window has a menu action with which the
teacher unlocks (for the session, or by removing the section from the project).
This module only knows the form and the words; gui/teacher_mode.py applies it to the window.
"""

from __future__ import annotations

from dataclasses import dataclass

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
KEYS = ("lock", "hide", "note")
NOTE_MAX = 300  # one or two sentences: the banner is one strip across the window


@dataclass(frozen=True)
class TeacherSettings:
    """A checked teacher section; the empty one locks and hides nothing."""

    lock: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    note: str = ""

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
        return section


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
                           note=value.get("note", "").strip())


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
