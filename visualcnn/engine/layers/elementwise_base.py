"""Base of the layers that map every value on its own (ReLU, ELU, Rescaling, ...).

Such a layer keeps the shape, adds no weights (PReLU adds its own) and does not widen the
receptive field: one value out depends on the one value in. The subclass gives the rule
a student reads ("y = max(x, 0)"); this class writes the derivation around it. It sets no
class_name, so it is not a layer of its own (the registry skips it).
"""

from __future__ import annotations

from ..shapes import format_shape
from .base import Inference, Layer, per_value_macs

_loaded: dict = {}

# The largest float32 (rounded down): a number parameter beyond it would turn into inf in
# the float32 kernels, so the argument check refuses it instead.
FLOAT32_MAX = 3.4e38


class ElementwiseLayer(Layer):
    family = "activation"

    def rule(self) -> str:
        """The formula applied to every value, e.g. 'y = x if x > 0 else 0.3*x'."""
        raise NotImplementedError

    def _infer(self, input_shape, field):
        lines = (f"every value: {self.rule()}", "shape unchanged", "params = 0 (nothing to learn)",
                 f"output shape = {format_shape(input_shape)}")
        return Inference(input_shape, (), lines, field)

    def _macs(self, input_shape, output_shape):
        return per_value_macs(output_shape, "one operation per value")


def activation_kernels():
    """kernels/activation_layers.py, imported on first use (numba loads lazily) and cached:
    a single-image predict is a few microseconds per layer."""
    module = _loaded.get("k")
    if module is None:
        from ..kernels import activation_layers as module

        _loaded["k"] = module
    return module


def flat(a):
    """A C-contiguous array as the 1-D view the elementwise kernels take."""
    return a.reshape(-1)


def number(value: float) -> str:
    """A float as a student reads it: 0.3, 1, 0.0039 (not 0.30000001)."""
    return f"{value:.4g}"
