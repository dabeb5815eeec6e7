"""One class per Keras layer: config, shape inference, (forward and backward)."""

from .arguments import ACTIVATIONS, REQUIRED, Arg, ConfigError
from .base import Inference, Layer, WeightSpec, snake_case
from .conv import Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer
from .normalization import BatchNormalization
from .pooling import AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D

LAYER_CLASSES: dict[str, type[Layer]] = {
    cls.class_name: cls
    for cls in (Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, MaxPooling2D,
                AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten, Dense,
                Dropout, BatchNormalization, Activation)
}


def layer_from_config(class_name: str, config: dict) -> Layer:
    """Build a layer from its Keras class name and config; unknown names are a ConfigError."""
    if not isinstance(class_name, str) or class_name not in LAYER_CLASSES:
        known = ", ".join(LAYER_CLASSES)
        raise ConfigError(f"unknown layer type {class_name!r}; VisualCNN knows {known}")
    return LAYER_CLASSES[class_name].from_config(config)


__all__ = [
    "ACTIVATIONS", "REQUIRED", "Arg", "ConfigError", "Inference", "Layer", "WeightSpec", "snake_case",
    "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D", "Activation", "Dense", "Dropout",
    "Flatten", "Input", "InputLayer", "BatchNormalization", "AveragePooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "MaxPooling2D", "LAYER_CLASSES", "layer_from_config",
]
