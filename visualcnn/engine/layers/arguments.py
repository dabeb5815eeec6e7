"""Declared layer arguments: their Keras names, kinds, defaults and validation.

Arguments are normalised here, at the edge, and nowhere else (int -> pair, None ->
"linear", "SAME" -> "same"). The builder window's inspector reads the same
declarations to choose a widget for each argument and to show the Keras default.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

# Every activation the engine implements (visualcnn/engine/activations.py must cover all).
ACTIVATIONS = (
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid",
    "hard_sigmoid", "tanh", "softmax", "log_softmax", "softplus", "softsign",
    "silu", "exponential",
)
ACTIVATION_ALIASES = {"swish": "silu", None: "linear"}

# Keras initializer class names -> (snake name, default parameters).
INITIALIZERS = {
    "GlorotUniform": ("glorot_uniform", {}),
    "GlorotNormal": ("glorot_normal", {}),
    "HeUniform": ("he_uniform", {}),
    "HeNormal": ("he_normal", {}),
    "LecunUniform": ("lecun_uniform", {}),
    "LecunNormal": ("lecun_normal", {}),
    "Zeros": ("zeros", {}),
    "Ones": ("ones", {}),
    "RandomNormal": ("random_normal", {"mean": 0.0, "stddev": 0.05}),
    "RandomUniform": ("random_uniform", {"minval": -0.05, "maxval": 0.05}),
    "TruncatedNormal": ("truncated_normal", {"mean": 0.0, "stddev": 0.05}),
    "Constant": ("constant", {"value": 0.0}),
}
_INITIALIZER_BY_SNAKE = {snake: cls for cls, (snake, _) in INITIALIZERS.items()}


@dataclass(frozen=True)
class Arg:
    """One constructor argument of a layer, as Keras names it.

    kind: "int", "pair" (int or 2 ints), "optional_pair" (None or a pair),
    "padding", "float", "bool", "activation", "initializer", "axis", "shape", "seed",
    "choice" (a string among `choices`), "factor" (a float or [lower, upper]),
    "optional_float" (None or a float), "int_tuple" (a list of ints),
    "optional_int_tuple" (None, an int or a list of ints), "padding_2d" (int,
    [sym_h, sym_w] or [[top, bottom], [left, right]]), "axis_list" (an int or a list of ints).
    minimum/maximum bound numbers, each value of a tuple on its own (maximum_exclusive for
    e.g. dropout rate < 1).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    minimum: float | None = None
    maximum: float | None = None
    maximum_exclusive: bool = False
    doc: str = ""
    choices: tuple = ()  # the allowed strings of a "choice"

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


