"""Reading a folder of images laid out like Keras's ``image_dataset_from_directory``:

    shapes/
        circle/   a.png b.png ...      one sub-folder per class; the sorted folder
        square/   ...                  names are the class names (label = index)

PNG, JPEG and BMP files are read with Pillow, anywhere below a class folder; each image
becomes grayscale or RGB (the model's input channels decide) and is resized to the model's
input with the interpolation named (Keras's default, bilinear, or nearest, bicubic, area),
squashing the aspect ratio as Keras does by default.

The folder is somebody's disk, not a curated data set, so everything odd is expected:
a file that cannot be read is skipped and named with the reason (empty, truncated, not an
image, a decompression bomb, a symlink loop...), and a folder that cannot make a data set
(no class folders, one class, too many classes, more pixels than memory holds) is refused
with one line saying what to do. Memory is estimated from the file count before any
image is decoded.

    folder = scan_image_folder("shapes")              # the files, classes and skips; no decoding
    images = read_image_folder(folder, (32, 32, 3))   # uint8 (N, 32, 32, 3), labels, report
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .datasets import DatasetError
from .memory import available_memory_bytes, format_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "MPO")  # MPO: a JPEG from a camera with a preview inside
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area")
DEFAULT_INTERPOLATION = "bilinear"  # Keras's default

MAX_CLASSES = 1000  # a confusion matrix, a gallery per class: beyond this nothing can be shown
# An image larger than this is refused before its pixels are decoded: a 1 KB PNG can claim
# 50,000 x 50,000 pixels (a decompression bomb) and Pillow would allocate gigabytes.
MAX_IMAGE_PIXELS = 40_000_000
MAX_FILE_BYTES = 256 * 2**20
# Names looked at while scanning: a home folder or "/" chosen by mistake is refused quickly
# instead of walked for minutes (ImageNet's training set has 1.28 million files).
MAX_ENTRIES = 2_000_000
# A data set may carry a note per image (labels, captions), not ten thousand programs.
MAX_OTHER_FILES = 10_000
OTHER_FILES_RATIO = 4
# Share of the free memory a data set may take: training needs the rest.
MEMORY_SHARE = 0.5


class LoadCancelled(Exception):
    """The progress callback asked to stop (the window closed mid-load)."""


@dataclass(frozen=True)
class Skipped:
    """A file (or folder) that was not used, and why, in one line."""

    path: str  # relative to the data set folder
    reason: str

    def line(self) -> str:
        return f"skipped {self.path}: {self.reason}"


@dataclass
class FolderScan:
    """What a folder holds, before any image is decoded."""

    root: Path
    class_names: tuple[str, ...]
    files: list[tuple[Path, int]]  # (file, class index), in class then name order
    skipped: list[Skipped] = field(default_factory=list)
    empty_classes: tuple[str, ...] = ()  # class folders without one image file: left out

    def counts(self) -> list[int]:
        counts = [0] * len(self.class_names)
        for _, label in self.files:
            counts[label] += 1
        return counts


@dataclass
class FolderImages:
    """The decoded images of a folder, ready for a model's input."""

    x: np.ndarray  # uint8 (N, height, width, channels)
    y: np.ndarray  # uint8 or int32 (N,) class indices
    class_names: tuple[str, ...]
    report: "FolderReport"


@dataclass
class FolderReport:
    """What was read and what was skipped: for the CLI, the window and the browser."""

    root: str
    class_names: tuple[str, ...]
    counts: list[int]  # images read per class
    skipped: list[Skipped]
    empty_classes: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (height, width, channels) after resizing
    interpolation: str

    @property
    def images(self) -> int:
        return int(sum(self.counts))

    def summary(self) -> str:
        h, w, c = self.image_shape
        colour = "RGB" if c == 3 else "grayscale"
        skipped = f", {len(self.skipped)} file(s) skipped" if self.skipped else ""
        return (f"{self.root}: {self.images:,} images in {len(self.class_names)} classes, "
                f"read as {h}x{w} {colour} ({self.interpolation}){skipped}")

    def lines(self) -> list[str]:
        """summary, one line per class with its count, then every skip with its reason."""
        out = [self.summary()]
        out += [f"  {name}: {count:,} images" for name, count in zip(self.class_names, self.counts)]
        out += [f"  class folder {name!r} has no readable image: left out" for name in self.empty_classes]
        out += [f"  {s.line()}" for s in self.skipped]
        return out


