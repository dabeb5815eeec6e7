"""Export as a readable Keras 3 script: the model written out with the Keras API, its
trained weights beside it, and the training recipe, runnable with any Keras backend.

`write(model, "seed.py", training)` writes

    seed.py           builds the model (keras.Sequential([...]) for a Sequential model,
                      the Functional API with one line and one variable per layer for a
                      graph), loads the weights, compiles with the recipe, trains, tests
    seed.weights.h5   the trained weights, in Keras 3's own .weights.h5 layout
                      (engine/keras_weights_h5.py), only when the model is built

The weights sit in a file of their own, not in the script: the script stays a page a
student reads (the seed CNN's 225,034 numbers would be ~1 MB of base64 in it), and
`model.load_weights("seed.weights.h5")` is itself the Keras call worth learning. Keras
checks the file against the model it builds, so a script edited into another
architecture says so instead of loading nonsense.

Every layer is written with its exact name and every argument that differs from Keras's
default (layer.get_config(compact=True): our defaults are Keras's), so Keras's output
shapes and parameter counts equal ours. The text is deterministic: the same model and
recipe give the same bytes.
"""

from __future__ import annotations

import keyword
import re
import textwrap
from pathlib import Path

from ..layers import LAYER_CLASSES
from ..model import Sequential
from ..training_config import TrainingConfig
from .files import write_bytes_atomic, write_text_atomic
from .script_parts import (arguments_source, folder_loader_source, literal, mnist_loader_source, pil_folder_source,
                           preprocess_source, recipe_source, step_schedule_source)

# Argument kinds Keras takes as tuples (our configs hold them as JSON lists).
_TUPLE_KINDS = ("pair", "optional_pair", "int_tuple", "padding_2d", "factor")
_OPTIMIZER_CLASSES = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop"}
# Names the generated build_model() uses itself; a layer variable never takes one.
_RESERVED = {"inputs", "model", "weights", "keras", "layers", "np"}


def problems(model) -> list[str]:
    """What Keras cannot express: names with "/" (Keras refuses them: it builds variable
    paths from names). Every layer class of ours is a Keras layer with Keras's arguments."""
    found = []
    if "/" in model.name:
        found.append(f"model '{model.name}': Keras refuses '/' in a model name; rename the model")
    if "/" in model.input_name:
        found.append(f"input '{model.input_name}' (InputLayer): Keras refuses '/' in a layer name; rename it")
    for layer in model.layers:
        if layer.class_name not in LAYER_CLASSES:
            found.append(f"layer '{layer.name}' ({layer.class_name}): not a layer class Keras has")
        elif layer.name and "/" in layer.name:
            found.append(f"layer '{layer.name}' ({layer.class_name}): Keras refuses '/' in a layer name; rename it")
    return found


def weights_path(path: str | Path) -> Path:
    """Where the weights of the script at `path` go: seed.py -> seed.weights.h5 beside it."""
    path = Path(path)
    stem = path.name[:-3] if path.name.endswith(".py") and len(path.name) > 3 else path.name
    return path.with_name(f"{stem}.weights.h5")


def write(model, path: Path, training: TrainingConfig | None, dataset=None) -> None:
    """The script at path and, for a built model, its weights beside it (weights first: a
    script never names a weights file that is not there). dataset: the project's "dataset"
    section (None: MNIST)."""
    from .script_data import script_data

    training = training or TrainingConfig()
    data = script_data(model, dataset)  # refuses before anything is written
    path = Path(path)
    weights = weights_path(path) if model.built else None
    if weights is not None:
        from ..keras_weights_h5 import write_weights_h5

        # the layout follows the Keras model the script builds (a Functional one has an InputLayer entry)
        write_bytes_atomic(weights, write_weights_h5(model, functional=not _sequential(model)))
    write_text_atomic(path, script(model, training, path.name, weights.name if weights is not None else None, data))


# --- the script ---------------------------------------------------------------------------

