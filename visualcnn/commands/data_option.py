"""`--data mnist|fashion_mnist|DIR` for `visualcnn train` and `visualcnn evaluate`: which data
set, read for the model's input, with what was read and skipped reported on stderr.

Without --data the model file's "dataset" section decides (a file saved by `train --save
--data DIR` remembers its folder), else MNIST.
"""

from __future__ import annotations

import json
import sys

# A folder with thousands of odd files would bury the result: the first ones are listed.
MAX_SKIPPED_LINES = 20


def add_data_argument(parser, verb: str = "train") -> None:
    parser.add_argument("--data", metavar="DATA", default=None,
                        help=f"what to {verb} on: mnist, fashion_mnist, or a folder (one sub-folder of PNG/JPEG/BMP "
                             "images per class, or Fashion-MNIST's four .gz files); default: the model file's "
                             "dataset, else mnist")


def resolve_spec(data_argument: str | None, sections: dict | None, model_path: str | None = None):
    """The DatasetSpec: --data, else the file's "dataset" section (a relative path there is
    relative to the model file, so a project and its images can move together), else MNIST."""
    from ..engine.dataset_spec import spec_for_project, spec_from_argument

    if data_argument is not None:
        return spec_from_argument(data_argument)
    return spec_for_project((sections or {}).get("dataset"), model_path)


def load_for_cli(spec, input_shape, stream=None):
    """load_dataset_for with a progress line on a terminal and the report on stream: the
    description, the classes with their counts (folders), every skipped file (the first 20)."""
    from ..engine.dataset_spec import load_dataset_for

    stream = stream or sys.stderr
    interactive = stream.isatty()

    def progress(done, total):
        if interactive and total >= 256:
            stream.write(f"\rreading images {done:,}/{total:,}")
            stream.flush()

    data = load_dataset_for(spec, input_shape, progress=progress if spec.source == "folder" else None)
    if interactive and spec.source == "folder":
        stream.write("\r\033[K")
    for line in report_lines(data):
        stream.write(line + "\n")
    stream.flush()
    return data


def report_lines(data) -> list[str]:
    """The data set's lines for a terminal: MNIST stays one line; skipped files capped."""
    if data.spec.source != "folder":
        return [data.description]
    lines, skipped = [], 0
    for line in data.lines():
        if line.lstrip().startswith("skipped "):
            skipped += 1
            if skipped > MAX_SKIPPED_LINES:
                continue
        lines.append(line)
    if skipped > MAX_SKIPPED_LINES:
        lines.append(f"  ... and {skipped - MAX_SKIPPED_LINES:,} more skipped files")
    return lines


def per_class_accuracy(model, x, y, class_names) -> list[tuple[str, float, int]]:
    """(class name, accuracy, test images) per class, from one prediction pass."""
    import numpy as np

    labels = np.asarray(y)
    if labels.ndim == 2:  # one-hot (categorical losses)
        labels = labels.argmax(axis=1)
    predicted = model.predict(x, batch_size=256).argmax(axis=1)
    out = []
    for index, name in enumerate(class_names):
        members = labels == index
        count = int(members.sum())
        out.append((name, float((predicted[members] == index).mean()) if count else float("nan"), count))
    return out


def per_class_line(rows) -> str:
    return "per class: " + ", ".join(f"{name} {accuracy:.3f}" for name, accuracy, count in rows if count)


def write_dataset_section(path: str, spec) -> None:
    """Put the data set into a file model.save just wrote (not for MNIST: the default),
    so `evaluate` and the window know what it was trained on. Written atomically."""
    from ..engine.model_io import write_text_atomic

    if spec.source == "mnist" and spec.path is None or str(path).endswith(".keras"):
        return
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    data["dataset"] = spec.to_dict()
    write_text_atomic(path, json.dumps(data) + "\n")
