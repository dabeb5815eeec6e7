"""Layer configs: Keras names and defaults, normalisation, round trips and every invalid case."""

import pytest

from visualcnn.engine import ConfigError, Sequential, layers
from visualcnn.engine.layers import LAYER_CLASSES, layer_from_config, snake_case

L = layers

EXAMPLES = [
    L.Conv2D(32, 3, activation="relu"), L.Conv2D(8, (3, 5), strides=2, padding="same", use_bias=False),
    L.DepthwiseConv2D(3, depth_multiplier=2, dilation_rate=2), L.SeparableConv2D(16, 3, padding="same"),
    L.Conv2DTranspose(8, 3, strides=2, output_padding=1), L.MaxPooling2D(3, strides=1, padding="same"),
    L.AveragePooling2D(2), L.GlobalAveragePooling2D(keepdims=True), L.GlobalMaxPooling2D(), L.Flatten(),
    L.Dense(10, activation="softmax", kernel_initializer="he_normal"), L.Dropout(0.25, seed=3),
    L.BatchNormalization(momentum=0.9, center=False), L.Activation("tanh"), L.Dense(4, trainable=False),
]


@pytest.mark.parametrize("layer", EXAMPLES, ids=lambda layer: layer.class_name)
@pytest.mark.parametrize("compact", [False, True])
def test_config_round_trip(layer, compact):
    config = layer.get_config(compact=compact)
    again = type(layer).from_config(config)
    assert again.get_config() == layer.get_config()
    assert again.get_config(compact=compact) == config


# Issue 11's library: the 40 Keras classes with Keras's default name stems
# (keras.src.utils.naming.to_snake_case, checked against Keras 3).
KERAS_NAMES = {
    "Conv2D": "conv2d", "DepthwiseConv2D": "depthwise_conv2d", "SeparableConv2D": "separable_conv2d",
    "Conv2DTranspose": "conv2d_transpose", "MaxPooling2D": "max_pooling2d",
    "AveragePooling2D": "average_pooling2d", "GlobalAveragePooling2D": "global_average_pooling2d",
    "GlobalMaxPooling2D": "global_max_pooling2d", "Flatten": "flatten", "Dense": "dense", "Dropout": "dropout",
    "BatchNormalization": "batch_normalization", "Activation": "activation",
    "Add": "add", "Subtract": "subtract", "Multiply": "multiply", "Average": "average", "Maximum": "maximum",
    "Minimum": "minimum", "Concatenate": "concatenate", "ZeroPadding2D": "zero_padding2d",
    "Cropping2D": "cropping2d", "UpSampling2D": "up_sampling2d", "Reshape": "reshape", "Permute": "permute",
    "Rescaling": "rescaling", "ReLU": "re_lu", "LeakyReLU": "leaky_re_lu", "PReLU": "p_re_lu", "ELU": "elu",
    "Softmax": "softmax", "SpatialDropout2D": "spatial_dropout2d", "GaussianNoise": "gaussian_noise",
    "LayerNormalization": "layer_normalization", "GroupNormalization": "group_normalization",
    "RandomFlip": "random_flip", "RandomTranslation": "random_translation", "RandomRotation": "random_rotation",
    "RandomZoom": "random_zoom", "RandomContrast": "random_contrast",
}


def test_the_40_keras_layer_classes_are_registered():
    assert set(LAYER_CLASSES) == set(KERAS_NAMES) and len(LAYER_CLASSES) == 40
    assert "InputLayer" not in LAYER_CLASSES  # the model input is not a layer of the list


def test_keras_defaults():
    conv = L.Conv2D(4, 3).config
    assert conv["strides"] == (1, 1) and conv["padding"] == "valid" and conv["dilation_rate"] == (1, 1)
    assert conv["activation"] == "linear" and conv["use_bias"] is True
    assert conv["kernel_initializer"] == "glorot_uniform" and conv["bias_initializer"] == "zeros"
    assert L.MaxPooling2D().config["pool_size"] == (2, 2) and L.MaxPooling2D().config["strides"] is None
    bn = L.BatchNormalization().config
    assert (bn["axis"], bn["momentum"], bn["epsilon"], bn["center"], bn["scale"]) == (-1, 0.99, 1e-3, True, True)


