"""Which data a project trains on: the project's "dataset" section, and loading it for a
model's input.

The section (engine/project_sections.py lists the sections), written only when not MNIST:

    {"source": "mnist"}                                     the bundled MNIST (the default)
    {"source": "fashion_mnist"}                             Debian's dataset-fashion-mnist package
    {"source": "fashion_mnist", "path": "/data/fashion"}    a folder holding its four .gz files
    {"source": "folder", "path": "/data/shapes",            image_dataset_from_directory's layout
     "test_split": 0.2, "interpolation": "bilinear", "seed": 1337}

A folder has no separate test set: test_split of each class's images (stratified, drawn
with seed) are held out as the test images; the training settings' validation_split still
holds out validation images from the rest. A folder whose only sub-folders are "train" and
"test" (each in the class layout) is read as those two sets instead.

    spec = DatasetSpec.from_dict(section)            # or spec_from_argument("DIR") for --data
    problem = input_problem(spec, model.input_shape)  # None, or what to change (no decoding)
    data = load_dataset_for(spec, model.input_shape)  # Dataset: x_train ... class_names, report
    prepare_run(model, config, data)                  # the recipe takes num_classes from it
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .datasets import (FASHION_CLASS_NAMES, FASHION_MNIST_DIR, IDX_FILE_NAMES, MNIST_CLASS_NAMES, MNIST_SHA256,
                       DatasetError, load_fashion_mnist, load_mnist)
from .image_folder import (DEFAULT_INTERPOLATION, INTERPOLATIONS, FolderReport, LoadCancelled, Skipped,
                           read_image_folder, scan_image_folder)
from .layers import ConfigError

SOURCES = ("mnist", "fashion_mnist", "folder")
SOURCE_LABELS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "folder": "image folder"}
MNIST_INPUT_SHAPES = ((28, 28, 1), (28, 28), (784,))  # the same as recipe.MNIST_INPUT_SHAPES
DEFAULT_TEST_SPLIT = 0.2
DEFAULT_SEED = 1337
SPLIT_FOLDERS = ("test", "train")  # a folder holding exactly these is read as its own two sets


@dataclass(frozen=True)
class DatasetSpec:
    """One data set choice. path: None for the bundled MNIST and the Debian Fashion-MNIST."""

    source: str = "mnist"
    path: str | None = None
    test_split: float = DEFAULT_TEST_SPLIT  # folder only
    interpolation: str = DEFAULT_INTERPOLATION  # folder only
    seed: int = DEFAULT_SEED  # folder only: which images are held out

    @classmethod
    def from_dict(cls, data) -> "DatasetSpec":
        """The section as a spec; ConfigError (one line) for anything it cannot mean."""
        if isinstance(data, DatasetSpec):
            return data
        if not isinstance(data, dict):
            raise ConfigError(f'"dataset" must be an object, received {type(data).__name__}')
        known = ("source", "path", "test_split", "interpolation", "seed")
        for key in data:
            if key == "validation_split":
                raise ConfigError('dataset: "validation_split" is a training setting (images held out to watch '
                                  'overfitting); the share of a folder held out for testing is "test_split"')
            if key not in known:
                raise ConfigError(f"dataset: unknown key {key!r}; known keys: {', '.join(known)}")
        source = data.get("source", "mnist")
        source = source.strip().lower().replace("-", "_") if isinstance(source, str) else source
        if source not in SOURCES:
            raise ConfigError(f"dataset: source must be one of {', '.join(SOURCES)}, received {data.get('source')!r}")
        path = data.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise ConfigError(f"dataset: path must be a folder name, received {path!r}")
        if source == "folder" and path is None:
            raise ConfigError('dataset: source "folder" needs "path": the folder with one sub-folder per class')
        test_split = data.get("test_split", DEFAULT_TEST_SPLIT)
        if (isinstance(test_split, bool) or not isinstance(test_split, (int, float))
                or not 0.0 < float(test_split) <= 0.9):
            raise ConfigError("dataset: test_split must be a fraction above 0 and at most 0.9, "
                              f"received {test_split!r}")
        interpolation = data.get("interpolation", DEFAULT_INTERPOLATION)
        if interpolation not in INTERPOLATIONS:
            raise ConfigError(f"dataset: interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                              f"received {interpolation!r}")
        seed = data.get("seed", DEFAULT_SEED)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ConfigError(f"dataset: seed must be a whole number from 0 to 4294967295, received {seed!r}")
        return cls(source, path, float(test_split), interpolation, seed)

    def to_dict(self) -> dict:
        """The section as written: the folder settings only for a folder, defaults left out."""
        out: dict = {"source": self.source}
        if self.path is not None:
            out["path"] = self.path
        if self.source == "folder":
            if self.test_split != DEFAULT_TEST_SPLIT:
                out["test_split"] = self.test_split
            if self.interpolation != DEFAULT_INTERPOLATION:
                out["interpolation"] = self.interpolation
            if self.seed != DEFAULT_SEED:
                out["seed"] = self.seed
        return out

    @property
    def label(self) -> str:
        """How the data set is named in messages: MNIST, Fashion-MNIST, the folder 'shapes'."""
        if self.source == "folder":
            return f"the folder '{Path(self.path).name or self.path}'"
        return SOURCE_LABELS[self.source]


def spec_for_project(section, project_path=None) -> DatasetSpec:
    """The section of a project file as a spec, a relative path taken relative to the
    project file's folder (a project and its images can move together). No section: MNIST."""
    import dataclasses

    if not section:
        return DatasetSpec()
    spec = DatasetSpec.from_dict(section)
    if spec.path and project_path and not os.path.isabs(os.path.expanduser(spec.path)):
        base = os.path.dirname(os.path.abspath(project_path))
        spec = dataclasses.replace(spec, path=os.path.join(base, spec.path))
    return spec


