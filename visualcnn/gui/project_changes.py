"""What a project is compared with to say what changed, and which files are read-only.

ProjectBaseline records the document as it was last opened or saved: the pipeline (input
shape and layer configs), the training settings and the trained weights. The quit prompt
names what differs: "The pipeline and the training settings have unsaved changes."
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def bundled_preset(path: str | os.PathLike) -> str | None:
    """The preset's name when path is one of the bundled presets (read-only templates), else None."""
    from ..resources import is_bundled_preset

    try:
        return Path(path).stem if is_bundled_preset(path) else None
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class ProjectBaseline:
    pipeline: str
    training: object
    weights: object  # the weights object itself: identity tells a new run from the saved one
    sections: dict = None  # the project sections (dataset, resume, runs, teacher) as last saved

    @classmethod
    def of(cls, document) -> "ProjectBaseline":
        return cls(_pipeline_text(document), document.training, document.trained_weights, document.sections)

    def changed_parts(self, document) -> list[str]:
        parts = []
        if _pipeline_text(document) != self.pipeline:
            parts.append("the pipeline")
        if document.training != self.training:
            parts.append("the training settings")
        if document.trained_weights is not self.weights:
            parts.append("the trained weights")
        from ..engine.project_sections import SECTION_LABELS

        saved, now = self.sections or {}, document.sections
        parts += [label for key, label in SECTION_LABELS.items() if saved.get(key) != now.get(key)]
        return parts

    def describe(self, document) -> str:
        parts = self.changed_parts(document)
        if not parts:
            return "The project has unsaved changes."
        named = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        verb = "has" if parts == ["the pipeline"] else "have"  # the settings, the weights: plural
        return f"{named[0].upper()}{named[1:]} {verb} unsaved changes."


def _pipeline_text(document) -> str:
    return f"{document.name}\n{document.description}\n{document.structure_signature()}"