def test_int_or_pair_normalised_once():
    assert L.Conv2D(4, 3).config["kernel_size"] == (3, 3)
    assert L.Conv2D(4, [3, 5]).config["kernel_size"] == (3, 5)
    assert L.Conv2D(4, 3, padding="SAME").config["padding"] == "same"
    assert L.Dense(3, activation=None).config["activation"] == "linear"


@pytest.mark.parametrize("class_name", sorted(LAYER_CLASSES))
def test_default_names_follow_keras(class_name):
    assert snake_case(class_name) == KERAS_NAMES[class_name]


def test_repeated_layers_get_numbered_names():
    model = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(4, 3), L.Conv2D(4, 3), L.MaxPooling2D(),
                        L.Conv2D(4, 3, name="mine"), L.Conv2D(4, 1)])
    assert [layer.name for layer in model.layers] == ["conv2d", "conv2d_1", "max_pooling2d", "mine", "conv2d_2"]


def test_duplicate_explicit_names_are_refused():
    with pytest.raises(ConfigError, match="already used"):
        Sequential([L.Input(shape=(4, 4, 1)), L.Dense(2, name="a"), L.Dense(2, name="a")])


INVALID = [
    (lambda: L.Conv2D(0, 3), "Conv2D: argument 'filters' expected >= 1, received 0"),
    (lambda: L.Conv2D(4, 0), "argument 'kernel_size' expected each value >= 1, received 0"),
    (lambda: L.Conv2D(4, (3, 3, 3)), "argument 'kernel_size' expected an integer or a pair of integers"),
    (lambda: L.Conv2D(4.5, 3), "argument 'filters' expected an integer, received 4.5"),
    (lambda: L.Conv2D(True, 3), "argument 'filters' expected an integer, received true"),
    (lambda: L.Conv2D(4, 3, padding="full"), "argument 'padding' expected 'valid' or 'same', received 'full'"),
    (lambda: L.Conv2D(4, 3, strides=2, dilation_rate=2), "cannot be combined with dilation_rate"),
    (lambda: L.Conv2D(4, 3, activation="swishy"), "argument 'activation' expected one of"),
    (lambda: L.Conv2D(4), "argument 'kernel_size' is required"),
    (lambda: L.Conv2D(4, 3, filter=3), "unknown argument 'filter'; did you mean 'filters'?"),
    (lambda: L.Conv2D(4, 3, kernel_regularizer={"class_name": "L2"}), "does not support regularizers"),
    (lambda: L.Conv2D(4, 3, data_format="channels_first"), "'data_format' = 'channels_first' is not supported"),
    (lambda: L.Conv2D(4, 3, groups=2), "'groups' = 2 is not supported"),
    (lambda: L.Conv2D(4, 3, dtype="float16"), "dtype 'float16' is not supported"),
    (lambda: L.Conv2D(4, 3, kernel_initializer="orthogonal_magic"), "initializer 'orthogonal_magic' is not supported"),
    (lambda: L.Conv2DTranspose(4, 3, strides=2, output_padding=2), "output_padding 2x2 must be smaller than strides"),
    (lambda: L.AveragePooling2D(), "argument 'pool_size' is required"),
    (lambda: L.MaxPooling2D(2, strides=0), "argument 'strides' expected each value >= 1"),
    (lambda: L.Dense(0), "argument 'units' expected >= 1"),
    (lambda: L.Dense("ten"), "argument 'units' expected an integer, received 'ten'"),
    (lambda: L.Dropout(1.0), "argument 'rate' expected >= 0 and < 1, received 1.0"),
    (lambda: L.Dropout(-0.1), "argument 'rate' expected >= 0"),
    (lambda: L.Dropout(0.5, noise_shape=[1, 2]), "'noise_shape' = [1, 2] is not supported"),
    (lambda: L.Dropout(float("nan")), "argument 'rate' expected a finite number, received nan"),
    (lambda: L.BatchNormalization(momentum=2), "argument 'momentum' expected <= 1"),
    (lambda: L.Activation(), "argument 'activation' is required"),
    (lambda: L.Input(shape=(28, 0, 1)), "argument 'shape' expected a list of positive integers"),
    (lambda: L.Dense(3, name=""), "argument 'name' expected a non-empty string"),
]


