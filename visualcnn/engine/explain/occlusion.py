"""Occlusion sensitivity (Zeiler and Fergus 2014): cover one patch of the image at a
time and measure how much the class's probability drops (issue 13 item 3).

Patches start at every `stride` rows and columns from the top-left corner, plus one last
patch flush with the bottom and the right edge when the stride does not land there, so
every pixel is covered. A pixel's value is the mean drop of the patches covering it
(as MATLAB's occlusionSensitivity averages overlapping patches): positive where hiding
the pixel lowers the class's probability, negative where hiding it helps the class.
The probability is the model's output for the class (its softmax when it ends in one).

The occluded copies go through model.predict in batches; the memory of one batch (its
copies and the model's activations) is checked with engine/memory.py before any is made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gradients import cancelled as _cancelled, class_indices, images


@dataclass(frozen=True)
class Occlusion:
    """heatmap: (N, H, W) mean drop in the class probability per input pixel; grid:
    (N, rows, cols) the drop for the patch at each position (rows/cols: their top-left
    corners); base: (N,) the probability of the unoccluded image; classes: (N,)."""

    heatmap: np.ndarray
    grid: np.ndarray
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    base: np.ndarray
    classes: np.ndarray
    patch: tuple[int, int]
    stride: tuple[int, int]
    fill: float | str


def positions(size: int, patch: int, stride: int) -> tuple[int, ...]:
    """Top-left corners along one axis: every stride, and one flush with the far edge."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return tuple(starts)


def occlusion(model, x, class_index=None, patch=4, stride=2, fill=0.0, batch_size: int = 128,
              serial: bool | None = None, progress=None, cancel=None) -> Occlusion | None:
    """Occlusion sensitivity of x (one image or a batch). patch and stride: an int or
    (rows, cols); fill: the value put in the patch, or "mean" (the image's mean).
    progress(done, total) after every batch of copies; cancel (a threading.Event or a
    function returning True) stops between batches, and then None is returned (a half
    map would look like a finished one)."""
    x = images(model, x, "occlusion")
    if len(model.input_shape) != 3:
        raise ValueError(f"occlusion: the model's input must be an image (height, width, channels); "
                         f"it is {tuple(model.input_shape)}")
    height, width = model.input_shape[:2]
    ph, pw = _pair(patch, "patch")
    sh, sw = _pair(stride, "stride")
    if ph > height or pw > width:
        raise ValueError(f"occlusion: patch {ph}x{pw} is larger than the {height}x{width} input; "
                         "choose a smaller patch")
    if not (isinstance(fill, str) and fill == "mean") and not isinstance(fill, (int, float, np.floating, np.integer)):
        raise ValueError(f"occlusion: fill must be a number or 'mean', received {fill!r}")
    batch_size = max(1, int(batch_size))
    rows, cols = positions(height, ph, sh), positions(width, pw, sw)
    spots = [(r, c) for r in rows for c in cols]
    batch = min(batch_size, len(spots))
    _check_batch_memory(model, batch)

    base_out = model.predict(x, batch_size=batch, serial=serial)
    classes = class_indices(model, class_index, len(x), base_out, "occlusion")
    base = base_out.reshape(len(x), -1)[np.arange(len(x)), classes].astype(np.float64)
    grid = np.zeros((len(x), len(rows), len(cols)))
    heat = np.zeros((len(x), height, width))
    count = np.zeros((height, width))
    for r, c in spots:
        count[r:r + ph, c:c + pw] += 1
    for n, image in enumerate(x):
        value = float(image.mean()) if isinstance(fill, str) else float(fill)
        drops = []
        for start in range(0, len(spots), batch):
            if _cancelled(cancel):
                return None
            chunk = spots[start:start + batch]
            copies = np.repeat(image[None], len(chunk), axis=0)
            for k, (r, c) in enumerate(chunk):
                copies[k, r:r + ph, c:c + pw, :] = value
            out = model.predict(copies, batch_size=len(chunk), serial=serial)
            drops.extend(base[n] - out.reshape(len(chunk), -1)[:, classes[n]].astype(np.float64))
            if progress is not None:
                progress(n * len(spots) + start + len(chunk), len(x) * len(spots))
        for (r, c), drop in zip(spots, drops):
            grid[n, rows.index(r), cols.index(c)] = drop
            heat[n, r:r + ph, c:c + pw] += drop
    heat /= count
    return Occlusion(heatmap=heat, grid=grid, rows=rows, cols=cols, base=base, classes=classes,
                     patch=(ph, pw), stride=(sh, sw), fill=fill)


def _pair(value, what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        a, b = (int(v) for v in pair)
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)
    except (TypeError, ValueError):
        ok = False
    if not ok or a < 1 or b < 1:
        raise ValueError(f"occlusion: {what} must be a positive integer or (rows, cols), received {value!r}")
    return a, b


def _check_batch_memory(model, batch: int) -> None:
    """Refuse before allocating: one batch of occluded copies plus the model's inference
    activations at that batch size (MemoryLimitError names the numbers)."""
    from ..memory import check_memory, estimate_memory

    copies = batch * int(np.prod(model.input_shape)) * 4
    check_memory(estimate_memory(model.checked_report(), batch), training=False,
                 already_allocated=model._allocated_bytes() + copies)


__all__ = ["Occlusion", "occlusion", "positions"]