# ---------------------------------------------------------------------------------
# Scanning


def scan_image_folder(path: str | os.PathLike, *, max_classes: int = MAX_CLASSES,
                      max_entries: int = MAX_ENTRIES) -> FolderScan:
    """The classes and image files of a folder in image_dataset_from_directory's layout.

    Decodes nothing: a file is kept when its name ends in .png/.jpg/.jpeg/.bmp and it is a
    regular non-empty file. Raises DatasetError (one line: the problem and what to do)
    when the folder cannot be a classification data set."""
    root = Path(path).expanduser()
    shown = str(path)
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise DatasetError(f"{shown}: no such folder; choose a folder with one sub-folder of images per class") \
            from None
    except OSError as exc:
        raise DatasetError(f"{shown}: cannot open the folder ({exc.strerror or exc})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise DatasetError(f"{shown}: not a folder; choose a folder with one sub-folder of images per class")
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"{shown}: cannot list the folder ({exc.strerror or exc})") from None
    class_dirs = []
    loose = []
    skipped: list[Skipped] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue  # hidden: .DS_Store, .git, editors' files are not part of the data
        try:
            is_dir = entry.is_dir()  # follows a link, as a class folder may be one
        except OSError:
            is_dir = False
        if is_dir:
            class_dirs.append(entry)
        elif entry.name.lower().endswith(IMAGE_SUFFIXES):
            loose.append(entry.name)
        else:
            skipped.append(Skipped(_shown(entry.name), _not_image_reason(entry.name)))
    if not class_dirs:
        if loose:
            raise DatasetError(f"{shown} holds {len(loose):,} images but no class sub-folders: put each class's "
                               f"images in its own sub-folder ({shown}/cat/..., {shown}/dog/...)")
        raise DatasetError(f"{shown} has no class sub-folders: make one sub-folder per class holding its images")
    if len(class_dirs) > max_classes:
        raise DatasetError(f"{shown} has {len(class_dirs):,} class folders; VisualCNN handles at most "
                           f"{max_classes:,} classes: choose a folder with fewer classes (one sub-folder per class)")
    skipped += [Skipped(_shown(name), "an image outside the class folders (not used)") for name in loose]
    seen: set[tuple[int, int]] = {(st.st_dev, st.st_ino)}
    names, files, empty = [], [], []
    budget = [max_entries]
    for entry in class_dirs:
        found = _class_files(root, Path(entry.path), seen, skipped, budget)
        if budget[0] < 0:
            raise DatasetError(f"{shown} holds more than {max_entries:,} files and folders: choose the folder of the "
                               "data set itself (one sub-folder per class), not a whole disk or home folder")
        if not found:
            empty.append(_shown(entry.name))
            continue
        label = len(names)
        names.append(_shown(entry.name))
        files += [(f, label) for f in found]
    others = sum(1 for item in skipped if item.reason.startswith("not an image file"))
    if others > MAX_OTHER_FILES and others > OTHER_FILES_RATIO * len(files):
        raise DatasetError(f"{shown} holds {others:,} files that are not images beside {len(files):,} images: it looks "
                           "like a system or home folder, not a data set; choose the folder with one sub-folder of "
                           "images per class")
    if not names:
        raise DatasetError(f"{shown}: none of the {len(class_dirs)} class folders holds a PNG, JPEG or BMP image; "
                           "put the images in the class folders")
    if len(names) == 1:
        raise DatasetError(f"{shown} has only one class with images ({names[0]!r}): a classifier needs at least "
                           "two; add a sub-folder of images for each other class")
    return FolderScan(root, tuple(names), files, skipped, tuple(empty))


