"""`visualcnn train MODEL`: train a model file on the bundled MNIST, then test it.

Defaults come from the file's "training" section (TrainingConfig) when present; flags
override. Progress goes to stderr; with --json the last stdout line is one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time

# Must precede numpy's import (OpenBLAS reads it at load): numba's threads do the
# parallel work; BLAS threads competing for the same cores slow training down.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a VisualCNN model file or a Keras model.to_json() file")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the training set (default: file, else 1)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default: file, else 64)")
    parser.add_argument("--optimizer", choices=("adam", "sgd", "rmsprop"), default=None,
                        help="default: file, else adam")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: file, else the optimizer's Keras default")
    parser.add_argument("--validation-split", type=float, default=None,
                        help="fraction of the training images (the last ones) held out for validation")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N training images only")
    parser.add_argument("--seed", type=int, default=None, help="seed for weights, shuffling and dropout")
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    parser.add_argument("--save", metavar="PATH", default=None, help="write the trained model (JSON + weights) here")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")


def resolve_config(file_config, args):
    """The TrainingConfig to use: the file's section (or defaults), overridden by flags."""
    from ..engine.training_config import DEFAULT_LEARNING_RATES, TrainingConfig

    values = (file_config or TrainingConfig()).to_dict()
    if args.optimizer is not None and args.optimizer != values["optimizer"]:
        values["optimizer"] = args.optimizer
        values["learning_rate"] = DEFAULT_LEARNING_RATES[args.optimizer]
    for flag, key in (("learning_rate", "learning_rate"), ("epochs", "epochs"), ("batch_size", "batch_size"),
                      ("validation_split", "validation_split"), ("seed", "seed")):
        value = getattr(args, flag)
        if value is not None:
            values[key] = value
    return TrainingConfig.from_dict(values)


def run(args) -> int:
    from ..engine import load_model_file
    from ..engine.datasets import load_mnist
    from ..engine.model_io import compile_from_config
    from ..engine.training import check_classifier, format_step, train, StepReport, EpochReport

    model_file = load_model_file(args.model)
    model = model_file.model
    config = resolve_config(model_file.training, args)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive number of images, received {args.limit}")
    if model.input_shape not in ((28, 28, 1), (28, 28), (784,)):
        raise ValueError(f"the model's input shape is {list(model.input_shape)}, but MNIST images are 28x28 "
                         "grey: set input_shape to [28, 28, 1]")
    problem = check_classifier(model, 10, config.loss)
    if problem:
        raise ValueError(f"cannot train this model on MNIST: {problem}")
    if args.threads is not None:
        from ..engine import parallel

        parallel.set_num_threads(args.threads)

    (x_train, y_train), (x_test, y_test) = load_mnist()
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    x_train = _scale(x_train, model.input_shape)
    x_test = _scale(x_test, model.input_shape)
    if config.loss in ("categorical_crossentropy", "mean_squared_error"):
        y_train, y_test = _one_hot(y_train), _one_hot(y_test)

    model.build(seed=config.seed)
    compile_from_config(model, config)
    progress = sys.stderr
    interactive = progress.isatty()
    started = time.perf_counter()
    run_ = train(model, x_train, y_train, batch_size=config.batch_size, epochs=config.epochs,
                 validation_split=config.validation_split, seed=config.seed)
    history: dict[str, list[float]] = {}
    epoch_seconds = []
    last_print = 0.0
    try:
        for report in run_:
            if isinstance(report, StepReport):
                now = time.perf_counter()
                if report.batch == 1:
                    progress.write(f"Epoch {report.epoch}/{report.epochs}\n")
                if interactive and (now - last_print > 0.1 or report.batch == report.batches):
                    progress.write("\r" + format_step(report))
                    progress.flush()
                    last_print = now
                elif not interactive and (now - last_print > 5.0 or report.batch == report.batches):
                    progress.write(format_step(report) + "\n")
                    last_print = now
            elif isinstance(report, EpochReport):
                epoch_seconds.append(report.seconds)
                for key, value in report.logs().items():
                    history.setdefault(key, []).append(value)
                line = f"{report.seconds:.1f}s - loss: {report.loss:.4f} - accuracy: {report.accuracy:.4f}"
                if report.val_loss is not None:
                    line += f" - val_loss: {report.val_loss:.4f} - val_accuracy: {report.val_accuracy:.4f}"
                progress.write(("\n" if interactive else "") + line + "\n")
                progress.flush()
    finally:
        run_.close()
    train_seconds = time.perf_counter() - started
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=256)
    if args.save:
        model.save(args.save)
    result = {"test_accuracy": test_accuracy, "test_loss": test_loss, "epochs": config.epochs,
              "seconds": round(train_seconds, 3), "seconds_per_epoch": [round(s, 3) for s in epoch_seconds],
              "history": history}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"test loss: {test_loss:.4f} - test accuracy: {test_accuracy:.4f} "
              f"({config.epochs} epoch{'s' if config.epochs != 1 else ''}, {train_seconds:.1f}s)")
        if args.save:
            print(f"saved to {args.save}")
    return 0


def _scale(images, input_shape):
    """uint8 MNIST -> float32 in [0, 1], shaped for the model's input."""
    import numpy as np

    x = images.astype(np.float32) / np.float32(255.0)
    return x.reshape((x.shape[0], *input_shape))


def _one_hot(labels):
    import numpy as np

    out = np.zeros((labels.shape[0], 10), np.float32)
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out