class ConfigError(ValueError):
    """A layer or model description that cannot work; the message names what and why."""


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return repr(value) if not isinstance(value, (list, tuple)) else str(list(value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def normalise(arg: Arg, value: Any, where: str) -> Any:
    """Validate one argument value and return its normal form, or raise ConfigError.

    `where` is the "Conv2D 'conv2d_1'" prefix so every message names its layer.
    """
    kind = arg.kind
    if value is None and arg.default is None and kind != "activation":
        return None  # Keras's "None: ..." default (RandomZoom width_factor: keep the aspect ratio)

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{where}: argument '{arg.name}' expected {expected}, received {_describe(value)}")

    if kind == "int":
        if not _is_int(value):
            raise fail("an integer")
        _check_bounds(arg, value, fail)
        return value
    if kind in ("pair", "optional_pair"):
        if value is None and kind == "optional_pair":
            return None
        if _is_int(value):
            pair = (value, value)
        elif isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) for v in value):
            pair = (value[0], value[1])
        else:
            raise fail("an integer or a pair of integers" + (" or null" if kind == "optional_pair" else ""))
        for v in pair:
            _check_bounds(arg, v, fail, pair=True)
        return pair
    if kind == "padding":
        if not isinstance(value, str) or value.lower() not in ("valid", "same"):
            raise fail("'valid' or 'same'")
        return value.lower()
    if kind == "float":
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            raise fail("a finite number")
        _check_bounds(arg, value, fail)
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if kind == "activation":
        value = ACTIVATION_ALIASES.get(value, value) if (value is None or isinstance(value, str)) else value
        if not isinstance(value, str) or value not in ACTIVATIONS:
            raise ConfigError(
                f"{where}: argument '{arg.name}' expected one of {', '.join(ACTIVATIONS)}, "
                f"received {_describe(value)}"
            )
        return value
    if kind == "initializer":
        return _normalise_initializer(value, where, arg.name)
    if kind == "axis":
        if not _is_int(value):
            raise fail("an integer axis such as -1")
        return value
    if kind == "shape":
        if (not isinstance(value, (list, tuple)) or not value
                or not all(_is_int(v) and v >= 1 for v in value)):
            raise fail("a list of positive integers such as [28, 28, 1]")
        return tuple(value)
    if kind == "seed":
        if value is not None and not _is_int(value):
            raise fail("an integer or null")
        return value
    if kind == "choice":
        if not isinstance(value, str) or value not in arg.choices:
            raise fail("one of " + ", ".join(repr(c) for c in arg.choices))
        return value
    if kind == "factor":
        if _is_number(value):
            _check_bounds(arg, value, fail)
            return float(value)
        if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value):
            for v in value:
                _check_bounds(arg, v, fail, pair=True)
            return (float(value[0]), float(value[1]))
        raise fail("a number or a pair [lower, upper] of numbers")
    if kind == "optional_float":
        if value is None:
            return None
        if not _is_number(value):
            raise fail("a finite number or null")
        _check_bounds(arg, value, fail)
        return float(value)
    if kind in ("int_tuple", "optional_int_tuple"):
        if kind == "optional_int_tuple":
            if value is None:
                return None
            if _is_int(value):  # Keras wraps a single axis in a list
                value = [value]
        if not isinstance(value, (list, tuple)) or not value or not all(_is_int(v) for v in value):
            raise fail("a list of integers such as [2, 1]" + (" or null" if kind == "optional_int_tuple" else ""))
        for v in value:
            _check_bounds(arg, v, fail, pair=True)
        return tuple(value)
    if kind == "padding_2d":
        return _normalise_padding_2d(arg, value, fail)
    if kind == "axis_list":
        if _is_int(value):
            return value
        if isinstance(value, (list, tuple)) and value and all(_is_int(v) for v in value):
            return tuple(value)
        raise fail("an integer axis or a list of axes such as [-3, -2, -1]")
    raise AssertionError(f"unknown argument kind {kind!r}")


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _normalise_padding_2d(arg: Arg, value: Any, fail) -> tuple:
    """Keras's ZeroPadding2D/Cropping2D rule: an int for all four sides, or one entry per
    axis (height, width), each an int (both sides) or [before, after]."""
    expected = "an integer, [height, width] or [[top, bottom], [left, right]]"

    def side_pair(entry):
        if _is_int(entry):
            return (entry, entry)
        if isinstance(entry, (list, tuple)) and len(entry) == 2 and all(_is_int(v) for v in entry):
            return (entry[0], entry[1])
        raise fail(expected)

    if _is_int(value):
        result = ((value, value), (value, value))
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        result = (side_pair(value[0]), side_pair(value[1]))
    else:
        raise fail(expected)
    for v in result[0] + result[1]:
        _check_bounds(arg, v, fail, pair=True)
    return result


def to_json(value: Any) -> Any:
    """A normal-form value as Keras's JSON writes it: tuples (nested too) become lists."""
    if isinstance(value, (tuple, list)):
        return [to_json(v) for v in value]
    return value


def _check_bounds(arg: Arg, value, fail, pair: bool = False) -> None:
    each = "each value " if pair else ""
    if arg.minimum is not None and value < arg.minimum:
        raise fail(f"{each}>= {arg.minimum:g}")
    if arg.maximum is not None:
        if arg.maximum_exclusive and value >= arg.maximum:
            low = f">= {arg.minimum:g} and " if arg.minimum is not None else ""
            raise fail(f"{each}{low}< {arg.maximum:g}")
        if not arg.maximum_exclusive and value > arg.maximum:
            raise fail(f"{each}<= {arg.maximum:g}")