def _not_image_reason(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return f"not an image file ({suffix or 'no extension'}; PNG, JPEG and BMP are read)"


def _class_files(root: Path, folder: Path, seen: set, skipped: list[Skipped], budget: list) -> list[Path]:
    """Image files below one class folder (recursively, links followed once: a link back to
    a folder already visited is a loop and is skipped)."""
    found: list[Path] = []
    stack = [folder]
    while stack:
        current = stack.pop()
        rel = _relative(root, current)
        try:
            st = os.stat(current)
        except OSError as exc:
            skipped.append(Skipped(rel, _os_reason(exc)))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            skipped.append(Skipped(rel, "a link to a folder already read (a symlink loop or a second link): "
                                        "not read twice"))
            continue
        seen.add(key)
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Skipped(rel, f"cannot list the folder ({exc.strerror or exc})"))
            continue
        budget[0] -= len(entries)
        if budget[0] < 0:
            return found  # the caller refuses the folder
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                entry_st = os.stat(path)  # follows links; a broken or looping link raises
            except OSError as exc:
                skipped.append(Skipped(_relative(root, path), _os_reason(exc)))
                continue
            if stat.S_ISDIR(entry_st.st_mode):
                subfolders.append(path)
            elif not entry.name.lower().endswith(IMAGE_SUFFIXES):
                skipped.append(Skipped(_relative(root, path), _not_image_reason(entry.name)))
            elif not stat.S_ISREG(entry_st.st_mode):
                # a FIFO would block the read forever, a device could be endless
                skipped.append(Skipped(_relative(root, path), "not a regular file (a pipe, socket or device)"))
            elif entry_st.st_size == 0:
                skipped.append(Skipped(_relative(root, path), "empty file (0 bytes)"))
            elif entry_st.st_size > MAX_FILE_BYTES:
                skipped.append(Skipped(_relative(root, path), f"file too large ({format_bytes(entry_st.st_size)}; "
                                                              f"at most {format_bytes(MAX_FILE_BYTES)} per image)"))
            else:
                found.append(path)
        stack += reversed(subfolders)  # depth first, in name order
    return found


def _relative(root: Path, path: Path) -> str:
    try:
        return _shown(str(path.relative_to(root)))
    except ValueError:
        return _shown(str(path))