def check_dataset_section(value):
    """The section as this module keeps it (normalised), or ConfigError with one line."""
    return DatasetSpec.from_dict(value).to_dict()


def spec_from_argument(text: str) -> DatasetSpec:
    """`--data mnist|fashion_mnist|DIR`: a name, a folder of the four IDX files (read as
    Fashion-MNIST, or as MNIST when its labels are MNIST's), or an image folder."""
    key = text.strip().lower().replace("-", "_")
    if key in ("mnist", "fashion_mnist"):
        return DatasetSpec(key)
    folder = Path(text).expanduser()
    if not folder.exists():
        raise DatasetError(f"--data {text}: not a data set name (mnist, fashion_mnist) nor an existing folder")
    if _holds_idx_files(folder):
        return DatasetSpec(_idx_source(folder), str(folder.resolve()))
    return DatasetSpec("folder", str(folder.resolve()))


def _holds_idx_files(folder: Path) -> bool:
    from .datasets import idx_path

    return folder.is_dir() and all(idx_path(folder, name).is_file() for name in IDX_FILE_NAMES)


def _idx_source(folder: Path) -> str:
    """MNIST when its test labels are MNIST's (by checksum: 10 KB), else Fashion-MNIST."""
    from .datasets import idx_path, read_idx

    try:
        labels = read_idx(idx_path(folder, IDX_FILE_NAMES[3]))
    except DatasetError:
        return "fashion_mnist"  # the load reports the damage properly
    import struct

    digest = hashlib.sha256(struct.pack(">ii", 2049, len(labels)) + labels.tobytes()).hexdigest()
    return "mnist" if digest == MNIST_SHA256["t10k-labels-idx1-ubyte"] else "fashion_mnist"


# ---------------------------------------------------------------------------------
# What a model's input needs


