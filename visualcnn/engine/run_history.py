"""The project's "runs" section (engine/project_sections.py lists the sections)."""

from __future__ import annotations


def check_runs_section(value):
    """The section as this module accepts it (project_sections already checked its JSON type)."""
    return value
