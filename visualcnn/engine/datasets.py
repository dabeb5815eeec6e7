"""MNIST and Fashion-MNIST: reading the IDX files, verifying them, caching them.

MNIST ships with the app (``resources/mnist``, see its README for checksums and the
CC BY-SA 3.0 attribution). Fashion-MNIST is optional: it is read from Debian's
``dataset-fashion-mnist`` package when that is installed.

Arrays come back shaped like ``keras.datasets.mnist.load_data()``::

    (x_train, y_train), (x_test, y_test)
    x_*: uint8 (N, 28, 28), 0 = background, 255 = ink;  y_*: uint8 (N,), 0..9

Decoding the gzip files and hashing ~55 MB takes a few hundred milliseconds, so the
decoded arrays are kept in one uncompressed ``.npz`` in the user cache directory
(``platformdirs.user_cache_dir("visualcnn")``; the environment variable
``VISUALCNN_CACHE_DIR`` overrides it, and an empty value turns caching off).
The cache is an optimisation only: a cache file that cannot be read is rebuilt, and a
cache directory that cannot be written just means no cache.

Every problem with the data itself raises :class:`DatasetError` (a ValueError) whose
message names the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "DatasetError",
    "DATASET_NAMES",
    "MNIST_CLASS_NAMES",
    "FASHION_CLASS_NAMES",
    "MNIST_SHA256",
    "FASHION_MNIST_DIR",
    "IDX_FILE_NAMES",
    "parse_idx",
    "read_idx",
    "load_mnist",
    "load_fashion_mnist",
    "fashion_mnist_available",
    "load_dataset",
    "class_names",
    "cache_dir",
    "mnist_dir",
    "idx_sha256",
    "idx_path",
]

log = logging.getLogger(__name__)

MNIST_CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
FASHION_CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DATASET_NAMES: tuple[str, ...] = ("mnist", "fashion_mnist")

# Same four names for MNIST and Fashion-MNIST, in load_data() order.
IDX_FILE_NAMES: tuple[str, str, str, str] = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# SHA-256 of the *decompressed* canonical MNIST files (resources/mnist/README.md;
# tests/engine/test_datasets.py keeps the two tables in sync).
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_MNIST_COUNTS = (60000, 10000)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_IMAGES_HEADER = 16
_LABELS_HEADER = 8

# Bump when the cache layout or the validation changes, so old caches are ignored.
_CACHE_FORMAT = 2
_CACHE_KEYS = ("x_train", "y_train", "x_test", "y_test")
# The cache also stores the SHA-256 of each array as the IDX file it came from, so a cache
# that unzips cleanly but holds other pixels (a file swapped in, another data set) is
# noticed: for MNIST against the published checksums, otherwise against the stored ones.
_DIGEST_KEY = "sha256"


class DatasetError(ValueError):
    """A data set file is missing, damaged or not what it should be."""


# ---------------------------------------------------------------------------------
# IDX


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """Decode the bytes of one uncompressed IDX file.

    Images (magic 2051) -> uint8 (count, rows, cols); labels (magic 2049) -> uint8
    (count,). ``source`` only names the file in error messages. The length must match
    the header exactly: short data is "truncated", extra data is "trailing bytes".
    """
    if len(data) < 4:
        raise DatasetError(f"{source}: truncated IDX file: {len(data)} bytes, no header")
    (magic,) = struct.unpack(">i", data[:4])
    if magic == IMAGES_MAGIC:
        header_len = _IMAGES_HEADER
    elif magic == LABELS_MAGIC:
        header_len = _LABELS_HEADER
    else:
        raise DatasetError(
            f"{source}: wrong magic number {magic} (0x{magic & 0xFFFFFFFF:08x}); "
            f"expected {IMAGES_MAGIC} (images) or {LABELS_MAGIC} (labels). "
            "Not an uncompressed IDX ubyte file."
        )
    if len(data) < header_len:
        raise DatasetError(
            f"{source}: truncated header: {len(data)} bytes, "
            f"need {header_len} for magic {magic}"
        )
    dims = struct.unpack(">" + "i" * ((header_len - 4) // 4), data[4:header_len])
    if any(d < 0 for d in dims):
        raise DatasetError(f"{source}: corrupt header: negative dimension in {dims}")
    expected = header_len + int(np.prod(dims, dtype=np.int64))
    if len(data) < expected:
        raise DatasetError(
            f"{source}: truncated: header says {'x'.join(map(str, dims))} "
            f"({expected} bytes with header) but the file has {len(data)} bytes"
        )
    if len(data) > expected:
        raise DatasetError(
            f"{source}: {len(data) - expected} trailing bytes after the "
            f"{'x'.join(map(str, dims))} payload ({expected} bytes expected)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def _read_bytes(path: Path) -> bytes:
    """Whole file, gunzipped when it is gzip; every failure as DatasetError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if raw[:2] != b"\x1f\x8b":
        if path.suffix == ".gz":
            raise DatasetError(f"{path}: corrupt gzip: not a gzip file (bad gzip header)")
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DatasetError(f"{path}: corrupt gzip: truncated compressed stream") from None
    except (OSError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt gzip: {exc}") from None


def idx_path(directory: Path, name: str) -> Path:
    """directory/name, or the same file unzipped (name without .gz: Kaggle's copies, or after
    gunzip) when only that exists; the .gz name otherwise, so a missing file is named as such."""
    zipped = Path(directory) / name
    if not zipped.exists():
        plain = Path(directory) / _decompressed_name(zipped)
        if plain.exists():
            return plain
    return zipped


def _decompressed_name(path: Path) -> str:
    return path.name[:-3] if path.name.endswith(".gz") else path.name


def read_idx(path: str | os.PathLike, *, expected_sha256: str | None = None) -> np.ndarray:
    """Read one IDX file (``.gz`` or uncompressed) into a uint8 array.

    ``expected_sha256`` is checked against the *decompressed* bytes, after the
    structure, so a damaged file reports what is damaged rather than just a
    mismatch.
    """
    path = Path(path)
    data = _read_bytes(path)
    array = parse_idx(data, str(path))
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise DatasetError(
                f"{path}: checksum mismatch: SHA-256 of the decompressed content is "
                f"{actual}, expected {expected_sha256}"
            )
    return array


# ---------------------------------------------------------------------------------
# Data sets


def _read_dataset(directory: Path, sha256: dict[str, str] | None,
                  counts: tuple[int, int] | None):
    """The four files of an MNIST-layout directory, validated together."""
    arrays = []
    for name in IDX_FILE_NAMES:
        expected = None if sha256 is None else sha256[_decompressed_name(Path(name))]
        arrays.append(read_idx(idx_path(directory, name), expected_sha256=expected))
    x_train, y_train, x_test, y_test = arrays
    for split, x, y, x_name, y_name, n in (
        ("train", x_train, y_train, IDX_FILE_NAMES[0], IDX_FILE_NAMES[1],
         None if counts is None else counts[0]),
        ("test", x_test, y_test, IDX_FILE_NAMES[2], IDX_FILE_NAMES[3],
         None if counts is None else counts[1]),
    ):
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DatasetError(
                f"{directory / x_name}: expected 28x28 images (magic {IMAGES_MAGIC}), "
                f"got an array of shape {x.shape}"
            )
        if y.ndim != 1:
            raise DatasetError(
                f"{directory / y_name}: expected labels (magic {LABELS_MAGIC}), "
                f"got an array of shape {y.shape}"
            )
        if len(x) != len(y):
            raise DatasetError(
                f"{directory}: {split} split has {len(x)} images in {x_name} "
                f"but {len(y)} labels in {y_name}"
            )
        if n is not None and len(x) != n:
            raise DatasetError(
                f"{directory / x_name}: expected {n} {split} examples, got {len(x)}"
            )
        if y.size and int(y.max()) > 9:
            raise DatasetError(
                f"{directory / y_name}: label {int(y.max())} out of range 0..9"
            )
    return (x_train, y_train), (x_test, y_test)


def cache_dir() -> Path | None:
    """Where decoded arrays are cached; None when caching is turned off."""
    override = os.environ.get("VISUALCNN_CACHE_DIR")
    if override is not None:
        return Path(override) if override.strip() else None
    import platformdirs  # only needed when no override is given

    return Path(platformdirs.user_cache_dir("visualcnn"))


def _cache_file(kind: str, directory: Path) -> tuple[Path, str] | None:
    """Cache path for ``directory`` and the glob of its older versions.

    The key hashes the source folder and each file's size and mtime: any change to
    the bundled files (an upgrade, an edit) gives a new key, while a cached load costs
    no more than four stat() calls on top of reading the cache.
    """
    root = cache_dir()
    if root is None:
        return None
    source = directory.resolve()
    key = hashlib.sha256(f"{_CACHE_FORMAT}\0{kind}\0{source}".encode())
    place = key.hexdigest()[:12]
    for name in IDX_FILE_NAMES:
        try:
            st = idx_path(source, name).stat()
        except OSError:
            return None  # the slow path reports the missing file properly
        key.update(f"\0{name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    stem = f"{kind}-{place}-"
    return root / "datasets" / f"{stem}{key.hexdigest()[:16]}.npz", f"{stem}*.npz"


def idx_sha256(array: np.ndarray) -> str:
    """SHA-256 of the uncompressed IDX file holding this uint8 array (the header rebuilt
    from its shape): comparable with MNIST_SHA256 without the original file."""
    magic = IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC
    digest = hashlib.sha256(struct.pack(">i" + "i" * array.ndim, magic, *array.shape))
    digest.update(memoryview(np.ascontiguousarray(array, dtype=np.uint8)).cast("B"))
    return digest.hexdigest()


def _expected_digests(sha256: dict[str, str] | None) -> list[str] | None:
    if sha256 is None:
        return None
    return [sha256[_decompressed_name(Path(name))] for name in IDX_FILE_NAMES]


def _load_cache(path: Path, expected: list[str] | None = None):
    """The cached arrays, or None (a miss) when the file is absent, unreadable, malformed
    or holds other data than it should (expected: the published digests, if any)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            # zipfile checks each member's CRC-32 while reading it, so a damaged
            # cache fails here rather than handing back wrong pixels.
            arrays = [npz[k] for k in _CACHE_KEYS]
            stored = [str(d) for d in npz[_DIGEST_KEY]] if _DIGEST_KEY in npz.files else None
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any unreadable cache is just a miss
        log.info("ignoring unreadable dataset cache %s: %s", path, exc)
        return None
    x_train, y_train, x_test, y_test = arrays
    ok = (
        all(a.dtype == np.uint8 for a in arrays)
        and x_train.ndim == 3 and x_train.shape[1:] == (28, 28)
        and x_test.ndim == 3 and x_test.shape[1:] == (28, 28)
        and y_train.shape == (len(x_train),) and y_test.shape == (len(x_test),)
    )
    if not ok:
        log.info("ignoring malformed dataset cache %s", path)
        return None
    wanted = expected if expected is not None else stored
    if wanted is None or len(wanted) != 4 or [idx_sha256(a) for a in arrays] != list(wanted):
        log.warning("ignoring dataset cache %s: its content is not the data set it stands for; rebuilding it", path)
        return None
    return (x_train, y_train), (x_test, y_test)


def _store_cache(path: Path, stale_glob: str, data) -> None:
    (x_train, y_train), (x_test, y_test) = data
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader (another app instance) never sees half a file.
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=path.stem, suffix=".tmp", delete=False
        ) as tmp:
            tmp_name = tmp.name
            digests = np.array([idx_sha256(a) for a in (x_train, y_train, x_test, y_test)])
            np.savez(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **{_DIGEST_KEY: digests})
        os.replace(tmp_name, path)
        tmp_name = None
        for old in path.parent.glob(stale_glob):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:
        log.info("not caching dataset at %s: %s", path, exc)
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def _load_cached(kind: str, directory: Path, sha256, counts, cache: bool):
    target = _cache_file(kind, directory) if cache else None
    if target is not None:
        hit = _load_cache(target[0], _expected_digests(sha256))
        if hit is not None:
            return hit
    data = _read_dataset(directory, sha256, counts)
    if target is not None:
        _store_cache(target[0], target[1], data)
    return data


def mnist_dir() -> Path:
    """The bundled MNIST folder (``resources/mnist``)."""
    from visualcnn.resources import resource_dir

    return resource_dir() / "mnist"


def load_mnist(path: str | os.PathLike | None = None, *, cache: bool = True):
    """MNIST as ``((x_train, y_train), (x_test, y_test))``.

    x: uint8 (60000, 28, 28) and (10000, 28, 28); y: uint8 (60000,) and (10000,).
    ``path`` is a folder holding the four ``.gz`` files (default: the bundled copy).
    The decompressed content must match :data:`MNIST_SHA256`.
    Raises DatasetError for a missing or damaged file.
    """
    directory = mnist_dir() if path is None else Path(path)
    try:
        return _load_cached("mnist", directory, MNIST_SHA256, _MNIST_COUNTS, cache)
    except DatasetError as exc:
        # One line: what is wrong (the file and how) and what to do about it.
        if path is None:
            raise DatasetError(f"the bundled MNIST is damaged or incomplete: {exc}; reinstall VisualCNN "
                               "(pip install --force-reinstall visualcnn, or git checkout resources/mnist "
                               "in a clone) to restore it") from None
        raise DatasetError(f"{exc}; put the four original MNIST .gz files in {directory}") from None


def fashion_mnist_available(path: str | os.PathLike | None = None) -> bool:
    """True when all four Fashion-MNIST files are present (not yet validated)."""
    directory = FASHION_MNIST_DIR if path is None else Path(path)
    return all(idx_path(directory, name).is_file() for name in IDX_FILE_NAMES)


def load_fashion_mnist(path: str | os.PathLike | None = None, *, cache: bool = True):
    """Fashion-MNIST, same layout as :func:`load_mnist`.

    Read from Debian's ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist)
    unless ``path`` is given. Only the structure is validated (no checksum table).
    """
    directory = FASHION_MNIST_DIR if path is None else Path(path)
    if path is None and not directory.is_dir():
        raise DatasetError(
            f"{directory}: Fashion-MNIST is not installed (missing folder); "
            "install the Debian package dataset-fashion-mnist"
        )
    return _load_cached("fashion_mnist", directory, None, None, cache)


def _normalise_name(name: str) -> str:
    if not isinstance(name, str):
        raise DatasetError(f"dataset name must be a string, got {type(name).__name__}")
    return name.strip().lower().replace("-", "_")


def load_dataset(name: str, *, cache: bool = True):
    """``load_mnist()`` or ``load_fashion_mnist()`` by name ("mnist", "fashion_mnist")."""
    key = _normalise_name(name)
    if key == "mnist":
        return load_mnist(cache=cache)
    if key == "fashion_mnist":
        return load_fashion_mnist(cache=cache)
    raise DatasetError(
        f"unknown dataset {name!r}; choose one of "
        + ", ".join(repr(n) for n in DATASET_NAMES)
    )


def class_names(name: str) -> tuple[str, ...]:
    """Display names of the ten classes of a data set."""
    key = _normalise_name(name)
    if key == "mnist":
        return MNIST_CLASS_NAMES
    if key == "fashion_mnist":
        return FASHION_CLASS_NAMES
    raise DatasetError(
        f"unknown dataset {name!r}; choose one of "
        + ", ".join(repr(n) for n in DATASET_NAMES)
    )