def image_shape_for(input_shape) -> tuple[int, int, int] | None:
    """(height, width, channels) an image must have for this model input, or None when
    the input is not an image (a flat vector): (H, W) is grayscale (H, W, 1)."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 2 and min(shape) > 0:
        return (shape[0], shape[1], 1)
    if len(shape) == 3 and shape[2] in (1, 3) and min(shape) > 0:
        return shape
    return None


def input_problem(spec, input_shape) -> str | None:
    """Why a model with this input cannot train on the data set, or None. Decodes nothing."""
    spec = DatasetSpec.from_dict(spec) if not isinstance(spec, DatasetSpec) else spec
    shape = tuple(int(v) for v in input_shape)
    text = "x".join(str(d) for d in shape)
    if spec.source != "folder":
        if shape in MNIST_INPUT_SHAPES:
            return None
        return (f"the model's input is {text}, but {spec.label} images are 28x28 grey: "
                "set the input shape to [28, 28, 1]")
    if image_shape_for(shape) is None:
        return (f"the model's input is {text}, but an image folder needs an image input: set the input shape to "
                "[height, width, 1] for grayscale or [height, width, 3] for colour")
    return None


# ---------------------------------------------------------------------------------
# Loaded data


@dataclass
class Dataset:
    """A data set loaded for one model input. x_*: uint8, 0..255: (N, 28, 28) for MNIST and
    Fashion-MNIST, (N, height, width, channels) for a folder (already resized);
    y_*: class indices. The recipe's scale_images turns x into the model's floats."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    description: str  # one line: what was loaded, for the run history and the status bar
    spec: DatasetSpec = field(default_factory=DatasetSpec)
    report: FolderReport | None = None  # a folder's read and skipped files
    test_report: FolderReport | None = None  # a train/test folder's test half

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def label(self) -> str:
        return self.spec.label

    def input_problem(self, input_shape) -> str | None:
        """Why a model with this input cannot train on these images, or None."""
        problem = input_problem(self.spec, input_shape)
        if problem or self.spec.source != "folder":
            return problem
        wanted = image_shape_for(input_shape)
        have = tuple(self.x_train.shape[1:])
        if wanted != have:
            return (f"the data were read as {'x'.join(map(str, have))} images but the model's input is "
                    f"{'x'.join(map(str, input_shape))}: load the data set again for this input")
        return None

    def lines(self) -> list[str]:
        """The description, then the folder report: counts per class, each skipped file."""
        out = [self.description]
        if self.report is not None:
            out += self.report.lines()
        if self.test_report is not None:
            out += ["test " + line if i == 0 else line for i, line in enumerate(self.test_report.lines())]
        return out


def load_dataset_for(spec, input_shape, *, progress: Callable[[int, int], object] | None = None,
                     available: int | None = None) -> Dataset:
    """The data set of spec (a DatasetSpec or the section's dict), ready for a model with
    input_shape. Raises DatasetError / ConfigError (ValueError) with one line, or
    LoadCancelled when progress(done, total) returned False. A folder is read once per
    process while its files are unchanged (same names, sizes and times)."""
    spec = DatasetSpec.from_dict(spec)
    problem = input_problem(spec, input_shape)
    if problem:
        raise DatasetError(problem)
    if spec.source == "mnist":
        (x, y), (xt, yt) = load_mnist(spec.path)
        where = "bundled" if spec.path is None else spec.path
        return Dataset(x, y, xt, yt, MNIST_CLASS_NAMES,
                       f"MNIST ({where}): {len(x):,} training and {len(xt):,} test images, 28x28 grey, 10 digits",
                       spec)
    if spec.source == "fashion_mnist":
        (x, y), (xt, yt) = _fashion(spec.path)
        where = spec.path or str(FASHION_MNIST_DIR)
        return Dataset(x, y, xt, yt, FASHION_CLASS_NAMES,
                       f"Fashion-MNIST ({where}): {len(x):,} training and {len(xt):,} test images, 28x28 grey, "
                       "10 classes", spec)
    return _load_folder(spec, image_shape_for(input_shape), progress, available)


def _fashion(path):
    files = ", ".join(IDX_FILE_NAMES)
    if path is None and not FASHION_MNIST_DIR.is_dir():
        raise DatasetError(f"Fashion-MNIST is not installed ({FASHION_MNIST_DIR} is missing): install the Debian "
                           f"package dataset-fashion-mnist, or use a folder holding its four files ({files})")
    try:
        return load_fashion_mnist(path)
    except DatasetError as exc:
        if path is not None:
            raise  # the folder's own files: the message names the file and the damage
        raise DatasetError(f"{exc}; or use a folder holding Fashion-MNIST's four files ({files})") from None


