"""Where the bundled data (MNIST, presets, icons) lives at run time, and the presets' names.

Layouts supported:

- a source checkout or an editable install: ``<repo>/resources`` next to the
  ``visualcnn`` package;
- a regular ``pip install .``: setuptools data-files put the same folder under the
  install scheme's data directory, ``<prefix>/share/visualcnn/resources`` (``sys.prefix``
  in a venv, ``/usr/local`` for Debian's system pip, ``~/.local`` for ``--user``).

The app never reads anything outside these places. Bundled presets are read-only
templates: ``is_bundled_preset`` lets the window send Save to Save As for them.
"""

from __future__ import annotations

import json
import os
import site
import sys
import sysconfig
from pathlib import Path
from typing import NamedTuple

__all__ = ["resource_dir", "preset_dir", "preset_path", "preset_names", "preset_titles", "is_bundled_preset",
           "resolve_model_path", "PresetInfo"]


def _candidates() -> list[Path]:
    share = Path("share") / "visualcnn" / "resources"
    roots = [Path(sysconfig.get_path("data")), Path(sys.prefix)]
    user_base = getattr(site, "USER_BASE", None)
    if user_base:
        roots.append(Path(user_base))
    candidates = [Path(__file__).resolve().parent.parent / "resources"]
    for root in roots:
        if root / share not in candidates:
            candidates.append(root / share)
    return candidates


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


def preset_names() -> list[str]:
    """The bundled presets' names (file stems), the seed CNN first."""
    names = sorted(p.stem for p in preset_dir().glob("*.json"))
    return sorted(names, key=lambda n: n != "seed_cnn")


def preset_path(name: str) -> Path:
    """The file of the bundled preset called ``name`` (``seed_cnn`` or ``seed_cnn.json``).

    Raises FileNotFoundError listing the presets there are.
    """
    stem = name[:-5] if name.endswith(".json") else name
    if stem and os.sep not in stem and "/" not in stem and stem not in (".", ".."):
        path = preset_dir() / f"{stem}.json"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no bundled preset named {name!r}; the presets are: {', '.join(preset_names())}")


def is_bundled_preset(path: str | os.PathLike) -> bool:
    """True when ``path`` is (a link to) one of the bundled preset files, which Save must not overwrite."""
    try:
        target = Path(os.path.realpath(path))
        folder = Path(os.path.realpath(preset_dir()))
    except (OSError, FileNotFoundError):
        return False
    return target.parent == folder and target.suffix == ".json" and target.is_file()


class PresetInfo(NamedTuple):
    """A preset for the Presets menu: its name, file, a readable title and a one-line description."""

    name: str
    path: Path
    title: str
    description: str


def preset_titles() -> list[PresetInfo]:
    """Every bundled preset with the "title" and "description" its file holds, seed CNN first.

    A preset without a title shows its name with underscores as spaces; an unreadable one
    is left out rather than breaking the menu, and no presets folder gives an empty list.
    """
    try:
        names, folder = preset_names(), preset_dir()
    except FileNotFoundError:
        return []  # a broken install: an empty Presets menu, not a window that cannot open
    infos = []
    for name in names:
        path = folder / f"{name}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        title = data.get("title")
        description = data.get("description")
        infos.append(PresetInfo(name, path,
                                title if isinstance(title, str) and title else name.replace("_", " "),
                                description if isinstance(description, str) else ""))
    return infos


def resolve_model_path(argument: str | os.PathLike) -> Path:
    """What the command line means by a model argument: an existing file as given, else a bundled
    preset's name (no folder part, e.g. ``seed_cnn``).

    A path with a folder part is returned unchanged (the reader reports "no such file"); a
    bare word that is neither raises FileNotFoundError listing the presets.
    """
    path = Path(argument)
    text = os.fspath(argument)
    if path.exists() or os.sep in text or "/" in text:
        return path
    try:
        return preset_path(text)
    except FileNotFoundError:
        pass
    try:
        names = ", ".join(preset_names())
    except FileNotFoundError:
        return path
    raise FileNotFoundError(f"{text}: no such model file or preset (presets: {names})")
