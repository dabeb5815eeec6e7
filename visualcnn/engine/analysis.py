"""Run shape inference over a whole pipeline (a graph of layers) without raising.

The builder window re-runs this on every edit: an impossible layer carries its error,
the layers fed by it are "unknown", and nothing is allocated. `summarize` and the
engine's build step use the same report, and raise the first error instead.

A pipeline is a list of layers in topological order plus, for each, the indices of the
layers feeding it (`inbound`, -1 = the model input). A plain stack is the linear case
(layer i fed by layer i - 1); `analyse` builds that case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .layers import ConfigError, Inference, Layer
from .shapes import Field

MAX_INPUT_SIDE = 100_000


@dataclass(frozen=True)
class LayerReport:
    """One block of the pipeline after inference. status: "ok", "error" or "unknown".

    inbound: indices of the rows feeding it (-1 = the model input), input_shapes their
    output shapes (None where unknown); input_shape is the first input's shape. A row
    whose output nothing uses keeps its inference (the shape is still shown) and has an
    error.
    """

    index: int
    layer: Layer
    input_shape: tuple | None
    inference: Inference | None
    error: str | None
    inbound: tuple[int, ...] = ()
    input_shapes: tuple[tuple | None, ...] = ()

    def __post_init__(self):
        # rows built the linear way (index, layer, shape, inference, error)
        if not self.inbound:
            object.__setattr__(self, "inbound", (self.index - 1,))
        if not self.input_shapes:
            object.__setattr__(self, "input_shapes", (self.input_shape,))

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        return "ok" if self.inference is not None else "unknown"

    @property
    def name(self) -> str:
        return self.layer.name or self.layer.class_name

    @property
    def output_shape(self) -> tuple | None:
        return self.inference.output_shape if self.inference else None

    @property
    def params(self) -> int:
        return self.inference.params if self.inference else 0

    @property
    def trainable_params(self) -> int:
        return self.inference.trainable_params if self.inference else 0

    @property
    def macs(self) -> int:
        """Multiply-adds per image (layers/base.py Layer._macs says what is counted)."""
        return self.inference.macs if self.inference else 0

    @property
    def activation_bytes(self) -> int:
        """Memory of this layer's output for one image (float32)."""
        return self.inference.activation_bytes if self.inference else 0


@dataclass(frozen=True)
class PipelineReport:
    input_shape: tuple
    rows: tuple[LayerReport, ...]
    input_name: str = "input_layer"

    @property
    def inbound(self) -> tuple[tuple[int, ...], ...]:
        return tuple(r.inbound for r in self.rows)

    def consumers(self, index: int) -> tuple[int, ...]:
        """Indices of the rows fed by row `index` (-1: the model input), in order."""
        return _consumers(self.inbound).get(index, ())

    @property
    def is_linear(self) -> bool:
        """Every row fed by exactly the row before it (the input for the first)."""
        return is_linear(self.inbound)

    @property
    def error(self) -> str | None:
        """The first error in the pipeline, in the engine's words, or None."""
        return next((r.error for r in self.rows if r.error), None)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def output_shape(self) -> tuple | None:
        return self.rows[-1].output_shape if self.rows else (None, *self.input_shape)

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable_params for r in self.rows)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_macs(self) -> int:
        """Multiply-adds for one image through the whole pipeline."""
        return sum(r.macs for r in self.rows)

    @property
    def total_activation_bytes(self) -> int:
        """All the layers' outputs for one image, each counted once (the input not included)."""
        return sum(r.activation_bytes for r in self.rows)

    def raise_for_error(self) -> None:
        if self.error:
            raise ConfigError(self.error)


def check_input_shape(shape: Sequence) -> tuple:
    """Validate the per-example input shape: (height, width, channels) or (features,)."""
    if (not isinstance(shape, (list, tuple)) or not 1 <= len(shape) <= 3
            or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_INPUT_SIDE for d in shape)):
        raise ConfigError(
            f"input shape must be 1 to 3 positive integers such as [28, 28, 1] (height, width, channels), "
            f"received {list(shape) if isinstance(shape, (list, tuple)) else shape!r}"
        )
    return tuple(shape)


def linear_inbound(n: int) -> tuple[tuple[int, ...], ...]:
    """The inbound of a plain stack of n layers: ((-1,), (0,), (1,), ...)."""
    return tuple((i - 1,) for i in range(n))


def is_linear(inbound: Sequence[Sequence[int]]) -> bool:
    return all(tuple(ins) == (i - 1,) for i, ins in enumerate(inbound))


def _consumers(inbound: Sequence[Sequence[int]]) -> dict[int, tuple[int, ...]]:
    found: dict[int, list[int]] = {}
    for i, ins in enumerate(inbound):
        for j in dict.fromkeys(ins):  # a layer fed twice by one source consumes it once
            found.setdefault(j, []).append(i)
    return {j: tuple(v) for j, v in found.items()}


def analyse(input_shape: Sequence, layers: Sequence[Layer]) -> PipelineReport:
    """Infer every layer's output shape, weights and derivation. Never raises for a bad layer."""
    return analyse_graph(input_shape, layers, linear_inbound(len(layers)))