# One folder kept decoded: training again, or the browser after a run, costs nothing.
_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def _load_folder(spec: DatasetSpec, image_shape, progress, available) -> Dataset:
    root = Path(spec.path).expanduser()
    halves = _split_folders(root)
    if halves is not None:
        scans = [scan_image_folder(root / name) for name in ("train", "test")]
        if scans[0].class_names != scans[1].class_names:
            raise DatasetError(f"{root}: train has classes {', '.join(scans[0].class_names)} but test has "
                               f"{', '.join(scans[1].class_names)}: give both the same class folders")
    else:
        scans = [scan_image_folder(root)]
    key = (str(root.resolve()), image_shape, spec.interpolation, spec.test_split, spec.seed,
           tuple(_signature(s) for s in scans))
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    if len(scans) == 2:
        total = len(scans[0].files) + len(scans[1].files)
        done_train = len(scans[0].files)
        from .image_folder import memory_refusal

        refusal = memory_refusal(total, image_shape, str(root), available)
        if refusal:
            raise DatasetError(refusal)
        train = read_image_folder(scans[0], image_shape, spec.interpolation, available=available,
                                  progress=_offset(progress, 0, total))
        test = read_image_folder(scans[1], image_shape, spec.interpolation, available=available,
                                 progress=_offset(progress, done_train, total))
        if train.class_names != test.class_names:
            raise DatasetError(f"{root}: after skipping unreadable files, train has classes "
                               f"{', '.join(train.class_names)} but test has {', '.join(test.class_names)}")
        data = Dataset(train.x, train.y, test.x, test.y, train.class_names,
                       _folder_description(root, train.x, test.x, train.class_names, image_shape, spec),
                       spec, train.report, test.report)
    else:
        images = read_image_folder(scans[0], image_shape, spec.interpolation, progress=progress, available=available)
        train_idx, test_idx = stratified_split(images.y, spec.test_split, spec.seed)
        data = Dataset(images.x[train_idx], images.y[train_idx], images.x[test_idx], images.y[test_idx],
                       images.class_names,
                       _folder_description(root, train_idx, test_idx, images.class_names, image_shape, spec),
                       spec, images.report)
    with _CACHE_LOCK:
        _CACHE.clear()  # one folder at a time: a second would double the memory
        _CACHE[key] = data
    return data


def _offset(progress, start: int, total: int):
    if progress is None:
        return None
    return lambda done, _total: progress(start + done, total)


def _split_folders(root: Path) -> bool | None:
    """True when the folder's only sub-folders are train and test (its own two sets)."""
    try:
        names = sorted(e.name for e in os.scandir(root) if not e.name.startswith(".") and e.is_dir())
    except OSError:
        return None  # scan_image_folder reports it
    return True if tuple(names) == SPLIT_FOLDERS else None


def _signature(scan) -> str:
    """Names, sizes and modification times of the files: a changed folder is read again."""
    digest = hashlib.sha256()
    for path, label in scan.files:
        try:
            st = os.stat(path)
            digest.update(f"{path}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0gone\n".encode())
    return digest.hexdigest()


def _folder_description(root, train, test, names, image_shape, spec) -> str:
    h, w, c = image_shape
    colour = "RGB" if c == 3 else "grey"
    return (f"folder {root}: {len(train):,} training and {len(test):,} test images, {h}x{w} {colour} "
            f"({spec.interpolation}), {len(names)} classes")


def stratified_split(labels: np.ndarray, test_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): test_split of each class, drawn with seed, held out
    (at least one image of every class with two or more, so each class is tested). Both
    keep a shuffled order, so limit=N takes from every class."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(members) * test_split))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        else:
            n_test = 0
        test.append(members[:n_test])
        train.append(members[n_test:])
    train_idx = rng.permutation(np.concatenate(train))
    test_idx = rng.permutation(np.concatenate(test))
    return train_idx, test_idx


def dataset_classes(spec) -> tuple[str, ...]:
    """The class names without decoding an image (a folder is scanned: file names only)."""
    spec = DatasetSpec.from_dict(spec)
    if spec.source == "mnist":
        return MNIST_CLASS_NAMES
    if spec.source == "fashion_mnist":
        return FASHION_CLASS_NAMES
    root = Path(spec.path).expanduser()
    folder = root / "train" if _split_folders(root) else root
    key = _folder_key(folder)
    if key is not None and key in _CLASSES:
        return _CLASSES[key]
    names = scan_image_folder(folder).class_names
    if key is not None:
        _CLASSES.clear()
        _CLASSES[key] = names
    return names


# The Build tab asks on every edit: a folder's classes are scanned again only when the
# folder or one of its class folders changed (their modification times).
_CLASSES: dict = {}


def _folder_key(folder: Path):
    try:
        stamps = [(folder.name, os.stat(folder).st_mtime_ns)]
        for entry in os.scandir(folder):
            if entry.is_dir():
                stamps.append((entry.name, entry.stat().st_mtime_ns))
    except OSError:
        return None
    return str(folder.resolve()), tuple(sorted(stamps))


__all__ = ["DatasetSpec", "Dataset", "check_dataset_section", "spec_from_argument", "spec_for_project",
           "load_dataset_for",
           "input_problem", "image_shape_for", "dataset_classes", "stratified_split", "LoadCancelled", "Skipped",
           "SOURCES", "SOURCE_LABELS"]
