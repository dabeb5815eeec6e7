"""Words explained in place: the glossary's plain sentences in the tooltips of technical words.

One glossary (engine/glossary.py, resources/glossary.toml) and one helper: a widget showing
a technical word calls `explain(widget, "stride")` (or builds its tooltip with
`explained(text, "stride")`), and its tooltip gains "stride: How many pixels the window moves
between two outputs. ..." under what it already said. The sentences are wrapped here: a
plain-text tooltip is never wrapped by Qt and one long line ran off a projector's screen.

`install_glossary_tips(window)` explains the window's fixed widgets (the Summary's columns
and totals, the Train tab's settings and curves, the Draw tab's probabilities, the Build
tab's status line); widgets built per layer (inspector rows, summary cells, cards) call the
helpers where they are built.
"""

from __future__ import annotations

import re
import textwrap

from ..engine.glossary import lookup, term

WRAP = 72  # characters per tooltip line

# The inspector's argument names whose glossary word is not the argument's own name.
ARG_TERMS = {
    "activation": ("activation", "softmax", "logits"),
    "pool_size": ("pooling",),
    "rate": ("dropout",),
    "units": ("units",),
    "dilation_rate": ("dilation",),
    "depth_multiplier": ("depthwise convolution",),
    "momentum": ("batch normalization", "non-trainable parameters"),
    "epsilon": ("batch normalization",),
}
# The Train tab's settings (TrainingControlsPanel attribute -> glossary words).
SETTING_TERMS = {
    "dataset": ("mnist",),
    "optimizer": ("optimizer", "adam", "sgd"),
    "learning_rate": ("learning rate",),
    "schedule": ("learning rate schedule",),
    "batch_size": ("batch size", "batch"),
    "epochs": ("epoch",),
    "validation_split": ("validation split", "validation"),
    "train_images": ("training set",),
    "seed": ("seed",),
}


def entry(name: str, label: str | None = None) -> str:
    """'stride: How many pixels ...', wrapped; `label` is the word as the screen shows it."""
    return textwrap.fill(f"{label or name}: {term(name)}", WRAP)


def explained(text: str | None, *names: str) -> str:
    """`text` with the glossary entries of `names` under it (an entry already there, or two
    names for one entry, appear once). KeyError names a word the glossary lacks."""
    text = text or ""
    seen = set()
    parts = [text] if text else []
    for name in names:
        found = lookup(name)
        if found is None:
            term(name)  # raises KeyError naming the missing word and close ones
        if found in seen:
            continue
        seen.add(found)
        line = entry(name)
        if line not in text:
            parts.append(line)
    return "\n\n".join(parts)


def explained_html(html_text: str, *names: str) -> str:
    """For a rich-text tooltip (the palette's): the entries as paragraphs, which Qt wraps."""
    from html import escape

    seen, parts = set(), [html_text]
    for name in names:
        found = lookup(name)
        if found is None or found in seen:
            continue
        seen.add(found)
        parts.append(f"<p><b>{escape(name)}</b>: {escape(term(name))}</p>")
    return "".join(parts)


def explain(target, *names: str) -> None:
    """Add the glossary entries of `names` to the tooltip of a QWidget, QAction,
    QGraphicsItem (a chart's axis) or QTableWidgetItem."""
    target.setToolTip(explained(target.toolTip(), *names))


def arg_terms(arg) -> tuple[str, ...]:
    """The glossary words for one of a layer's arguments (inspector rows): kind and name."""
    if arg.kind == "padding":  # Conv2D's 'valid' / 'same' (ZeroPadding2D's numbers are plain padding)
        return ("padding", "valid", "same")
    if arg.name in ARG_TERMS:
        return ARG_TERMS[arg.name]
    return (arg.name,) if lookup(arg.name) is not None else ()


# The palette's groups (engine layer families) -> the glossary words that say what they are.
FAMILY_TERMS = {
    "augmentation": ("data augmentation",),
    "convolution": ("convolution", "filter"),
    "pooling": ("pooling",),
    "activation": ("activation",),
    "normalization": ("batch normalization",),
    "regularisation": ("overfitting", "dropout"),
    "merge": ("residual connection",),
    "core": ("dense", "flatten"),
    "reshaping": ("shape",),
}


def family_tip(family: str) -> str:
    """The tooltip of a palette group's heading ("" for a family without words)."""
    return explained("", *FAMILY_TERMS.get(family, ()))


