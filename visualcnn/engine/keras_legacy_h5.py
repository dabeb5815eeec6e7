"""Keras's legacy HDF5 files: model.save("x.h5") (Keras 3 and Keras 2 / tf.keras) and Keras 2's
weights-only save_weights("x.h5").

The layout (keras/src/legacy/saving/legacy_h5_format.py, save_model_to_hdf5): the root's
attribute "model_config" holds model.get_config() as JSON ("training_config" the compile
settings); the group "model_weights" has the attribute "layer_names" (every layer, in
model.layers order) and one group per layer whose attribute "weight_names" lists its
weights, each a dataset at that path inside the layer's group. Keras 3 names them by
variable path ("sequential/conv2d/kernel"), Keras 2 by variable name ("conv2d/kernel:0"),
so a weight is matched by its last part without ":0"; the order is trainable weights, then
non-trainable ones, which is ours for every layer VisualCNN has. An attribute list too large
for one HDF5 header is split into "layer_names0", "layer_names1", ... (both versions).
Keras 2's save_weights("x.h5") writes the "model_weights" group's content at the root.

The config goes through keras_json.read_keras, the reader of model.to_json(), so an
unsupported layer or argument is named exactly as there. Every problem, a truncated or
hostile file included, is one ConfigError line; h5py's own errors never reach the user.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from .layers import ConfigError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_H5_BYTES = 2 * 1024 ** 3  # as keras_archive_read's limit for a .keras file
MAX_CONFIG_CHARS = 50 * 1024 * 1024  # model_io's limit for a model file
WEIGHTS_GROUP = "model_weights"
# What h5py raises on a damaged file (ConfigError, a ValueError, is re-raised before these).
_H5_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, IndexError, UnicodeError, AttributeError)


def is_hdf5(raw: bytes) -> bool:
    return raw[:8] == HDF5_MAGIC


def load_legacy_h5(path: str | os.PathLike):
    """A legacy .h5 model file on disk -> ModelFile (the model built, its weights set);
    errors name the file."""
    from .model_io import read_file_bytes

    path = Path(path)
    raw = read_file_bytes(path, limit=MAX_H5_BYTES)
    try:
        return read_legacy_h5(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None


def read_legacy_h5(raw: bytes):
    """A legacy .h5 model file's bytes -> ModelFile, the way keras.models.load_model reads it."""
    from .keras_archive_read import training_from_compile_config
    from .model_io import ModelFile, encode_weights, model_from_graph_file, parse_json_text
    from .keras_json import read_keras

    with _open(raw) as f:
        config_text = _text_attr(f, "model_config")
        if config_text is None:
            raise ConfigError(_no_model_config(f))
        data = _untuple(parse_json_text(config_text))
        if not isinstance(data, dict) or "class_name" not in data:
            raise ConfigError("model_config is not a Keras model configuration (no class_name)")
        model = model_from_graph_file(read_keras(data))
        model.checked_report()
        model.build()
        group = _group(f, WEIGHTS_GROUP)
        if group is None:
            raise ConfigError(f"the file has a model_config but no {WEIGHTS_GROUP} group: it holds no weights")
        model.set_weights(_read_by_name(group, model))
        training = _training(f)
    training = training_from_compile_config(training)
    if training is not None:
        model.seed = training.seed
    return ModelFile(model, training, weights=encode_weights(model))


def is_legacy_layout(raw: bytes) -> bool:
    """Whether HDF5 bytes are in the legacy layout (a model.save("x.h5") file, or Keras 2's
    save_weights("x.h5") with layer_names at the root) rather than Keras 3's .weights.h5."""
    try:
        with _open(raw) as f:
            return _names(f, "layer_names") is not None or ("model_config" in f.attrs and WEIGHTS_GROUP in f)
    except (ConfigError, *_H5_ERRORS):
        return False


def is_weights_only_file(path: str | os.PathLike) -> bool:
    """Whether a file is an HDF5 weights file without a model (Keras 3's .weights.h5, or tf.keras 2's
    save_weights("w.h5"), which may have any name): what Model.load_weights reads, not load_model."""
    from .keras_archive_read import file_starts_with

    if not file_starts_with(path, HDF5_MAGIC):
        return False
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return _holds_only_weights(f)
    except (ConfigError, *_H5_ERRORS):
        return False


def _holds_only_weights(f) -> bool:
    """No model_config, and Keras 2's save_weights layout (layer_names at the root) or Keras 3's
    .weights.h5 layout (saving_lib: "layers" and the model's own "vars" at the root)."""
    return "model_config" not in f.attrs and (_names(f, "layer_names") is not None or ("layers" in f and "vars" in f))


