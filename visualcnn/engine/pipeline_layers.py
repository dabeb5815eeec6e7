"""A pipeline's entries as engine layers, and an engine model as entries (pure: no Qt).

The one home of how entries become the layers the analysis reads: the window's document
(gui/document.py) and the lesson checker (engine/lessons/simulate.py) both build their
layers here, so a block's shapes, parameters and errors are the same in both.

Invalid configs stay representable: a config the layer class itself rejects (strides
with dilation, a negative filter count) becomes a RejectedLayer whose inference fails
with the engine's message, so the window shows the block red instead of refusing the
edit, and the lesson checker reports the same line.
"""

from __future__ import annotations

from typing import Sequence

from .layers import LAYER_CLASSES, ConfigError, Layer, layer_from_config
from .pipeline_edits import LayerEntry, layer_names


class RejectedLayer(Layer):
    """Stands in for a layer whose config its class rejected; inference fails with that message."""

    def __init__(self, class_name: str, name: str | None, message: str):
        super().__init__(name=name)
        self.class_name = class_name
        cls = LAYER_CLASSES.get(class_name)
        self.family = cls.family if cls else "core"
        self.merge = bool(getattr(cls, "merge", False))  # the analysis checks its inputs as a merge's
        self.explanation = cls.explanation if cls else ""
        self.message = message

    # **kwargs: the analysis passes a merge its input_names as well
    def infer(self, input_shape, field=None, **kwargs):  # noqa: ARG002 - same signature as Layer.infer
        raise ConfigError(self.message)

    def describe(self) -> str:
        return "invalid settings"


def build_layers(entries: Sequence[LayerEntry], names: Sequence[str] | None = None) -> list[Layer]:
    """Engine layers for the entries, named as Sequential.add would (conv2d, conv2d_1, ...).

    Never raises: a rejected config becomes a RejectedLayer carrying the engine's message.
    """
    layers: list[Layer] = []
    for entry, name in zip(entries, layer_names(entries) if names is None else names):
        config = {**entry.config, "name": name}
        try:
            layer = layer_from_config(entry.class_name, config)
        except ConfigError as exc:
            layer = RejectedLayer(entry.class_name, name, str(exc))
        except TypeError as exc:  # a positional/keyword clash the class reports as TypeError
            layer = RejectedLayer(entry.class_name, name, f"{entry.class_name} '{name}': {exc}")
        layers.append(layer)
    return layers


def entry_from_layer(layer: Layer, inbound: tuple[str, ...] = ()) -> LayerEntry:
    """A compact entry for an engine layer (defaults dropped, as files store them)."""
    return LayerEntry(layer.class_name, layer.get_config(compact=True), inbound)


def entries_from_model(model) -> list[LayerEntry]:
    """Entries for an engine model (Sequential or graph Model), inbound written only where a
    layer is not fed by the one before it."""
    layers = list(model.layers)
    entries = []
    for i, (layer, sources) in enumerate(zip(layers, model.inbound)):
        sources = tuple(sources)
        names = () if sources == (i - 1,) else tuple(model.input_name if j == -1 else layers[j].name for j in sources)
        entries.append(entry_from_layer(layer, names))
    return entries


__all__ = ["RejectedLayer", "build_layers", "entry_from_layer", "entries_from_model"]
