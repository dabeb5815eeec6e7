"""A drawn digit -> an MNIST-style 28x28 image, the way MNIST itself was made.

LeCun, Cortes and Burges: the NIST digits were "size normalized to fit in a 20x20
pixel box while preserving their aspect ratio", anti-aliased, and "centered in a
28x28 image by computing the center of mass of the pixels, and translating the image
so as to position this point at the center of the 28x28 field".

Steps (:func:`canvas_steps` returns each of them for the GUI to show):

1. Crop to the bounding box of the ink: pixels brighter than ``threshold`` (default
   0.05 on a 0..1 scale), so faint smudges do not stretch the box.
2. Scale so that the longer side is exactly 20 pixels, keeping the aspect ratio, by
   exact area averaging: every output pixel is the mean of the input over the square
   it covers, with input pixels that straddle its edge counted by their overlap. This
   is the anti-aliasing that turned NIST's black-and-white scans into grey levels.
   The shorter side becomes ``ceil(side * 20 / longer)`` pixels; its last column (or
   row) is only partly covered and is correspondingly fainter.
3. Paste into a 28x28 frame at an *integer* offset chosen so that the centre of mass
   lands on the centre.

Centring convention (measured on the 60000 MNIST training digits, not guessed).
With row/column *indices* as coordinates (pixel i is the sample at i; the field's
geometric middle is 13.5), the centre of mass ``sum(i * I) / sum(I)`` of MNIST digits
has mean 13.996 (rows) / 14.007 (cols), spans [13.48, 14.50], and has standard
deviation 0.289, i.e. ``1/sqrt(12)``: uniform over one pixel. That is the signature
of an integer shift that puts the centre of mass at pixel **(14, 14)**, within half a
pixel. Also, 59987 of the 60000 digits have a bounding box whose longer side is
exactly 20 pixels; a sub-pixel (bilinear) shift would smear most of them to 21. So we
do the same: ``offset = floor(14 - com + 0.5)`` per axis, no resampling. Any shift
costs at most half a pixel of centring and keeps the strokes as sharp as MNIST's, so a
network trained on MNIST sees the same kind of image. Ink pushed outside the frame by
a very lopsided drawing is cut off, as in MNIST (the 13 MNIST digits whose longer
side is 19 pixels all touch the frame's edge).

A canvas with no ink raises :class:`NothingDrawnError` ("nothing drawn yet") rather
than returning None, so the result is always an array; the GUI shows ``str(error)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "NothingDrawnError",
    "PreprocessSteps",
    "canvas_to_mnist",
    "canvas_steps",
    "area_resize",
    "to_unit_float",
    "centre_of_mass",
    "FIELD_SIZE",
    "BOX_SIZE",
    "CENTRE",
    "INK_THRESHOLD",
]

FIELD_SIZE = 28
BOX_SIZE = 20
CENTRE = 14.0  # index coordinates; see the module docstring
INK_THRESHOLD = 0.05


class NothingDrawnError(ValueError):
    """The canvas holds no ink above the threshold."""

    def __init__(self, message: str = "nothing drawn yet") -> None:
        super().__init__(message)


@dataclass(frozen=True)
class PreprocessSteps:
    """What :func:`canvas_to_mnist` did, for the GUI to explain.

    bbox: (top, left, bottom, right) of the ink in the input, bottom/right exclusive.
    scale: output pixels per input pixel (20 / longer side of the bbox).
    scaled: float32 (h, w), the cropped ink after area averaging; max(h, w) == 20.
    centre_of_mass: (row, col) of ``scaled``, index coordinates.
    offset: (row, col) of ``scaled``'s top-left corner in the 28x28 frame (may be
        negative or push past the edge for a lopsided drawing; that part is cut).
    shift: (rows, cols) from pasting ``scaled`` in the geometric middle of the frame
        (offset ``(28 - h) / 2, (28 - w) / 2``) to where the centre of mass put it;
        may be a half-integer.
    result: float32 (28, 28) in [0, 1], what the network sees.
    """

    bbox: tuple[int, int, int, int]
    scale: float
    scaled: np.ndarray
    centre_of_mass: tuple[float, float]
    offset: tuple[int, int]
    shift: tuple[float, float]
    result: np.ndarray


def to_unit_float(image) -> np.ndarray:
    """A 2-D image as float32 in [0, 1], ink high.

    uint8 and other integer or bool inputs are read on the 0..255 scale (bool: 0/1);
    floats are taken as 0..1 and clipped.
    """
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"image must be 2-D (height, width), got shape {a.shape}")
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.integer):
        if a.dtype == np.uint8:
            return a.astype(np.float32) * np.float32(1.0 / 255.0)
        return np.clip(a, 0, 255).astype(np.float32) * np.float32(1.0 / 255.0)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("image contains NaN or infinite values")
        return np.clip(a, 0.0, 1.0).astype(np.float32, copy=False)
    raise ValueError(f"image dtype must be integer, bool or float, got {a.dtype}")


def _area_weights(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """(n_out, n_in) matrix: output pixel j = sum_i W[j, i] * input pixel i.

    Output pixel j covers input interval [j / scale, (j + 1) / scale); input pixel i
    covers [i, i + 1). W[j, i] = overlap length * scale, so a fully covered output
    pixel is the plain mean of what it covers, and one hanging past the input's end
    is fainter in proportion (the rest of it is background).
    """
    edges = np.arange(n_out + 1, dtype=np.float64) / scale
    lo = np.maximum(edges[:-1, None], np.arange(n_in)[None, :])
    hi = np.minimum(edges[1:, None], np.arange(1, n_in + 1)[None, :])
    return (np.clip(hi - lo, 0.0, None) * scale).astype(np.float32)


def area_resize(image: np.ndarray, scale: float, out_shape: tuple[int, int] | None = None
                ) -> np.ndarray:
    """Resample a 2-D float image by ``scale`` with exact area averaging.

    Separable: ``W_rows @ image @ W_cols.T``. ``out_shape`` defaults to
    ``ceil(shape * scale)``. Works for enlarging too (each output pixel then takes the
    overlap-weighted mean of the one or two input pixels under it).
    """
    h, w = image.shape
    if out_shape is None:
        out_shape = (max(1, math.ceil(h * scale - 1e-6)), max(1, math.ceil(w * scale - 1e-6)))
    w_rows = _area_weights(h, out_shape[0], scale)
    w_cols = _area_weights(w, out_shape[1], scale)
    return (w_rows @ image.astype(np.float32, copy=False)) @ w_cols.T


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(row, col) = sum(index * intensity) / sum(intensity); index coordinates."""
    a = np.asarray(image, dtype=np.float64)
    total = a.sum()
    if total <= 0:
        raise NothingDrawnError()
    rows = a.sum(axis=1) @ np.arange(a.shape[0]) / total
    cols = a.sum(axis=0) @ np.arange(a.shape[1]) / total
    return float(rows), float(cols)


