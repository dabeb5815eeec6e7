"""`visualcnn evaluate SAVED [--json]`: test a model saved by `train --save` (or a Keras .keras /
.h5 file with its weights, read by engine load_model) on MNIST.

The MNIST checks, image scaling and label form come from engine.recipe, the one home of
the training recipe, so evaluation always matches how the model was trained.
"""

from __future__ import annotations

import json
import os
import sys
import time

if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def add_arguments(parser) -> None:
    parser.add_argument("saved", metavar="SAVED", help="a model file with weights: from 'visualcnn train --save', "
                        "or a Keras .keras or .h5 file")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")


def run(args) -> int:
    from ..engine import load_model
    from ..engine.datasets import load_mnist
    from ..engine.recipe import MNIST_INPUT_SHAPES, classifier_problem, prepare_labels, scale_images

    model = load_model(args.saved)
    if model.loss is None:
        from ..engine.model_io import compile_from_config
        from ..engine.training_config import TrainingConfig

        compile_from_config(model, TrainingConfig())
    if model.input_shape not in MNIST_INPUT_SHAPES:
        raise ValueError(f"the model's input shape is {list(model.input_shape)}; MNIST images are 28x28x1")
    problem = classifier_problem(model.checked_report(), loss=model.loss.name)
    if problem:
        raise ValueError(f"cannot evaluate this model on MNIST: {problem}")
    _, (x_test, y_test) = load_mnist()
    started = time.perf_counter()
    loss, accuracy = model.evaluate(scale_images(x_test, model.input_shape), prepare_labels(y_test, model.loss.name),
                                    batch_size=256)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"test_accuracy": accuracy, "test_loss": loss, "seconds": round(seconds, 3)}))
    else:
        print(f"test loss: {loss:.4f} - test accuracy: {accuracy:.4f} ({seconds:.1f}s)")
    return 0
