"""The lessons shipped with VisualCNN: resources/lessons/NN_slug.md, in NN order."""

from __future__ import annotations

from pathlib import Path


def lesson_dir() -> Path:
    from ...resources import resource_dir

    return resource_dir() / "lessons"


def bundled_lessons() -> list[Path]:
    """The bundled lesson files, sorted by name (the NN_ prefix gives the order); [] when none."""
    try:
        folder = lesson_dir()
    except FileNotFoundError:
        return []
    return sorted(p for p in folder.glob("*.md") if p.is_file())


__all__ = ["lesson_dir", "bundled_lessons"]
