"""Model files: VisualCNN's JSON format and Keras's model.to_json(), read by one reader.

The VisualCNN form lists layers in order; an entry may name the layers feeding it,
`"inbound": ["conv2d", "conv2d_1"]` (earlier layers, or the input: top-level
`"input_name"`, default "input_layer"). An entry without "inbound" is fed by the entry
before it, so a plain stack has no "inbound" at all (and reads as a Sequential) and a
graph lists it only where it branches or merges. Keras Sequential and Functional JSON
are read by keras_json.py.

Every problem in a file, whatever its kind (not JSON, wrong types, unknown layer,
impossible shape, NaN, absurd nesting), becomes a ConfigError whose message names the
layer and the problem; callers print it as one line.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .keras_json import Graph, build_layer, read_keras
from .layers import ConfigError, Input, snake_case
from .model import Sequential, model_from_graph, unique_name
from .project_sections import SECTIONS, read_sections
from .training_config import TrainingConfig

FORMAT = "visualcnn.model"
VERSION = 1
MAX_FILE_BYTES = 50 * 1024 * 1024
_TOP_LEVEL_KEYS = {"format", "version", "name", "title", "description", "input_shape", "input_name", "layers",
                   "training", "window", "weights", *SECTIONS}
_ENTRY_KEYS = ("class_name", "config", "inbound")
DEFAULT_INPUT_NAME = "input_layer"


@dataclass
class ModelFile:
    """What a model file holds: the model, its training recipe and any window-only settings."""

    model: Sequential
    training: TrainingConfig | None = None
    description: str = ""
    window: dict | None = None
    weights: Any = None  # filled by the engine's save/load (base64 arrays), untouched here
    title: str = ""  # a readable name for menus (the bundled presets have one)
    # The optional sections (dataset, resume, runs, teacher: engine/project_sections.py),
    # each already checked by its owner module.
    sections: dict = field(default_factory=dict)


def parse_json_text(text: str | bytes) -> Any:
    """json.loads that rejects NaN/Infinity and turns every failure into a ConfigError."""
    if isinstance(text, bytes):
        text = _decode(text)
    # Notepad and some other Windows editors start UTF-8 files with a byte order mark.
    text = text.removeprefix("\ufeff")

    def reject_constant(name: str):
        raise ConfigError(f"{name} is not allowed in a model file (numbers must be finite)")

    try:
        return json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise ConfigError("not a model file: the JSON is nested too deeply") from None


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without a BOM); UTF-16 only when its BOM says so (Notepad's "Unicode")."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError:
            text = ""
        if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "["):  # really a UTF-16 JSON document
            return text
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not a text file: byte {exc.start} is not valid UTF-8") from None


def read_model_file(text: str | bytes) -> ModelFile:
    """Parse a VisualCNN or Keras model JSON document."""
    data = parse_json_text(text)
    if not isinstance(data, dict):
        raise ConfigError(f"not a model file: expected a JSON object at the top level, received {type(data).__name__}")
    if "format" in data:
        return _read_visualcnn(data)
    if "class_name" in data:
        return ModelFile(model_from_graph_file(read_keras(data)))
    raise ConfigError('not a model file: expected "format": "visualcnn.model" or a Keras model '
                      "(the output of model.to_json())")


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Read a model file from disk; a missing or unreadable file is a ConfigError too."""
    path = Path(path)
    from .keras_archive_read import ZIP_MAGIC, file_starts_with, load_keras_archive

    if file_starts_with(path, ZIP_MAGIC) or path.name.lower().endswith(".keras"):  # Keras 3's .keras: a zip
        return load_keras_archive(path)
    from .keras_legacy_h5 import HDF5_MAGIC, load_legacy_h5

    if file_starts_with(path, HDF5_MAGIC):  # model.save("x.h5"): Keras's legacy HDF5 file (or weights only)
        return load_legacy_h5(path)
    raw = read_file_bytes(path)
    try:
        return read_model_file(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None


def read_file_bytes(path: str | os.PathLike, limit: int | None = None) -> bytes:
    """A regular file's bytes, at most ``limit`` of them; anything else is a one-line ConfigError.

    FIFOs, devices and sockets are refused before a single byte is read (``/dev/zero`` would
    read until memory runs out, a FIFO would wait forever for a writer): the file is opened
    non-blocking and checked with fstat, so a file swapped for a FIFO meanwhile is caught too.
    """
    path = Path(path)
    limit = MAX_FILE_BYTES if limit is None else limit
    try:  # refuse a device before even opening it (opening some devices has effects)
        mode = os.stat(path).st_mode
    except OSError:
        mode = None  # open() below reports the reason
    if mode is not None and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ConfigError(f"{path}: is not a regular file (a FIFO, socket or device); give the path of a model file")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a model file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{path}: is a folder, not a model file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: is not a regular file (a FIFO, socket or device); "
                              "give the path of a model file")
        if st.st_size > limit:
            raise ConfigError(f"{path}: file is too large for a model file ({st.st_size:,} bytes, "
                              f"the limit is {limit:,})")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise ConfigError(f"{path}: file is too large for a model file (over {limit:,} bytes)")
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def model_from_json(text: str | bytes) -> Sequential:
    """keras.models.model_from_json (VisualCNN or Keras Sequential / Functional JSON)."""
    model_file = read_model_file(text)
    model_file.model.checked_report()
    return model_file.model


