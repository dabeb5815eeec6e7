"""The glossary: every technical word on screen, explained in one or two plain sentences.

One home for the explanations: the window's tooltips (gui/glossary_tips.py), the lessons'
`glossary = [...]` lists and anything else that explains a word read them here. The text
lives in resources/glossary.toml so a teacher can read and improve it without Python.

Names are matched loosely (case, "-", "_" and spaces do not matter; each entry also lists
aliases: "batch_size" finds "batch size", "gradcam" finds "grad-cam"), so a widget can
pass the word it shows.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from pathlib import Path

from .layers import ConfigError


def glossary_path() -> Path:
    from ..resources import resource_dir

    return resource_dir() / "glossary.toml"


def normalise(name: str) -> str:
    """'Batch-Size' -> 'batch size'."""
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


@functools.lru_cache(maxsize=1)
def _load() -> tuple[dict[str, str], dict[str, str]]:
    """(entry name -> text, normalised name or alias -> entry name). Read once."""
    return read_glossary(glossary_path().read_text(encoding="utf-8"))


def read_glossary(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Parse glossary TOML; ConfigError naming the entry at fault."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"glossary.toml is not valid TOML: {exc}") from None
    entries, index = {}, {}
    for name, entry in data.get("terms", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or not entry["text"].strip():
            raise ConfigError(f"glossary.toml: term {name!r} needs text = \"one or two plain sentences\"")
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ConfigError(f"glossary.toml: term {name!r}: aliases must be a list of strings")
        entries[name] = " ".join(entry["text"].split())
        for key in (name, *aliases):
            key = normalise(key)
            if key in index and index[key] != name:
                raise ConfigError(f"glossary.toml: {key!r} names both {index[key]!r} and {name!r}")
            index[key] = name
    return entries, index


def terms() -> list[str]:
    """Every entry's name, in the file's order."""
    return list(_load()[0])


def lookup(name: str) -> str | None:
    """The entry name `name` (a term or an alias, written loosely) refers to, or None."""
    index = _load()[1]
    key = normalise(name)
    if key in index:
        return index[key]
    if key.endswith("s") and key[:-1] in index:  # "strides", "kernels"
        return index[key[:-1]]
    return None


def has_term(name: str) -> bool:
    return lookup(name) is not None


def term(name: str) -> str:
    """The explanation of `name` (a term or an alias). KeyError with one line, naming close
    terms, for a word the glossary does not have."""
    found = lookup(name)
    if found is None:
        close = difflib.get_close_matches(normalise(name), list(_load()[1]), n=3)
        raise KeyError(f"the glossary has no term {name!r}" + (f"; did you mean {', '.join(map(repr, close))}?"
                                                               if close else ""))
    return _load()[0][found]


__all__ = ["term", "terms", "lookup", "has_term", "read_glossary", "glossary_path", "normalise"]
