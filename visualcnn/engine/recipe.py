"""The ONE training recipe, shared by `visualcnn train` and the window's worker: MNIST by
default, or the data set passed (engine/dataset_spec.py: Fashion-MNIST, an image folder),
whose class names set the number of classes.

    problem = readiness_problem(report, config)     # None, or what to change
    prepared = prepare_run(model, config, (x_train, y_train), limit=1000)
    for report in prepared.run: ...                 # engine.training's StepReport / EpochReport

Everything a run needs is decided here once: the input-shape and classifier checks, the
memory check, scaling images, one-hot labels for the losses that need them, build and
compile with the settings, and the batch count (the engine's own, so a progress bar can
never disagree with the run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .memory import check_memory, estimate_memory, memory_problem
from .training_config import TrainingConfig

NUM_CLASSES = 10
MNIST_INPUT_SHAPES = ((28, 28, 1), (28, 28), (784,))
ONE_HOT_LOSSES = ("categorical_crossentropy", "mean_squared_error")


def classifier_problem(report, num_classes: int = NUM_CLASSES,
                       loss: str = "sparse_categorical_crossentropy", dataset_label: str = "MNIST") -> str | None:
    """Why this pipeline cannot classify num_classes classes with this loss, or None.
    dataset_label names the data in the message ("MNIST has 10 digits")."""
    has = f"{dataset_label} has {num_classes} {'digits' if dataset_label == 'MNIST' else 'classes'}"
    if report.error:
        return report.error
    if not report.rows:
        return f"the model has no layers; end it with Dense({num_classes}, activation='softmax')"
    out = report.output_shape
    last = report.rows[-1].layer
    where = f"the last layer {last.class_name} '{last.name}'" if last.name else f"the last layer {last.class_name}"
    if len(out) != 2:
        return (f"the model's output has shape {tuple(out)}, but classifying needs one score per class, "
                f"shape (None, {num_classes}); add Flatten (or GlobalAveragePooling2D) before the last Dense layer")
    if loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        if out[-1] != num_classes:
            return f"{where} has {out[-1]} outputs, but {has}: set its units to {num_classes}"
        activation = last.config.get("activation")
        # a Softmax layer over the classes gives probabilities too (layers/softmax.py)
        if activation != "softmax" and not getattr(last, "gives_probabilities", lambda shape: False)(out):
            return (f"{where} uses activation {activation!r}, but {loss} expects probabilities: "
                    "set activation='softmax' on it")
    elif loss == "binary_crossentropy":
        return f"binary_crossentropy cannot classify {num_classes} classes; use sparse_categorical_crossentropy"
    elif out[-1] != num_classes:
        return f"{where} has {out[-1]} outputs, but {has}: set its units to {num_classes}"
    return None


def readiness_problem(report, config: TrainingConfig | None = None, *, examples: int | None = None,
                      dataset=None) -> str | None:
    """None when this pipeline can be trained on the data set with these settings, else the
    one message saying what to change. The Build tab's "Ready to train", the Train tab's
    refusal and `visualcnn train` all ask this. examples: how many training images the
    run will use, when known (a batch larger than that costs only what it holds).
    dataset: None for MNIST, else what is trained on (see dataset_facts)."""
    config = config or TrainingConfig()
    return (shape_problem(report, config, dataset)
            or memory_problem(_estimate(report, config, examples), training=True))


def check_ready(report, config: TrainingConfig, *, examples: int | None = None, dataset=None) -> None:
    """readiness_problem as an exception: ValueError naming what to change, or
    MemoryLimitError (a ValueError) with the numbers. Allocates nothing."""
    problem = shape_problem(report, config, dataset)
    if problem:
        raise ValueError(f"cannot train this model on {dataset_facts(dataset)[0]}: {problem}")
    check_memory(_estimate(report, config, examples))


def dataset_facts(dataset) -> tuple[str, int, object]:
    """(label, number of classes, input check) of what a run trains on. dataset: None
    (MNIST), a loaded engine.dataset_spec.Dataset, a DatasetSpec or the "dataset" section
    (a folder is scanned for its classes, nothing decoded), or any object with class_names
    (the window's arrays). The input check maps an input shape to a problem or None."""
    from .dataset_spec import DatasetSpec, dataset_classes, input_problem

    if dataset is None:
        return "MNIST", NUM_CLASSES, _mnist_input_problem
    if isinstance(dataset, (dict, DatasetSpec)):
        spec = DatasetSpec.from_dict(dataset)
        return spec.label, len(dataset_classes(spec)), lambda shape: input_problem(spec, shape)
    label = getattr(dataset, "label", "the dataset")
    check = getattr(dataset, "input_problem", None)
    if check is None:
        images = tuple(np.shape(dataset.x_train)[1:])

        def check(shape, images=images):  # arrays without a spec: their per-image size must fit
            if int(np.prod(images)) == int(np.prod(shape)):
                return None
            return (f"the model's input is {'x'.join(map(str, shape))}, but the images are "
                    f"{'x'.join(map(str, images))}: set the input shape to {list(images)}")
    return label, len(dataset.class_names), check


def _mnist_input_problem(input_shape) -> str | None:
    if tuple(input_shape) in MNIST_INPUT_SHAPES:
        return None
    shape = "x".join(str(d) for d in input_shape)
    return f"the model's input is {shape}, but MNIST images are 28x28 grey: set the input shape to [28, 28, 1]"


def settings_problem(config: TrainingConfig) -> str | None:
    """Why these settings cannot train (a NaN learning rate, batch size 0...), or None.
    A TrainingConfig built directly (not from a file) has not been through from_dict's checks."""
    from .layers import ConfigError

    from .callbacks import callbacks_problem

    try:
        TrainingConfig.from_dict(config.to_dict())
    except (ConfigError, TypeError, ValueError) as exc:
        return str(exc)
    return callbacks_problem(config)


def shape_problem(report, config: TrainingConfig, dataset=None) -> str | None:
    """readiness_problem without the memory check: the settings, pipeline, input and classifier."""
    problem = settings_problem(config)
    if problem:
        return problem
    if report.error:
        return report.error
    label, num_classes, input_check = dataset_facts(dataset)
    problem = input_check(tuple(report.input_shape))
    if problem:
        return problem
    return classifier_problem(report, num_classes, config.loss, label)


def _estimate(report, config: TrainingConfig, examples: int | None = None):
    batch = config.batch_size if not examples else max(1, min(config.batch_size, examples))
    return estimate_memory(report, batch, optimizer=config.optimizer, momentum=config.momentum)


@dataclass
class PreparedRun:
    """A built, compiled model's run. run: the engine.training.TrainingRun generator."""

    run: Any
    steps_per_epoch: int
    total_steps: int
    config: TrainingConfig
    train_examples: int
    val_examples: int
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    initial_epoch: int = 0  # epochs done before this run (a continued run: engine/resume.py)


def scale_images(images, input_shape: tuple) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]; float images are taken as already scaled.
    Reshaped for the model's input ((N, 28, 28, 1), (N, 28, 28) or (N, 784))."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        x = images.astype(np.float32)
        np.divide(x, np.float32(255.0), out=x)  # in place: 60,000 images are 188 MB already
    else:
        x = np.asarray(images, np.float32)
    return x.reshape((x.shape[0], *input_shape))