@pytest.mark.parametrize("make,message", INVALID, ids=[m for _, m in INVALID])
def test_invalid_configs_name_layer_argument_expected_and_received(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


def test_error_names_the_layer_when_it_has_a_name():
    with pytest.raises(ConfigError, match="Conv2D 'conv2d_7': argument 'filters'"):
        layer_from_config("Conv2D", {"name": "conv2d_7", "filters": -1, "kernel_size": 3})


def test_unknown_layer_type():
    with pytest.raises(ConfigError, match="unknown layer type 'Conv3D'"):
        layer_from_config("Conv3D", {})


def test_bn_axis_out_of_range():
    with pytest.raises(ConfigError, match="axis 5 is not a feature axis"):
        L.BatchNormalization(axis=5).infer((None, 4, 4, 2))


# --- the argument kinds new layers declare (one normal form each, one-line errors) -----------

from visualcnn.engine.layers.arguments import Arg, normalise  # noqa: E402

NEW_KINDS = [
    # (arg, value, normal form)
    (Arg("mode", "choice", "horizontal", choices=("horizontal", "vertical")), "vertical", "vertical"),
    (Arg("factor", "factor", minimum=-1, maximum=1), 0.2, 0.2),
    (Arg("factor", "factor", minimum=-1, maximum=1), 1, 1.0),
    (Arg("factor", "factor", minimum=-1, maximum=1), [-0.2, 0.3], (-0.2, 0.3)),
    (Arg("factor", "factor", minimum=-1, maximum=1), (0, 1), (0.0, 1.0)),
    (Arg("max_value", "optional_float", None, minimum=0), None, None),
    (Arg("max_value", "optional_float", None, minimum=0), 6, 6.0),
    (Arg("target_shape", "int_tuple", minimum=-1), [7, -1, 1], (7, -1, 1)),
    (Arg("shared_axes", "optional_int_tuple", None, minimum=1), None, None),
    (Arg("shared_axes", "optional_int_tuple", None, minimum=1), 2, (2,)),  # Keras wraps one axis
    (Arg("shared_axes", "optional_int_tuple", None, minimum=1), [1, 2], (1, 2)),
    (Arg("padding", "padding_2d", 1, minimum=0), 2, ((2, 2), (2, 2))),
    (Arg("padding", "padding_2d", 1, minimum=0), [1, 2], ((1, 1), (2, 2))),
    (Arg("padding", "padding_2d", 1, minimum=0), [[1, 2], [3, 4]], ((1, 2), (3, 4))),
    (Arg("padding", "padding_2d", 1, minimum=0), [1, [2, 3]], ((1, 1), (2, 3))),  # Keras allows the mix
    (Arg("width_factor", "factor", None), None, None),  # a Keras default of None accepts None
    (Arg("axis", "axis_list", -1), -1, -1),
    (Arg("axis", "axis_list", -1), [-3, -2, -1], (-3, -2, -1)),
]


@pytest.mark.parametrize("arg,value,normal", NEW_KINDS, ids=lambda x: x.kind if isinstance(x, Arg) else None)
def test_new_argument_kinds_normal_forms(arg, value, normal):
    result = normalise(arg, value, "X")
    assert result == normal and type(result) is type(normal)
    if isinstance(normal, tuple):
        assert all(type(a) is type(b) for a, b in zip(result, normal))


NEW_KIND_ERRORS = [
    (Arg("mode", "choice", "horizontal", choices=("horizontal", "vertical")), "diagonal",
     "argument 'mode' expected one of 'horizontal', 'vertical', received 'diagonal'"),
    (Arg("factor", "factor", minimum=-1, maximum=1), [0.1], "expected a number or a pair [lower, upper] of numbers"),
    (Arg("factor", "factor", minimum=-1, maximum=1), [0.1, 2], "expected each value <= 1, received [0.1, 2]"),
    (Arg("factor", "factor", minimum=-1, maximum=1), float("nan"), "received nan"),
    (Arg("factor", "factor", minimum=-1, maximum=1), True, "expected a number or a pair"),
    (Arg("factor", "factor", 0.1), None, "expected a number or a pair [lower, upper] of numbers, received None"),
    (Arg("max_value", "optional_float", None, minimum=0), -1, "argument 'max_value' expected >= 0, received -1"),
    (Arg("max_value", "optional_float", None, minimum=0), "6", "expected a finite number or null"),
    (Arg("target_shape", "int_tuple", minimum=-1), [], "expected a list of integers such as [2, 1], received []"),
    (Arg("target_shape", "int_tuple", minimum=-1), 784, "expected a list of integers"),
    (Arg("target_shape", "int_tuple", minimum=-1), [7, -2], "expected each value >= -1, received [7, -2]"),
    (Arg("dims", "int_tuple", minimum=1), [2.0, 1], "expected a list of integers"),
    (Arg("shared_axes", "optional_int_tuple", None, minimum=1), [0], "expected each value >= 1"),
    (Arg("shared_axes", "optional_int_tuple", None, minimum=1), "1", "or null"),
    (Arg("padding", "padding_2d", 1, minimum=0), [1, 2, 3], "expected an integer, [height, width] or [[top, bottom]"),
    (Arg("padding", "padding_2d", 1, minimum=0), [[1], [2]], "expected an integer, [height, width]"),
    (Arg("padding", "padding_2d", 1, minimum=0), [[1, -1], 2], "expected each value >= 0, received [[1, -1], 2]"),
    (Arg("axis", "axis_list", -1), [], "expected an integer axis or a list of axes"),
    (Arg("axis", "axis_list", -1), 1.5, "expected an integer axis or a list of axes"),
]


@pytest.mark.parametrize("arg,value,message", NEW_KIND_ERRORS, ids=[m for _, _, m in NEW_KIND_ERRORS])
def test_new_argument_kinds_refuse_with_one_line(arg, value, message):
    with pytest.raises(ConfigError) as info:
        normalise(arg, value, "RandomFlip 'random_flip'")
    text = str(info.value)
    assert text.startswith(f"RandomFlip 'random_flip': argument '{arg.name}' expected ")
    assert message in text and "\n" not in text


def test_get_config_writes_nested_tuples_as_nested_lists():
    from visualcnn.engine.layers import Inference, Layer
    from visualcnn.engine.layers.registry import unregister

    class Padded(Layer):
        class_name = "TestPadded"
        ARGS = (Arg("padding", "padding_2d", 1, minimum=0), Arg("factor", "factor", 0.1),
                Arg("axes", "optional_int_tuple", None))

        def _infer(self, input_shape, field):
            return Inference(input_shape, (), (), field)

    try:
        layer = Padded(padding=[1, [2, 3]], factor=(-0.1, 0.2), axes=1)
        config = layer.get_config()
        assert config["padding"] == [[1, 1], [2, 3]] and config["factor"] == [-0.1, 0.2] and config["axes"] == [1]
        assert Padded.from_config(config).config == layer.config
        assert "padding" not in Padded(padding=[[1, 1], [1, 1]]).get_config(compact=True)  # = the default 1
    finally:
        unregister("TestPadded")
