"""Taking a model out of VisualCNN: Keras (.keras file or a Python script), PyTorch and ONNX.

`export(model, path, "keras")` writes one format; `problems(model, format)` lists what a
format cannot express (one line per layer, naming it and the reason) without writing
anything. Each format lives in its own module with the same two functions:

    problems(model) -> list[str]
    write(model, path: Path, training: TrainingConfig | None) -> None

A write never leaves half a file or folder behind (files.py), and a model with a problem
is refused before the first byte is written.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from ..layers import ConfigError
from ..training_config import TrainingConfig

# format name -> (module, what it writes, the file name ending a user would expect)
FORMATS: dict[str, tuple[str, str, str]] = {
    "keras": ("keras_archive", "a Keras 3 .keras file (config, metadata and weights)", ".keras"),
    "keras-code": ("keras_code", "a Python script that builds and trains the model with Keras", ".py"),
    "pytorch": ("pytorch_folder", "a folder with model.py, weights (safetensors) and train.py for PyTorch", ""),
    "onnx": ("onnx_model", "an ONNX model (opset 17, input 'input' as (N, H, W, C))", ".onnx"),
}


class ExportError(ConfigError):
    """A model a format cannot express, or a target that cannot be written: one line for the user."""


def _module(format: str):
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    try:
        return importlib.import_module(f".{FORMATS[format][0]}", __name__)
    except ModuleNotFoundError as exc:  # one line for the user instead of a traceback
        if exc.name == f"{__name__}.{FORMATS[format][0]}":
            raise ExportError(f"the {format} export is not available in this version of VisualCNN") from None
        raise ExportError(f"the {format} export needs the Python package {exc.name!r}: "
                          f"pip install {exc.name}") from None


def model_problems(model) -> list[str]:
    """What stops any format: no layers, or a model with an error (every format checks this first)."""
    if not model.layers:
        return [f"model '{model.name}' has no layers; add at least one before exporting"]
    error = model.analyse().error
    return [f"the model has an error: {error}"] if error else []


def problems(model, format: str) -> list[str]:
    """What stops `model` from being exported as `format` (empty: it can be)."""
    return list(_module(format).problems(model))


def export(model, path: str | os.PathLike, format: str, training: TrainingConfig | None = None,
           dataset=None) -> Path:
    """Write `model` (built or not; weights go along when built) to `path` as `format`.

    training: the recipe the scripts reproduce (default: the model's compile settings, else
    TrainingConfig()). Raises ExportError naming the layer and the reason when the format
    cannot express the model; nothing is written then. dataset: the project's "dataset"
    section (None: MNIST), which the training scripts read.
    """
    module = _module(format)
    found = module.problems(model)
    if found:
        raise ExportError(f"cannot export to {format}: " + "; ".join(found))
    if training is None:
        training = model.training_config() or TrainingConfig()
    from ..callbacks import callbacks_problem

    problem = callbacks_problem(training)
    if problem:  # the engine refuses this recipe too; a script would fail or do something else
        raise ExportError(f"cannot export the training recipe: {problem}")
    path = Path(path)
    if format in ("keras", "keras-code", "pytorch"):
        module.write(model, path, training, dataset=dataset)
    else:
        module.write(model, path, training)
    return path


__all__ = ["FORMATS", "ExportError", "export", "problems", "model_problems"]
