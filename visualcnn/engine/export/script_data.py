"""Which data an exported training script reads: the project's "dataset" section
(engine/dataset_spec.py) turned into what the scripts need, or one clear line saying why
a script cannot read it (export refuses then: never a broken script).

    data = script_data(model, section)     # ScriptData; ExportError when inexpressible

The number of classes is the model's (its last layer's units), as the engine's recipe
trains it; a data set with more classes than the model has outputs is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..dataset_spec import DatasetSpec, dataset_classes, image_shape_for, input_problem
from ..datasets import FASHION_MNIST_DIR
from . import ExportError
from .script_parts import default_data_dir


@dataclass(frozen=True)
class ScriptData:
    source: str  # "mnist" | "fashion_mnist" | "folder"
    data_dir: str  # the scripts' --data default (absolute where this machine has it)
    class_names: tuple[str, ...]
    num_classes: int  # the model's outputs
    interpolation: str = "bilinear"  # folder only
    test_split: float = 0.2  # folder only
    seed: int = 1337  # folder only: which images are held out for testing
    image_shape: tuple[int, int, int] | None = None  # folder only: (height, width, channels)

    @property
    def label(self) -> str:
        return {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "folder": "an image folder"}[self.source]


def model_classes(model) -> int | None:
    """The model's output units (its last layer's output width), None when not a vector."""
    shape = model.analyse().rows[-1].output_shape if model.layers else None
    if not shape or len(shape) != 2 or shape[-1] is None:
        return None
    return int(shape[-1])


def script_data(model, section=None) -> ScriptData:
    """The section (None: MNIST) as the scripts read it; ExportError naming the problem.
    Without a section nothing is refused (as before data sets existed: a model that does not
    take MNIST still exports, its script says MNIST and the model's own class count)."""
    if not section:
        from ..datasets import MNIST_CLASS_NAMES

        return ScriptData("mnist", default_data_dir(), MNIST_CLASS_NAMES, model_classes(model) or 10)
    try:
        spec = DatasetSpec.from_dict(section) if section else DatasetSpec()
    except Exception as exc:  # ConfigError: the section itself is wrong
        raise ExportError(f"cannot export the training script: {exc}") from None
    problem = input_problem(spec, model.input_shape)
    if problem:
        raise ExportError(f"cannot export the training script: {problem}")
    classes = model_classes(model)
    if classes is None:
        raise ExportError("cannot export the training script: the model's output is not one score per class "
                          "(end the model with a Dense layer)")
    if spec.source == "folder":
        try:
            names = tuple(dataset_classes(spec))
        except Exception as exc:  # the folder is gone or unreadable: a script reading it would fail too
            raise ExportError(f"cannot export the training script: the image folder cannot be read ({exc})") from None
        data_dir = str(Path(spec.path).expanduser().resolve())
    elif spec.source == "fashion_mnist":
        from ..datasets import FASHION_CLASS_NAMES

        names = FASHION_CLASS_NAMES
        data_dir = str(Path(spec.path).expanduser().resolve()) if spec.path else str(FASHION_MNIST_DIR)
    else:
        from ..datasets import MNIST_CLASS_NAMES

        names = MNIST_CLASS_NAMES
        data_dir = default_data_dir()
    if len(names) > classes:
        raise ExportError(f"cannot export the training script: {spec.label} has {len(names)} classes but the model "
                          f"outputs {classes} scores: set the last Dense layer's units to {len(names)}")
    return ScriptData(spec.source, data_dir, tuple(names), classes, spec.interpolation, float(spec.test_split),
                      int(spec.seed), image_shape_for(model.input_shape) if spec.source == "folder" else None)


def training_image_count(section) -> int:
    """How many training images (before the validation split) the project's data set has:
    60,000 for MNIST and Fashion-MNIST; for a folder, its files less the test split taken
    per class as dataset_spec.stratified_split takes it (files counted, none decoded)."""
    spec = DatasetSpec.from_dict(section) if section else DatasetSpec()
    if spec.source != "folder":
        return 60_000
    from ..dataset_spec import _split_folders
    from ..image_folder import scan_image_folder

    root = Path(spec.path).expanduser()
    if _split_folders(root):
        return len(scan_image_folder(root / "train").files)
    total = 0
    for n in scan_image_folder(root).counts():
        n_test = min(max(int(round(n * spec.test_split)), 1), n - 1) if n >= 2 else 0
        total += n - n_test
    return total


__all__ = ["ScriptData", "script_data", "model_classes", "training_image_count"]
