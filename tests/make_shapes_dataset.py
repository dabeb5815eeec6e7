"""Make an RGB image folder of 10 classes of coloured shapes, in Keras's
image_dataset_from_directory layout (one sub-folder per class), for tests and demos:

    python tests/make_shapes_dataset.py /tmp/shapes --per-class 200 --size 32

Each image is a shape drawn with Pillow on a plain background: its class fixes the shape
(circle, square, triangle, ...), while its colour, the background's colour, size, position
and rotation vary, so the network has to learn the shape, not the colours. The same
arguments always give the same files (one seeded generator per image).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "cross", "diamond", "heart", "hexagon", "ring", "square", "star", "stripes", "triangle")


def _polygon(cx, cy, r, corners, turn, ratio=1.0):
    """corners points on a circle of radius r (alternating radius r*ratio for a star)."""
    points = []
    for i in range(corners * (2 if ratio != 1.0 else 1)):
        angle = turn + i * math.pi / (corners if ratio != 1.0 else corners / 2)
        radius = r * (ratio if i % 2 else 1.0) if ratio != 1.0 else r
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def draw_shape(name: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of class name, supersampled 4x then reduced (smooth edges)."""
    scale = 4
    big = size * scale
    background, colour = _colours(rng)
    image = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(image)
    r = big * rng.uniform(0.22, 0.36)
    cx = big / 2 + rng.uniform(-0.12, 0.12) * big
    cy = big / 2 + rng.uniform(-0.12, 0.12) * big
    turn = rng.uniform(0, 2 * math.pi)
    if name == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif name == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(2, int(r * 0.3)))
    elif name == "square":
        draw.polygon(_polygon(cx, cy, r, 4, turn), fill=colour)
    elif name == "diamond":
        points = _polygon(cx, cy, r, 4, turn)
        squash = [(cx + (x - cx) * (0.55 if i % 2 else 1.0), cy + (y - cy) * (0.55 if i % 2 else 1.0))
                  for i, (x, y) in enumerate(points)]
        draw.polygon(squash, fill=colour)
    elif name == "triangle":
        draw.polygon(_polygon(cx, cy, r, 3, turn), fill=colour)
    elif name == "hexagon":
        draw.polygon(_polygon(cx, cy, r, 6, turn), fill=colour)
    elif name == "star":
        draw.polygon(_polygon(cx, cy, r, 5, turn, ratio=0.42), fill=colour)
    elif name == "cross":
        w = r * 0.35
        arms = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w),
                (-w, -w)]
        c, s = math.cos(turn), math.sin(turn)
        draw.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in arms], fill=colour)
    elif name == "heart":
        t = np.linspace(0, 2 * math.pi, 80)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        k = r / 17
        draw.polygon([(cx + a * k, cy + b * k) for a, b in zip(x, y)], fill=colour)
    elif name == "stripes":
        c, s = math.cos(turn), math.sin(turn)
        for offset in (-0.66, 0.0, 0.66):
            ox, oy = -s * offset * r, c * offset * r
            draw.line((cx + ox - c * r, cy + oy - s * r, cx + ox + c * r, cy + oy + s * r), fill=colour,
                      width=max(2, int(r * 0.22)))
    else:
        raise ValueError(f"unknown shape {name!r}")
    return image.resize((size, size), Image.Resampling.BOX)


def _colours(rng: np.random.Generator):
    """A background and a shape colour far enough apart to see (any hue for either)."""
    while True:
        background = rng.integers(0, 256, 3)
        colour = rng.integers(0, 256, 3)
        if np.abs(background.astype(int) - colour).sum() > 200:
            return tuple(int(v) for v in background), tuple(int(v) for v in colour)


def make_shapes_dataset(folder: str | Path, per_class: int = 100, size: int = 32, seed: int = 0,
                        classes: tuple[str, ...] = CLASSES) -> Path:
    """Write per_class PNGs of each class to folder/<class>/<class>_<i>.png; returns folder."""
    folder = Path(folder)
    for label, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed, label, i])
            draw_shape(name, size, rng).save(folder / name / f"{name}_{i:04d}.png")
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_shapes_dataset(args.folder, args.per_class, args.size, args.seed)
    print(f"{args.folder}: {len(CLASSES)} classes x {args.per_class} images, {args.size}x{args.size} RGB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