def read_legacy_weights(raw: bytes, model) -> list[np.ndarray]:
    """The arrays of a legacy weights file (Keras 2's save_weights("x.h5"), or the weights of a
    legacy model file) in model.get_weights() order. As keras load_weights does, layers with
    weights are matched in order, not by name: the file may come from a model named otherwise."""
    with _open(raw) as f:
        group = _group(f, WEIGHTS_GROUP) if "model_config" in f.attrs else f
        if group is None:
            raise ConfigError(f"the file has no {WEIGHTS_GROUP} group: it holds no weights")
        stored = _stored_layers(group)
        mine = [layer for layer in model.layers if layer.weight_specs]
        if len(stored) != len(mine):
            raise ConfigError(f"the file holds weights for {len(stored)} layers, the model has {len(mine)} layers "
                              "with weights; the file was saved from another model")
        arrays = []
        for (name, layer_group, weight_names), layer in zip(stored, mine):
            arrays += _layer_arrays(layer_group, name, weight_names, layer)
        return arrays


# --- reading ----------------------------------------------------------------------------

class _open:
    """h5py.File on the bytes, closed afterwards; any h5py failure inside is one ConfigError line."""

    def __init__(self, raw: bytes):
        if not is_hdf5(raw):
            raise ConfigError("not an HDF5 file (a Keras .h5 file starts with the HDF5 signature)")
        import h5py

        try:
            self.file = h5py.File(io.BytesIO(raw), "r")
        except _H5_ERRORS as exc:
            raise ConfigError(f"not a readable HDF5 file: it is damaged or truncated ({_one_line(exc)})") from None

    def __enter__(self):
        return self.file

    def __exit__(self, kind, exc, tb):
        try:
            self.file.close()
        except _H5_ERRORS:
            pass
        if kind is not None and not issubclass(kind, ConfigError) and issubclass(kind, _H5_ERRORS):
            raise ConfigError(f"the HDF5 file cannot be read: it is damaged or truncated ({_one_line(exc)})") from None
        return False


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _no_model_config(f) -> str:
    """Why an HDF5 file without model_config is not a model file, and what to do."""
    if _holds_only_weights(f):
        return ("holds only weights (a .weights.h5 / save_weights file, no model): open the model first, then "
                "File > Load Weights… (model.load_weights(path))")
    return ("an HDF5 file, but not a Keras model: it has no model_config attribute "
            '(Keras writes one with model.save("model.h5"); a .keras file works too)')


def _text_attr(obj, name: str) -> str | None:
    if name not in obj.attrs:
        return None
    value = obj.attrs[name]
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "OSU":
        value = value.item()
    if isinstance(value, (bytes, np.bytes_)):
        value = bytes(value).decode("utf-8", errors="strict")
    if not isinstance(value, str):
        raise ConfigError(f"the {name} attribute is not text (received {type(value).__name__})")
    if len(value) > MAX_CONFIG_CHARS:
        raise ConfigError(f"the {name} attribute is {len(value):,} characters, over the {MAX_CONFIG_CHARS:,} "
                          "a model file may hold")
    return value


def _names(obj, name: str) -> list[str] | None:
    """A list-of-names attribute as Keras's load_attributes_from_hdf5_group reads it (chunks
    name0, name1, ... when it was too large for one header); None when absent."""
    import h5py

    if name in obj.attrs:
        chunks = [obj.attrs[name]]
    elif f"{name}0" in obj.attrs:
        chunks, k = [], 0
        while f"{name}{k}" in obj.attrs:
            chunks.append(obj.attrs[f"{name}{k}"])
            k += 1
    else:
        return None
    names = []
    for chunk in chunks:
        values = np.asarray(chunk)
        if values.size == 0:  # Keras writes an empty float64 array for a layer without weights
            continue
        if values.ndim != 1 or values.dtype.kind not in "OSU" and h5py.check_string_dtype(values.dtype) is None:
            raise ConfigError(f"the {name} attribute is not a list of names")
        for item in values:
            if isinstance(item, (bytes, np.bytes_)):
                item = bytes(item).decode("utf-8")
            if not isinstance(item, str):
                raise ConfigError(f"the {name} attribute is not a list of names")
            names.append(str(item))
    return names


def _group(parent, path: str):
    """parent[path] as a group, refusing links out of the file (Keras's safe_get_h5_group does
    too); None when absent. One walk for both layouts: keras_weights_h5.plain_group."""
    from .keras_weights_h5 import plain_group

    return plain_group(parent, path)


