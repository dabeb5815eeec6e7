"""The arrays the window trains on, for any dataset spec (the project's "dataset" section).

MNIST and Fashion-MNIST come from train_tab.dataset_arrays (loaded and scaled once per
process); an image folder is read by the engine (dataset_spec.load_dataset_for, which
resizes to the model's input and reports what it read and skipped) and kept here: the
newest folder only, keyed by the spec and the input shape it was read for, since the
same folder read for a 32x32x3 model is a different set of arrays than for 28x28x1.

    data = load_arrays({"source": "folder", "path": "shapes"}, (32, 32, 3))   # any thread
    data.class_names, data.report_text, data.test_images (uint8 thumbnails)
    cached_arrays(spec, input_shape)   # the same object, or None if not loaded yet
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import numpy as np

from .dataset_picker import MNIST_SPEC, spec_source


@dataclass(frozen=True)
class FolderArrays:
    """An image folder's data in the form the Train tab's DatasetArrays has (x float32 in
    [0, 1] with a channel axis, y int labels, uint8 test images for thumbnails)."""

    x_train: np.ndarray  # (N, H, W, C)
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_images: np.ndarray  # (N, H, W) grey or (N, H, W, 3) colour, uint8
    class_names: tuple
    report_text: str = ""  # what the engine read and skipped
    skipped: tuple = field(default=())  # one line per skipped file
    report_lines: tuple = field(default=())  # the engine's full report: summary, counts, skips


_FOLDER: dict[str, FolderArrays] = {}
_LOCK = threading.Lock()


def bundled(spec: dict | None) -> bool:
    """MNIST or Debian's Fashion-MNIST: the Train tab's own cache (train_tab.dataset_arrays)."""
    spec = spec or MNIST_SPEC
    return spec_source(spec) != "folder" and not spec.get("path")


def dataset_key(spec: dict | None, input_shape) -> str:
    """What identifies a loaded dataset: the source for the bundled sets (always 28x28x1),
    the spec and the input shape for a folder."""
    spec = spec or MNIST_SPEC
    if bundled(spec):
        return spec_source(spec)
    return json.dumps([spec, list(input_shape or ())], sort_keys=True)


def needs_input_shape(spec: dict | None) -> bool:
    """Read by the engine for the model's input (an image folder) and only off the GUI thread."""
    return not bundled(spec)


def cached_arrays(spec: dict | None, input_shape=None):
    """The loaded arrays for this spec (and input shape, for a folder), or None."""
    if bundled(spec):
        from .train_tab import dataset_arrays_cached

        return dataset_arrays_cached(spec_source(spec))
    return _FOLDER.get(dataset_key(spec, input_shape))


def load_arrays(spec: dict | None, input_shape=None):
    """The arrays for this spec, loaded once; ValueError / OSError with one line when the data
    cannot be read (a bad folder, too little memory, a damaged MNIST file)."""
    if bundled(spec):
        from .train_tab import dataset_arrays

        return dataset_arrays(spec_source(spec))
    if spec_source(spec) != "folder":
        input_shape = (28, 28, 1)  # Fashion-MNIST's four files in a folder of one's own
    key = dataset_key(spec, input_shape)
    with _LOCK:
        data = _FOLDER.get(key)
        if data is None:
            _FOLDER.clear()  # one folder at a time: the last one's arrays go before these are read
            data = _FOLDER[key] = folder_arrays(spec, tuple(input_shape))
        return data


def folder_arrays(spec: dict, input_shape: tuple) -> FolderArrays:
    """Read an image folder with the engine and scale it like MNIST."""
    from ..engine.dataset_spec import load_dataset_for

    dataset = load_dataset_for(spec, input_shape)
    x_train, x_test = as_unit_floats(dataset.x_train), as_unit_floats(dataset.x_test)
    if x_train.ndim == 3:  # (N, 28, 28) IDX files: the channel axis the window's models take
        x_train, x_test = x_train[..., None], x_test[..., None]
    thumbs = as_uint8(dataset.x_test)
    if thumbs.ndim == 4 and thumbs.shape[-1] == 1:
        thumbs = thumbs[..., 0]
    return FolderArrays(x_train, np.asarray(dataset.y_train, np.int64), x_test, np.asarray(dataset.y_test, np.int64),
                        thumbs, tuple(str(n) for n in dataset.class_names), report_text(dataset),
                        tuple(skipped_lines(dataset)), tuple(report_lines(dataset)))


