"""Bilinear resizing of a heat map to the input's size, one definition for every map.

Half-pixel centres (align_corners=False), samples outside the map clamped to its edge:
what tf.image.resize(method="bilinear") (Keras's Resizing), skimage.transform.resize
(order=1, mode="edge", anti_aliasing=False) and torch's interpolate(mode="bilinear",
align_corners=False) compute when enlarging. Grad-CAM maps are always enlarged (a conv
layer's map is at most the input's size), so no antialiasing question arises.
"""

from __future__ import annotations

import numpy as np


def _axis(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every output position: the two source indices and the weight of the second."""
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0.0, in_size - 1)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, src - low


def resize_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """maps (..., h, w) -> (..., size[0], size[1]), float64."""
    maps = np.asarray(maps, np.float64)
    r0, r1, fr = _axis(size[0], maps.shape[-2])
    c0, c1, fc = _axis(size[1], maps.shape[-1])
    rows = maps[..., r0, :] * (1 - fr)[:, None] + maps[..., r1, :] * fr[:, None]
    return rows[..., c0] * (1 - fc) + rows[..., c1] * fc


def normalise(maps: np.ndarray) -> np.ndarray:
    """Each map (the last two axes) scaled to [0, 1] by its own min and max; a flat map is all zeros."""
    maps = np.asarray(maps, np.float64)
    low = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0)


__all__ = ["resize_bilinear", "normalise"]
