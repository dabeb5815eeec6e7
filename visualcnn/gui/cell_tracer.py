"""One owner's trace window and slide window (issue 13 items 1 and 2), opened from a click on
a feature-map cell: the Draw tab and the Train tab each keep one CellTracer, so a second
click updates the open window instead of stacking new ones.

During a training run the model a worker thread is updating is never traced: the Train tab
passes a copy carrying the snapshot's weights (model_with_weights), the same weights the
feature maps on screen were computed with.
"""

from __future__ import annotations

import weakref

import numpy as np
from PySide6.QtWidgets import QWidget

from ..engine.model_io import model_from_json


def model_with_weights(model, weights: dict):
    """A structural copy of `model` with weights from a snapshot (layer name -> arrays)."""
    clone = model_from_json(model.to_json())
    clone.set_weights([np.array(w) for layer in clone.layers for w in weights.get(layer.name, [])])
    return clone


class CellTracer:
    """Opens / updates the trace and slide windows, parented to `owner` (closed with it)."""

    def __init__(self, owner: QWidget):
        # Weakly: the owner keeps this tracer, and a strong reference back would be a cycle that
        # only the garbage collector frees, at any moment, even inside the owner's paint event.
        self._owner = weakref.ref(owner)
        self.trace_window = None
        self.slide_window = None
        self._model = None
        self._image: np.ndarray | None = None

    def trace(self, model, image, layer_name: str, index, label: int | None = None, loss=None):
        """Show layer_name[index] (row, column, channel) of `model` for `image` taken apart;
        label / loss: where the backward side starts (see TracePanel.set_cell)."""
        from .trace_panel import TraceWindow

        self._model, self._image = model, np.asarray(image, np.float32)
        if self.trace_window is None:
            self.trace_window = TraceWindow(self._owner())
            self.trace_window.slide_requested.connect(self._on_slide_requested)
        self.trace_window.show_cell(model, image, layer_name, index, label, loss)
        return self.trace_window

    def slide(self, model, image, layer_name: str | None = None):
        """Show a conv / pooling layer's window sliding over `image`'s input to it."""
        from .slide_view import SlideWindow

        if self.slide_window is None:
            self.slide_window = SlideWindow(self._owner())
        self.slide_window.show_layer(model, image, layer_name)
        return self.slide_window

    def _on_slide_requested(self, layer_name: str) -> None:
        if self._model is not None:
            self.slide(self._model, self._image, layer_name)
