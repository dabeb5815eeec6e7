"""Export as a Keras 3 .keras file: the zip keras.saving.save_model writes.

keras/src/saving/saving_lib.py (_save_model_to_fileobj) writes three members, stored
uncompressed: metadata.json (keras_version, date_saved), config.json (the model's
serialize_keras_object: module, class_name, config, registered_name, build_config and,
for a compiled model, compile_config) and model.weights.h5 (keras_weights_h5.py). This
module writes the same from our model, so `keras.saving.load_model(path)` rebuilds it,
loads its weights and predicts as VisualCNN does.

What we write per layer: every argument our layer has (all of them, defaults included,
as Keras's get_config lists them), the float32 dtype policy, data_format pinned to
channels_last (a keras.json set to channels_first would otherwise turn the model
around) and initializers as Keras objects. Arguments VisualCNN has no way to set
(regularizers, constraints, ...) are left out: Keras fills in the same defaults, and a
key that a given Keras 3 release does not know yet would stop that release from loading
the file.
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from ..layers.arguments import INITIALIZERS
from ..training_config import TrainingConfig
from . import ExportError
from .files import write_bytes_atomic

# The Keras release whose file layout this writes (metadata.json's keras_version).
KERAS_VERSION = "3.15.1"
# MNIST and Fashion-MNIST have 60,000 training images: a schedule's steps come from it when
# the model holds no schedule of its own (an image folder's count is passed in).
MNIST_TRAIN_IMAGES = 60_000

_DTYPE_POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                 "registered_name": None}
# Classes whose Keras layer takes data_format (measured on Keras 3.15's get_config).
_DATA_FORMAT = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "MaxPooling2D",
                "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten",
                "SpatialDropout2D", "ZeroPadding2D", "Cropping2D", "UpSampling2D", "RandomFlip",
                "RandomTranslation", "RandomRotation", "RandomZoom", "RandomContrast"}
# Keras layers without a build() of their own: Keras writes no build_config for them.
_NO_BUILD_CONFIG = {"MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
                    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout", "SpatialDropout2D",
                    "GaussianNoise", "Reshape"}
# Initializers without randomness take no seed.
_UNSEEDED = {"Zeros", "Ones", "Constant"}
_OPTIMIZER_CLASSES = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}


def problems(model) -> list[str]:
    """What Keras cannot load: a model whose shapes do not work, a name Keras refuses."""
    from ..layers import ConfigError

    found = []
    try:
        error = model.analyse().error
    except ConfigError as exc:  # no input shape
        error = str(exc)
    if error is not None:
        found.append(error if error.startswith(f"model '{model.name}'") else f"model '{model.name}': {error}")
    for what, name in (("model", model.name), ("input", model.input_name)):
        if "/" in name:
            found.append(f"{what} '{name}': Keras names cannot contain '/'; rename the {what}")
    for layer in model.layers:
        if layer.name and "/" in layer.name:
            found.append(f"layer '{layer.name}' ({layer.class_name}): Keras layer names cannot contain '/'; "
                         "rename the layer")
    return found


def write(model, path: Path, training: TrainingConfig | None, dataset=None) -> None:
    """Write `model` as a .keras file at `path` (atomically). An unbuilt model is built
    first, so the file always carries weights (freshly initialised ones then); a built
    (trained) model also carries the recipe as Keras's compile_config. dataset: the
    project's "dataset" section (None: MNIST): a schedule's steps count its training images."""
    trained = model.built
    if not trained:
        model.build()
    train_images = MNIST_TRAIN_IMAGES
    if trained and dataset and training is not None and training.schedule != "constant":
        from .script_data import training_image_count

        try:
            train_images = training_image_count(dataset)
        except Exception as exc:  # the folder is gone: the schedule's steps cannot be known
            raise ExportError(f"cannot export the learning-rate schedule: the image folder cannot be read ({exc})") from None
    write_bytes_atomic(path, archive_bytes(model, training if trained else None, train_images))


def archive_bytes(model, training: TrainingConfig | None, train_images: int = MNIST_TRAIN_IMAGES) -> bytes:
    """The .keras zip of a built model; with `training`, compiled with that recipe."""
    from ..keras_weights_h5 import write_weights_h5

    data = serialize_model(model)
    optimizer = None
    if training is not None:
        data["compile_config"] = compile_config(model, training, train_images)
        optimizer = (training.optimizer, optimizer_variables(model, training))
    weights = write_weights_h5(model, optimizer=optimizer)
    metadata = {"keras_version": KERAS_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps(metadata))
        zf.writestr("config.json", json.dumps(data))
        zf.writestr("model.weights.h5", weights)
    return buffer.getvalue()


# --- config.json -------------------------------------------------------------------------

def serialize_model(model) -> dict:
    """serialize_keras_object(model) as Keras writes it: a Sequential or a Functional."""
    from ..model import Sequential

    report = model.checked_report()
    input_shape = [None, *model.input_shape]
    if isinstance(model, Sequential):
        layers = [_input_entry(model)]
        for row in report.rows:
            layers.append(_layer_entry(row))
        return {"module": "keras", "class_name": "Sequential",
                "config": {"name": model.name, "trainable": True, "dtype": dict(_DTYPE_POLICY),
                           "layers": layers, "build_input_shape": input_shape},
                "registered_name": None, "build_config": {"input_shape": input_shape}}
    from ..summary import keras_order

    rows = report.rows
    shapes = {-1: input_shape, **{i: _shape(row.output_shape) for i, row in enumerate(rows)}}
    names = {-1: model.input_name, **{i: layer.name for i, layer in enumerate(model.layers)}}
    entries = []
    for i in keras_order(model.inbound):
        if i == -1:
            entry = _input_entry(model)
            entry.update(name=model.input_name, inbound_nodes=[])
        else:
            entry = _layer_entry(rows[i])
            tensors = [_tensor(shapes[j], names[j]) for j in model.inbound[i]]
            # A merge layer is called on a list of tensors: one argument holding the list.
            args = [tensors] if getattr(model.layers[i], "merge", False) else tensors
            entry.update(name=model.layers[i].name, inbound_nodes=[{"args": args, "kwargs": {}}])
        entries.append(entry)
    output = len(model.layers) - 1
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": model.name, "trainable": True, "layers": entries,
                       "input_layers": [model.input_name, 0, 0], "output_layers": [names[output], 0, 0]},
            "registered_name": "Functional", "build_config": {"input_shape": None}}


def _input_entry(model) -> dict:
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": [None, *model.input_shape], "dtype": "float32", "sparse": False,
                       "ragged": False, "name": model.input_name, "optional": False},
            "registered_name": None}


def _layer_entry(row) -> dict:
    layer = row.layer
    entry = {"module": "keras.layers", "class_name": layer.class_name, "config": layer_config(layer),
             "registered_name": None}
    if layer.class_name not in _NO_BUILD_CONFIG:
        shapes = row.input_shapes if getattr(layer, "merge", False) else row.input_shape
        entry["build_config"] = {"input_shape": _shape(shapes)}
    return entry


def _shape(shape) -> list:
    """A shape (or a list of shapes) as JSON lists, None for the batch axis."""
    if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
        return [_shape(s) for s in shape]
    return [None if d is None else int(d) for d in shape]


def _tensor(shape: list, source: str) -> dict:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": "float32", "keras_history": [source, 0, 0]}}


def layer_config(layer) -> dict:
    """A layer's config as Keras's get_config() gives it (see the module docstring)."""
    ours = layer.get_config()
    if "trainable" in ours:
        config = {"name": layer.name, "trainable": layer.trainable, "dtype": dict(_DTYPE_POLICY)}
    else:
        # Keras's SpatialDropout2D takes no `trainable` and writes its dtype as a plain
        # string; our config mirrors its get_config, so its absence says which form.
        config = {"name": layer.name, "dtype": "float32"}
    for key, value in ours.items():
        if key in ("name", "trainable"):
            continue
        if key.endswith("_initializer"):
            value = keras_initializer(value)
        config[key] = value
    if config.get("strides", 0) is None and "pool_size" in config:
        config["strides"] = config["pool_size"]  # Keras writes a pooling's default strides as its pool size
    if layer.class_name in _DATA_FORMAT:
        config["data_format"] = "channels_last"
    return config


def keras_initializer(spec) -> dict:
    """Our initializer (a snake name or {"class_name", "config"}) as Keras serialises one."""
    if isinstance(spec, dict):
        class_name, given = spec["class_name"], dict(spec.get("config") or {})
    else:
        class_name = next(cls for cls, (snake, _) in INITIALIZERS.items() if snake == spec)
        given = {}
    config = {**INITIALIZERS[class_name][1], **given}
    if class_name not in _UNSEEDED:
        config.setdefault("seed", None)
    return {"module": "keras.initializers", "class_name": class_name, "config": config, "registered_name": None}


# --- compile_config and the optimizer's variables ---------------------------------------

def compile_config(model, training: TrainingConfig, train_images: int = MNIST_TRAIN_IMAGES) -> dict:
    """Keras's get_compile_config() for the recipe: model.compile(optimizer, loss, metrics).
    train_images: the data set's training images (a schedule's steps per epoch come from it)."""
    return {"optimizer": _optimizer(model, training, train_images), "loss": training.loss, "loss_weights": None,
            "metrics": ["accuracy"], "weighted_metrics": None, "run_eagerly": False,
            "steps_per_execution": 1, "jit_compile": False}


def _optimizer(model, training: TrainingConfig, train_images: int = MNIST_TRAIN_IMAGES) -> dict:
    name = training.optimizer
    config: dict = {"name": name, "learning_rate": _learning_rate(model, training, train_images)}
    if name == "adam":
        config.update(beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)
    elif name == "sgd":
        config.update(momentum=training.momentum, nesterov=training.nesterov)
    else:
        config.update(rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)
    own = _matching_optimizer(model, training)
    if own is not None and name != "sgd":  # the model's own settings, when it was compiled with this optimizer
        for key in ("beta_1", "beta_2", "epsilon", "rho", "momentum"):
            if key in config and hasattr(own, key):
                config[key] = float(getattr(own, key))
    return {"module": "keras.optimizers", "class_name": _OPTIMIZER_CLASSES[name], "config": config,
            "registered_name": None}


def _learning_rate(model, training: TrainingConfig, train_images: int = MNIST_TRAIN_IMAGES):
    """The rate in Keras's form: a number, or the schedule serialized as Keras does
    (keras.optimizers.schedules.ExponentialDecay / PiecewiseConstantDecay / CosineDecay with
    their own arguments, so Keras computes the engine's rate at every step). The schedule
    the model was trained with when it is the recipe's kind (its exact steps), else the
    recipe's schedule over train_images training images (engine/schedules.py recipe_schedule)."""
    if training.schedule == "constant":
        return training.learning_rate
    from ..schedules import recipe_schedule
    from ..training import steps_per_epoch

    kinds = {"cosine": "CosineDecay", "exponential": "ExponentialDecay", "step": "PiecewiseConstantDecay"}
    own = _matching_optimizer(model, training)
    schedule = getattr(own, "schedule", None) if own is not None else None
    if schedule is None or type(schedule).__name__ != kinds[training.schedule]:
        per_epoch = steps_per_epoch(train_images, training.batch_size, training.validation_split)
        schedule = recipe_schedule(training, per_epoch, per_epoch * training.epochs)
    return {"module": "keras.optimizers.schedules", "class_name": type(schedule).__name__,
            "config": schedule.get_config(), "registered_name": None}


def _matching_optimizer(model, training: TrainingConfig):
    """The model's optimizer when it is the recipe's one and holds state for these weights."""
    own = getattr(model, "optimizer", None)
    if own is None or getattr(own, "name", None) != training.optimizer or not model.built:
        return None
    return own


def optimizer_variables(model, training: TrainingConfig) -> list[np.ndarray]:
    """The optimizer's variables in Keras's order, so load_model compiles and restores it
    without a warning: iterations, learning_rate (unless scheduled), then per trainable
    weight in keras model.trainable_variables order: Adam m and v (interleaved), SGD with
    momentum its momentum, RMSprop the velocities then the momentums. Our optimizer's own
    state when the model was trained with the recipe's optimizer, else a fresh one."""
    from ..keras_weights_h5 import keras_layer_paths

    own = _matching_optimizer(model, training)
    trainable = model.trainable_weights
    index = {id(w): k for k, w in enumerate(trainable)}
    order = [index[id(w)] for _, layer in keras_layer_paths(model)
             for spec, w in zip(layer.weight_specs, layer.weights) if spec.trainable]

    def slot(name: str, k: int) -> np.ndarray:
        arrays = getattr(own, name, None) if own is not None else None
        shape = trainable[k].shape
        if arrays is None or k >= len(arrays) or arrays[k].size != trainable[k].size:
            return np.zeros(shape, np.float32)
        return np.asarray(arrays[k], np.float32).reshape(shape).copy()

    values: list[np.ndarray] = [np.array(int(own.iterations) if own is not None else 0, np.int32)]
    if training.schedule == "constant":  # a scheduled rate is no variable of its own in Keras
        values.append(np.array(training.learning_rate, np.float32))
    if training.optimizer == "adam":
        for k in order:
            values += [slot("_m", k), slot("_v", k)]
    elif training.optimizer == "sgd":
        if training.momentum > 0:
            values += [slot("_m", k) for k in order]
    else:
        values += [slot("_v", k) for k in order]
        momentum = float(getattr(own, "momentum", 0.0)) if own is not None else 0.0
        if momentum > 0:
            values += [slot("_mom", k) for k in order]
    return values


__all__ = ["problems", "write", "archive_bytes", "serialize_model", "layer_config", "compile_config",
           "optimizer_variables", "KERAS_VERSION"]