def _read_visualcnn(data: dict) -> ModelFile:
    if data["format"] != FORMAT:
        raise ConfigError(f'"format" must be "{FORMAT}", received {data["format"]!r}')
    version = data.get("version")
    if version != VERSION or isinstance(version, bool):
        raise ConfigError(f'"version" {version!r} is not supported (this VisualCNN reads version {VERSION})')
    unknown = sorted(set(data) - _TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(f"unknown top-level key {unknown[0]!r}; known keys: {', '.join(sorted(_TOP_LEVEL_KEYS))}")
    name = data.get("name", "sequential")
    if not isinstance(name, str) or not name:
        raise ConfigError(f'"name" must be a non-empty string, received {name!r}')
    if "input_shape" not in data:
        raise ConfigError('missing "input_shape", e.g. [28, 28, 1]')
    input_shape = list(Input(shape=_shape_list(data["input_shape"], '"input_shape"')).shape[1:])  # checked
    input_name = data.get("input_name", DEFAULT_INPUT_NAME)
    if not isinstance(input_name, str) or not input_name:
        raise ConfigError(f'"input_name" must be a non-empty string, received {input_name!r}')
    layers = data.get("layers", [])
    if not isinstance(layers, list):
        raise ConfigError(f'"layers" must be a list, received {type(layers).__name__}')
    model = model_from_graph_file(_graph(name, input_shape, input_name, layers))
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError('"description" must be a string')
    title = data.get("title", "")
    if not isinstance(title, str):
        raise ConfigError('"title" must be a string')
    training = TrainingConfig.from_dict(data["training"]) if data.get("training") is not None else None
    window = data.get("window")
    if window is not None and not isinstance(window, dict):
        raise ConfigError('"window" must be an object')
    return ModelFile(model, training, description, window, data.get("weights"), title, read_sections(data))


def _graph(name: str, input_shape: list, input_name: str, entries: list) -> Graph:
    """The layer entries of a VisualCNN file as a graph. An entry's optional "inbound" names the
    earlier layers (or the input) feeding it; without it, the entry before feeds it (the input
    feeds the first), so a file without any "inbound" is a plain stack."""
    layers, inbound, sources = [], [], []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigError(f"layer {index + 1}: expected an object with class_name and config, "
                              f"received {type(entry).__name__}")
        extra = [key for key in entry if key not in _ENTRY_KEYS]
        if extra:
            raise ConfigError(f"layer {index + 1}: unknown key {sorted(extra)[0]!r} "
                              "(expected class_name, config and inbound)")
        layers.append(build_layer(entry.get("class_name"), entry.get("config", {}), f"layer {index + 1}"))
        sources.append(entry.get("inbound"))
    position = _name_layers(layers, input_name)
    for index, (layer, names) in enumerate(zip(layers, sources)):
        if names is None:
            inbound.append((index - 1,))
            continue
        where = f"layer {index + 1} ('{layer.name}')"
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ConfigError(f'{where}: "inbound" must be a non-empty list of layer names, '
                              'e.g. ["conv2d", "conv2d_1"]; '
                              f"received {names!r}")
        found = []
        for source in names:
            at = position.get(source)
            if at is None:
                raise ConfigError(f"{where}: \"inbound\" names '{source}', which is neither a layer of this file nor "
                                  f"the input '{input_name}'")
            if at >= index:
                raise ConfigError(f"{where}: \"inbound\" names '{source}', " +
                                  ("the layer itself" if at == index else f"which comes later (layer {at + 1})") +
                                  "; a layer takes the outputs of layers listed before it")
            found.append(at)
        inbound.append(tuple(found))
    return Graph(name, input_shape, layers, inbound, input_name)


def _name_layers(layers: list, input_name: str) -> dict[str, int]:
    """Give unnamed layers Keras's default names (conv2d, conv2d_1, ...) the way Sequential.add
    does, so a reference in "inbound" and the loaded model agree; returns name -> index (-1: the input)."""
    position: dict[str, int] = {input_name: -1}
    counters: dict[str, int] = {}
    for index, layer in enumerate(layers):
        if layer.name is None:
            # position.keys() is a view: no copy of the names per layer (a 40,000-layer file stays linear)
            layer.name = unique_name(snake_case(layer.class_name), position.keys(), counters)
        elif layer.name in position:
            other = "the input" if position[layer.name] == -1 else f"layer {position[layer.name] + 1}"
            raise ConfigError(f"layer {index + 1}: the name '{layer.name}' is already used by {other}; "
                              "names must be unique within a model")
        position[layer.name] = index
    return position


def model_from_graph_file(graph: Graph) -> Sequential:
    """The engine model a file describes: a Sequential for a plain stack read from a VisualCNN
    file or a Keras Sequential, otherwise a graph Model (a Keras Functional file stays one even
    when linear, so its summary has Keras's InputLayer row)."""
    linear = all(tuple(ins) == (i - 1,) for i, ins in enumerate(graph.inbound))
    return model_from_graph(graph.name, graph.input_shape, graph.layers, graph.inbound,
                            input_name=graph.input_name, sequential=linear and not graph.functional)


def _shape_list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise ConfigError(f"{what} must be a list such as [28, 28, 1], received {value!r}")
    return value


def model_to_dict(model: Sequential, training: TrainingConfig | None = None, description: str = "",
                  window: dict | None = None, weights: Any = None, sections: dict | None = None) -> dict:
    """The VisualCNN file form: only non-default arguments are written."""
    data: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": model.name}
    if description:
        data["description"] = description
    data["input_shape"] = list(model.input_shape) if model.input_shape else None
    input_name = getattr(model, "input_name", DEFAULT_INPUT_NAME)
    if input_name != DEFAULT_INPUT_NAME:
        data["input_name"] = input_name
    data["layers"] = _layer_entries(model.layers, getattr(model, "inbound", None), input_name)
    if training is not None:
        data["training"] = training.to_dict()
    if window is not None:
        data["window"] = window
    if weights is not None:
        data["weights"] = weights
    for key in SECTIONS:
        if sections and sections.get(key) is not None:
            data[key] = sections[key]
    return data


def _layer_entries(layers: list, inbound, input_name: str) -> list[dict]:
    """One entry per layer; "inbound" only where the layer is not fed by the one before it."""
    entries = []
    for index, layer in enumerate(layers):
        entry = {"class_name": layer.class_name, "config": layer.get_config(compact=True)}
        sources = tuple(inbound[index]) if inbound is not None else (index - 1,)
        if sources != (index - 1,):
            entry["inbound"] = [input_name if j == -1 else layers[j].name for j in sources]
        entries.append(entry)
    return entries


def model_to_json(model: Sequential, **kwargs) -> str:
    return json.dumps(model_to_dict(model, **kwargs), indent=2)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """write_bytes_atomic for text: UTF-8, newlines written as given."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace a file's content all at once, as a user expects of Save.

    Through a temporary file in the target's folder and a rename, so a crash never leaves
    half a file. A symlink is followed (its target is replaced, the link stays), an existing
    file keeps its permission bits (a new one follows the umask), and a folder, FIFO or
    device is refused before anything is written. No temporary file survives any failure,
    Ctrl-C included. Errors are OSErrors whose message is one line naming the file.
    """
    shown = Path(path)
    target = Path(os.path.realpath(shown))  # write through symlinks (chains too) to the real file
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # e.g. a symlink loop, a component that is a file
        raise OSError(f"cannot save {shown}: {exc.strerror or exc}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"cannot save {shown}: it is a folder; choose a file name")
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"cannot save {shown}: it is not a regular file (a FIFO, socket or device); "
                          "choose another file name")
        if not os.access(target, os.W_OK):
            raise PermissionError(f"cannot save {shown}: the file is read-only; save under another name")
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save {shown}: the folder {folder} does not exist")
    tmp = None
    try:
        # O_EXCL on a fresh random name; 0o666 lets the kernel apply the umask to new files
        # (mkstemp would make every saved project private, 0600).
        # The name is cut so a 255-byte file name still leaves room for the temporary one's.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        for _ in range(100):
            # Named before it exists, so a Ctrl-C right after os.open still finds it to remove.
            tmp = folder / f".{target.name[:180]}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(tmp, flags, 0o666)
            except FileExistsError:
                tmp = None  # someone else's: never remove it
                continue
            break
        else:
            raise FileExistsError(f"cannot save {shown}: could not create a temporary file in {folder}")
        with os.fdopen(fd, "wb") as handle:
            if st is not None:
                _keep_mode_and_owner(handle.fileno(), st)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        if str(exc).startswith("cannot save "):
            raise
        raise type(exc)(f"cannot save {shown}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:  # any failure, KeyboardInterrupt included
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _sync_folder(folder)


def _keep_mode_and_owner(fd: int, st: os.stat_result) -> None:
    """The replacement keeps the old file's permissions (and, where allowed, its owner and group)."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
    if hasattr(os, "fchown") and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except OSError:
            pass  # only root may give a file away; the content matters more than the owner


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_model_file(path: str | os.PathLike, model: Sequential, **kwargs) -> None:
    write_text_atomic(path, model_to_json(model, **kwargs) + "\n")


# --- weights: one file holding the model JSON and its weights ---------------------------

WEIGHTS_ENCODING = "base64-float32-le"


def encode_weights(model: Sequential) -> dict:
    """{"encoding", "layers": {layer name: [{"name", "shape", "data"}]}} in Keras weight order."""
    import base64

    import numpy as np

    layers = {}
    for layer in model.layers:
        entries = []
        for spec, value in zip(layer.weight_specs, layer.weights):
            data = np.ascontiguousarray(value, dtype="<f4").tobytes()
            entries.append({"name": spec.name, "shape": list(value.shape),
                            "data": base64.b64encode(data).decode("ascii")})
        if entries:
            layers[layer.name] = entries
    return {"encoding": WEIGHTS_ENCODING, "layers": layers}


def decode_weights(model: Sequential, data: Any) -> list:
    """The arrays of an encode_weights() object in model.get_weights() order, checked
    against the model's layers (a mismatch is a ConfigError naming the weight)."""
    import base64
    import binascii

    import numpy as np

    if not isinstance(data, dict) or data.get("encoding") != WEIGHTS_ENCODING or not isinstance(data.get("layers"), dict):
        raise ConfigError(f'"weights" must be an object with "encoding": "{WEIGHTS_ENCODING}" and "layers"')
    stored = data["layers"]
    arrays = []
    for layer in model.layers:
        entries = stored.get(layer.name, [])
        specs = layer.weight_specs
        if not isinstance(entries, list) or len(entries) != len(specs):
            raise ConfigError(f"weights: layer '{layer.name}' needs {len(specs)} arrays, the file has "
                              f"{len(entries) if isinstance(entries, list) else 'none'}")
        for spec, entry in zip(specs, entries):
            where = f"weights: {layer.name}/{spec.name}"
            if not isinstance(entry, dict) or entry.get("name") != spec.name:
                raise ConfigError(f"{where}: expected an entry named {spec.name!r}")
            if entry.get("shape") != list(spec.shape):
                raise ConfigError(f"{where}: shape {entry.get('shape')} does not match the layer's {list(spec.shape)}")
            try:
                raw = base64.b64decode(entry.get("data", ""), validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ConfigError(f"{where}: data is not valid base64") from None
            if len(raw) != 4 * spec.size:
                raise ConfigError(f"{where}: holds {len(raw) // 4} numbers, expected {spec.size}")
            value = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(spec.shape)
            if not np.isfinite(value).all():
                raise ConfigError(f"{where}: contains NaN or infinite values")
            arrays.append(value)
    extra = sorted(set(stored) - {layer.name for layer in model.layers})
    if extra:
        raise ConfigError(f"weights: the file has weights for {extra[0]!r}, which is not a layer of the model")
    return arrays


def save_model_with_weights(path: str | os.PathLike, model: Sequential, description: str = "") -> None:
    """model.save(path): the VisualCNN model file plus "training" (if compiled) and "weights"."""
    write_text_atomic(path, json.dumps(model_to_dict(model, training=model.training_config(), description=description,
                                                     weights=encode_weights(model))) + "\n")


def load_model(path: str | os.PathLike, compile: bool = True) -> Sequential:
    """keras.models.load_model for files written by model.save(): weights restored and, when
    the file has a "training" section, compiled with it (optimizer state starts fresh)."""
    model_file = load_model_file(path)
    model = model_file.model
    model.checked_report()
    if model_file.training is not None:
        model.seed = model_file.training.seed
    model.build()
    if model_file.weights is None:
        raise ConfigError(f"{Path(path).name}: holds no weights (it is a model description; train it first: "
                          f"visualcnn train {Path(path).name} --save trained.json)")
    try:
        model.set_weights(decode_weights(model, model_file.weights))
    except ConfigError as exc:
        raise ConfigError(f"{Path(path).name}: {exc}") from None
    if compile and model_file.training is not None:
        compile_from_config(model, model_file.training)
    return model


def compile_from_config(model: Sequential, training: TrainingConfig, metrics=("accuracy",)) -> None:
    """compile() with a TrainingConfig's optimizer, learning rate and loss."""
    from . import optimizers

    kwargs = {"learning_rate": training.learning_rate}
    if training.optimizer == "sgd":
        kwargs.update(momentum=training.momentum, nesterov=training.nesterov)
    model.compile(optimizer=optimizers.get(training.optimizer, **kwargs), loss=training.loss, metrics=list(metrics))
