"""Where the bundled data (MNIST, presets, icons) lives at run time.

Two layouts are supported:

- a source checkout or an editable install: ``<repo>/resources`` next to the
  ``visualcnn`` package;
- a regular ``pip install .``: setuptools data-files put the same folder under
  ``<sys.prefix>/share/visualcnn/resources``.

The app never reads anything outside these two places.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["resource_dir", "preset_dir"]


def _candidates() -> list[Path]:
    return [
        Path(__file__).resolve().parent.parent / "resources",
        Path(sys.prefix) / "share" / "visualcnn" / "resources",
    ]


def resource_dir() -> Path:
    """The top-level ``resources/`` folder.

    Raises FileNotFoundError naming every place that was looked at.
    """
    candidates = _candidates()
    for candidate in candidates:
        # Look for our own content, not just any folder named "resources".
        if (candidate / "presets").is_dir():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"VisualCNN resources folder not found: looked in {tried}. "
        "Run from a source checkout, or reinstall with 'pip install .'."
    )


def preset_dir() -> Path:
    """The ``presets/`` folder inside :func:`resource_dir`."""
    return resource_dir() / "presets"