def analyse_graph(input_shape: Sequence, layers: Sequence[Layer], inbound: Sequence[Sequence[int]],
                  input_name: str = "input_layer") -> PipelineReport:
    """Shape inference over a graph: layers in topological order, inbound[i] the indices
    of the layers feeding layer i (-1 = the model input). The last layer is the output.

    Never raises for a bad layer or link: the row carries the error, rows fed by it are
    "unknown". Raises ConfigError only for a bad input shape or an inbound list whose
    length differs from the layers' (a caller's bug, not a user's edit).
    """
    input_shape = check_input_shape(input_shape)
    if len(inbound) != len(layers):
        raise ConfigError(f"analyse_graph: {len(layers)} layers but {len(inbound)} inbound entries")
    names = [layer.name or layer.class_name for layer in layers]

    def source_name(j: int) -> str:
        return input_name if j == -1 else names[j] if 0 <= j < len(names) else f"#{j}"

    shapes: list[tuple | None] = []
    fields: list[Field | None] = []
    rows = []
    for index, layer in enumerate(layers):
        ins = tuple(int(j) for j in inbound[index])
        error = _link_error(layer, index, ins, len(layers), source_name)
        in_shapes = tuple(((None, *input_shape) if j == -1 else shapes[j]) if -1 <= j < index else None
                          for j in ins)
        first = in_shapes[0] if in_shapes else None
        inference = None
        if error is None and all(s is not None for s in in_shapes):
            in_fields = tuple(Field() if j == -1 else fields[j] for j in ins)
            try:
                if getattr(layer, "merge", False):
                    inference = layer.infer(in_shapes, in_fields, input_names=tuple(source_name(j) for j in ins))
                else:
                    inference = layer.infer(first, in_fields[0])
            except ConfigError as exc:
                error = str(exc)
        rows.append(LayerReport(index, layer, first, inference, error, ins, in_shapes))
        shapes.append(inference.output_shape if inference else None)
        fields.append(inference.field if inference else None)
    used = _consumers([r.inbound for r in rows])
    last = len(rows) - 1
    for index, row in enumerate(rows):
        if index != last and not used.get(index) and not row.error:
            rows[index] = LayerReport(index, row.layer, row.input_shape, row.inference,
                                      f"{row.layer.where}: its output is not used: connect it to another block "
                                      "or delete it", row.inbound, row.input_shapes)
    return PipelineReport(input_shape, tuple(rows), input_name)


def _link_error(layer: Layer, index: int, ins: tuple, count: int, source_name) -> str | None:
    """The error of a row whose links are impossible, or None."""
    if not ins:
        return f"{layer.where}: has no input: connect a block (or the input) to it"
    for j in ins:
        if j < -1 or j >= count:
            return f"{layer.where}: takes its input from a block that does not exist (#{j})"
        if j >= index:
            return (f"{layer.where}: takes its input from '{source_name(j)}', which comes after it; "
                    "a block can only use blocks above it")
    if len(ins) > 1 and not getattr(layer, "merge", False):
        listed = ", ".join(f"'{source_name(j)}'" for j in ins)
        return (f"{layer.where}: has {len(ins)} inputs ({listed}) but takes one; "
                "use Add or Concatenate to join branches")
    return None


def weight_layout(report: PipelineReport) -> tuple | None:
    """The weight arrays the pipeline would hold, in get_weights() order:
    ((class name, weight name, shape), ...); None when a layer has an error."""
    if not report.ok:
        return None
    return tuple((row.layer.class_name, spec.name, tuple(spec.shape))
                 for row in report.rows for spec in row.inference.weights)


def weights_compatible(old_report: PipelineReport, new_report: PipelineReport) -> bool:
    """True when an edit cannot have changed any weight: every weight array of the old
    pipeline exists in the new one, same layer type, name and shape, same order. Then the
    trained weights still apply (set_weights(old.get_weights()) fits), e.g. after a Dropout
    rate, an activation, a padding that keeps the shapes, or a layer without weights added.
    """
    old, new = weight_layout(old_report), weight_layout(new_report)
    return old is not None and old == new


def field_value(pair: tuple) -> int | float | list:
    """A receptive-field pair as one number when square (the common case), else [h, w]."""
    return pair[0] if pair[0] == pair[1] else list(pair)


def describe_field(inference: Inference) -> str:
    size, jump = inference.field.size, inference.field.jump
    if size[0] == size[1] and jump[0] == jump[1]:
        return f"each output value sees {size[0]}x{size[1]} input pixels; neighbours are {jump[0]} pixel(s) apart"
    return f"each output value sees {size[0]}x{size[1]} input pixels; neighbours are {jump[0]}x{jump[1]} pixels apart"


__all__ = ["LayerReport", "PipelineReport", "analyse", "analyse_graph", "linear_inbound", "is_linear",
           "check_input_shape", "field_value", "describe_field",
           "weight_layout", "weights_compatible"]
