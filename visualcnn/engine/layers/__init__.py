"""One class per Keras layer: config, shape inference, (forward and backward).

Adding a layer: its own file, and one import line below. Importing the file registers the
class (Layer.__init_subclass__), which is how LAYER_CLASSES, layer_from_config, the palette
and the inspector learn about it.
"""

from .arguments import ACTIVATIONS, REQUIRED, Arg, ConfigError
from .base import Inference, Layer, WeightSpec, snake_case
from .registry import FAMILIES, LAYER_CLASSES, layer_from_config

# --- the layers: one line each ----------------------------------------------------------
from .conv import Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose  # noqa: E402, I001
from .pooling import MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D  # noqa: E402
from .core import Flatten, Dense, Dropout, Activation, Input, InputLayer  # noqa: E402
from .normalization import BatchNormalization  # noqa: E402
from .zero_padding2d import ZeroPadding2D  # noqa: E402
from .cropping2d import Cropping2D  # noqa: E402
from .up_sampling2d import UpSampling2D  # noqa: E402
from .reshape import Reshape  # noqa: E402
from .permute import Permute  # noqa: E402
from .rescaling import Rescaling  # noqa: E402
from .relu import ReLU  # noqa: E402
from .leaky_relu import LeakyReLU  # noqa: E402
from .prelu import PReLU  # noqa: E402
from .elu import ELU  # noqa: E402
from .softmax import Softmax  # noqa: E402
from .spatial_dropout2d import SpatialDropout2D  # noqa: E402
from .gaussian_noise import GaussianNoise  # noqa: E402
from .layer_normalization import LayerNormalization  # noqa: E402
from .group_normalization import GroupNormalization  # noqa: E402
from .random_flip import RandomFlip  # noqa: E402
from .random_translation import RandomTranslation  # noqa: E402
from .random_rotation import RandomRotation  # noqa: E402
from .random_zoom import RandomZoom  # noqa: E402
from .random_contrast import RandomContrast  # noqa: E402
from .merging import Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate  # noqa: E402

__all__ = [
    "ACTIVATIONS", "REQUIRED", "Arg", "ConfigError", "Inference", "Layer", "WeightSpec", "snake_case",
    "FAMILIES", "LAYER_CLASSES", "layer_from_config", "Input", "InputLayer",
    *(name for name in LAYER_CLASSES if name in globals()),
]