def _ink_bbox(img: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    ink = img > threshold
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        raise NothingDrawnError()
    cols = np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _paste(src: np.ndarray, offset: tuple[int, int], size: int) -> np.ndarray:
    """``src`` placed with its top-left at ``offset`` in a size x size zero frame."""
    out = np.zeros((size, size), dtype=np.float32)
    oy, ox = offset
    h, w = src.shape
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(oy + h, size), min(ox + w, size)
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = src[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    return out


def canvas_steps(image, *, threshold: float = INK_THRESHOLD) -> PreprocessSteps:
    """Run the MNIST normalisation and return every intermediate step.

    image: 2-D, any size; uint8 0..255 or float 0..1, ink high (white on black).
    Raises NothingDrawnError when no pixel is brighter than ``threshold``,
    ValueError for a non-2-D or non-finite image.
    """
    img = to_unit_float(image)
    if img.size == 0:
        raise NothingDrawnError()
    top, left, bottom, right = _ink_bbox(img, threshold)
    crop = img[top:bottom, left:right]
    h, w = crop.shape
    longer = max(h, w)
    scale = BOX_SIZE / longer
    out_shape = tuple(
        BOX_SIZE if side == longer else max(1, math.ceil(side * scale - 1e-6))
        for side in (h, w)
    )
    scaled = np.clip(area_resize(crop, scale, out_shape), 0.0, 1.0)
    com = centre_of_mass(scaled)
    offset = tuple(int(math.floor(CENTRE - c + 0.5)) for c in com)
    result = _paste(scaled, offset, FIELD_SIZE)
    return PreprocessSteps(
        bbox=(top, left, bottom, right),
        scale=scale,
        scaled=scaled,
        centre_of_mass=com,
        offset=offset,
        shift=tuple(o - (FIELD_SIZE - n) / 2 for o, n in zip(offset, scaled.shape)),
        result=result,
    )


def canvas_to_mnist(image, *, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """float32 (28, 28) in [0, 1], normalised like MNIST (see the module docstring).

    Raises NothingDrawnError("nothing drawn yet") for a blank canvas.
    """
    return canvas_steps(image, threshold=threshold).result
