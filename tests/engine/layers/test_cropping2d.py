"""Cropping2D: Keras config and shapes, cut edges, gradients, in a model."""

import numpy as np
import pytest
from layer_checks import (analysed, built, check_gradients, keras_output, keras_shape_and_params, round_trip, run,
                          trains_in_sequential)

from visualcnn.engine import ConfigError, layers as L

# (config, input shape) -> output shape, as Keras 3.15.1 gives them (no weights)
KERAS_SHAPES = [
    ({}, (5, 4, 3), (None, 5, 4, 3)),
    ({"cropping": 1}, (5, 4, 3), (None, 3, 2, 3)),
    ({"cropping": (2, 1)}, (7, 6, 2), (None, 3, 4, 2)),
    ({"cropping": ((0, 2), (3, 1))}, (7, 6, 2), (None, 5, 2, 2)),
]


def test_keras_defaults_and_config():
    assert L.Cropping2D().config["cropping"] == ((0, 0), (0, 0))
    assert L.Cropping2D().get_config() == {"name": None, "trainable": True, "cropping": [[0, 0], [0, 0]]}
    keras_config = {"name": "cropping2d", "trainable": True, "dtype": "float32", "cropping": [[0, 2], [3, 1]],
                    "data_format": "channels_last"}
    assert L.layer_from_config("Cropping2D", keras_config).config["cropping"] == ((0, 2), (3, 1))
    for layer in (L.Cropping2D(), L.Cropping2D((2, 1), name="crop")):
        round_trip(layer)


@pytest.mark.parametrize("config,in_shape,out_shape", KERAS_SHAPES)
def test_shapes_as_keras(config, in_shape, out_shape):
    inference = L.Cropping2D(**config).infer((None, *in_shape))
    assert inference.output_shape == out_shape and inference.params == 0


def test_derivation_and_receptive_field():
    inference = L.Cropping2D(((0, 2), (3, 1))).infer((None, 7, 6, 2))
    assert inference.derivation[:2] == ("out_h = 7 - 0 - 2 = 5", "out_w = 6 - 3 - 1 = 2")
    assert inference.field.size == (1, 1) and inference.field.start == (0, 3)
    # after a 2-strided conv, one row cut off moves the start by the jump of 2 pixels
    field = analysed((9, 9, 1), [L.Conv2D(1, 3, strides=2), L.Cropping2D(((1, 0), (0, 0)))]).rows[-1].inference.field
    assert field.start == (3, 1) and field.jump == (2, 2)


def test_forward_is_a_slice_and_backward_puts_it_back():
    layer = built(L.Cropping2D(((0, 2), (3, 1))), (7, 6, 2))
    x = np.random.default_rng(0).standard_normal((2, 7, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(run(layer, x), x[:, 0:5, 3:5])
    check_gradients(layer, x)


def test_in_a_sequential_and_the_analysis():
    trains_in_sequential([L.Cropping2D(((1, 0), (0, 2)))])
    report = analysed((28, 28, 1), [L.Conv2D(8, 3), L.Cropping2D(1), L.Flatten(), L.Dense(10)])
    assert report.rows[1].output_shape == (None, 24, 24, 8)


@pytest.mark.parametrize("make,message", [
    (lambda: L.Cropping2D(-2), "Cropping2D: argument 'cropping' expected each value >= 0, received -2"),
    (lambda: L.Cropping2D([[1, -1], [0, 0]]), "argument 'cropping' expected each value >= 0"),
    (lambda: L.Cropping2D("1"), "argument 'cropping' expected an integer, [height, width] or"),
    (lambda: L.Cropping2D(3).infer((None, 6, 9, 1)),
     "Cropping2D: cropping 3 + 3 rows leaves nothing of the input's 6 rows"),
    (lambda: L.Cropping2D(((0, 0), (5, 4)), name="c").infer((None, 6, 9, 1)),
     "Cropping2D 'c': cropping 5 + 4 columns leaves nothing of the input's 9 columns"),
    (lambda: L.Cropping2D(50).infer((None, 6, 9, 1)), "crop fewer than 6 rows in total"),
])
def test_bad_configs(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("config,in_shape,out_shape", KERAS_SHAPES)
def test_live_keras(config, in_shape, out_shape):
    assert keras_shape_and_params("Cropping2D", config, in_shape) == (out_shape, 0)
    x = np.random.default_rng(1).standard_normal((2, *in_shape)).astype(np.float32)
    ours = run(built(L.Cropping2D(**config), in_shape), x)
    np.testing.assert_array_equal(ours, keras_output("Cropping2D", config, x))
