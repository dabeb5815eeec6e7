"""`visualcnn export MODEL -o OUT [--format F]`: take a model to Keras, PyTorch or ONNX.

MODEL is a VisualCNN model file (with or without trained weights), a bundled preset's
name, or a Keras .keras / .h5 file. The format comes from --format, else from OUT: .keras,
.onnx, .py (a Keras script), a folder or a name without an extension (PyTorch). The
writing itself is engine.export's; this command only reads the model, picks the format
and reports.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# OUT's ending -> the format it means (a name without an ending is the PyTorch folder)
FORMAT_BY_SUFFIX = {".keras": "keras", ".onnx": "onnx", ".py": "keras-code"}


def add_arguments(parser) -> None:
    from ..engine.export import FORMATS

    parser.add_argument("model", metavar="MODEL", help="a VisualCNN model file (trained or not), a bundled preset's "
                        "name such as seed_cnn, or a Keras .keras / .h5 file")
    parser.add_argument("-o", "--output", metavar="OUT", required=True,
                        help="where to write: a .keras, .onnx or .py file, or a folder for pytorch")
    parser.add_argument("-f", "--format", choices=tuple(FORMATS), default=None,
                        help="; ".join(f"{name}: {text}" for name, (_, text, _) in FORMATS.items())
                        + " (default: from OUT's extension)")


def infer_format(output: str) -> str:
    """The format OUT names by its ending; ValueError (one line) when it names none."""
    from ..engine.export import FORMATS

    path = Path(output)
    suffix = path.suffix.lower()
    if suffix in FORMAT_BY_SUFFIX and not output.endswith(("/", os.sep)):
        return FORMAT_BY_SUFFIX[suffix]
    if not suffix or output.endswith(("/", os.sep)) or path.is_dir():
        return "pytorch"
    raise ValueError(f"cannot tell the format from {path.name!r} (ends in {suffix!r}): give --format "
                     f"({', '.join(FORMATS)}) or end OUT in .keras, .onnx or .py")


def check_output(output: str, format: str) -> None:
    """Refuse, before any work, an OUT that this format cannot be written to (one line)."""
    path = Path(output)
    if format == "keras" and path.suffix.lower() != ".keras":
        raise ValueError(f"a Keras file must end in .keras (keras.saving.load_model refuses other names): "
                         f"use {path.with_suffix('.keras').name}")
    if format != "pytorch" and (output.endswith(("/", os.sep)) or path.is_dir()):
        raise IsADirectoryError(f"cannot export to {output}: it is a folder; give a file name such as "
                                f"{path / ('model' + _suffix(format))}")
    if format == "pytorch" and path.exists() and not path.is_dir():
        raise NotADirectoryError(f"cannot export to {output}: a file of that name is in the way; "
                                 "choose a folder name")
    folder = Path(os.path.realpath(path)).parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot export to {output}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot export to {output}: the folder {folder} is not writable; choose another -o")


def _suffix(format: str) -> str:
    from ..engine.export import FORMATS

    return FORMATS[format][2]


def read_model(path: str):
    """(model, training recipe or None, True when it carries trained weights) of a model file."""
    from ..engine import load_model_file
    from ..engine.layers import ConfigError
    from ..engine.model_io import decode_weights

    model_file = load_model_file(path)
    model = model_file.model
    model.checked_report()  # a model that does not build is refused here, naming the layer
    if model_file.weights is None:
        return model, model_file.training, False
    if model_file.training is not None:
        model.seed = model_file.training.seed
    model.build()
    try:
        model.set_weights(decode_weights(model, model_file.weights))
    except ConfigError as exc:
        raise ConfigError(f"{Path(path).name}: {exc}") from None
    return model, model_file.training, True


def dataset_of(path: str):
    """The model file's "dataset" section as a spec (a relative folder taken beside the
    file), or None: the training scripts read that data."""
    from ..engine import load_model_file
    from ..engine.dataset_spec import spec_for_project

    section = load_model_file(path).sections.get("dataset")
    return spec_for_project(section, path) if section else None


def run(args) -> int:
    from ..engine.export import export, problems

    format = args.format or infer_format(args.output)
    check_output(args.output, format)
    model, training, trained = read_model(args.model)
    found = problems(model, format)
    if found:
        print(f"error: cannot export {Path(args.model).name} to {format} "
              f"({len(found)} problem{'s' if len(found) != 1 else ''}):", file=sys.stderr)
        for line in found:
            print(f"  {line}", file=sys.stderr)
        return 2
    written = export(model, args.output, format, training=training, dataset=dataset_of(args.model))
    if not trained:  # said once the export is there: a failed write has only its own line
        print(f"note: {Path(args.model).name} holds no trained weights: the export has the architecture with freshly "
              f"initialised weights (train it first: visualcnn train MODEL --save trained.json)", file=sys.stderr)
    kind = "trained weights" if trained else "fresh weights"
    print(f"wrote {written} ({format}, {kind})")
    if format == "keras-code" and trained:
        from ..engine.export.keras_code import weights_path

        print(f"wrote {weights_path(written)} (the weights the script loads)")
    return 0
