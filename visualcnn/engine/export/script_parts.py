"""Text both exported training scripts share: Keras's script (keras_code.py) and the
PyTorch folder's train.py (pytorch_folder.py) read MNIST, scale it and count steps the
same way, so the pieces are written once here and pasted into each script.

Each function returns Python source (no leading or trailing blank lines, ending in a
newline) that needs only the standard library and numpy, plus the names its docstring
lists as "imports". The text is deterministic: the same arguments give the same bytes.

    mnist_loader_source(fallback, fallback_name)
        defines MNIST_FILES, read_idx(path), load_mnist_idx(folder) and
        load_mnist(folder): the IDX .gz files in folder (VisualCNN's own copy by default),
        else the framework's downloader, else exit with one clear line.
    preprocess_source()
        defines prepare_images(images, input_shape) (x / 255 as float32, reshaped),
        prepare_labels(labels, one_hot), train_count(n, validation_split),
        split_validation(x, y, validation_split) and training_steps(...).
    recipe_source(training, input_shape)
        the recipe's settings as constants (OPTIMIZER, LEARNING_RATE, ..., INPUT_SHAPE,
        ONE_HOT_LABELS, DATA_DIR) with a comment each.
    arguments_source()
        defines add_recipe_arguments(parser): --data, --epochs, --batch-size, --seed,
        --limit with the constants as defaults.
    default_data_dir()
        the absolute path of VisualCNN's bundled MNIST folder (the scripts' --data default).

The engine's own rules they mirror: recipe.scale_images / prepare_labels (x / 255,
one-hot for the losses in recipe.ONE_HOT_LOSSES), training.split_index (validation is the
LAST fraction of the training images, as Keras's fit(validation_split=...) takes it).
"""

from __future__ import annotations

import json

from ..datasets import IDX_FILE_NAMES, mnist_dir
from ..recipe import ONE_HOT_LOSSES
from ..training_config import TrainingConfig

__all__ = ["default_data_dir", "mnist_loader_source", "preprocess_source", "recipe_source", "arguments_source",
           "one_hot_labels", "literal", "step_schedule_source", "folder_loader_source", "pil_folder_source"]


