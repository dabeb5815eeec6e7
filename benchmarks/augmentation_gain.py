"""Does augmentation help on digits that do not look like MNIST's? The seed CNN is trained
twice with the same recipe, seed and data: as it is, and with RandomTranslation,
RandomRotation and RandomZoom in front (engine/layers/random_*.py, active while training
only). Both are then tested on

- the MNIST test digits as they are;
- the test digits shifted by up to 4 px (each axis) and rotated by up to 20 degrees;
- the test digits redrawn thick (a 3x3 dilation of the ink) and off-centre (moved 3-4 px
  towards a random corner), like a digit drawn with a fat brush near the canvas's edge.

The distortions are drawn from their own seeded generator, so both networks see exactly
the same distorted digits.

    python benchmarks/augmentation_gain.py                  # 3 epochs, seed 1
    python benchmarks/augmentation_gain.py --epochs 5 --seeds 1 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

# fill_mode="constant" (0 = background): MNIST's black border extends naturally, where
# Keras's default "reflect" would mirror strokes into the margin.
AUGMENTATION = [
    {"class_name": "RandomTranslation",
     "config": {"height_factor": 0.15, "width_factor": 0.15, "fill_mode": "constant"}},  # 0.15 * 28 = 4.2 px
    {"class_name": "RandomRotation", "config": {"factor": 20 / 360, "fill_mode": "constant"}},  # +-20 degrees
    {"class_name": "RandomZoom", "config": {"height_factor": 0.1, "fill_mode": "constant"}},
]


def seed_cnn_dict(augmented: bool) -> dict:
    from visualcnn.resources import resource_dir

    data = json.loads((resource_dir() / "presets" / "seed_cnn.json").read_text())
    if augmented:
        data["layers"] = [dict(entry) for entry in AUGMENTATION] + data["layers"]
        data["name"] = "seed_cnn_augmented"
    return data


def shifted_rotated(images: np.ndarray, rng: np.random.Generator, max_shift=4, max_degrees=20.0) -> np.ndarray:
    """Each digit rotated by U(-20, 20) degrees about its centre, then shifted by whole
    pixels in U{-4..4} on each axis (bilinear, black fill)."""
    out = np.empty_like(images)
    angles = rng.uniform(-max_degrees, max_degrees, len(images))
    shifts = rng.integers(-max_shift, max_shift + 1, (len(images), 2))
    for i, image in enumerate(images):
        turned = Image.fromarray(image).rotate(float(angles[i]), resample=Image.BILINEAR, fillcolor=0)
        out[i] = _shift(np.asarray(turned), int(shifts[i, 0]), int(shifts[i, 1]))
    return out


def thick_off_centre(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each digit's ink dilated by a 3x3 square (a brush ~2 px wider), then moved 3 or 4 px
    on both axes towards a random corner (the digit's mass is no longer centred)."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    thick = np.zeros_like(images)
    for dy in range(3):
        for dx in range(3):
            np.maximum(thick, padded[:, dy:dy + 28, dx:dx + 28], out=thick)
    sizes = rng.integers(3, 5, (len(images), 2))
    signs = rng.choice([-1, 1], (len(images), 2))
    moves = sizes * signs
    return np.stack([_shift(image, int(dy), int(dx)) for image, (dy, dx) in zip(thick, moves)])


def _shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """image moved down dy and right dx pixels; what leaves the frame is lost, black comes in."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def train(augmented: bool, epochs: int, seed: int, limit: int | None, data):
    from visualcnn.engine.model_io import read_model_file
    from visualcnn.engine.recipe import prepare_run
    from visualcnn.engine.training import EpochReport
    from visualcnn.engine.training_config import TrainingConfig

    model_file = read_model_file(json.dumps(seed_cnn_dict(augmented)))
    config = TrainingConfig.from_dict({**model_file.training.to_dict(), "epochs": epochs, "seed": seed})
    model = model_file.model
    prepared = prepare_run(model, config, data, limit=limit)
    started = time.perf_counter()
    for report in prepared.run:
        if isinstance(report, EpochReport):
            print(f"  {'augmented' if augmented else 'plain'} seed {seed} epoch {report.epoch}/{epochs}: "
                  f"loss {report.loss:.4f} accuracy {report.accuracy:.4f} ({report.seconds:.0f}s)",
                  file=sys.stderr, flush=True)
    return model, time.perf_counter() - started


def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    x = images.astype(np.float32)[..., None] / np.float32(255)
    predicted = model.predict(x, batch_size=256).argmax(axis=1)
    return float((predicted == labels).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--test-limit", type=int, default=None, help="test on the first N test digits only")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    from visualcnn.engine.datasets import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist()
    if args.test_limit:
        x_test, y_test = x_test[:args.test_limit], y_test[:args.test_limit]
    rng = np.random.default_rng(2026)
    tests = {"clean": x_test, "shift4_rot20": shifted_rotated(x_test, rng),
             "thick_off_centre": thick_off_centre(x_test, rng)}
    rows = []
    for seed in args.seeds:
        for augmented in (False, True):
            model, seconds = train(augmented, args.epochs, seed, args.limit, ((x_train, y_train), (x_test, y_test)))
            row = {"augmented": augmented, "seed": seed, "epochs": args.epochs, "train_seconds": round(seconds, 1)}
            row.update({name: accuracy(model, images, y_test) for name, images in tests.items()})
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)

    print(f"seed CNN, {args.epochs} epoch(s) on {args.limit or len(x_train):,} MNIST images, "
          f"tested on {len(y_test):,} digits")
    print(f"{'network':<12}{'seed':>5}{'clean':>9}{'shift<=4px rot<=20':>20}{'thick off-centre':>18}{'train s':>9}")
    for row in rows:
        print(f"{'augmented' if row['augmented'] else 'plain':<12}{row['seed']:>5}{row['clean']:>9.4f}"
              f"{row['shift4_rot20']:>20.4f}{row['thick_off_centre']:>18.4f}{row['train_seconds']:>9.0f}")
    for name in ("clean", "shift4_rot20", "thick_off_centre"):
        plain = np.mean([r[name] for r in rows if not r["augmented"]])
        augmented = np.mean([r[name] for r in rows if r["augmented"]])
        print(f"mean {name}: plain {plain:.4f}, augmented {augmented:.4f}, gain {augmented - plain:+.4f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"augmentation": AUGMENTATION, "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
