"""Reading a Keras 3 .keras file: the model it describes, built, with its weights.

The zip (keras/src/saving/saving_lib.py) holds config.json (serialize_keras_object of a
Sequential or Functional model), metadata.json and model.weights.h5. The config goes
through keras_json.read_keras, the reader of model.to_json(), so an unsupported layer or
argument is named exactly as there; the weights through keras_weights_h5. A file that is
not a zip, a truncated one, a member that would inflate far beyond its stored size or
beyond what a model file can be, a missing member: one ConfigError line each.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from .keras_json import read_keras
from .layers import ConfigError
from .training_config import LOSSES, OPTIMIZERS, TrainingConfig

ZIP_MAGIC = b"PK"
CONFIG_MEMBER = "config.json"
WEIGHTS_MEMBER = "model.weights.h5"
MAX_ARCHIVE_BYTES = 2 * 1024 ** 3  # the .keras file on disk
MAX_CONFIG_BYTES = 50 * 1024 * 1024  # config.json inflated (model_io's limit for a model file)
MAX_WEIGHTS_BYTES = 2 * 1024 ** 3  # model.weights.h5 inflated
# Keras refuses a member inflating to more than 100x its stored size (saving_lib._reject_zip_bomb);
# Keras itself stores members uncompressed, so a real file never comes close.
MAX_EXPANSION = 100
MAX_MEMBERS = 10_000


def file_starts_with(path: str | os.PathLike, magic: bytes) -> bool:
    """Whether a regular file's first bytes are `magic` (False for anything else, even a
    FIFO: model_io.read_file_bytes then reports what it is without blocking on it)."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False


def _open(raw: bytes) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        raise ConfigError("not a readable .keras file: the zip archive is damaged or truncated") from None
    if len(archive.infolist()) > MAX_MEMBERS:
        archive.close()
        raise ConfigError(f"not a .keras file Keras writes: the zip holds over "
                          f"{MAX_MEMBERS:,} members (Keras writes three, plus any assets)")
    return archive


def _member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """One member's bytes, refusing one that is missing, too large or a zip bomb before inflating it."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        held = ", ".join(sorted(archive.namelist())[:5]) or "nothing"
        hint = ("; the weights are stored as .npz: save the model with weights_format='h5'"
                if name == WEIGHTS_MEMBER and "model.weights.npz" in archive.namelist() else "")
        raise ConfigError(f"not a complete .keras file: it has no {name} (it holds {held}){hint}") from None
    if info.file_size > limit:
        raise ConfigError(f"{name} inflates to {info.file_size:,} bytes, over the {limit:,} a model file may hold")
    if info.file_size > MAX_EXPANSION * max(info.compress_size, 1) and info.file_size > 1024 * 1024:
        raise ConfigError(f"{name} inflates {info.file_size // max(info.compress_size, 1):,}-fold "
                          "(a zip bomb, not something Keras writes); refusing to read it")
    try:
        with archive.open(info) as handle:
            data = handle.read(limit + 1)  # never more than the limit, whatever the header claims
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise ConfigError(f"{name} cannot be read from the .keras file ({_one_line(exc)}); "
                          "the file is damaged or truncated") from None
    if len(data) > limit:
        raise ConfigError(f"{name} inflates to over {limit:,} bytes, more than a model file may hold")
    return data


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def weights_member(raw: bytes) -> bytes:
    """The model.weights.h5 inside a .keras file's bytes."""
    with _open(raw) as archive:
        return _member(archive, WEIGHTS_MEMBER, MAX_WEIGHTS_BYTES)


def read_keras_archive(raw: bytes):
    """A .keras file's bytes -> ModelFile: the model built, its weights set (and, in the
    project's form, in ModelFile.weights), the recipe from compile_config where it is one
    VisualCNN knows."""
    from .keras_weights_h5 import read_weights_h5
    from .model_io import ModelFile, encode_weights, model_from_graph_file, parse_json_text

    with _open(raw) as archive:
        config_bytes = _member(archive, CONFIG_MEMBER, MAX_CONFIG_BYTES)
        data = parse_json_text(config_bytes)
        if not isinstance(data, dict) or "class_name" not in data:
            raise ConfigError(f"{CONFIG_MEMBER} is not a Keras model configuration (no class_name)")
        model = model_from_graph_file(read_keras(data))
        model.checked_report()
        weights = _member(archive, WEIGHTS_MEMBER, MAX_WEIGHTS_BYTES)
    model.build()
    model.set_weights(read_weights_h5(weights, model))
    training = training_from_compile_config(data.get("compile_config"))
    if training is not None:
        model.seed = training.seed
    return ModelFile(model, training, weights=encode_weights(model))


def load_keras_archive(path: str | os.PathLike):
    """read_keras_archive of a file on disk (errors name the file)."""
    from .model_io import read_file_bytes

    path = Path(path)
    raw = read_file_bytes(path, limit=MAX_ARCHIVE_BYTES)
    try:
        if raw[:2] != ZIP_MAGIC:
            raise ConfigError("not a Keras .keras file: it is not a zip archive (Keras 3 writes .keras files as zips)")
        return read_keras_archive(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None


def training_from_compile_config(config) -> TrainingConfig | None:
    """The recipe of a Keras compile_config, when it is one VisualCNN can train with
    (optimizer adam / sgd / rmsprop with a constant or cosine rate, a known loss); else None.
    Batch size, epochs and validation split are not in a Keras file: defaults."""
    if not isinstance(config, dict):
        return None
    optimizer, loss = config.get("optimizer"), config.get("loss")
    if isinstance(optimizer, str):
        optimizer = {"class_name": optimizer, "config": {}}
    if not isinstance(optimizer, dict) or not isinstance(loss, str) or loss not in LOSSES:
        return None
    name = str(optimizer.get("class_name", "")).lower()
    settings = optimizer.get("config") if isinstance(optimizer.get("config"), dict) else {}
    if name not in OPTIMIZERS:
        return None
    rate = _float32_text(settings.get("learning_rate", 0.001))
    schedule = "constant"
    if isinstance(rate, dict):
        inner = rate.get("config") if isinstance(rate.get("config"), dict) else {}
        if rate.get("class_name") != "CosineDecay" or inner.get("alpha", 0.0) != 0.0 or inner.get("warmup_target"):
            return None
        rate, schedule = _float32_text(inner.get("initial_learning_rate")), "cosine"
    values = {"optimizer": name, "learning_rate": rate, "loss": loss, "schedule": schedule}
    if name == "sgd":
        values.update(momentum=_float32_text(settings.get("momentum", 0.0)), nesterov=settings.get("nesterov", False))
    try:
        return TrainingConfig.from_dict(values)
    except ConfigError:
        return None


def _float32_text(value):
    """Keras writes a rate from its float32 variable (0.0010000000474974513): the float32's
    shortest text (0.001) is the setting the user typed."""
    import numpy as np

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(str(np.float32(value)))
    return value


__all__ = ["file_starts_with", "read_keras_archive", "load_keras_archive", "weights_member",
           "training_from_compile_config"]
