"""`visualcnn summary FILE [--json]`: the Keras summary table of a model file.

FILE may also be a bundled preset's name (`visualcnn summary seed_cnn`) or a Keras .keras /
.h5 file (engine load_model_file reads every kind).
"""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="a VisualCNN model file, a Keras .keras or .h5 file, a Keras "
                        "model.to_json() file, or a bundled preset's name such as seed_cnn")
    parser.add_argument("--json", action="store_true", help="print the summary as a JSON object")
    parser.add_argument("--costs", action="store_true", help="also print each layer's multiply-adds (MACs) "
                        "and activation memory per image, with how they are counted")
    parser.add_argument("--line-length", type=int, default=None, help="table width (default: as Keras, "
                        "min(88, terminal width - 4))")


def run(args) -> int:
    from ..engine import Sequential, load_model_file, render_summary, summarize
    from ..engine.summary import MAX_LINE_LENGTH, MIN_LINE_LENGTH

    if args.line_length is not None and not MIN_LINE_LENGTH <= args.line_length <= MAX_LINE_LENGTH:
        raise ValueError(f"--line-length must be between {MIN_LINE_LENGTH} and {MAX_LINE_LENGTH} columns, "
                         f"received {args.line_length}")
    model = load_model_file(args.file).model
    _utf8_stdout_if_needed()
    if args.json:
        print(json.dumps(summarize(model)))
    else:
        # Keras prints a Functional model's table (InputLayer row, "Connected to") even when it is linear
        print(render_summary(model.name, model.checked_report(), args.line_length,
                             functional=not isinstance(model, Sequential)))
        if getattr(args, "costs", False):  # a table of its own: Keras's table above stays as Keras prints it
            from ..engine.summary import render_costs

            print()
            print(render_costs(model.name, model.checked_report(), args.line_length))
    return 0


def _utf8_stdout_if_needed() -> None:
    """The table's box lines (and layer names) need Unicode; a redirect to a file on Windows (cp1252)
    or a Latin-1 locale cannot encode them and would fail mid-table: write UTF-8 there instead."""
    import sys

    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "┏━┃│└─╇┼".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        try:
            sys.stdout.reconfigure(encoding="utf-8")
        except (AttributeError, ValueError):
            pass