def literal(value) -> str:
    """A Python literal for a setting: repr() round-trips floats exactly and is stable;
    strings in double quotes (json's escaping is valid Python for any text)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple) and len(value) == 1:
        return f"({literal(value[0])},)"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    return repr(value)


def default_data_dir() -> str:
    """VisualCNN's bundled MNIST folder, absolute, as the scripts' --data default; "mnist"
    (a folder beside where the script runs) when this installation has no resources."""
    try:
        return str(mnist_dir().resolve())
    except FileNotFoundError:
        return "mnist"


def one_hot_labels(loss: str) -> bool:
    """Whether the loss wants one-hot labels (VisualCNN's recipe.prepare_labels)."""
    return loss in ONE_HOT_LOSSES


def mnist_loader_source(fallback: str, fallback_name: str, label: str = "MNIST") -> str:
    """load_mnist(folder) and its helpers. fallback: an expression returning
    ((x_train, y_train), (x_test, y_test)) as uint8 arrays when the IDX files cannot be
    read (e.g. "keras.datasets.mnist.load_data()"); fallback_name names it in the message
    ("keras.datasets.mnist"); label: "MNIST" or "Fashion-MNIST" (the same four file names).
    Imports: gzip, struct, sys, Path (pathlib), np (numpy)."""
    files = ",\n    ".join(f'"{name}"' for name in IDX_FILE_NAMES)
    text = f'''\
# MNIST's four files, in keras.datasets.mnist.load_data() order. The .gz files are what
# VisualCNN ships; unpacked copies (the same names without .gz) work too.
MNIST_FILES = (
    {files},
)


def read_idx(path):
    """One IDX file (the format MNIST is published in) as a uint8 array.

    Header: a big-endian int32 magic number (2051 = images, 2049 = labels; its low byte
    is the number of dimensions), then one int32 per dimension, then the bytes.
    Images come back (N, 28, 28) with 0 = background and 255 = ink, labels (N,).
    """
    data = Path(path).read_bytes()
    if data[:2] == b"\\x1f\\x8b":  # gzip's magic bytes
        data = gzip.decompress(data)
    (magic,) = struct.unpack(">i", data[:4])
    if magic not in (2049, 2051):
        raise ValueError(f"{{path}} is not an IDX file (magic number {{magic}}, expected 2049 or 2051)")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "i" * ndim, data[4:4 + 4 * ndim])
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(data) != expected:
        raise ValueError(f"{{path}} is damaged: {{len(data)}} bytes, the header says {{expected}}")
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist_idx(folder):
    """((x_train, y_train), (x_test, y_test)) from the IDX files in folder (uint8)."""
    folder = Path(folder)
    arrays = []
    for name in MNIST_FILES:
        path = folder / name
        if not path.exists() and (folder / name[:-3]).exists():
            path = folder / name[:-3]
        arrays.append(read_idx(path))
    x_train, y_train, x_test, y_test = arrays
    return (x_train, y_train), (x_test, y_test)


def load_mnist(folder):
    """MNIST from folder's IDX files, else from {fallback_name}'s download, else exit
    with one line saying what to do."""
    try:
        return load_mnist_idx(folder)
    except (OSError, ValueError) as exc:
        print(f"MNIST: cannot read the IDX files in {{folder}} ({{exc}}); "
              "downloading MNIST with {fallback_name} instead")
    try:
        return {fallback}
    except Exception as exc:  # no network, no download cache...
        sys.exit(f"MNIST: the download failed too ({{exc}}). Put the four files "
                 f"{{', '.join(MNIST_FILES)}} in a folder and pass it with --data FOLDER.")
'''
    if label == "MNIST":
        return text
    # Fashion-MNIST is published in MNIST's format, under the same four file names
    return (text.replace("MNIST's four files", f"{label}'s four files (MNIST's names)")
            .replace('print(f"MNIST:', f'print(f"{label}:').replace('sys.exit(f"MNIST:', f'sys.exit(f"{label}:')
            .replace("downloading MNIST", f"downloading {label}").replace('"""MNIST from', f'"""{label} from'))


def folder_loader_source() -> str:
    """class_files(folder) and split_test(labels): the image folder's files in VisualCNN's
    order (per class in CLASS_NAMES order, names sorted, files before sub-folders, hidden
    names skipped) and its stratified test split. Imports: os, Path (pathlib), np (numpy)."""
    return '''\
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def class_files(folder):
    """(paths, labels): every image file below each class folder, in VisualCNN's order."""
    paths, labels = [], []
    for label, name in enumerate(CLASS_NAMES):
        stack = [Path(folder) / name]
        if not stack[0].is_dir():
            sys.exit(f"{folder}: the class folder {name!r} is missing (the classes are {', '.join(CLASS_NAMES)})")
        while stack:
            entries = sorted(os.scandir(stack.pop()), key=lambda e: e.name)
            found = [Path(e.path) for e in entries if not e.name.startswith(".") and not e.is_dir()
                     and e.name.lower().endswith(IMAGE_SUFFIXES)]
            paths += found
            labels += [label] * len(found)
            stack += reversed([Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir()])
    return paths, np.array(labels, np.int64)


def has_own_test_set(folder):
    """A folder holding only train/ and test/ (each in the class layout) is its own split."""
    names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    return names == ["test", "train"]


def split_test(labels):
    """(train indices, test indices): TEST_SPLIT of each class held out (at least one of a
    class with two or more images), drawn with DATA_SEED: VisualCNN's stratified split."""
    rng = np.random.default_rng(DATA_SEED)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = int(round(len(members) * TEST_SPLIT))
        n_test = min(max(n_test, 1), len(members) - 1) if len(members) >= 2 else 0
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
'''


def pil_folder_source() -> str:
    """load_folder(folder) with Pillow (PyTorch's train.py: no torchvision needed), the
    images decoded and resized as VisualCNN does. Needs folder_loader_source(). Imports:
    sys, Path, np."""
    return '''\
def read_image(path):
    """One image as uint8 (height, width, channels), as VisualCNN reads it: alpha dropped,
    grey or RGB by INPUT_SHAPE's channels, resized with Pillow's INTERPOLATION filter."""
    try:
        from PIL import Image
    except ImportError:
        sys.exit("reading the image folder needs Pillow: pip install pillow")

    height, width, channels = (*INPUT_SHAPE[:2], INPUT_SHAPE[2] if len(INPUT_SHAPE) == 3 else 1)
    filters = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST,
               "bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX}
    with Image.open(path) as image:
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA").convert("RGB")
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):
            image = image.resize((width, height), resample=filters[INTERPOLATION])
        return np.asarray(image, dtype=np.uint8).reshape(height, width, channels)


def read_images(folder):
    """(images, labels) of one folder in the class layout; unreadable files are skipped and named."""
    paths, labels = class_files(folder)
    images, kept = [], []
    for path, label in zip(paths, labels):
        try:
            images.append(read_image(path))
            kept.append(label)
        except (OSError, ValueError) as exc:
            print(f"skipped {path}: {exc}")
    if not images:
        sys.exit(f"{folder}: no readable images in the class folders {', '.join(CLASS_NAMES)}")
    return np.stack(images), np.array(kept, np.int64)


def load_folder(folder):
    """((x_train, y_train), (x_test, y_test)) as uint8 images and class numbers."""
    if has_own_test_set(folder):
        return read_images(Path(folder) / "train"), read_images(Path(folder) / "test")
    x, y = read_images(folder)
    train, test = split_test(y)
    return (x[train], y[train]), (x[test], y[test])
'''


def preprocess_source() -> str:
    """prepare_images, prepare_labels, train_count, split_validation, training_steps.
    Imports: math, np (numpy)."""
    return '''\
def prepare_images(images, input_shape):
    """uint8 pixels -> float32 in [0, 1] (x / 255), shaped (N, *input_shape): what
    VisualCNN trains on."""
    x = images.astype(np.float32) / np.float32(255.0)
    return x.reshape((len(images), *input_shape))


def prepare_labels(labels, one_hot):
    """Class numbers as the loss wants them: integers (sparse losses) or one-hot float32
    rows of NUM_CLASSES (categorical cross-entropy, mean squared error)."""
    labels = np.asarray(labels).astype(np.int64)
    if not one_hot:
        return labels
    return np.eye(NUM_CLASSES, dtype=np.float32)[labels]


def train_count(n, validation_split):
    """How many of n images train; the rest, the LAST ones, validate (Keras's
    fit(validation_split=...) rule, taken before any shuffling)."""
    return int(n * (1.0 - validation_split)) if validation_split > 0 else n


def split_validation(x, y, validation_split):
    """(x_train, y_train), (x_val, y_val): the last fraction validates; None when 0."""
    n = train_count(len(x), validation_split)
    if n == len(x):
        return (x, y), None
    return (x[:n], y[:n]), (x[n:], y[n:])


def steps_per_epoch(n, batch_size, validation_split):
    """Optimizer steps in one epoch: one per batch, the last batch possibly smaller."""
    return math.ceil(train_count(n, validation_split) / batch_size)


def training_steps(n, batch_size, epochs, validation_split):
    """Optimizer steps of the whole run (what a cosine schedule decays over)."""
    return steps_per_epoch(n, batch_size, validation_split) * epochs
'''


_SCHEDULE_WORDS = {
    "constant": "the learning rate stays the same throughout",
    "cosine": "cosine decay from LEARNING_RATE to 0 over all the run's steps",
    "step": "times DECAY_RATE at the start of every DECAY_EPOCHS-th epoch, at once",
    "exponential": "times DECAY_RATE every DECAY_EPOCHS epochs, a little at every step",
}


def recipe_source(training: TrainingConfig, input_shape: tuple, data=None) -> str:
    """The recipe as constants, each with a comment. data: script_data.ScriptData (None:
    MNIST with 10 classes). Imports: none."""
    if data is None:
        from .script_data import ScriptData

        data = ScriptData("mnist", default_data_dir(), tuple(str(d) for d in range(10)), 10)
    lines = [
        "# The training recipe, as VisualCNN ran it (the model's Train settings).",
        f"OPTIMIZER = {literal(training.optimizer)}",
        f"LEARNING_RATE = {literal(float(training.learning_rate))}",
        f"SCHEDULE = {literal(training.schedule)}  # {_SCHEDULE_WORDS[training.schedule]}",
    ]
    if training.schedule in ("step", "exponential"):
        lines += [f"DECAY_RATE = {literal(float(training.decay_rate))}",
                  f"DECAY_EPOCHS = {literal(int(training.decay_epochs))}"]
    if training.optimizer == "sgd":
        lines += [f"MOMENTUM = {literal(float(training.momentum))}",
                  f"NESTEROV = {literal(bool(training.nesterov))}"]
    lines += [
        f"LOSS = {literal(training.loss)}",
        f"BATCH_SIZE = {literal(int(training.batch_size))}",
        f"EPOCHS = {literal(int(training.epochs))}",
        f"VALIDATION_SPLIT = {literal(float(training.validation_split))}"
        "  # the LAST fraction of the training images validates",
        f"SEED = {literal(int(training.seed))}  # weights, shuffling and dropout",
    ]
    if training.early_stopping or training.reduce_lr_on_plateau:
        lines += ["# Callbacks (Keras's EarlyStopping / ReduceLROnPlateau), watching MONITOR after every epoch.",
                  f"MONITOR = {literal(training.monitor)}"]
    if training.early_stopping:
        lines += [f"EARLY_STOPPING_PATIENCE = {literal(int(training.patience))}"
                  "  # stop after this many epochs without improvement",
                  f"RESTORE_BEST_WEIGHTS = {literal(bool(training.restore_best_weights))}"
                  "  # end with the best epoch's weights"]
    if training.reduce_lr_on_plateau:
        lines += [f"REDUCE_LR_FACTOR = {literal(float(training.reduce_lr_factor))}  # the rate is multiplied by this",
                  f"REDUCE_LR_PATIENCE = {literal(int(training.reduce_lr_patience))}"
                  "  # ... after this many epochs without improvement",
                  f"MIN_LR = {literal(float(training.min_lr))}  # never below this"]
    lines += [
        f"INPUT_SHAPE = {literal(tuple(int(d) for d in input_shape))}  # one image as the model takes it",
        f"NUM_CLASSES = {literal(int(data.num_classes))}  # the model's outputs",
        f"CLASS_NAMES = {literal(list(data.class_names))}",
        f"ONE_HOT_LABELS = {literal(one_hot_labels(training.loss))}  # labels as one-hot rows, not class numbers",
    ]
    if data.source == "folder":
        lines += [
            "# The image folder (one sub-folder per class, named as in CLASS_NAMES), on the machine",
            "# that exported this script. TEST_SPLIT of each class is held out for testing, drawn",
            "# with DATA_SEED (VisualCNN's rule), unless the folder holds train/ and test/ folders.",
            f"DATA_DIR = {literal(data.data_dir)}",
            f"TEST_SPLIT = {literal(float(data.test_split))}",
            f"DATA_SEED = {literal(int(data.seed))}",
            f"INTERPOLATION = {literal(data.interpolation)}  # how images are resized to INPUT_SHAPE",
        ]
    else:
        what = "MNIST's IDX files: VisualCNN's own copy" if data.source == "mnist" else "Fashion-MNIST's IDX files"
        lines += [f"# {what} on the machine that exported this script.", f"DATA_DIR = {literal(data.data_dir)}"]
    return "\n".join(lines) + "\n"


def step_schedule_source() -> str:
    """step_schedule(steps_per_epoch, total_steps) -> (boundaries, values): Keras's
    PiecewiseConstantDecay arguments for the "step" schedule. Imports: np (numpy)."""
    return '''\
def step_schedule(steps_per_epoch, total_steps):
    """The "step" schedule as keras.optimizers.schedules.PiecewiseConstantDecay's
    (boundaries, values), VisualCNN's rule: the rate is LEARNING_RATE * DECAY_RATE**k in
    the k-th period of DECAY_EPOCHS epochs. A boundary is the LAST step of a period
    (Keras's rule: step <= boundary keeps the value before it). float32, as Keras computes."""
    period = max(1, DECAY_EPOCHS * steps_per_epoch)
    drops = max(0, (max(1, total_steps) - 1) // period)
    boundaries = [k * period - 1 for k in range(1, drops + 1)]
    values = [float(np.float32(LEARNING_RATE) * np.power(np.float32(DECAY_RATE), np.float32(k)))
              for k in range(drops + 1)]
    return boundaries, values
'''


def arguments_source() -> str:
    """add_recipe_arguments(parser): the options every exported training script takes,
    defaulting to the recipe's constants and DATA_DIR. Imports: none (the caller made
    parser with argparse)."""
    return '''\
def add_recipe_arguments(parser):
    """The options both VisualCNN training scripts take; defaults are the exported recipe."""
    parser.add_argument("--data", default=DATA_DIR, metavar="DIR",
                        help="the training data: the IDX files' folder, or the image folder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="passes over the training images (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help="images per optimizer step (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use only the first N training and N test images (a quick check)")
    return parser
'''
