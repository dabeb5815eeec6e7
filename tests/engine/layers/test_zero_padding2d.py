"""ZeroPadding2D: Keras config and shapes, zeros around the map, gradients, in a model."""

import numpy as np
import pytest
from layer_checks import (analysed, built, check_gradients, keras_output, keras_shape_and_params, round_trip, run,
                          trains_in_sequential)

from visualcnn.engine import ConfigError, layers as L

# (config, input shape) -> output shape, as Keras 3.15.1 gives them (no weights)
KERAS_SHAPES = [
    ({}, (5, 4, 3), (None, 7, 6, 3)),
    ({"padding": 2}, (5, 4, 3), (None, 9, 8, 3)),
    ({"padding": (1, 3)}, (5, 4, 3), (None, 7, 10, 3)),
    ({"padding": ((0, 2), (3, 1))}, (5, 4, 3), (None, 7, 8, 3)),
]


def test_keras_defaults_and_config():
    layer = L.ZeroPadding2D()
    assert layer.config["padding"] == ((1, 1), (1, 1))
    assert layer.get_config() == {"name": None, "trainable": True, "padding": [[1, 1], [1, 1]]}
    assert L.ZeroPadding2D((1, 3)).config["padding"] == ((1, 1), (3, 3))
    # a Keras to_json config, data_format included
    keras_config = {"name": "zero_padding2d", "trainable": True,
                    "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                              "registered_name": None}, "padding": [[0, 2], [3, 1]],
                    "data_format": "channels_last"}
    assert L.layer_from_config("ZeroPadding2D", keras_config).config["padding"] == ((0, 2), (3, 1))
    for layer in (L.ZeroPadding2D(), L.ZeroPadding2D(((0, 2), (3, 1)), name="pad")):
        round_trip(layer)


@pytest.mark.parametrize("config,in_shape,out_shape", KERAS_SHAPES)
def test_shapes_as_keras(config, in_shape, out_shape):
    inference = L.ZeroPadding2D(**config).infer((None, *in_shape))
    assert inference.output_shape == out_shape and inference.params == 0


def test_derivation_and_receptive_field():
    inference = L.ZeroPadding2D(((0, 2), (3, 1))).infer((None, 5, 4, 3))
    assert inference.derivation[:2] == ("out_h = 0 + 5 + 2 = 7", "out_w = 3 + 4 + 1 = 8")
    # output (0, 0) lies 3 columns left of the input's first column
    assert inference.field.size == (1, 1) and inference.field.start == (0, -3)
    after_conv = analysed((8, 8, 1), [L.Conv2D(2, 3), L.ZeroPadding2D(1)]).rows[-1].inference.field
    assert after_conv.size == (3, 3) and after_conv.start == (0, 0)


def test_forward_is_numpy_pad_and_backward_crops():
    layer = built(L.ZeroPadding2D(((0, 2), (3, 1))), (5, 4, 3))
    x = np.random.default_rng(0).standard_normal((2, 5, 4, 3)).astype(np.float32)
    expected = np.pad(x, ((0, 0), (0, 2), (3, 1), (0, 0)))
    np.testing.assert_array_equal(run(layer, x), expected)
    check_gradients(layer, x)


def test_border_is_zero_even_when_the_buffer_held_other_values():
    layer = built(L.ZeroPadding2D(1), (2, 2, 1))
    from visualcnn.engine.layers.base import Context

    ctx = Context()
    ctx.buf("y", (1, 4, 4, 1))[...] = 7.0  # streaming inference reuses arenas between layers
    y = layer.forward(np.ones((1, 2, 2, 1), np.float32), ctx)
    assert y.sum() == 4.0


def test_in_a_sequential_and_the_analysis():
    trains_in_sequential([L.ZeroPadding2D(((1, 0), (0, 2)))])
    report = analysed((28, 28, 1), [L.ZeroPadding2D(2), L.Conv2D(8, 5), L.Flatten(), L.Dense(10)])
    assert report.rows[0].output_shape == (None, 32, 32, 1) and report.rows[1].output_shape == (None, 28, 28, 8)


@pytest.mark.parametrize("make,message", [
    (lambda: L.ZeroPadding2D(-1), "ZeroPadding2D: argument 'padding' expected each value >= 0, received -1"),
    (lambda: L.ZeroPadding2D((1, 2, 3)), "argument 'padding' expected an integer, [height, width] or"),
    (lambda: L.ZeroPadding2D("same"), "argument 'padding' expected an integer"),
    (lambda: L.ZeroPadding2D(1.5), "argument 'padding' expected an integer"),
    (lambda: L.ZeroPadding2D(((1, 2), (3,))), "argument 'padding' expected an integer"),
    (lambda: L.ZeroPadding2D(1, data_format="channels_first"), "'data_format' = 'channels_first' is not supported"),
    (lambda: L.ZeroPadding2D(1).infer((None, 10)), "needs an image-shaped input"),
])
def test_bad_configs(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("config,in_shape,out_shape", KERAS_SHAPES)
def test_live_keras(config, in_shape, out_shape):
    assert keras_shape_and_params("ZeroPadding2D", config, in_shape) == (out_shape, 0)
    x = np.random.default_rng(1).standard_normal((2, *in_shape)).astype(np.float32)
    ours = run(built(L.ZeroPadding2D(**config), in_shape), x)
    np.testing.assert_array_equal(ours, keras_output("ZeroPadding2D", config, x))


def test_huge_sizes_are_one_argument_error():
    for make, name in ((lambda: L.ZeroPadding2D(10**40), "padding"),
                       (lambda: L.Cropping2D([[0, 10**9], [0, 0]]), "cropping"),
                       (lambda: L.UpSampling2D((2, 10**6)), "size")):
        with pytest.raises(ConfigError) as info:
            make()
        assert f"argument '{name}' expected each value <= 100000" in str(info.value)