def _shown(name: str) -> str:
    """A file name that can be printed and drawn: bytes that are not UTF-8 (an old disk's
    Latin-1 names) become U+FFFD instead of failing a print() much later."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _os_reason(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "a symlink loop (the link points back to itself)"
    if exc.errno == errno.ENOENT:
        return "a broken link (its target does not exist)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"cannot read ({exc.strerror or exc})"


# ---------------------------------------------------------------------------------
# Memory


def folder_bytes(image_count: int, image_shape: tuple[int, int, int]) -> int:
    """Memory a data set of image_count images of image_shape takes while training: the
    uint8 pixels kept plus the float32 copy the recipe scales them to (5 bytes a value)."""
    h, w, c = image_shape
    return int(image_count) * h * w * c * 5


def memory_refusal(image_count: int, image_shape: tuple[int, int, int], where: str,
                   available: int | None = None) -> str | None:
    """Why image_count images of image_shape do not fit in memory, or None."""
    need = folder_bytes(image_count, image_shape)
    free = available_memory_bytes() if available is None else available
    allowed = int(free * MEMORY_SHARE)
    if need <= allowed:
        return None
    h, w, c = image_shape
    fits = max(0, allowed // max(1, folder_bytes(1, image_shape)))
    instead = "a smaller input shape"
    if fits >= 2:
        instead += f" or a folder with at most {fits:,} images"
    return (f"{where}: {image_count:,} images at {h}x{w}x{c} need {format_bytes(need)} in memory, more than half "
            f"of the {format_bytes(free)} free; use {instead}")


# ---------------------------------------------------------------------------------
# Decoding


def _resample(interpolation: str):
    from PIL import Image

    table = {"bilinear": Image.Resampling.BILINEAR, "nearest": Image.Resampling.NEAREST,
             "bicubic": Image.Resampling.BICUBIC, "area": Image.Resampling.BOX}
    if interpolation not in table:
        raise DatasetError(f"unknown interpolation {interpolation!r}; choose one of "
                           + ", ".join(repr(n) for n in INTERPOLATIONS))
    return table[interpolation]


def decode_image(path: str | os.PathLike, image_shape: tuple[int, int, int],
                 interpolation: str = DEFAULT_INTERPOLATION) -> np.ndarray:
    """One image file as uint8 (height, width, channels): grayscale (channels 1) or RGB
    (3), resized with interpolation. Raises DatasetError naming what is wrong with the
    file (the reason a folder's report gives when it skips it). Also what "Try it" uses, so
    a dropped file is read exactly like the training images."""
    from PIL import Image, UnidentifiedImageError

    h, w, c = image_shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.format not in PILLOW_FORMATS:
                    raise DatasetError(f"a {image.format} image; PNG, JPEG and BMP are read")
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise DatasetError(f"{width}x{height} pixels, more than the {MAX_IMAGE_PIXELS // 10**6} "
                                       "megapixel limit (a decompression bomb, or a photo to shrink first)")
                if image.format in ("JPEG", "MPO") and width >= 4 * w and height >= 4 * h:
                    # A phone photo is 12 megapixels: JPEG can decode at 1/2, 1/4 or 1/8 scale
                    # directly (8x faster). Kept at twice the target or more, so the named
                    # interpolation still does the final resize.
                    image.draft("L" if c == 1 else "RGB", (2 * w, 2 * h))
                image.load()  # decodes everything now: a truncated file fails here
                return _pixels(image, (h, w, c), _resample(interpolation))
    except DatasetError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise DatasetError("a decompression bomb (far more pixels than the file's size allows)") from None
    except UnidentifiedImageError:
        if _starts_like_an_image(path):  # cut inside its header: Pillow cannot even tell what it is
            raise DatasetError("truncated or damaged image data") from None
        raise DatasetError("not a readable image (the content is not PNG, JPEG or BMP)") from None
    except FileNotFoundError:
        raise DatasetError("the file disappeared while reading") from None
    except OSError as exc:
        message = str(exc)
        if "truncated" in message or "broken data stream" in message or "EOF" in message:
            raise DatasetError("truncated or damaged image data") from None
        raise DatasetError(f"cannot decode the image ({message or type(exc).__name__})") from None
    except (ValueError, SyntaxError, MemoryError, struct.error) as exc:  # Pillow's parsers raise these on bad headers
        raise DatasetError(f"damaged image ({exc or type(exc).__name__})") from None


def _starts_like_an_image(path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM"))


def load_image(path: str | os.PathLike, input_shape, interpolation: str = DEFAULT_INTERPOLATION) -> np.ndarray:
    """One image file read for a model's input ((H, W), (H, W, 1) or (H, W, 3)) exactly as a
    folder's training images are: uint8 (H, W, C). DatasetError names the file and the
    problem in one line ("Try it" shows it as is)."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or shape[2] not in (1, 3) or min(shape) < 1:
        raise DatasetError(f"an image cannot be read for the input {'x'.join(map(str, shape))}: the model needs an "
                           "image input [height, width, 1] or [height, width, 3]")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DatasetError(f"{path}: {_os_reason(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{path}: not a regular file; choose a PNG, JPEG or BMP image")
    if st.st_size == 0:
        raise DatasetError(f"{path}: empty file (0 bytes); choose a PNG, JPEG or BMP image")
    if st.st_size > MAX_FILE_BYTES:
        raise DatasetError(f"{path}: file too large ({format_bytes(st.st_size)}); choose an image under "
                           f"{format_bytes(MAX_FILE_BYTES)}")
    try:
        return decode_image(path, shape, interpolation)
    except DatasetError as exc:
        raise DatasetError(f"{path}: {exc}") from None


def _pixels(image, image_shape: tuple[int, int, int], resample) -> np.ndarray:
    from PIL import Image

    h, w, c = image_shape
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit PNGs: keep the top 8 bits
        values = np.asarray(image, dtype=np.int64)
        image = Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA").convert("RGB")  # alpha dropped, as Keras decodes rgb
    image = image.convert("L" if c == 1 else "RGB")
    if image.size != (w, h):
        image = image.resize((w, h), resample=resample)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels.reshape(h, w, c)


def read_image_folder(folder: FolderScan | str | os.PathLike, image_shape: tuple[int, int, int],
                      interpolation: str = DEFAULT_INTERPOLATION, *,
                      progress: Callable[[int, int], object] | None = None,
                      available: int | None = None) -> FolderImages:
    """Decode every image of a scanned folder to uint8 (N, height, width, channels).

    Memory is checked from the file count first (DatasetError naming the numbers).
    progress(done, total) is called every 64 images; returning False stops with
    LoadCancelled. Files that fail to decode are skipped and named in the report; a class
    left with no readable image is left out (the labels renumbered)."""
    scan = folder if isinstance(folder, FolderScan) else scan_image_folder(folder)
    image_shape = tuple(int(v) for v in image_shape)
    if len(image_shape) != 3 or image_shape[2] not in (1, 3) or min(image_shape) < 1:
        raise DatasetError(f"images can be read as height x width x 1 (grayscale) or x 3 (RGB), not {image_shape}")
    _resample(interpolation)  # an unknown name fails before any work
    refusal = memory_refusal(len(scan.files), image_shape, str(scan.root), available)
    if refusal:
        raise DatasetError(refusal)
    x = np.empty((len(scan.files), *image_shape), np.uint8)
    labels = np.empty(len(scan.files), np.int64)
    skipped = list(scan.skipped)
    kept = 0
    total = len(scan.files)
    for done, (path, label) in enumerate(scan.files):
        if progress is not None and done % 64 == 0 and progress(done, total) is False:
            raise LoadCancelled(f"loading {scan.root} was cancelled")
        try:
            x[kept] = decode_image(path, image_shape, interpolation)
        except DatasetError as exc:
            skipped.append(Skipped(_relative(scan.root, path), str(exc)))
            continue
        labels[kept] = label
        kept += 1
    if progress is not None:
        progress(total, total)
    x, labels = x[:kept], labels[:kept]
    present = sorted(set(labels.tolist()))
    empty = list(scan.empty_classes) + [n for i, n in enumerate(scan.class_names) if i not in present]
    if len(present) < 2:
        which = f"only {scan.class_names[present[0]]!r} has" if present else "no class has"
        raise DatasetError(f"{scan.root}: {which} readable images, a classifier needs at least two classes; "
                           f"{len(skipped)} file(s) were skipped (first: {skipped[0].line() if skipped else '-'})")
    if len(present) < len(scan.class_names):  # renumber: labels stay 0..K-1
        remap = np.zeros(len(scan.class_names), np.int64)
        remap[present] = np.arange(len(present))
        labels = remap[labels]
    names = tuple(scan.class_names[i] for i in present)
    counts = np.bincount(labels, minlength=len(names)).tolist()
    labels = labels.astype(np.uint8 if len(names) <= 256 else np.int32)
    report = FolderReport(str(scan.root), names, counts, skipped, tuple(sorted(empty)), image_shape, interpolation)
    return FolderImages(x, labels, names, report)


__all__ = ["scan_image_folder", "read_image_folder", "decode_image", "load_image", "image_dataset_from_directory",
           "LabeledImages", "memory_refusal", "folder_bytes",
           "FolderScan", "FolderImages", "FolderReport", "Skipped", "LoadCancelled",
           "IMAGE_SUFFIXES", "INTERPOLATIONS", "DEFAULT_INTERPOLATION", "MAX_CLASSES", "MAX_IMAGE_PIXELS"]


# ---------------------------------------------------------------------------------
# Keras's function, for scripts


class LabeledImages(tuple):
    """(x, y) as numpy arrays, with the class names: `x, y = images` works, and so does
    `images.class_names` (Keras's dataset attribute). x: float32 0..255 like Keras (not
    scaled: put Rescaling(1/255) in the model, or divide); y: int32 class indices."""

    def __new__(cls, x, y, class_names, report):
        self = super().__new__(cls, (x, y))
        self.class_names = list(class_names)
        self.report = report
        return self

    @property
    def x(self):
        return self[0]

    @property
    def y(self):
        return self[1]


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=None, image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation=DEFAULT_INTERPOLATION,
                                 verbose=True):
    """keras.utils.image_dataset_from_directory for numpy: the same arguments and split rule
    (the file list shuffled with seed, the last validation_split of it for "validation"),
    returning LabeledImages (x, y) instead of a tf.data.Dataset, since Model.fit takes arrays
    (its batch_size batches). subset="both" returns (training, validation). Unreadable files
    are skipped and, with verbose, printed one line each, as Keras prints what it found.
    batch_size is accepted for Keras's signature and not used: give it to fit. Links are
    followed (each folder read once), where Keras's follow_links defaults to False."""
    if labels != "inferred":
        raise DatasetError('labels: only "inferred" (one sub-folder per class) is read; put each class in a folder')
    if label_mode not in ("int", "categorical"):
        raise DatasetError(f"label_mode must be 'int' or 'categorical', received {label_mode!r}")
    channels = {"grayscale": 1, "rgb": 3}.get(color_mode)
    if channels is None:
        raise DatasetError(f"color_mode must be 'grayscale' or 'rgb', received {color_mode!r}")
    if subset not in (None, "training", "validation", "both"):
        raise DatasetError(f"subset must be 'training', 'validation' or 'both', received {subset!r}")
    if (validation_split is None) != (subset is None):
        raise DatasetError("validation_split and subset go together: give both (e.g. 0.2 and 'training') or neither")
    if validation_split is not None and not 0 < validation_split < 1:
        raise DatasetError(f"validation_split must be between 0 and 1, received {validation_split!r}")
    if validation_split is not None and shuffle and seed is None:
        raise DatasetError("with validation_split and shuffle, give a seed so training and validation do not overlap")
    scan = scan_image_folder(directory)
    if class_names is not None:
        if sorted(class_names) != sorted(scan.class_names) and list(class_names) != list(scan.class_names):
            raise DatasetError(f"class_names {list(class_names)} do not match the folders {list(scan.class_names)}")
        order = {name: i for i, name in enumerate(class_names)}
        scan.files = [(path, order[scan.class_names[label]]) for path, label in scan.files]
        scan.class_names = tuple(class_names)
    height, width = (int(v) for v in image_size)
    images = read_image_folder(scan, (height, width, channels), interpolation)
    if verbose:
        print(f"Found {images.report.images} files belonging to {len(images.class_names)} classes.")
        for line in images.report.lines()[1:]:
            if line.lstrip().startswith(("skipped", "class folder")):
                print(line.strip())
    order = np.arange(len(images.y))
    if shuffle:
        np.random.RandomState(np.random.randint(1_000_000) if seed is None else seed).shuffle(order)
    x = images.x[order].astype(np.float32)
    y = images.y[order].astype(np.int32)
    if label_mode == "categorical":
        y = np.eye(len(images.class_names), dtype=np.float32)[y]

    def part(rows):
        return LabeledImages(x[rows], y[rows], images.class_names, images.report)

    if validation_split is None:
        return part(slice(None))
    held = int(validation_split * len(order))
    training, validation = part(slice(0, len(order) - held)), part(slice(len(order) - held, None))
    return {"training": training, "validation": validation, "both": (training, validation)}[subset]
