"""`visualcnn evaluate SAVED [--json]`: test a model saved by `train --save` on MNIST."""

from __future__ import annotations

import json
import os
import sys
import time

if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def add_arguments(parser) -> None:
    parser.add_argument("saved", metavar="SAVED", help="a model file with weights (from 'visualcnn train --save')")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")


def run(args) -> int:
    from ..engine import load_model
    from ..engine.datasets import load_mnist
    from .train import _one_hot, _scale

    model = load_model(args.saved)
    if model.loss is None:
        from ..engine.model_io import compile_from_config
        from ..engine.training_config import TrainingConfig

        compile_from_config(model, TrainingConfig())
    if model.input_shape not in ((28, 28, 1), (28, 28), (784,)):
        raise ValueError(f"the model's input shape is {list(model.input_shape)}; MNIST images are 28x28x1")
    _, (x_test, y_test) = load_mnist()
    if model.loss.name in ("categorical_crossentropy", "mean_squared_error"):
        y_test = _one_hot(y_test)
    started = time.perf_counter()
    loss, accuracy = model.evaluate(_scale(x_test, model.input_shape), y_test, batch_size=256)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"test_accuracy": accuracy, "test_loss": loss, "seconds": round(seconds, 3)}))
    else:
        print(f"test loss: {loss:.4f} - test accuracy: {accuracy:.4f} ({seconds:.1f}s)")
    return 0
