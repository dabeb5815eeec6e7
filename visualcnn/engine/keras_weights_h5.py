"""Keras 3's HDF5 weights layout: the model.weights.h5 inside a .keras file, and a .weights.h5.

Keras (keras/src/saving/saving_lib.py, _save_state / _save_container_state / H5IOStore)
walks the model and writes every layer's variables as datasets "0", "1", ... of a group

    layers/<snake_case of the class name>[_k]/vars     (attribute "name": the layer's name)

numbered per class in the order of keras model.layers (conv2d, conv2d_1, ...): by class,
never by the layer's own name, so weights load into a model whose layers are named
differently (and two layers may share a name). A nested model nests the same layout
(layers/sequential/layers/conv2d/vars); VisualCNN models hold no nested models. A Functional model's layers include its InputLayer (an empty
layers/input_layer/vars), a Sequential's do not; the model's own (empty) "vars" group sits
at the top with its name, and a compiled model adds optimizer/vars. Layers without weights
still get their (empty) vars group. The order of the datasets is the layer's variables'
order, which is ours (kernel, bias; gamma, beta, moving_mean, moving_variance; ...).

Reading looks each of our layers up by that same path and checks count and shapes before
reading a byte of data, so a file meant for another model, a truncated file or a "shape
bomb" is refused with one line naming the layer.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from .layers import ConfigError, snake_case
from .summary import keras_order

INPUT_LAYER_PATH = "layers/input_layer"


def keras_layer_paths(model) -> list[tuple[str, Any]]:
    """(path, layer) for each of our layers, in keras model.layers order, paths as Keras names them."""
    from .model import Sequential

    if isinstance(model, Sequential):
        order = list(range(len(model.layers)))
    else:
        # The Keras model that reads the file orders its layers by depth from the output,
        # whatever order ours are in (a graph read from a file keeps the file's order).
        order = [i for i in keras_order(model.inbound) if i >= 0]
    # "input_layer" is taken by a Functional model's InputLayer; no layer class of ours snake-cases to it.
    used: dict[str, int] = {}
    paths = []
    for i in order:
        layer = model.layers[i]
        stem = snake_case(layer.class_name)
        if stem in used:
            used[stem] += 1
            name = f"{stem}_{used[stem]}"
        else:
            used[stem] = 0
            name = stem
        paths.append((f"layers/{name}", layer))
    return paths


def write_weights_h5(model, functional: bool | None = None, optimizer: tuple[str, list] | None = None) -> bytes:
    """The HDF5 file's bytes for a built model. functional: write the Functional model's
    InputLayer group (default: the model is not a Sequential). optimizer: (name, arrays)
    written as optimizer/vars, as Keras writes a compiled model's optimizer."""
    import h5py

    from .model import Sequential

    if functional is None:
        functional = not isinstance(model, Sequential)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        entries = keras_layer_paths(model)
        if functional:
            group = f.create_group(INPUT_LAYER_PATH).create_group("vars")
            group.attrs["name"] = model.input_name
        for path, layer in entries:
            group = f.create_group(path).create_group("vars")
            group.attrs["name"] = layer.name
            for k, value in enumerate(layer.weights):
                group.create_dataset(str(k), data=np.asarray(value, np.float32))
        if optimizer is not None:
            name, arrays = optimizer
            group = f.create_group("optimizer").create_group("vars")
            group.attrs["name"] = name
            for k, value in enumerate(arrays):
                group.create_dataset(str(k), data=value)
        f.create_group("vars").attrs["name"] = model.name
    return buffer.getvalue()


def read_weights_h5(data: bytes | Any, model) -> list[np.ndarray]:
    """The arrays of a Keras 3 weights file in model.get_weights() order (the model is built).

    data: the file's bytes (or a binary file object). Raises ConfigError naming the layer
    and the problem: a missing group, a count or a shape that does not match."""
    import h5py

    handle = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    try:
        f = h5py.File(handle, "r")
    except (OSError, ValueError):
        raise ConfigError("the weights are not a readable HDF5 file (damaged or truncated)") from None
    with f:
        root = "layers"
        if root not in f and "_layer_checkpoint_dependencies" in f:  # Keras 2.13's name for it, as Keras reads it
            root = "_layer_checkpoint_dependencies"
        found: dict[int, list[np.ndarray]] = {}
        for path, layer in keras_layer_paths(model):
            path = root + path[len("layers"):]
            specs = layer.weight_specs
            stored = _vars_group(f, path)
            keys = sorted(stored.keys(), key=_int_key) if stored is not None else []
            if len(keys) != len(specs):
                held = "nothing" if not keys else f"{len(keys)} arrays"
                raise ConfigError(f"weights: layer '{layer.name}' ({layer.class_name}) has {len(specs)} weight "
                                  f"arrays, the file holds {held} at {path}; the file was saved from another model")
            if keys != [str(k) for k in range(len(specs))]:
                raise ConfigError(f"weights: {path}/vars holds {keys}, expected datasets 0 to {len(specs) - 1}")
            arrays = []
            for key, spec in zip(keys, specs):
                arrays.append(_dataset(stored, key, spec, f"weights: {layer.name}/{spec.name} ({path}/vars/{key})"))
            found[id(layer)] = arrays
        return [array for layer in model.layers for array in found[id(layer)]]


