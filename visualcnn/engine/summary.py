"""model.summary(): rows as data, and the Keras text table rendered on top of them.

Matches keras/src/utils/summary_utils.py as printed through rich: heavy-head box with a
line between rows, counts with thousands separators, sizes as float32 bytes in 1024 units.
A Sequential model: line length min(88, terminal columns - 4), columns ending at 0.45 /
0.80 / 1.0. A Functional model: an InputLayer row first and the layers in Keras's order;
when a layer has several inputs, a "Connected to" column, min(108, columns - 4) and
0.3 / 0.56 / 0.74 / 1.0. Cells wrap at spaces, a word longer than its cell ends in "…",
header cells sit at the bottom of their row (rich's rules, ported in _cell_lines).

render_costs is a view of its own in the same table style (multiply-adds and activation
memory per image, with how they were counted): Keras's table never changes for it.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from typing import Sequence

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


def totals_lines(report: PipelineReport, optimizer_params: int | None = None) -> list[str]:
    """Keras's lines under the table; "Optimizer params" (counted in the total) once the
    optimizer has its state, as Keras prints after training."""
    def line(label: str, count: int) -> str:
        return f" {label}: {count:,} ({readable_memory_size(count * BYTES_PER_PARAM)})"
    lines = [line("Total params", report.total_params + (optimizer_params or 0)),
             line("Trainable params", report.trainable_params),
             line("Non-trainable params", report.non_trainable_params)]
    if optimizer_params is not None:
        lines.append(line("Optimizer params", optimizer_params))
    return lines


def optimizer_param_count(optimizer, trainable_params: int) -> int | None:
    """The numbers Keras 3 counts as an optimizer's variables once it is built (None before
    the first training step): its iteration counter and learning rate, plus one slot per
    trainable weight for each of Adam's two moments, SGD's momentum (when > 0), RMSprop's
    velocity and its momentum (when > 0). All 4 bytes wide, as Keras's int32/float32."""
    if optimizer is None or getattr(optimizer, "_params", None) is None:
        return None
    slots = {"adam": 2, "sgd": 1 if getattr(optimizer, "momentum", 0) > 0 else 0,
             "rmsprop": 1 + (getattr(optimizer, "momentum", 0) > 0)}.get(optimizer.name, 0)
    return 2 + slots * trainable_params


def summary_dict(name: str, report: PipelineReport) -> dict:
    """The `summarize` dict; the caller has checked the report has no error."""
    layers = []
    input_name = report.input_name
    for r in report.rows:
        inf = r.inference
        layers.append({
            "name": r.name,
            "class_name": r.layer.class_name,
            "inbound": [input_name if j == -1 else report.rows[j].name for j in r.inbound],
            "output_shape": list(inf.output_shape),
            "params": inf.params,
            "trainable_params": inf.trainable_params,
            "non_trainable_params": inf.params - inf.trainable_params,
            "weights": [{"name": w.name, "shape": list(w.shape), "trainable": w.trainable} for w in inf.weights],
            "derivation": "\n".join(inf.derivation + (describe_field(inf),)),
            "receptive_field": field_value(inf.field.size),
            "jump": field_value(inf.field.jump),
            "macs": inf.macs,
            "macs_derivation": inf.macs_line,
            "activation_bytes": inf.activation_bytes,
            "activation_derivation": inf.activation_line,
        })
    return {
        "name": name,
        "input_shape": [None, *report.input_shape],
        "input_name": input_name,
        "layers": layers,
        "total_params": report.total_params,
        "trainable_params": report.trainable_params,
        "non_trainable_params": report.non_trainable_params,
        "total_bytes": report.total_params * BYTES_PER_PARAM,
        "total_macs": report.total_macs,
        "total_activation_bytes": report.total_activation_bytes,
    }


def summarize(model) -> dict:
    """visualcnn.engine.summarize: the summary as a dict; raises ValueError for an invalid model."""
    return summary_dict(model.name, model.checked_report())


