"""The optional top-level sections of a project file beyond the model and its recipe.

Each section has one owner module that knows its form and checks it (a ConfigError names
the problem); this file only lists them, so model_io reads and writes them all one way:

- "dataset": which data the project trains on (engine/dataset_spec.py);
- "resume":  the state an interrupted run continues from (engine/resume.py);
- "runs":    the run history, one record per run (engine/run_history.py);
- "teacher": what a teacher locked or hid (engine/lessons/teacher.py).

Files without these sections read exactly as before; a section is written only when set.
"""

from __future__ import annotations

import importlib

from .layers import ConfigError

# section -> (owner module, its checker, the JSON type the section must have)
SECTIONS = {
    "dataset": ("visualcnn.engine.dataset_spec", "check_dataset_section", dict),
    "resume": ("visualcnn.engine.resume", "check_resume_section", dict),
    "runs": ("visualcnn.engine.run_history", "check_runs_section", list),
    "teacher": ("visualcnn.engine.lessons.teacher", "check_teacher_section", dict),
}

# How the quit prompt names a changed section ("The run history has unsaved changes.").
SECTION_LABELS = {"dataset": "the dataset", "resume": "the saved training state", "runs": "the run history",
                  "teacher": "the teacher settings"}


def check_section(key: str, value):
    """The section's value as its owner accepts it; ConfigError names what is wrong."""
    module_name, checker, kind = SECTIONS[key]
    if not isinstance(value, kind):
        expected = "an object" if kind is dict else "a list"
        raise ConfigError(f'"{key}" must be {expected}, received {type(value).__name__}')
    return getattr(importlib.import_module(module_name), checker)(value)


def read_sections(data: dict) -> dict:
    """The sections present in a parsed project file, each checked by its owner."""
    return {key: check_section(key, data[key]) for key in SECTIONS if data.get(key) is not None}
