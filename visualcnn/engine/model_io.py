"""Model files: VisualCNN's JSON format and Keras 3's model.to_json(), read by one reader.

Every problem in a file, whatever its kind (not JSON, wrong types, unknown layer,
impossible shape, NaN, absurd nesting), becomes a ConfigError whose message names the
layer and the problem; callers print it as one line.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .layers import ConfigError, Input, layer_from_config
from .model import Sequential
from .training_config import TrainingConfig

FORMAT = "visualcnn.model"
VERSION = 1
MAX_FILE_BYTES = 50 * 1024 * 1024
_TOP_LEVEL_KEYS = {"format", "version", "name", "title", "description", "input_shape", "layers", "training", "window",
                   "weights"}


@dataclass
class ModelFile:
    """What a model file holds: the model, its training recipe and any window-only settings."""

    model: Sequential
    training: TrainingConfig | None = None
    description: str = ""
    window: dict | None = None
    weights: Any = None  # filled by the engine's save/load (base64 arrays), untouched here
    title: str = ""  # a readable name for menus (the bundled presets have one)


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
        return ModelFile(_read_keras(data))
    raise ConfigError('not a model file: expected "format": "visualcnn.model" or a Keras Sequential model '
                      "(the output of model.to_json())")


def load_model_file(path: str | os.PathLike) -> ModelFile:
    """Read a model file from disk; a missing or unreadable file is a ConfigError too."""
    path = Path(path)
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
    """keras.models.model_from_json for Sequential models (VisualCNN or Keras 3 JSON)."""
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
    model = Sequential(name=name)
    model.add(Input(shape=_shape_list(data["input_shape"], '"input_shape"')))
    layers = data.get("layers", [])
    if not isinstance(layers, list):
        raise ConfigError(f'"layers" must be a list, received {type(layers).__name__}')
    for index, entry in enumerate(layers):
        if not isinstance(entry, dict):
            raise ConfigError(f"layer {index + 1}: expected an object with class_name and config, "
                              f"received {type(entry).__name__}")
        extra = set(entry) - {"class_name", "config"}
        if extra:
            raise ConfigError(f"layer {index + 1}: unknown key {sorted(extra)[0]!r} (expected class_name and config)")
        model.add(_layer(entry.get("class_name"), entry.get("config", {}), index))
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
    return ModelFile(model, training, description, window, data.get("weights"), title)


def _layer(class_name: Any, config: Any, index: int):
    if class_name is None:
        raise ConfigError(f"layer {index + 1}: missing class_name")
    if not isinstance(config, dict):
        raise ConfigError(f"layer {index + 1} ({class_name}): config must be an object, received {type(config).__name__}")
    try:
        return layer_from_config(class_name, config)
    except ConfigError as exc:
        raise ConfigError(f"layer {index + 1}: {exc}") from None
    except TypeError as exc:  # e.g. a config key that is not a string
        raise ConfigError(f"layer {index + 1} ({class_name}): {exc}") from None


def _shape_list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise ConfigError(f"{what} must be a list such as [28, 28, 1], received {value!r}")
    return value


def _read_keras(data: dict) -> Sequential:
    """Keras 3 Sequential JSON: {"class_name": "Sequential", "config": {"name", "layers", ...}}."""
    if data["class_name"] != "Sequential":
        raise ConfigError(f"only Sequential models are supported, this file holds a {data['class_name']!r} model")
    config = data.get("config")
    if not isinstance(config, dict):
        raise ConfigError("Keras model JSON: 'config' must be an object")
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise ConfigError("Keras model JSON: config.layers must be a list")
    input_shape = None
    layer_entries = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("config", {}), dict):
            raise ConfigError(f"layer {index + 1}: expected an object with class_name and config")
        class_name, layer_config = entry.get("class_name"), dict(entry.get("config", {}))
        if class_name == "InputLayer":
            if index != 0:
                raise ConfigError(f"layer {index + 1}: an InputLayer can only come first")
            input_shape = _keras_batch_shape(layer_config, index)
            continue
        # Keras 2 files carry the input shape on the first layer's config.
        for key in ("batch_input_shape", "batch_shape"):
            if key in layer_config:
                shape = _keras_batch_shape({key: layer_config.pop(key)}, index)
                if input_shape is None and not layer_entries:
                    input_shape = shape
        layer_entries.append((index, class_name, layer_config))
    build = config.get("build_input_shape")
    if input_shape is None and isinstance(build, list) and build[:1] == [None]:
        input_shape = build[1:]
    if input_shape is None:
        raise ConfigError("Keras model JSON: the model has no input shape (no InputLayer and no build_input_shape)")
    name = config.get("name")
    model = Sequential(name=name if isinstance(name, str) and name else "sequential")
    model.add(Input(shape=input_shape))
    for index, class_name, layer_config in layer_entries:
        model.add(_layer(class_name, layer_config, index))
    return model


def _keras_batch_shape(config: dict, index: int) -> list:
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if not isinstance(shape, list) or len(shape) < 2:
        raise ConfigError(f"layer {index + 1} (InputLayer): batch_shape must be a list like [null, 28, 28, 1], "
                          f"received {shape!r}")
    return shape[1:]


def model_to_dict(model: Sequential, training: TrainingConfig | None = None, description: str = "",
                  window: dict | None = None, weights: Any = None) -> dict:
    """The VisualCNN file form: only non-default arguments are written."""
    data: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": model.name}
    if description:
        data["description"] = description
    data["input_shape"] = list(model.input_shape) if model.input_shape else None
    data["layers"] = [{"class_name": layer.class_name, "config": layer.get_config(compact=True)}
                      for layer in model.layers]
    if training is not None:
        data["training"] = training.to_dict()
    if window is not None:
        data["window"] = window
    if weights is not None:
        data["weights"] = weights
    return data


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
        raise ConfigError(f"{Path(path).name}: holds no weights (it is a model description; train it first)")
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
