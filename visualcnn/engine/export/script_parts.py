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
           "one_hot_labels", "literal"]


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


def mnist_loader_source(fallback: str, fallback_name: str) -> str:
    """load_mnist(folder) and its helpers. fallback: an expression returning
    ((x_train, y_train), (x_test, y_test)) as uint8 arrays when the IDX files cannot be
    read (e.g. "keras.datasets.mnist.load_data()"); fallback_name names it in the message
    ("keras.datasets.mnist"). Imports: gzip, struct, sys, Path (pathlib), np (numpy)."""
    files = ",\n    ".join(f'"{name}"' for name in IDX_FILE_NAMES)
    return f'''\
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
    """Digits 0..9 as the loss wants them: integers (sparse losses) or one-hot float32
    rows (categorical cross-entropy, mean squared error)."""
    labels = np.asarray(labels).astype(np.int64)
    if not one_hot:
        return labels
    return np.eye(10, dtype=np.float32)[labels]


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


def training_steps(n, batch_size, epochs, validation_split):
    """Optimizer steps of the whole run (what a cosine schedule decays over): one per
    batch, the last batch of an epoch possibly smaller."""
    return math.ceil(train_count(n, validation_split) / batch_size) * epochs
'''


def recipe_source(training: TrainingConfig, input_shape: tuple) -> str:
    """The recipe as constants, each with a comment. Imports: none."""
    schedule = {"constant": "the learning rate stays the same throughout",
                "cosine": "cosine decay from LEARNING_RATE to 0 over all the run's steps"}[training.schedule]
    lines = [
        "# The training recipe, as VisualCNN ran it (the model's Train settings).",
        f"OPTIMIZER = {literal(training.optimizer)}",
        f"LEARNING_RATE = {literal(float(training.learning_rate))}",
        f"SCHEDULE = {literal(training.schedule)}  # {schedule}",
    ]
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
        f"INPUT_SHAPE = {literal(tuple(int(d) for d in input_shape))}  # one image as the model takes it",
        f"ONE_HOT_LABELS = {literal(one_hot_labels(training.loss))}  # labels as one-hot rows, not digits",
        "# MNIST's IDX files: VisualCNN's own copy on the machine that exported this script.",
        f"DATA_DIR = {literal(default_data_dir())}",
    ]
    return "\n".join(lines) + "\n"


def arguments_source() -> str:
    """add_recipe_arguments(parser): the options every exported training script takes,
    defaulting to the recipe's constants and DATA_DIR. Imports: none (the caller made
    parser with argparse)."""
    return '''\
def add_recipe_arguments(parser):
    """The options both VisualCNN training scripts take; defaults are the exported recipe."""
    parser.add_argument("--data", default=DATA_DIR, metavar="DIR",
                        help="folder with MNIST's IDX .gz files (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="passes over the training images (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help="images per optimizer step (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="use only the first N training and N test images (a quick check)")
    return parser
'''