def prepare_labels(labels, loss: str, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Integer labels as the loss expects them: one-hot for categorical losses and MSE."""
    labels = np.asarray(labels)
    if loss in ONE_HOT_LOSSES and labels.ndim == 1:
        out = np.zeros((labels.shape[0], num_classes), np.float32)
        out[np.arange(labels.shape[0]), labels.astype(np.int64)] = 1.0
        return out
    return labels.astype(np.int64) if labels.ndim == 1 else labels


def _split_data(data) -> tuple:
    """(x_train, y_train, x_test, y_test) from the shapes callers have: an object with
    x_train / y_train (/ x_test / y_test) attributes, load_mnist()'s ((x, y), (xt, yt)),
    or a plain (x, y) pair."""
    if hasattr(data, "x_train"):
        return data.x_train, data.y_train, getattr(data, "x_test", None), getattr(data, "y_test", None)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        first, second = data
        if isinstance(first, (tuple, list)) and isinstance(second, (tuple, list)):
            return first[0], first[1], second[0], second[1]
        return first, second, None, None
    raise ValueError("data must be (x_train, y_train), ((x_train, y_train), (x_test, y_test)) "
                     "or an object with x_train and y_train")


def prepare_run(model, config: TrainingConfig, data, *, limit: int | None = None, callbacks=None,
                resume: dict | None = None) -> PreparedRun:
    """Check, build, compile and start (lazily) one training run of model on data.

    The config's callbacks (EarlyStopping, ReduceLROnPlateau: engine/callbacks.py
    recipe_callbacks) and schedule are set up here, for the CLI and the window alike;
    `callbacks` adds more (the CLI's ModelCheckpoint). resume: a "resume" section
    (engine/resume.py): the model keeps the weights it holds (loaded from the same
    project) and the run continues for config.epochs more epochs exactly where the saved
    one stood, bit for bit as if it had never stopped.

    Raises ValueError (MemoryLimitError for memory) naming what to change, before any
    weight is allocated."""
    from .model_io import compile_from_config
    from .training import train

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"limit must be a positive number of images, received {limit!r}")
    from .training import split_index

    x_train, y_train, x_test, y_test = _split_data(data)
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    n = len(x_train)
    examples = split_index(n, config.validation_split) if config.validation_split else n
    # a data set that names its classes (a folder, Fashion-MNIST) sets their number; else MNIST's 10
    dataset = data if hasattr(data, "class_names") else None
    num_classes = dataset_facts(dataset)[1]
    check_ready(model.analyse(), config, examples=examples, dataset=dataset)
    x = scale_images(x_train, model.input_shape)
    y = prepare_labels(y_train, config.loss, num_classes)
    if resume is None:
        model.build(seed=config.seed)
    elif not model.built:
        raise ValueError("cannot continue training: the model holds no trained weights; open the saved project "
                         "(with its weights) first")
    compile_from_config(model, config)
    from .callbacks import recipe_callbacks

    done = resume["epochs_done"] if resume is not None else 0
    final = done + config.epochs  # train()'s epochs is the last epoch (Keras's initial_epoch rule)
    run = train(model, x, y, batch_size=config.batch_size, epochs=final,
                validation_split=config.validation_split, seed=config.seed,
                callbacks=recipe_callbacks(config) + list(callbacks or []), resume=resume)
    apply_schedule(model.optimizer, config, run.batches * final, run.batches)
    xt = yt = None
    if x_test is not None and y_test is not None:
        xt, yt = scale_images(x_test, model.input_shape), prepare_labels(y_test, config.loss, num_classes)
    steps = run.batches * final - (run.batches * done + (resume["batches_done"] if resume is not None else 0))
    return PreparedRun(run, run.batches, steps, config, run.train_examples, run.val_examples, xt, yt,
                       initial_epoch=done)


def apply_schedule(optimizer, config: TrainingConfig, total_steps: int, steps_per_epoch: int | None = None) -> None:
    """Give optimizer the config's learning-rate schedule over a run of total_steps updates
    (engine/schedules.py recipe_schedule: step, exponential, cosine; the Train tab plots the
    same). "cosine": CosineDecay(learning_rate, decay_steps=total_steps), so the last
    step's rate is ~0; "constant" leaves the constant rate compile set."""
    from .schedules import recipe_schedule

    if steps_per_epoch is None:
        steps_per_epoch = max(1, total_steps // max(1, config.epochs))
    schedule = recipe_schedule(config, steps_per_epoch, total_steps)
    if schedule is not None:
        optimizer.learning_rate = schedule


def set_learning_rate(model, value) -> None:
    """Change the learning rate of a compiled model between two steps, through the
    optimizer's own validation (NaN, infinity or <= 0 raise ValueError).

    With a schedule, value becomes the schedule's starting rate and the run continues on
    the rescaled curve from the same step. The window's learning-rate box edits the
    settings' learning_rate, which with a schedule IS the starting rate; reading value as
    "the rate from now on" would either end the schedule (Keras refuses a number for a
    scheduled optimizer for that reason) or, dividing by the current rate near the end of a
    cosine (~0), blow up."""
    from .optimizers import _positive
    from .schedules import LearningRateSchedule

    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError("set_learning_rate: compile the model first")
    schedule = getattr(optimizer, "schedule", None)
    if isinstance(schedule, LearningRateSchedule):
        optimizer.learning_rate = schedule.with_initial_rate(_positive(value, "learning_rate"))
        return
    optimizer.learning_rate = value


__all__ = ["readiness_problem", "check_ready", "shape_problem", "settings_problem", "classifier_problem",
           "dataset_facts",
           "prepare_run", "PreparedRun", "set_learning_rate", "apply_schedule",
           "scale_images", "prepare_labels", "MNIST_INPUT_SHAPES", "NUM_CLASSES"]
