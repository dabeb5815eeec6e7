"""A Trace as the derivation a student reads, with the numbers (4 significant digits)."""

from __future__ import annotations

import numpy as np

SPELL_OUT = 27  # a window of at most this many products is written out product by product
CHANNELS_LISTED = 8  # otherwise the channels with the largest sums, the rest summed


def n(value: float) -> str:
    return f"{value:.4g}"


def factor(value: float) -> str:
    """A number after '*': negative ones in brackets, 0.5*(-0.2)."""
    return n(value) if value >= 0 else f"({n(value)})"


def trace_lines(t) -> list[str]:
    where = ", ".join(str(i) for i in t.index)
    lines = [f"{t.layer_name} ({t.class_name}) at [{where}] = {n(t.value)}"]
    if t.field_rows is not None:
        (r0, r1), (c0, c1) = t.field_rows, t.field_cols
        lines.append(f"sees input rows {r0}-{r1}, columns {c0}-{c1} ({r1 - r0 + 1}x{c1 - c0 + 1} pixels)")
    source = " and ".join(f"'{name}'" for name in t.input_names)
    if t.window_rows:
        lines.append(f"reads {source} at rows {_span(t.window_rows)}, columns {_span(t.window_cols)}"
                     + (" (outside the input: padding zeros)" if t.padding is not None and t.padding.any() else ""))
    lines += list(t.notes)
    lines.append(t.formula)
    lines += _BODY.get(t.kind, _simple)(t)
    verdict = "the same as the model" if t.matches() else f"but the model computed {n(t.value)}"
    lines.append(f"= {n(t.computed)} ({verdict})")
    return lines


def _span(positions) -> str:
    return f"{positions[0]}..{positions[-1]}" if len(positions) > 1 else str(positions[0])


def _conv(t) -> list[str]:
    lines = []
    products = t.products
    if products is not None and products.size <= SPELL_OUT:
        for ch in range(products.shape[2]):
            parts = []
            for a in range(products.shape[0]):
                for b in range(products.shape[1]):
                    pad = " (pad)" if t.padding[a, b] else ""
                    parts.append(f"{factor(t.patch[a, b, ch])}{pad}*{factor(t.kernel[a, b, ch])}")
            lines.append(f"channel {ch}: " + " + ".join(parts) + f" = {n(t.channel_sums[ch])}")
    elif t.channel_sums is not None:
        taps = t.patch.shape[0] * t.patch.shape[1] if t.patch is not None else None
        lines += _channel_summary(t.channel_sums, f"{taps} products" if taps else "its products")
    lines += _terms(t)
    lines += _sum_bias_activation(t)
    return lines


def _channel_summary(sums: np.ndarray, what: str) -> list[str]:
    order = np.argsort(-np.abs(sums), kind="stable")
    lines = [f"channel {ch}: sum of {what} = {n(sums[ch])}" for ch in order[:CHANNELS_LISTED]]
    rest = order[CHANNELS_LISTED:]
    if len(rest):
        lines.append(f"{len(rest)} other channels: together {n(sums[rest].sum())}")
    return lines


def _terms(t) -> list[str]:
    lines = [f"{term.label}: {factor(term.value)}*{factor(term.weight)} = {n(term.product)}" for term in t.terms
             if term.weight is not None]
    if t.rest_count:
        lines.append(f"{t.rest_count} other products: together {n(t.rest)}")
    return lines


def _sum_bias_activation(t) -> list[str]:
    lines = [f"sum = {n(t.total)}"]
    if t.bias is not None:
        lines.append(f"+ bias {n(t.bias)} = {n(t.pre_activation)}")
    if t.activation and t.activation != "linear":
        lines.append(f"{t.activation}({n(t.pre_activation)}) = {n(t.computed)}")
    return lines


def _separable(t) -> list[str]:
    lines = _channel_summary(t.channel_sums, "its window*depthwise kernel")
    return lines + _terms(t) + _sum_bias_activation(t)


def _dense(t) -> list[str]:
    return ["largest contributions (input*weight):"] + _terms(t) + _sum_bias_activation(t)


def _pool(t) -> list[str]:
    rows = []
    for a in range(t.patch.shape[0]):
        cells = ["pad" if t.padding[a, b] else n(t.patch[a, b, 0]) for b in range(t.patch.shape[1])]
        rows.append("  " + "  ".join(cells))
    if t.patch.size > 64:
        rows = [f"  ({t.patch.shape[0]}x{t.patch.shape[1]} values)"]
    if t.kind == "max_pool":
        return ["window:", *rows, f"the largest is at row {t.chosen[0]}, column {t.chosen[1]}"]
    inside = int((~t.padding).sum())
    return ["window:", *rows, f"average = {n(t.total)} / {inside}"]


def _merge(t) -> list[str]:
    total = sum(term.value for term in t.terms)
    # a share is a fraction only when every input pulls the same way
    same_sign = all(term.value >= 0 for term in t.terms) or all(term.value <= 0 for term in t.terms)
    shares = t.formula.endswith("sum of the inputs") and total and same_sign
    lines = []
    for term in t.terms:
        share = f" ({100 * term.value / total:.0f}% of the sum)" if shares else ""
        lines.append(f"'{term.label}': {n(term.value)}{share}")
    return lines


def _simple(t) -> list[str]:
    if len(t.inputs) == 1:
        return [f"x = {n(t.inputs[0])}"]
    return [f"inputs: {', '.join(n(v) for v in t.inputs)}"] if t.inputs else []


_BODY = {"conv": _conv, "depthwise": _conv, "transpose": _conv, "separable": _separable, "dense": _dense,
         "max_pool": _pool, "average_pool": _pool, "merge": _merge}