def script(model, training: TrainingConfig, script_name: str = "model.py", weights_name: str | None = None,
           data=None) -> str:
    """The whole script's text. script_name: its own file name (for the header's examples);
    weights_name: the weights file beside it (None: no weights); data: script_data.ScriptData
    (None: MNIST)."""
    from .script_data import script_data

    data = data or script_data(model, None)
    report = model.analyse()
    parts = [
        _header(model, training, report, script_name, weights_name, data),
        _IMPORTS,
        _CHOOSE_BACKEND,
        "import keras  # noqa: E402  (after the backend is chosen)\nfrom keras import layers  # noqa: E402\n",
        recipe_source(training, model.input_shape, data)
        + ("# The weights VisualCNN trained, saved beside this script (Keras's .weights.h5 layout).\n"
           f"WEIGHTS_FILE = Path(__file__).resolve().parent / {literal(weights_name)}\n" if weights_name else
           "# The model was not trained in VisualCNN when it was exported: there are no weights to load.\n"
           "WEIGHTS_FILE = None\n"),
        _build_source(model),
        *([step_schedule_source()] if training.schedule == "step" else []),
        _optimizer_source(training),
        *([_callbacks_source(training)] if training.early_stopping or training.reduce_lr_on_plateau else []),
        *_loader_sources(data),
        preprocess_source(),
        arguments_source(),
        _main_source(model, training, data),
    ]
    return "\n\n".join(part.rstrip("\n") + "\n" for part in parts)


def _header(model, training: TrainingConfig, report, script_name: str, weights_name: str | None, data) -> str:
    kind = "Sequential" if _sequential(model) else "Functional"
    count = len(model.layers)
    params = report.total_params
    me = f"python {script_name}"
    if training.optimizer == "sgd":
        optimizer = f"SGD (momentum {training.momentum:g}{', Nesterov' if training.nesterov else ''})"
    else:
        optimizer = _OPTIMIZER_CLASSES[training.optimizer]
    schedule = {"constant": "", "cosine": " with cosine decay to 0",
                "step": f" times {training.decay_rate:g} every {training.decay_epochs} epoch(s) (step schedule)",
                "exponential": f" times {training.decay_rate:g} every {training.decay_epochs} epoch(s), step by step "
                               "(exponential decay)"}[training.schedule]
    callbacks = []
    if training.early_stopping:
        callbacks.append(f"early stopping on {training.monitor} (patience {training.patience}"
                         f"{', best weights restored' if training.restore_best_weights else ''})")
    if training.reduce_lr_on_plateau:
        callbacks.append(f"the rate times {training.reduce_lr_factor:g} when {training.monitor} stalls for "
                         f"{training.reduce_lr_patience} epochs")
    epochs = f"{training.epochs} epoch{'s' if training.epochs != 1 else ''}"
    validation = (f", the last {training.validation_split:.0%} of the training images validating"
                  if training.validation_split else "")
    weights = (f"The weights VisualCNN trained are in {weights_name}, beside this script: build_model() loads "
               "them for --no-train (test them) and --resume (train on from them)." if weights_name
               else "The model was not trained when it was exported, so there are no weights to load.")
    about = (f"Exported by VisualCNN. It builds the {kind} model ({count} layer{'s' if count != 1 else ''}, "
             f"{params:,} parameter{'s' if params != 1 else ''}) with the Keras API: the same layer names, "
             f"output shapes and parameter counts as VisualCNN's summary. {weights} The training recipe is "
             f"VisualCNN's: {optimizer}, learning rate {training.learning_rate:g}{schedule}, {training.loss}, "
             f"batch size {training.batch_size}, {epochs}{validation}, seed {training.seed}"
             + "".join(f", {c}" for c in callbacks) + f"; {data.label} images as pixels/255.")
    runs = [(f"KERAS_BACKEND=torch {me}", "train from fresh weights with the recipe, then test")]
    if weights_name:
        runs += [(f"{me} --no-train", "only test the weights VisualCNN trained"),
                 (f"{me} --resume", "train further, starting from those weights")]
    runs += [(f"{me} --epochs 3 --save trained.keras", "train longer, then save the model"),
             (f"{me} --limit 1000", "a quick check on the first 1,000 images"),
             (f"{me} --help", "every option")]
    width = max(len(command) for command, _ in runs) + 3
    paragraphs = [
        "Without KERAS_BACKEND the script takes Keras's configured backend, or the first of jax, torch "
        "and tensorflow that is installed. " + _data_words(data),
        "On a GPU: nothing to change. Keras runs on the GPU its backend sees (install a CUDA build of "
        "jax, torch or tensorflow; choose the GPU with CUDA_VISIBLE_DEVICES=0).",
        "On several GPUs: with the JAX backend, --data-parallel splits every batch across all of them "
        "(keras.distribution.DataParallel, Keras's distribution API; raise --batch-size with the device "
        "count). With TensorFlow, build and compile the model inside "
        "tf.distribute.MirroredStrategy().scope() instead.",
    ]
    lines = [f'"""The VisualCNN model "{model.name}" as a Keras 3 script.', "", *_wrap(about), "",
             "Run it with Keras 3 and any backend (JAX, PyTorch or TensorFlow):", "",
             "    pip install keras torch      (or jax, or tensorflow)"]
    lines += [f"    {command:<{width}}{what}" for command, what in runs]
    for paragraph in paragraphs:
        lines += ["", *_wrap(paragraph)]
    return "\n".join(lines + ['"""']) + "\n"


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, width=88, break_long_words=False, break_on_hyphens=False)


