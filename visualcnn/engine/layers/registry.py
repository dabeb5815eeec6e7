"""Every layer class users can build, by Keras class name; classes register themselves.

A Layer subclass that sets `class_name` in its own body is registered when its module is
imported (Layer.__init_subclass__ calls `register`), so adding a layer is its own file plus
one import line in layers/__init__.py. Helper bases (_ConvBase, _Pooling2D) set no
class_name and stay out.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from .arguments import ConfigError

if TYPE_CHECKING:
    from .base import Layer

# Families in teaching order: the order layers are listed in (the palette groups by them).
# What a first lesson uses comes first (a student opening the palette sees Conv2D at the
# top, not RandomFlip); branches, reshaping and augmentation follow. A family not named
# here is still a working layer: it is listed after these and the builder shows it in a
# neutral colour.
FAMILIES = ("input", "convolution", "pooling", "core", "activation", "normalization",
            "regularisation", "merge", "reshaping", "augmentation")

# Class name -> class, ordered by family, then by registration. It is updated in place, so
# every module holding a reference sees classes registered later (a test's own layer).
LAYER_CLASSES: dict[str, type[Layer]] = {}
_order: dict[str, int] = {}
_counter = itertools.count()


def family_rank(family: str) -> int:
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


def register(cls: type[Layer]) -> None:
    """Add a layer class under its class_name. The model input (family "input") is not a
    layer one adds or reads from a layers list, so it stays out, as in Keras's layer list."""
    if cls.family == "input":
        return
    name = cls.class_name
    old = LAYER_CLASSES.get(name)
    if old is not None and old is not cls and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"layer class name {name!r} is defined twice: in {old.__module__} and {cls.__module__}; "
                        "give the new class its own class_name")
    _order.setdefault(name, next(_counter))
    LAYER_CLASSES[name] = cls
    ordered = sorted(LAYER_CLASSES.items(), key=lambda item: (family_rank(item[1].family), _order[item[0]]))
    LAYER_CLASSES.clear()
    LAYER_CLASSES.update(ordered)


def unregister(class_name: str) -> None:
    """Remove a class (tests that define a throwaway layer clean up with this)."""
    LAYER_CLASSES.pop(class_name, None)
    _order.pop(class_name, None)


def layer_from_config(class_name: str, config: dict) -> Layer:
    """Build a layer from its Keras class name and config; unknown names are a ConfigError."""
    if not isinstance(class_name, str) or class_name not in LAYER_CLASSES:
        known = ", ".join(LAYER_CLASSES)
        raise ConfigError(f"unknown layer type {class_name!r}; VisualCNN knows {known}")
    return LAYER_CLASSES[class_name].from_config(config)