def _normalise_initializer(value: Any, where: str, name: str) -> Any:
    """A snake name ("he_normal") or a Keras dict -> snake name, or {"class_name", "config"}."""
    supported = ", ".join(sorted(_INITIALIZER_BY_SNAKE))
    if isinstance(value, str):
        cls = _INITIALIZER_BY_SNAKE.get(value) or (value if value in INITIALIZERS else None)
        if cls is None:
            raise ConfigError(f"{where}: argument '{name}' initializer {value!r} is not supported; use one of {supported}")
        return INITIALIZERS[cls][0]
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        cls = value["class_name"]
        if cls not in INITIALIZERS:
            raise ConfigError(f"{where}: argument '{name}' initializer {cls!r} is not supported; use one of {supported}")
        snake, defaults = INITIALIZERS[cls]
        config = value.get("config") or {}
        if not isinstance(config, dict):
            raise ConfigError(f"{where}: argument '{name}' initializer config must be an object, received {_describe(config)}")
        params = dict(defaults)
        for key, v in config.items():
            if key == "seed":
                if v is not None and not _is_int(v):
                    raise ConfigError(f"{where}: argument '{name}' initializer seed must be an integer or null")
                if v is not None:
                    params["seed"] = v
                continue
            if key not in defaults:
                if v is None:  # options newer Keras versions write as null mean "not used"
                    continue
                raise ConfigError(f"{where}: argument '{name}' initializer {cls} option {key!r} is not supported")
            if not (_is_int(v) or isinstance(v, float)) or not math.isfinite(v):
                raise ConfigError(f"{where}: argument '{name}' initializer {cls} option {key!r} must be a finite number")
            params[key] = float(v)
        if params == defaults:
            return snake
        return {"class_name": cls, "config": params}
    raise ConfigError(f"{where}: argument '{name}' expected an initializer name such as 'glorot_uniform', received {_describe(value)}")


# Keys that Keras 3 writes into layer configs which VisualCNN does not model. Each is
# accepted only while it holds the value that means "off"/"default"; anything else is
# an error that names it, so nothing a user asked for is silently dropped.
_NONE_ONLY_SUFFIXES = ("_regularizer", "_constraint")
_IGNORABLE_DEFAULTS: dict[str, tuple] = {
    "data_format": (None, "channels_last"),
    "groups": (1,),
    "noise_shape": (None,),
    "lora_rank": (None,),
    "lora_alpha": (None,),
    "quantization_config": (None,),
    "synchronized": (False,),
    "renorm": (False,),
    "renorm_clipping": (None,),
    "renorm_momentum": (0.99,),
    "ragged": (False,),
    "sparse": (False,),
    "optional": (False,),
}


def check_extra_key(key: str, value: Any, where: str, known: list[str]) -> None:
    """Accept a Keras key VisualCNN does not model if it holds its default; else raise."""
    if key == "dtype":
        if _is_float32(value):
            return
        raise ConfigError(f"{where}: dtype {_describe(_dtype_name(value))} is not supported; VisualCNN computes in float32")
    if key.endswith(_NONE_ONLY_SUFFIXES) or key == "activity_regularizer":
        if value is None:
            return
        raise ConfigError(f"{where}: '{key}' is set, but VisualCNN does not support regularizers or constraints")
    if key in _IGNORABLE_DEFAULTS:
        if value in _IGNORABLE_DEFAULTS[key] and not (isinstance(value, bool) and not isinstance(_IGNORABLE_DEFAULTS[key][0], bool)):
            return
        raise ConfigError(f"{where}: '{key}' = {_describe(value)} is not supported (only {_describe(_IGNORABLE_DEFAULTS[key][0])})")
    hint = difflib.get_close_matches(key, known, n=1)
    suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; known arguments: {', '.join(known)}"
    raise ConfigError(f"{where}: unknown argument '{key}'{suggestion}")


def _dtype_name(value: Any) -> Any:
    if isinstance(value, dict):
        config = value.get("config")
        if isinstance(config, dict):
            return config.get("name")
    return value


def _is_float32(value: Any) -> bool:
    return value is None or _dtype_name(value) == "float32"