def shape_terms(text: str) -> tuple[str, ...]:
    """A shape written with the batch as None ("(None, 26, 26, 32)") gets None explained."""
    return ("None",) if "None" in text else ()


# Words of a card's settings line that mean something else there (BatchNormalization's
# momentum is its running averages' factor, not the optimizer's momentum).
CARD_WORDS_SKIPPED = ("momentum",)


def layer_terms(report) -> tuple[str, ...]:
    """The words a layer's card shows: its type (Conv2D: convolution), the words of its settings
    line ("32 filters, 3x3, relu, valid, stride 2"), None in its shape, its receptive field, MACs,
    and non-trainable parameters (BatchNormalization's moving statistics)."""
    layer = report.layer
    words = [layer.class_name] + re.split(r"[\s,·]+", layer.describe())
    names = [w for w in words if w and not w[0].isdigit() and w not in CARD_WORDS_SKIPPED
             and lookup(w) is not None]
    names += ["None", "receptive field"]
    if report.macs:
        names.append("MACs")
    if report.params != report.trainable_params:
        names.append("non-trainable parameters")
    return tuple(names)


def summary_cell_terms(column: int, report) -> tuple[str, ...]:
    """The words of a Summary cell: column 1 the shape, 2 the Param # (and its MACs line)."""
    if report.status != "ok":
        return ()
    if column == 1:
        return ("None",)
    if column == 2:
        return ("parameters", "MACs") + (("non-trainable parameters",)
                                         if report.params != report.trainable_params else ())
    return ()


SUMMARY_HEADER_TERMS = {0: ("layer",), 1: ("output shape", "None"), 2: ("parameters", "non-trainable parameters")}


def explain_summary(summary) -> None:
    """The Summary's column headers (remade when a graph adds a column) and its totals."""
    for column, names in SUMMARY_HEADER_TERMS.items():
        item = summary.table.horizontalHeaderItem(column)
        if item is not None:
            explain(item, *names)
    explain(summary.totals, "parameters", "trainable parameters", "non-trainable parameters")
    explain(summary.costs, "MACs")


def _explain_plot(plot, title_terms, left_terms, bottom_terms) -> None:
    for item, names in ((plot.titleLabel, title_terms), (plot.getAxis("left"), left_terms),
                        (plot.getAxis("bottom"), bottom_terms)):
        explain(item, *names)


def install_glossary_tips(window) -> None:
    """Explain the fixed technical words of a MainWindow (once, when it is built)."""
    from PySide6.QtWidgets import QFormLayout, QLabel

    from .draw_tab import ProbabilityBarsWidget

    explain(window.train_status, "parameters", "None", "batch size")
    explain(window.inspector.derivation, "shape", "receptive field")

    controls = window.train_panel.controls
    forms = controls.findChildren(QFormLayout)
    for attribute, names in SETTING_TERMS.items():
        widget = getattr(controls, attribute, None)
        if widget is None:
            continue
        explain(widget, *names)
        for form in forms:
            label = form.labelForField(widget)
            if label is not None:
                explain(label, *names)
    explain(controls.progress_label, "epoch", "batch")
    explain(controls.metrics, "epoch", "loss", "accuracy")

    curves = window.train_panel.curves
    _explain_plot(curves.loss_plot, ("loss",), ("loss", "cross-entropy"), ("epoch",))
    _explain_plot(curves.accuracy_plot, ("accuracy",), ("accuracy", "validation"), ("epoch",))
    explain(curves.keep_runs, "epoch", "validation")

    for bars in window.draw_panel.findChildren(ProbabilityBarsWidget):
        explain(bars, "softmax", "logits")

    explain(controls.memory, "batch size", "parameters")
    headings = {"Filters (conv kernels)": ("filter", "kernel"), "Feature maps of the probe image": ("feature map",)}
    for label in window.train_panel.findChildren(QLabel):
        shown = re.sub(r"<[^>]+>", "", label.text())  # headings are "<big><b>...</b></big>"
        if shown in headings:
            explain(label, *headings[shown])
    results = window.train_panel.results
    explain(results.summary, "test set", "accuracy")
    explain(results.matrix, "confusion matrix")
    for action, names in ((window.watch_slide_action, ("stride", "receptive field")),
                          (window.explain_action, ("grad-cam", "saliency", "occlusion")),
                          (window.filter_vis_action, ("filter",)), (window.embedding_action, ("embedding",))):
        explain(action, *names)