def _stored_layers(group) -> list[tuple[str, Any, list[str]]]:
    """(layer name, its group, its weight names) for each layer the file holds weights for, in
    the file's layer_names order."""
    layer_names = _names(group, "layer_names")
    if layer_names is None:
        raise ConfigError(f"the {WEIGHTS_GROUP} group has no layer_names attribute (not Keras's layout)")
    stored = []
    for name in layer_names:
        layer_group = _group(group, name)
        if layer_group is None:
            raise ConfigError(f"layer_names lists '{name}', but the file has no weights group for it")
        weight_names = _names(layer_group, "weight_names") or []
        if weight_names:
            stored.append((name, layer_group, weight_names))
    return stored


def _read_by_name(group, model) -> list[np.ndarray]:
    """A model file's weights: its layers and weight groups come from the same model, so each
    layer is found by its name (whatever order the file lists them in)."""
    stored = {name: (layer_group, weight_names) for name, layer_group, weight_names in _stored_layers(group)}
    arrays = []
    for layer in model.layers:
        entry = stored.pop(layer.name, None)
        if not layer.weight_specs:
            if entry is not None:
                raise ConfigError(f"weights: the file holds {len(entry[1])} arrays for layer '{layer.name}' "
                                  f"({layer.class_name}), which has none")
            continue
        if entry is None:
            raise ConfigError(f"weights: the file holds no weights for layer '{layer.name}' ({layer.class_name})")
        arrays += _layer_arrays(entry[0], layer.name, entry[1], layer)
    if stored:
        raise ConfigError(f"weights: the file holds weights for '{next(iter(stored))}', which is not a layer of "
                          "the model")
    return arrays


def _layer_arrays(layer_group, stored_name: str, weight_names: list[str], layer) -> list[np.ndarray]:
    from .keras_weights_h5 import _dataset

    specs = layer.weight_specs
    if len(weight_names) != len(specs):
        raise ConfigError(f"weights: layer '{layer.name}' ({layer.class_name}) has {len(specs)} weight arrays, "
                          f"the file holds {len(weight_names)} for '{stored_name}'; the file was saved from "
                          "another model")
    arrays = []
    for spec, weight_name in zip(specs, _in_spec_order(weight_names, specs)):
        where = f"weights: {layer.name}/{spec.name} ({stored_name}/{weight_name})"
        parent, _, leaf = weight_name.rpartition("/")
        holder = _group(layer_group, parent) if parent else layer_group
        if holder is None or leaf not in holder:
            raise ConfigError(f"{where}: weight_names lists it, but the file has no such array")
        arrays.append(_dataset(holder, leaf, spec, where))
    return arrays


def _in_spec_order(weight_names: list[str], specs) -> list[str]:
    """The stored names in the layer's weight order: by name ("kernel" in ".../kernel:0") when
    every one is found exactly once, else as stored (Keras's own legacy loading is by order)."""
    short = [name.rpartition("/")[2].partition(":")[0] for name in weight_names]
    if sorted(short) == sorted(spec.name for spec in specs) and len(set(short)) == len(short):
        return [weight_names[short.index(spec.name)] for spec in specs]
    return list(weight_names)


def _training(f) -> dict | None:
    """The root's training_config as a compile_config (optimizer + loss), or None."""
    from .model_io import parse_json_text

    try:
        text = _text_attr(f, "training_config")
        data = parse_json_text(text) if text is not None else None
    except ConfigError:
        return None  # the recipe is optional: the model still opens without it
    if not isinstance(data, dict):
        return None
    optimizer = data.get("optimizer_config")
    if isinstance(optimizer, dict) and isinstance(optimizer.get("class_name"), str):
        # tf.keras 2.11+ names its new optimizers "Custom>Adam" in files
        optimizer = {**optimizer, "class_name": optimizer["class_name"].removeprefix("Custom>")}
    return {"optimizer": optimizer, "loss": data.get("loss")}


def _untuple(value: Any) -> Any:
    """Keras's legacy JSON encodes tuples and TensorShapes as {"class_name": "__tuple__" /
    "TensorShape", "items": [...]} (legacy/saving/json_utils.py); they are lists to the reader."""
    stack = [value]
    while stack:
        item = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for key, child in (item.items() if isinstance(item, dict) else enumerate(children)):
            if (isinstance(child, dict) and child.get("class_name") in ("__tuple__", "TensorShape")
                    and isinstance(child.get("items"), list)):
                child = item[key] = child["items"]
            if isinstance(child, (dict, list)):
                stack.append(child)
    if isinstance(value, dict) and value.get("class_name") in ("__tuple__", "TensorShape"):
        return value.get("items")
    return value


__all__ = ["HDF5_MAGIC", "is_hdf5", "load_legacy_h5", "read_legacy_h5", "is_legacy_layout", "is_weights_only_file",
           "read_legacy_weights"]
