"""File ▸ Load Weights…: trained weights from a file, onto the pipeline the window shows.

A weights-only HDF5 file (Keras 3's `.weights.h5`, or tf.keras 2's save_weights under any
name) goes through Model.load_weights (engine); a model file with weights (ours, a .keras
or a legacy .h5) gives its weights by layer name (engine model_io.decode_weights). Either
way a shape that does not fit is refused with one line naming the layer, and nothing
changes.
"""

from __future__ import annotations

from pathlib import Path

from ..engine.keras_legacy_h5 import is_weights_only_file
from ..engine.layers import ConfigError
from ..engine.model_io import decode_weights, encode_weights, load_model_file

WEIGHTS_FILE_FILTER = ("Weights or model with weights (*.weights.h5 *.json *.keras *.h5);;"
                       "Keras weights (*.weights.h5);;All files (*)")


def weights_for(model, path) -> dict:
    """The file's weights for `model` (built here), in the project's encode_weights form.

    Raises ConfigError (one line, naming the file and the layer) when the file has no
    weights or they do not fit the model.
    """
    path = Path(path)
    model.build()
    if path.name.lower().endswith(".weights.h5") or is_weights_only_file(path):  # tf.keras 2 save_weights: any name
        try:
            model.load_weights(path)
        except (ValueError, OSError) as exc:
            raise ConfigError(_named(path, exc)) from None
        return encode_weights(model)
    model_file = load_model_file(path)
    if model_file.weights is None:
        raise ConfigError(f"{path.name}: holds no weights (a model description only); "
                          "choose a trained model file or a .weights.h5 file")
    try:
        model.set_weights(decode_weights(model, model_file.weights))
    except ConfigError as exc:
        raise ConfigError(_named(path, exc)) from None
    return encode_weights(model)


def _named(path: Path, exc: BaseException) -> str:
    """The error as one line starting with the file's name (once: the engine may have named it)."""
    line = _one_line(exc)
    return line if line.startswith(f"{path.name}: ") else f"{path.name}: {line}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