def as_unit_floats(images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype == np.uint8:
        out = images.astype(np.float32)
        np.divide(out, np.float32(255), out=out)
        return out
    return images.astype(np.float32, copy=False)


def as_uint8(images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return (np.clip(images, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def report_text(dataset) -> str:
    """The engine's report of what it read, as one short paragraph."""
    description = getattr(dataset, "description", "")
    if description:
        skipped = skipped_lines(dataset)
        return str(description) + (f"; {len(skipped)} file(s) skipped (Browse… lists them)" if skipped else "")
    report = getattr(dataset, "report", None)
    if report is not None:
        summary = getattr(report, "summary", None)
        text = summary() if callable(summary) else summary
        if text:
            return str(text)
        lines = getattr(report, "lines", None)
        if callable(lines):
            lines = lines()
        if lines:
            return "\n".join(str(line) for line in lines)
        return str(report)
    return str(getattr(dataset, "description", "") or "")


def report_lines(dataset) -> list[str]:
    lines = getattr(dataset, "lines", None)  # engine.dataset_spec.Dataset: description, counts, skips
    if callable(lines):
        return [str(line) for line in lines()]
    report = getattr(dataset, "report", None)
    lines = getattr(report, "lines", None)
    return [str(line) for line in (lines() if callable(lines) else lines or ())]


def skipped_lines(dataset) -> list[str]:
    report = getattr(dataset, "report", None)
    skipped = getattr(report, "skipped", None) if report is not None else None
    if not skipped:
        return []
    out = []
    for entry in skipped:
        if callable(getattr(entry, "line", None)):  # engine.image_folder.Skipped
            out.append(entry.line())
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            out.append(f"{entry[0]}: {entry[1]}")
        else:
            out.append(str(entry))
    return out


def arrays_summary(data) -> str:
    """One line: "1,600 training and 400 test images, 10 classes, 32x32 colour"."""
    shape = data.x_train.shape[1:]
    colour = "colour" if shape[-1] == 3 else "grey"
    return (f"{len(data.y_train):,} training and {len(data.y_test):,} test images, {len(data.class_names)} "
            f"classes, {shape[0]}x{shape[1]} {colour}")


def class_counts(labels, classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels, np.int64), minlength=classes)[:classes]


@dataclass(frozen=True)
class DatasetFacts:
    """What the engine's readiness check needs of the chosen data (recipe.dataset_facts reads
    label, class_names and input_problem), without reading an image: the class names come
    from the loaded data or a scan of the folder's names, made once per spec."""

    label: str
    class_names: tuple
    problem: str | None = None  # the folder cannot be scanned: this is the reason

    def input_problem(self, input_shape) -> str | None:
        if self.problem:
            return self.problem
        from ..engine.dataset_spec import input_problem

        return input_problem(self.spec_dict, input_shape)

    spec_dict: dict = field(default_factory=dict)


_FACTS: dict[str, DatasetFacts] = {}


def readiness_dataset(spec: dict | None, loaded=None):
    """What to pass as recipe.readiness_problem(..., dataset=): None for MNIST, else facts
    about the chosen data (a folder is scanned once, not at every edit of the pipeline)."""
    spec = spec or MNIST_SPEC
    if spec_source(spec) == "mnist" and not spec.get("path"):
        return None
    key = json.dumps(spec, sort_keys=True)
    facts = _FACTS.get(key)
    if facts is None or (loaded is not None and tuple(loaded.class_names) != facts.class_names):
        from ..engine.dataset_spec import DatasetSpec, dataset_classes

        try:
            parsed = DatasetSpec.from_dict(spec)
            names = tuple(loaded.class_names) if loaded is not None else tuple(dataset_classes(parsed))
            facts = DatasetFacts(parsed.label, names, None, dict(spec))
        except (ValueError, OSError) as exc:
            facts = DatasetFacts("the dataset", (), str(exc), dict(spec))
        _FACTS.clear()
        _FACTS[key] = facts
    return facts


def forget_facts() -> None:
    """Scan the folder again at the next check (the user picked it again: it may have changed)."""
    _FACTS.clear()