_IMPORTS = """\
import argparse
import gzip
import importlib.util
import json
import math
import os
import struct
import sys
from pathlib import Path

import numpy as np
"""

_CHOOSE_BACKEND = '''\
def choose_backend():
    """Keras 3 runs on JAX, PyTorch or TensorFlow and imports TensorFlow unless told
    otherwise: KERAS_BACKEND, or "backend" in ~/.keras/keras.json. When neither names an
    installed one, use the first installed of jax, torch and tensorflow."""
    if os.environ.get("KERAS_BACKEND"):
        return
    wanted = "tensorflow"
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        wanted = json.loads(config.read_text()).get("backend", wanted)
    except (OSError, ValueError, AttributeError):
        pass
    if importlib.util.find_spec(wanted) is not None:
        return
    for name in ("jax", "torch", "tensorflow"):
        if importlib.util.find_spec(name) is not None:
            print(f"Keras backend: {wanted} is not installed, using {name} (set KERAS_BACKEND to choose)")
            os.environ["KERAS_BACKEND"] = name
            return


choose_backend()
'''


def _sequential(model) -> bool:
    """keras.Sequential for our Sequential models; a Model stays Functional (its summary
    has the InputLayer row, as Keras's does), even when it is a plain stack. A stack
    holding a merge layer (a Concatenate of one input) is written Functional too: Keras's
    Sequential calls each layer on a tensor, and a merge layer needs a list."""
    return isinstance(model, Sequential) and not any(layer.merge for layer in model.layers)


def _build_source(model) -> str:
    report = model.analyse()
    doc = ['def build_model(weights=None):',
           '    """The model, layer by layer. Output shapes (batch first) as VisualCNN computed them.',
           '    weights: a .weights.h5 file to load (Keras checks it matches this model)."""']
    calls = [_layer_call(layer) for layer in model.layers]
    shapes = [_shape_text(row.output_shape) for row in report.rows]
    if _sequential(model):
        body = ["    model = keras.Sequential(", "        ["]
        body.append(f"            keras.Input(shape={literal(tuple(model.input_shape))}, "
                    f"name={literal(model.input_name)}),")
        for call, shape in zip(calls, shapes):
            body.append(f"            {call},  # -> {shape}")
        body += ["        ],", f"        name={literal(model.name)},", "    )"]
    else:
        names = _variable_names(model)
        body = [f"    inputs = keras.Input(shape={literal(tuple(model.input_shape))}, "
                f"name={literal(model.input_name)})"]
        for i, (call, shape) in enumerate(zip(calls, shapes)):
            sources = [names[j] for j in model.inbound[i]]
            arg = f"[{', '.join(sources)}]" if model.layers[i].merge else sources[0]
            body.append(f"    {names[i]} = {call}({arg})  # -> {shape}")
        body.append(f"    model = keras.Model(inputs, {names[len(model.layers) - 1]}, name={literal(model.name)})")
    body += ["    if weights is not None:", "        model.load_weights(weights)", "    return model"]
    return "\n".join(doc + body) + "\n"


