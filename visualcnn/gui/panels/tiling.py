"""Lay many small maps out as one mosaic image (numpy only, so it is unit-testable).

Used for feature maps (H, W, C) and for conv filters (kh, kw, c_in, c_out). One image
per layer keeps pyqtgraph to a single ImageItem per layer, created once and then only
setImage'd: far cheaper than one item per channel when 64 maps update 20 times a second.
"""

from __future__ import annotations

import math

import numpy as np


def grid_columns(count: int, aspect: float = 1.0) -> int:
    """Columns for `count` tiles so the mosaic is roughly `aspect` (width/height) shaped."""
    return max(1, min(count, math.ceil(math.sqrt(count * aspect))))


def tile(maps: np.ndarray, columns: int | None = None, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """(H, W, C) -> (rows*(H+gap)-gap, cols*(W+gap)-gap) mosaic, channel c at row c // cols.

    Gaps are `fill` (NaN draws as transparent in pyqtgraph and is ignored by nan-aware
    level computations), so tiles stay visually separate without a fake value.
    """
    if maps.ndim != 3:
        raise ValueError(f"tile expects (height, width, channels), received shape {maps.shape}")
    h, w, c = maps.shape
    columns = columns or grid_columns(c)
    rows = math.ceil(c / columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), fill, dtype=np.float32)
    for index in range(c):
        r, col = divmod(index, columns)
        out[r * (h + gap): r * (h + gap) + h, col * (w + gap): col * (w + gap) + w] = maps[:, :, index]
    return out


def tile_position(row: int, col: int, shape: tuple[int, int, int], columns: int, gap: int = 1):
    """Which (channel, y, x) a mosaic pixel belongs to, or None for a gap / outside."""
    h, w, c = shape
    r, y = divmod(row, h + gap)
    k, x = divmod(col, w + gap)
    channel = r * columns + k
    if row < 0 or col < 0 or y >= h or x >= w or k >= columns or channel >= c:
        return None
    return channel, y, x


def normalise_per_tile(maps: np.ndarray) -> np.ndarray:
    """Scale each channel to 0..1 on its own, so a weak map is still visible."""
    maps = maps.astype(np.float32, copy=False)
    low = maps.min(axis=(0, 1), keepdims=True)
    high = maps.max(axis=(0, 1), keepdims=True)
    span = np.where(high - low > 1e-12, high - low, 1.0)
    return (maps - low) / span


def symmetric_level(values: np.ndarray) -> float:
    """The largest |value| ignoring NaN: the colour range of a diverging map centred on zero."""
    finite = values[np.isfinite(values)]
    level = float(np.abs(finite).max()) if finite.size else 1.0
    return level if level > 0 else 1.0


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 (times a power of ten) that is >= value: a colour range
    that only changes when the data outgrows it."""
    if not value > 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10.0 ** exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)
