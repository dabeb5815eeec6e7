"""Run shape inference over a whole pipeline without raising.

The builder window re-runs this on every edit: the first impossible layer carries its
error, the layers after it are "unknown", and nothing is allocated. `summarize` and the
engine's build step use the same report, and raise the first error instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .layers import ConfigError, Inference, Layer
from .shapes import Field

MAX_INPUT_SIDE = 100_000


@dataclass(frozen=True)
class LayerReport:
    """One block of the pipeline after inference. status: "ok", "error" or "unknown"."""

    index: int
    layer: Layer
    input_shape: tuple | None
    inference: Inference | None
    error: str | None

    @property
    def status(self) -> str:
        if self.inference is not None:
            return "ok"
        return "error" if self.error else "unknown"

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


@dataclass(frozen=True)
class PipelineReport:
    input_shape: tuple
    rows: tuple[LayerReport, ...]

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


def analyse(input_shape: Sequence, layers: Sequence[Layer]) -> PipelineReport:
    """Infer every layer's output shape, weights and derivation. Never raises for a bad layer."""
    input_shape = check_input_shape(input_shape)
    shape: tuple | None = (None, *input_shape)
    field = Field()
    rows = []
    for index, layer in enumerate(layers):
        if shape is None:
            rows.append(LayerReport(index, layer, None, None, None))
            continue
        try:
            inference = layer.infer(shape, field)
        except ConfigError as exc:
            rows.append(LayerReport(index, layer, shape, None, str(exc)))
            shape = None
            continue
        rows.append(LayerReport(index, layer, shape, inference, None))
        shape, field = inference.output_shape, inference.field
    return PipelineReport(input_shape, tuple(rows))


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


__all__ = ["LayerReport", "PipelineReport", "analyse", "check_input_shape", "field_value", "describe_field",
           "weight_layout", "weights_compatible"]
