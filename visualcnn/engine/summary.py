"""model.summary(): rows as data, and the Keras text table rendered on top of them.

Matches keras/src/utils/summary_utils.py as printed through rich: line length
min(88, terminal columns - 4), column positions 0.45 / 0.80 / 1.0, heavy-head box with a
line between rows, counts with thousands separators, sizes as float32 bytes in 1024 units.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from .analysis import PipelineReport, describe_field, field_value
from .shapes import format_shape

BYTES_PER_PARAM = 4  # float32


@dataclass(frozen=True)
class SummaryRow:
    name: str
    class_name: str
    output_shape: str
    params: str


def readable_memory_size(n_bytes: float) -> str:
    """Keras's readable_memory_size: '136.04 KB'."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n_bytes / 1024 < 1:
            return f"{n_bytes:.2f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.2f} PB"


def summary_rows(report: PipelineReport) -> list[SummaryRow]:
    return [SummaryRow(r.name, r.layer.class_name,
                       format_shape(r.output_shape) if r.output_shape else "?", f"{r.params:,}")
            for r in report.rows]


def totals_lines(report: PipelineReport) -> list[str]:
    def line(label: str, count: int) -> str:
        return f" {label}: {count:,} ({readable_memory_size(count * BYTES_PER_PARAM)})"
    return [line("Total params", report.total_params),
            line("Trainable params", report.trainable_params),
            line("Non-trainable params", report.non_trainable_params)]


def summary_dict(name: str, report: PipelineReport) -> dict:
    """The `summarize` dict; the caller has checked the report has no error."""
    layers = []
    for r in report.rows:
        inf = r.inference
        layers.append({
            "name": r.name,
            "class_name": r.layer.class_name,
            "output_shape": list(inf.output_shape),
            "params": inf.params,
            "trainable_params": inf.trainable_params,
            "non_trainable_params": inf.params - inf.trainable_params,
            "weights": [{"name": w.name, "shape": list(w.shape), "trainable": w.trainable} for w in inf.weights],
            "derivation": "\n".join(inf.derivation + (describe_field(inf),)),
            "receptive_field": field_value(inf.field.size),
            "jump": field_value(inf.field.jump),
        })
    return {
        "name": name,
        "input_shape": [None, *report.input_shape],
        "layers": layers,
        "total_params": report.total_params,
        "trainable_params": report.trainable_params,
        "non_trainable_params": report.non_trainable_params,
        "total_bytes": report.total_params * BYTES_PER_PARAM,
    }


def summarize(model) -> dict:
    """visualcnn.engine.summarize: the summary as a dict; raises ValueError for an invalid model."""
    return summary_dict(model.name, model.checked_report())


# Below about 20 columns a cell gets no character at all (the word wrap never ended), and
# below 40 the table is unreadable; a width in
# the millions would build gigantic strings. Narrower or wider requests are clamped.
MIN_LINE_LENGTH = 40
MAX_LINE_LENGTH = 1000


def default_line_length() -> int:
    return clamp_line_length(min(88, shutil.get_terminal_size().columns - 4))


def clamp_line_length(line_length: int) -> int:
    return max(MIN_LINE_LENGTH, min(MAX_LINE_LENGTH, int(line_length)))


def _column_widths(line_length: int) -> list[int]:
    """Rich's widths (padding included) for the three fixed-width columns of the table."""
    widths, current = [], 0
    for pos in (0.45, 0.80, 1.0):
        width = int(pos * line_length) - current
        widths.append(width + 2)  # rich adds one space of padding on each side
        current += width
    available = line_length - 4  # four vertical borders
    excess = sum(widths) - available
    if excess > 0:  # rich.table ratio_reduce with equal ratios
        remaining, ratio_left, reduced = excess, 3, []
        for w in widths:
            cut = min(w, round(remaining / ratio_left))
            reduced.append(w - cut)
            remaining -= cut
            ratio_left -= 1
        widths = reduced
    return widths


def _wrap(text: str, width: int) -> list[str]:
    """Rich-like word wrap: break at spaces, fold words longer than the cell."""
    width = max(1, width)  # a zero width would fold forever
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        while len(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            lines.append(current)
            current = word
    lines.append(current)
    return lines


def render_summary(name: str, report: PipelineReport, line_length: int | None = None) -> str:
    """The text Keras 3 prints for model.summary() (model parameters only, no optimizer line)."""
    widths = _column_widths(clamp_line_length(line_length) if line_length else default_line_length())
    inner = [w - 2 for w in widths]
    align = ("left", "left", "right")

    def cells(values: tuple[str, str, str], left: str, mid: str, right: str) -> list[str]:
        wrapped = [_wrap(v, w) for v, w in zip(values, inner)]
        height = max(len(w) for w in wrapped)
        out = []
        for i in range(height):
            parts = []
            for col, lines in enumerate(wrapped):
                text = lines[i] if i < len(lines) else ""
                text = text.rjust(inner[col]) if align[col] == "right" else text.ljust(inner[col])
                parts.append(f" {text} ")
            out.append(left + mid.join(parts) + right)
        return out

    def rule(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * w for w in widths) + right

    lines = [f'Model: "{name}"', rule("┏", "━", "┳", "┓")]
    lines += cells(("Layer (type)", "Output Shape", "Param #"), "┃", "┃", "┃")
    lines.append(rule("┡", "━", "╇", "┩"))
    for i, row in enumerate(summary_rows(report)):
        if i:
            lines.append(rule("├", "─", "┼", "┤"))
        lines += cells((f"{row.name} ({row.class_name})", row.output_shape, row.params), "│", "│", "│")
    lines.append(rule("└", "─", "┴", "┘"))
    lines += totals_lines(report)
    return "\n".join(lines)
