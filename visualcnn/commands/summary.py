"""`visualcnn summary FILE [--json]`: the Keras summary table of a model file."""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="a VisualCNN model file or a Keras model.to_json() file")
    parser.add_argument("--json", action="store_true", help="print the summary as a JSON object")
    parser.add_argument("--line-length", type=int, default=None, help="table width (default: as Keras, "
                        "min(88, terminal width - 4))")


def run(args) -> int:
    from ..engine import load_model_file, render_summary, summarize

    model = load_model_file(args.file).model
    if args.json:
        print(json.dumps(summarize(model)))
    else:
        print(render_summary(model.name, model.checked_report(), args.line_length))
    return 0