# Below about 20 columns a cell gets no character at all (the word wrap never ended), and
# below 40 the table is unreadable; a width in
# the millions would build gigantic strings. Narrower or wider requests are clamped.
MIN_LINE_LENGTH = 40
MAX_LINE_LENGTH = 1000


def console_width() -> int:
    """The width rich gives Keras's console: the first terminal among stdin, stdout and stderr,
    then $COLUMNS over it, else 80 (shutil looks at stdout only, so the two differ when output
    is redirected in a terminal)."""
    width = None
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
            break
        except (AttributeError, ValueError, OSError):
            pass
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        width = int(columns)
    return width or 80


def wide_line_length(report: PipelineReport, functional: bool | None = None) -> int:
    """The width Keras gives the table in a terminal wider than it: 108 columns when it has
    "Connected to", 88 otherwise (for a window, which has no terminal width)."""
    if functional is None:
        functional = not report.is_linear
    return 108 if functional and any(len(ins) != 1 for ins in report.inbound) else 88


def clamp_line_length(line_length: int) -> int:
    return max(MIN_LINE_LENGTH, min(MAX_LINE_LENGTH, int(line_length)))


def _column_widths(line_length: int, positions: tuple[float, ...]) -> list[int]:
    """Rich's widths (padding included) for fixed-width columns ending at `positions` * line_length."""
    widths, current = [], 0
    for pos in positions:
        width = int(pos * line_length) - current
        if width < 4:  # Keras's own check
            raise ValueError(f"Insufficient console width to print summary: column ends {list(positions)} at "
                             f"{line_length} characters leave a column of {width}; use a larger line_length")
        widths.append(width + 2)  # rich adds one space of padding on each side
        current += width
    available = line_length - len(widths) - 1  # the vertical borders
    excess = sum(widths) - available
    if excess > 0:  # rich.table: no column may wrap (all have widths), so ratio_reduce with equal ratios
        remaining, ratio_left, reduced = excess, len(widths), []
        for w in widths:
            cut = min(w, round(remaining / ratio_left))
            reduced.append(w - cut)
            remaining -= cut
            ratio_left -= 1
        widths = reduced
    return widths


