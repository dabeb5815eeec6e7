"""Sequential: an ordered stack of layers with Keras's API.

This part holds the structure (input shape, layer names, shape inference, summary,
JSON). Training (compile / fit / evaluate / predict / save) builds on top of it.
"""

from __future__ import annotations

from typing import Iterable

from .analysis import PipelineReport, analyse, check_input_shape
from .layers import ConfigError, InputLayer, Layer, snake_case
from .summary import render_summary


class Sequential:
    """keras.Sequential: `Sequential([layers.Input(shape=(28, 28, 1)), layers.Conv2D(32, 3), ...])`."""

    def __init__(self, layers: Iterable[Layer] | None = None, name: str = "sequential"):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"model name must be a non-empty string, received {name!r}")
        self.name = name
        self.input_shape: tuple | None = None
        self.layers: list[Layer] = []
        for layer in layers or ():
            self.add(layer)

    def add(self, layer: Layer) -> None:
        """Append a layer, giving it Keras's default name (conv2d, conv2d_1, ...) if it has none."""
        if isinstance(layer, InputLayer):
            if self.layers or self.input_shape is not None:
                raise ConfigError("an Input can only be the first entry of a Sequential model")
            self.input_shape = check_input_shape(layer.config["shape"])
            return
        if not isinstance(layer, Layer):
            raise ConfigError(f"Sequential.add expected a layer, received {type(layer).__name__}")
        taken = {existing.name for existing in self.layers}
        if layer.name is None:
            layer.name = unique_name(snake_case(layer.class_name), taken)
        elif layer.name in taken:
            raise ConfigError(f"{layer.where}: the name '{layer.name}' is already used by another layer; "
                              "names must be unique within a model")
        self.layers.append(layer)

    def analyse(self) -> PipelineReport:
        """Shape inference for every layer (never raises for a bad layer; see report.error)."""
        if self.input_shape is None:
            raise ConfigError(f"model '{self.name}' has no input shape: start it with Input(shape=(28, 28, 1))")
        return analyse(self.input_shape, self.layers)

    def checked_report(self) -> PipelineReport:
        report = self.analyse()
        report.raise_for_error()
        return report

    @property
    def output_shape(self) -> tuple:
        return self.checked_report().output_shape

    def count_params(self) -> int:
        return self.checked_report().total_params

    def summary(self, line_length: int | None = None, print_fn=print) -> None:
        """Print the Keras model.summary() table."""
        print_fn(render_summary(self.name, self.checked_report(), line_length))

    def to_json(self, **kwargs) -> str:
        from .model_io import model_to_json

        return model_to_json(self, **kwargs)


def unique_name(stem: str, taken: set[str]) -> str:
    """Keras's naming: stem, then stem_1, stem_2, ... skipping names already used."""
    if stem not in taken:
        return stem
    i = 1
    while f"{stem}_{i}" in taken:
        i += 1
    return f"{stem}_{i}"