def _int_key(key: str):
    return (0, int(key)) if key.isdigit() else (1, key)


def _vars_group(f, path: str):
    """path/vars, refusing links (Keras's safe_get_h5_group does too); None when absent."""
    return plain_group(f, path + "/vars", "weights: ")


def plain_group(parent, path: str, prefix: str = ""):
    """The group at `path` under `parent`, or None when a part is absent. Links (soft or to
    another file) and odd names are refused in one line: a weights file must hold its weights."""
    import h5py

    current = parent
    for part in path.split("/"):
        if not part or part in (".", ".."):
            raise ConfigError(f"{prefix}the path {path!r} in the file is not a plain name")
        if part not in current:
            return None
        link = current.get(part, getlink=True)
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
            raise ConfigError(f"{prefix}{path} is a link to elsewhere; VisualCNN reads weights stored in the file")
        current = current[part]
        if not isinstance(current, h5py.Group):
            raise ConfigError(f"{prefix}{path} is not a group of weight arrays")
    return current


def _dataset(group, key: str, spec, where: str) -> np.ndarray:
    import h5py

    link = group.get(key, getlink=True)
    if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
        raise ConfigError(f"{where}: is a link to elsewhere; VisualCNN reads weights stored in the file")
    dataset = group[key]
    if not isinstance(dataset, h5py.Dataset):
        raise ConfigError(f"{where}: is not an array")
    if dataset.external or dataset.is_virtual:
        raise ConfigError(f"{where}: is stored outside the file; VisualCNN reads weights stored in the file")
    # The shape is checked before any data is read: a dataset declaring a huge shape costs nothing.
    if tuple(dataset.shape) != tuple(spec.shape):
        raise ConfigError(f"{where}: shape {tuple(dataset.shape)} does not match the layer's {tuple(spec.shape)}")
    if dataset.dtype.kind != "f" or dataset.attrs.get("dtype") == "bfloat16":
        raise ConfigError(f"{where}: holds {dataset.dtype} values; VisualCNN reads float16/32/64 weights")
    try:
        value = np.asarray(dataset[()], dtype=np.float32).reshape(spec.shape)
    except (OSError, ValueError):
        raise ConfigError(f"{where}: cannot be read (the file is damaged or truncated)") from None
    if not np.isfinite(value).all():
        raise ConfigError(f"{where}: contains NaN or infinite values")
    return np.ascontiguousarray(value)


# --- .weights.h5 files: Model.save_weights / Model.load_weights ---------------------------

WEIGHTS_SUFFIX = ".weights.h5"
MAX_WEIGHTS_BYTES = 2 * 1024 ** 3


def save_weights(model, path: str | os.PathLike) -> None:
    """keras Model.save_weights(path): path must end in .weights.h5, as Keras requires."""
    from .model_io import write_bytes_atomic

    path = Path(path)
    if not str(path).endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"save_weights: the file name must end in {WEIGHTS_SUFFIX} (Keras's weights file), "
                         f"received {path.name}")
    # Keras's save_weights writes a compiled model's optimizer too (loading skips it when absent)
    training = model.training_config()
    optimizer = None
    if training is not None:
        from .export.keras_archive import optimizer_variables

        optimizer = (training.optimizer, optimizer_variables(model, training))
    write_bytes_atomic(path, write_weights_h5(model, optimizer=optimizer))


def load_weights(model, path: str | os.PathLike) -> None:
    """keras Model.load_weights(path) for a Keras 3 .weights.h5 (a .keras file's weights too).
    Nothing changes unless every array fits: a ConfigError names the first that does not."""
    from .model_io import read_file_bytes

    path = Path(path)
    raw = read_file_bytes(path, limit=MAX_WEIGHTS_BYTES)
    try:
        if raw[:2] == b"PK":  # Keras loads the weights of a whole .keras file too
            from .keras_archive_read import weights_member

            raw = weights_member(raw)
        if not raw.startswith(b"\x89HDF"):
            raise ConfigError(f"not a Keras weights file (expected HDF5, a name ending in {WEIGHTS_SUFFIX})")
        from .keras_legacy_h5 import is_legacy_layout, read_legacy_weights

        # a legacy .h5 (Keras 2's save_weights, or a model.save("x.h5") file) as Keras's load_weights reads it
        arrays = read_legacy_weights(raw, model) if is_legacy_layout(raw) else read_weights_h5(raw, model)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None
    model.set_weights(arrays)


__all__ = ["keras_layer_paths", "write_weights_h5", "read_weights_h5", "save_weights", "load_weights",
           "WEIGHTS_SUFFIX"]