def _char_cells(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _cell_len(text: str) -> int:
    return len(text) if text.isascii() else sum(_char_cells(ch) for ch in text)


def _set_cell_size(text: str, width: int) -> str:
    """rich.cells.set_cell_size: crop to `width` cells, a cut wide character becomes a space."""
    if _cell_len(text) <= width:
        return text + " " * (width - _cell_len(text))
    out, used = [], 0
    for ch in text:
        cells = _char_cells(ch)
        if used + cells > width:
            break
        out.append(ch)
        used += cells
    return "".join(out) + " " * (width - used)


_WORD = re.compile(r"\s*\S+\s*")


def _break_offsets(text: str, width: int, fold: bool) -> list[int]:
    """rich._wrap.divide_line: where a line breaks; a word longer than the cell stays whole
    (the cell's ellipsis cuts it) unless `fold`."""
    breaks: list[int] = []
    offset = 0
    for match in _WORD.finditer(text):
        start, word = match.start(), match.group(0)
        word_length = _cell_len(word.rstrip())
        if width - offset >= word_length:
            offset += _cell_len(word)
        elif word_length > width:
            if fold:
                piece = ""
                pieces = []
                for ch in word:  # rich's chop_cells
                    if _cell_len(piece + ch) > width:
                        pieces.append(piece)
                        piece = ""
                    piece += ch
                pieces.append(piece)
                for k, chunk in enumerate(pieces):
                    if start:
                        breaks.append(start)
                    if k == len(pieces) - 1:
                        offset = _cell_len(chunk)
                    else:
                        start += len(chunk)
            else:
                if start:
                    breaks.append(start)
                offset = _cell_len(word)
        elif offset and start:
            breaks.append(start)
            offset = _cell_len(word)
    return breaks


def _split(text: str, width: int, fold: bool) -> list[str]:
    """rich's Text.wrap up to justification: the pieces, each without whitespace beyond the width."""
    width = max(1, width)  # a zero width would never place a word
    cuts = [0, *_break_offsets(text, width, fold), len(text)]
    lines = []
    for a, b in zip(cuts, cuts[1:]):
        line = text[a:b]
        excess = len(line) - width
        if excess > 0:  # Text.rstrip_end
            spaces = len(line) - len(line.rstrip())
            line = line[:len(line) - min(spaces, excess)]
        lines.append(line)
    return lines


def _cell_lines(text: str, width: int, align: str) -> list[str]:
    """One table cell as rich renders it (overflow "ellipsis"): lines exactly `width` cells wide."""
    if width < 1:  # rich renders nothing in a cell left without room (its padding stays)
        return []
    out = []
    for line in _split(text, width, fold=False):
        if align != "left":
            line = line.rstrip()
        if _cell_len(line) > width:
            line = _set_cell_size(line, width - 1) + "…"
        room = width - _cell_len(line)
        left = room if align == "right" else room // 2 if align == "center" else 0
        out.append(" " * left + line + " " * (room - left))
    return out


def _wrap(text: str, width: int) -> list[str]:
    """Word wrap as rich prints a plain string (overflow "fold"): a word longer than the width is cut."""
    return [line if _cell_len(line) <= width else _set_cell_size(line, width).rstrip()
            for line in _split(text, width, fold=True)]


SEQUENTIAL_COLUMNS = (("Layer (type)", 0.45, "left"), ("Output Shape", 0.80, "left"), ("Param #", 1.0, "right"))
FUNCTIONAL_COLUMNS = (("Layer (type)", 0.3, "left"), ("Output Shape", 0.56, "left"), ("Param #", 0.74, "right"),
                      ("Connected to", 1.0, "left"))


def keras_order(inbound: Sequence[Sequence[int]]) -> list[int]:
    """The order of keras.Model(...).layers for a graph (-1 = the input): keras/src/ops/function.py
    map_graph sorts by depth (the longest path to the output, deepest first), ties by the order a
    depth-first walk from the output meets them. The output is the last row."""
    if not inbound:
        return [-1]
    output = len(inbound) - 1
    preorder: dict[int, int] = {}
    postorder: list[int] = []
    done: set[int] = set()
    stack: list[tuple[int, int]] = [(output, 0)]  # iterative: graphs may be thousands of layers deep
    walking: set[int] = set()  # on the current path: a link back to one is a cycle (an error row), not followed
    while stack:
        node, k = stack.pop()
        if k == 0:
            if node in done or node in walking:
                continue
            walking.add(node)
            preorder.setdefault(node, len(preorder))
        parents = [j for j in inbound[node] if -1 <= j < len(inbound)] if node >= 0 else ()
        if k < len(parents):
            stack.append((node, k + 1))
            if parents[k] not in done:
                stack.append((parents[k], 0))
            continue
        walking.discard(node)
        done.add(node)
        postorder.append(node)
    depth: dict[int, int] = {}
    for node in reversed(postorder):
        d = depth.setdefault(node, 0)
        for parent in (inbound[node] if node >= 0 else ()):
            if -1 <= parent < len(inbound):
                depth[parent] = max(d + 1, depth.get(parent, 0))
    order = sorted(depth, key=lambda node: (-depth[node], preorder[node]))
    # A graph the builder is still editing may hold rows the output does not reach (an error
    # row says so): they follow, in file order, so the table still shows every block.
    return order + [i for i in range(-1, len(inbound)) if i not in depth]


def connected_to(report: PipelineReport, index: int, keras_suffix: bool = True) -> str:
    """Keras's "Connected to" cell of a row: 'conv2d[0][0], conv2d_1[0][0]' ('-' for none).
    keras_suffix=False drops the [node][tensor] indices (always [0][0] here) for a narrow view."""
    names = [r.name for r in report.rows]
    suffix = "[0][0]" if keras_suffix else ""
    return ", ".join(f"{report.input_name if j == -1 else names[j]}{suffix}" for j in report.inbound[index]) or "-"


def _functional_rows(report: PipelineReport) -> tuple[list[tuple[str, ...]], bool, list[int]]:
    """Keras's rows for a Functional model, the InputLayer first; whether the table has
    "Connected to" (Keras drops that column when every layer has exactly one input); the
    report row of each table row (-1: the input)."""
    inbound = report.inbound
    input_name = report.input_name
    rows = []
    order = keras_order(inbound)
    for i in order:
        if i == -1:
            rows.append((f"{input_name} (InputLayer)", format_shape((None, *report.input_shape)), "0", "-"))
            continue
        r = report.rows[i]
        rows.append((f"{r.name} ({r.layer.class_name})", format_shape(r.output_shape) if r.output_shape else "?",
                     f"{r.params:,}", connected_to(report, i)))
    connected_column = any(len(ins) != 1 for ins in inbound)
    return (rows if connected_column else [row[:3] for row in rows]), connected_column, order


def _layer_range_bounds(names: list[str], layer_range: Sequence[str]) -> tuple[int, int]:
    """Keras's get_layer_index_bound_by_layer_name: from the first name matching the first
    pattern to the last matching the second (re.match), both included."""
    if len(layer_range) != 2 or not all(isinstance(p, str) for p in layer_range):
        raise ValueError(f"layer_range must be two strings (name patterns), received {layer_range!r}")
    lower = [i for i, name in enumerate(names) if re.match(layer_range[0], name)]
    upper = [i for i, name in enumerate(names) if re.match(layer_range[1], name)]
    if not lower or not upper:
        raise ValueError(f"layer_range {list(layer_range)} matches no layer names of the model")
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def _trainable_flag(row) -> str:
    """Keras's show_trainable cell: Y / N for a layer with weights, - without."""
    if row is None or row.inference is None or not row.inference.weights:
        return "-"
    return "Y" if row.layer.trainable else "N"


def _draw_table(columns, rows, line_length: int) -> list[str]:
    """The lines of a rich table as Keras prints it: columns (title, end position, align),
    rows of cell strings."""
    widths = _column_widths(line_length, tuple(pos for _, pos, _ in columns))
    inner = [w - 2 for w in widths]
    aligns = [align for _, _, align in columns]

    def cells(values, left: str, mid: str, right: str, header: bool = False) -> list[str]:
        wrapped = [_cell_lines(v, w, a) for v, w, a in zip(values, inner, aligns)]
        height = max(len(w) for w in wrapped)
        # rich aligns header cells to the bottom of the row, body cells to the top
        wrapped = [[" " * w] * (height - len(lines)) + lines if header else lines + [" " * w] * (height - len(lines))
                   for lines, w in zip(wrapped, inner)]
        return [left + mid.join(f" {lines[i]} " for lines in wrapped) + right for i in range(height)]

    def rule(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * w for w in widths) + right

    table = [rule("┏", "━", "┳", "┓")]
    table += cells(tuple(title for title, _, _ in columns), "┃", "┃", "┃", header=True)
    table.append(rule("┡", "━", "╇", "┩"))
    for i, row in enumerate(rows):
        if i:
            table.append(rule("├", "─", "┼", "┤"))
        table += cells(row, "│", "│", "│")
    table.append(rule("└", "─", "┴", "┘"))
    return table


def render_summary(name: str, report: PipelineReport, line_length: int | None = None,
                   functional: bool | None = None, console_width: int | None = None,
                   positions: Sequence[float] | None = None, show_trainable: bool = False,
                   layer_range: Sequence[str] | None = None, optimizer_params: int | None = None) -> str:
    """The text Keras 3 prints for model.summary() (model parameters only, no optimizer line).

    functional: Keras's Functional table (an InputLayer row first, layers in Keras's order,
    "Connected to" when any layer has several inputs); by default when the graph branches.
    A Sequential model's table has no InputLayer row. console_width: as Keras does through
    rich, wrap the title and totals and cut table lines at that width (model.summary() passes
    the terminal's; the command line and the window print the whole table they asked for).
    positions (relative column ends), show_trainable (a "Trainable" column) and layer_range
    (two name patterns: the rows from the first match to the last) as Keras's; optimizer_params
    adds Keras's "Optimizer params" line (see optimizer_param_count).
    """
    if functional is None:
        functional = not report.is_linear
    if functional:
        rows, connected, order = _functional_rows(report)
        columns = FUNCTIONAL_COLUMNS if connected else SEQUENTIAL_COLUMNS
        default = 108 if connected else 88
    else:
        rows = [(f"{r.name} ({r.class_name})", r.output_shape, r.params) for r in summary_rows(report)]
        columns, default, order = SEQUENTIAL_COLUMNS, 88, range(len(report.rows))
    if positions:
        if len(positions) != len(columns):
            raise ValueError(f"positions needs {len(columns)} column ends for this table, received {list(positions)}")
        columns = tuple((title, float(pos), align) for (title, _, align), pos in zip(columns, positions))
    if show_trainable:  # Keras: 12 columns more, the others squeezed to 90%
        default += 12
        columns = (*((title, pos * 0.90, align) for title, pos, align in columns), ("Trainable", 1.0, "center"))
        rows = [(*row, _trainable_flag(report.rows[i] if i >= 0 else None)) for row, i in zip(rows, order)]
    if layer_range is not None:
        names = [report.input_name if i < 0 else report.rows[i].name for i in order]
        first, last = _layer_range_bounds(names, layer_range)
        rows = rows[first:last]
    if line_length:
        line_length = clamp_line_length(line_length)
    else:
        line_length = clamp_line_length(min(default, shutil.get_terminal_size().columns - 4))
    table = _draw_table(columns, rows, line_length)
    head, tail = [f'Model: "{name}"'], totals_lines(report, optimizer_params)
    if console_width:  # rich wraps the plain lines and cuts the table's at the console's edge
        head = _wrap(head[0], console_width)
        table = [_set_cell_size(line, console_width) if _cell_len(line) > console_width else line for line in table]
        tail = [part for line in tail for part in _wrap(line, console_width)]
    lines = [*head, *table, *tail]
    return "\n".join(lines)


# --- costs per image (issue 13): a view of its own, so Keras's table above stays Keras's ---

# "Memory": the layer's output (its activations) for one image
COST_COLUMNS = (("Layer (type)", 0.30, "left"), ("MACs", 0.45, "right"), ("Memory", 0.61, "right"),
                ("How the MACs are counted", 1.0, "left"))


def readable_count(n: float) -> str:
    """'2.56 M' for 2,555,392: thousands, millions, billions (1000s, as MACs are quoted)."""
    for unit in ("", " K", " M", " G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if not unit else f"{n:.2f}{unit}"
        n /= 1000
    return f"{n:.2f} T"


def cost_lines(report: PipelineReport) -> list[str]:
    """The lines under the costs table: totals for one image."""
    return [f" Total MACs: {report.total_macs:,} per image ({readable_count(report.total_macs)} multiply-adds)",
            f" Activation memory: {report.total_activation_bytes:,} B per image "
            f"({readable_memory_size(report.total_activation_bytes)}, every layer's output once)"]


def render_costs(name: str, report: PipelineReport, line_length: int | None = None) -> str:
    """The costs of every layer for one image: MACs, activation memory and how the MACs
    were counted (layers/base.py Layer._macs), in the summary's table style; 108 columns
    (the derivation is long) unless line_length says otherwise."""
    line_length = clamp_line_length(line_length or min(108, shutil.get_terminal_size().columns - 4))
    rows = [(f"{r.name} ({r.layer.class_name})", f"{r.macs:,}", readable_memory_size(r.activation_bytes),
             r.inference.macs_line.removeprefix("MACs = ") if r.inference else "?")
            for r in report.rows]
    return "\n".join([f'Costs per image: "{name}"', *_draw_table(COST_COLUMNS, rows, line_length), *cost_lines(report)])
