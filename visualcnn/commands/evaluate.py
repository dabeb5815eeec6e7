"""`visualcnn evaluate SAVED [--data mnist|fashion_mnist|DIR] [--json]`: test a model saved by
`train --save` (or a Keras .keras / .h5 file with its weights, read by engine load_model) on
MNIST, or on the test images of the data set named (default: the file's "dataset" section).

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
    from .data_option import add_data_argument

    add_data_argument(parser, "evaluate")


def run(args) -> int:
    from ..engine import load_model
    from ..engine.datasets import load_mnist
    from ..engine.recipe import MNIST_INPUT_SHAPES, classifier_problem, prepare_labels, scale_images

    model = load_model(args.saved)
    if model.loss is None:
        from ..engine.model_io import compile_from_config
        from ..engine.training_config import TrainingConfig

        compile_from_config(model, TrainingConfig())
    spec = _data_spec(args)
    if spec.source != "mnist" or spec.path is not None:
        return _evaluate_on(model, spec, args)
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


def _data_spec(args):
    """--data, else the saved file's "dataset" section (train --save --data writes it), else MNIST."""
    from .data_option import resolve_spec

    sections = {}
    if args.data is None and not str(args.saved).endswith((".keras", ".h5")):
        from ..engine import load_model_file

        try:
            sections = load_model_file(args.saved).sections
        except (ValueError, OSError):
            sections = {}  # load_model already read it; a file without sections is MNIST
    return resolve_spec(args.data, sections, args.saved)


def _evaluate_on(model, spec, args) -> int:
    """The test images of another data set (Fashion-MNIST, a folder's held-out share)."""
    from ..engine.recipe import classifier_problem, dataset_facts, prepare_labels, scale_images
    from .data_option import load_for_cli, per_class_accuracy, per_class_line

    label, _, input_check = dataset_facts(spec)
    problem = input_check(tuple(model.input_shape))
    if problem:
        raise ValueError(f"cannot evaluate this model on {label}: {problem}")
    data = load_for_cli(spec, model.input_shape)
    problem = classifier_problem(model.checked_report(), data.num_classes, model.loss.name, label)
    if problem:
        raise ValueError(f"cannot evaluate this model on {label}: {problem}")
    x = scale_images(data.x_test, model.input_shape)
    y = prepare_labels(data.y_test, model.loss.name, data.num_classes)
    started = time.perf_counter()
    loss, accuracy = model.evaluate(x, y, batch_size=256)
    seconds = time.perf_counter() - started
    rows = per_class_accuracy(model, x, y, data.class_names)
    if args.json:
        print(json.dumps({"test_accuracy": accuracy, "test_loss": loss, "seconds": round(seconds, 3),
                          "dataset": data.description, "class_names": list(data.class_names),
                          "per_class_accuracy": {name: acc for name, acc, count in rows if count}}))
    else:
        print(f"test loss: {loss:.4f} - test accuracy: {accuracy:.4f} on {len(y):,} test images ({seconds:.1f}s)")
        print(per_class_line(rows))
    return 0