def _shape_text(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")" if shape else "?"


def _variable_names(model) -> dict[int, str]:
    """Each layer's output variable, named after the layer (a valid, unique identifier);
    -1, the model input, is `inputs`."""
    names = {-1: "inputs"}
    used = set(_RESERVED)
    for i, layer in enumerate(model.layers):
        base = re.sub(r"\W", "_", layer.name) or "layer"
        if base[0].isdigit():
            base = "_" + base
        if keyword.iskeyword(base) or keyword.issoftkeyword(base):
            base += "_"
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names[i] = name
    return names


def _layer_call(layer) -> str:
    """layers.Class(positional, keyword=value, ..., name="...") with every non-default argument."""
    config = layer.get_config(compact=True)
    args = []
    kinds = {arg.name: arg for arg in layer.ARGS}
    first = layer.ARGS[0] if layer.ARGS else None
    for key, value in config.items():
        if key in ("name", "trainable"):
            continue
        text = _value(kinds[key].kind, value)
        if first is not None and key == first.name and first.required and layer.POSITIONAL >= 1:
            args.append(text)  # Keras's examples pass the first required argument positionally
        else:
            args.append(f"{key}={text}")
    if not layer.trainable:
        args.append("trainable=False")
    args.append(f"name={literal(layer.name)}")
    return f"layers.{layer.class_name}({', '.join(args)})"


def _value(kind: str, value) -> str:
    if kind == "initializer" and isinstance(value, dict):
        params = ", ".join(f"{k}={literal(v)}" for k, v in value["config"].items())
        return f"keras.initializers.{value['class_name']}({params})"
    if kind in _TUPLE_KINDS and isinstance(value, list):
        return literal(_tuples(value))
    return literal(value)


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _data_words(data) -> str:
    if data.source == "mnist":
        return ("MNIST is read from the IDX files in --data (VisualCNN's own copy by default), else downloaded "
                "by keras.datasets.mnist.")
    if data.source == "fashion_mnist":
        return ("Fashion-MNIST is read from the IDX files in --data (where VisualCNN read it), else downloaded "
                "by keras.datasets.fashion_mnist.")
    return ("The images are read from the class folders in --data (where VisualCNN read them) with "
            "keras.utils.image_dataset_from_directory when TensorFlow is installed, else with Pillow as "
            "VisualCNN reads them.")


def _loader_sources(data) -> list[str]:
    if data.source == "mnist":
        return [mnist_loader_source("keras.datasets.mnist.load_data()", "keras.datasets.mnist")]
    if data.source == "fashion_mnist":
        return [mnist_loader_source("keras.datasets.fashion_mnist.load_data()", "keras.datasets.fashion_mnist",
                                    "Fashion-MNIST")]
    return [folder_loader_source(), pil_folder_source().replace("def read_images(folder):", "def pil_images(folder):")
            .replace("read_images(", "keras_images("), _KERAS_FOLDER]


_KERAS_FOLDER = '''\
def keras_images(folder):
    """(images, labels) of one folder in the class layout, read by
    keras.utils.image_dataset_from_directory (which needs TensorFlow's tf.data) in
    VisualCNN's order and classes; without TensorFlow, read with Pillow as VisualCNN does.
    Keras resizes without Pillow's antialiasing: shrunk images differ slightly."""
    if importlib.util.find_spec("tensorflow") is None:
        return pil_images(folder)
    channels = INPUT_SHAPE[2] if len(INPUT_SHAPE) == 3 else 1
    data = keras.utils.image_dataset_from_directory(
        folder, labels="inferred", label_mode="int", class_names=CLASS_NAMES,
        color_mode="grayscale" if channels == 1 else "rgb", batch_size=None, image_size=INPUT_SHAPE[:2],
        shuffle=False, interpolation=INTERPOLATION)
    images, labels = zip(*((np.asarray(x), int(y)) for x, y in data.as_numpy_iterator()))
    # float pixels in [0, 255] after resizing: rounded back to bytes, as the files hold them
    return np.clip(np.rint(np.stack(images)), 0, 255).astype(np.uint8), np.array(labels, np.int64)
'''


def _optimizer_source(training: TrainingConfig) -> str:
    if training.optimizer == "sgd":
        make = "keras.optimizers.SGD(learning_rate=learning_rate, momentum=MOMENTUM, nesterov=NESTEROV)"
    else:
        make = f"keras.optimizers.{_OPTIMIZER_CLASSES[training.optimizer]}(learning_rate=learning_rate)"
    rate = {
        "constant": ("The recipe's optimizer at the constant rate LEARNING_RATE.", "LEARNING_RATE"),
        "cosine": ("The recipe's optimizer. The rate decays from LEARNING_RATE to 0 along half a cosine over\n"
                   "    all total_steps updates of the run (keras.optimizers.schedules.CosineDecay).",
                   "keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=max(1, total_steps))"),
        "exponential": ("The recipe's optimizer. The rate is multiplied by DECAY_RATE every DECAY_EPOCHS epochs,\n"
                        "    a little at every step (keras.optimizers.schedules.ExponentialDecay).",
                        "keras.optimizers.schedules.ExponentialDecay(\n"
                        "        LEARNING_RATE, decay_steps=max(1, DECAY_EPOCHS * steps_per_epoch), "
                        "decay_rate=DECAY_RATE)"),
        "step": ("The recipe's optimizer. The rate drops to DECAY_RATE times itself at the start of every\n"
                 "    DECAY_EPOCHS-th epoch (keras.optimizers.schedules.PiecewiseConstantDecay).",
                 "keras.optimizers.schedules.PiecewiseConstantDecay(\n"
                 "        *step_schedule(steps_per_epoch, total_steps))"),
    }[training.schedule]
    return f'''\
def make_optimizer(steps_per_epoch, total_steps):
    """{rate[0]}"""
    learning_rate = {rate[1]}
    return {make}
'''


def _callbacks_source(training: TrainingConfig) -> str:
    made = []
    if training.early_stopping:
        made.append("keras.callbacks.EarlyStopping(monitor=MONITOR, patience=EARLY_STOPPING_PATIENCE,\n"
                    "                                      restore_best_weights=RESTORE_BEST_WEIGHTS)")
    if training.reduce_lr_on_plateau:
        made.append("keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, factor=REDUCE_LR_FACTOR,\n"
                    "                                          patience=REDUCE_LR_PATIENCE, min_lr=MIN_LR)")
    items = "".join(f"        {m},\n" for m in made)
    return f'''\
def make_callbacks():
    """The recipe's callbacks, with VisualCNN's arguments (the rest are Keras's defaults,
    VisualCNN's too: min_delta 0 for EarlyStopping, 1e-4 and cooldown 0 for ReduceLROnPlateau)."""
    return [
{items}    ]
'''


def _main_source(model, training: TrainingConfig, data) -> str:
    load = "load_folder(args.data)" if data.source == "folder" else "load_mnist(args.data)"
    callbacks = ", callbacks=make_callbacks()" if training.early_stopping or training.reduce_lr_on_plateau else ""
    return f'''\
def main(argv=None):
    parser = argparse.ArgumentParser(
        description={literal(f"Build, train and test the VisualCNN model {model.name} with Keras.")})
    add_recipe_arguments(parser)
    parser.add_argument("--no-train", action="store_true", help="only test the loaded weights (no training)")
    parser.add_argument("--resume", action="store_true",
                        help="start training from the loaded weights instead of fresh ones")
    parser.add_argument("--weights", type=Path, default=WEIGHTS_FILE, metavar="FILE",
                        help="the .weights.h5 file --no-train and --resume load (default: %(default)s)")
    parser.add_argument("--save", metavar="OUT.keras", help="save the model (architecture and weights) at the end")
    parser.add_argument("--data-parallel", action="store_true",
                        help="split every batch across all devices (JAX backend: keras.distribution.DataParallel)")
    args = parser.parse_args(argv)
    if (args.no_train or args.resume) and args.weights is None:
        parser.error("this export has no trained weights (the model was not trained in VisualCNN); "
                     "train it: run without --no-train / --resume")
    if args.data_parallel:
        if keras.backend.backend() != "jax":
            parser.error("--data-parallel needs the JAX backend (KERAS_BACKEND=jax); with TensorFlow use "
                         "tf.distribute.MirroredStrategy")
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        print(f"data parallel over {{len(devices)}} devices: {{', '.join(map(str, devices))}}")

    keras.utils.set_random_seed(args.seed)  # weights, shuffling and dropout: the same run every time
    (x_train, y_train), (x_test, y_test) = {load}
    if args.limit:
        x_train, y_train, x_test, y_test = (a[:args.limit] for a in (x_train, y_train, x_test, y_test))
    x_train, x_test = prepare_images(x_train, INPUT_SHAPE), prepare_images(x_test, INPUT_SHAPE)
    y_train, y_test = prepare_labels(y_train, ONE_HOT_LABELS), prepare_labels(y_test, ONE_HOT_LABELS)

    model = build_model(args.weights if args.no_train or args.resume else None)
    model.summary()
    if args.no_train:
        model.compile(loss=LOSS, metrics=["accuracy"])  # evaluate() needs the loss and the metric
        print(f"testing the weights in {{args.weights}}")
    else:
        per_epoch = steps_per_epoch(len(x_train), args.batch_size, VALIDATION_SPLIT)
        model.compile(optimizer=make_optimizer(per_epoch, per_epoch * args.epochs), loss=LOSS, metrics=["accuracy"])
        # validation_split takes the LAST fraction of the images, before shuffling (as VisualCNN)
        model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                  validation_split=VALIDATION_SPLIT, shuffle=True{callbacks})
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"test accuracy: {{accuracy:.2%}} (loss {{loss:.4f}}) on {{len(x_test):,}} test images")
    if args.save:
        model.save(args.save)
        print(f"saved {{args.save}}")
    return accuracy


if __name__ == "__main__":
    main()
'''
