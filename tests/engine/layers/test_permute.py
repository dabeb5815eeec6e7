"""Permute: Keras config and shapes, numpy transpose, gradients, in a model."""

import numpy as np
import pytest
from layer_checks import (analysed, built, check_gradients, keras_output, keras_shape_and_params, round_trip, run,
                          trains_in_sequential)

from visualcnn.engine import ConfigError, layers as L

# (dims, input shape) -> output shape, as Keras 3.15.1 gives them (no weights)
KERAS_SHAPES = [
    ((2, 1, 3), (5, 4, 3), (None, 4, 5, 3)),
    ((3, 1, 2), (5, 4, 3), (None, 3, 5, 4)),
    ((2, 1), (6, 3), (None, 3, 6)),
]


def test_config():
    layer = L.Permute((3, 1, 2))
    assert layer.get_config() == {"name": None, "trainable": True, "dims": [3, 1, 2]}
    keras_config = {"name": "permute", "trainable": True, "dtype": "float32", "dims": [2, 1]}
    assert L.layer_from_config("Permute", keras_config).config["dims"] == (2, 1)
    round_trip(layer)


@pytest.mark.parametrize("dims,in_shape,out_shape", KERAS_SHAPES)
def test_shapes_as_keras(dims, in_shape, out_shape):
    inference = L.Permute(dims).infer((None, *in_shape))
    assert inference.output_shape == out_shape and inference.params == 0


def test_receptive_field_follows_rows_and_columns():
    before = analysed((9, 7, 1), [L.Conv2D(1, (3, 1), strides=(2, 1))]).rows[-1].inference.field
    swapped = L.Permute((2, 1, 3)).infer((None, 4, 7, 1), before).field
    assert (swapped.size, swapped.jump, swapped.start) == (before.size[::-1], before.jump[::-1], before.start[::-1])
    assert L.Permute((3, 2, 1)).infer((None, 4, 7, 1), before).field.size == (9, 7)  # rows became channels


@pytest.mark.parametrize("dims,in_shape", [((2, 1, 3), (3, 4, 2)), ((3, 1, 2), (3, 4, 2)), ((2, 3, 1), (3, 4, 2)),
                                           ((2, 1), (5, 3))])
def test_forward_is_numpy_transpose_and_gradients(dims, in_shape):
    layer = built(L.Permute(dims), in_shape)
    x = np.random.default_rng(0).standard_normal((2, *in_shape)).astype(np.float32)
    y = run(layer, x)
    np.testing.assert_array_equal(y, x.transpose(0, *dims))
    check_gradients(layer, x)


def test_in_a_sequential_and_the_analysis():
    trains_in_sequential([L.Permute((2, 1, 3)), L.Conv2D(2, (3, 1), activation="tanh")], in_shape=(6, 8, 2))
    report = analysed((28, 14, 1), [L.Permute((2, 1, 3)), L.Conv2D(4, 3)])
    assert report.rows[-1].output_shape == (None, 12, 26, 4)


@pytest.mark.parametrize("make,message", [
    (lambda: L.Permute((1, 1, 3)), "Permute: dims [1, 1, 3] must list each of the axes 1 to 3 once"),
    (lambda: L.Permute((0, 1, 2)), "argument 'dims' expected each value >= 1, received [0, 1, 2]"),
    (lambda: L.Permute((2, 3)), "dims [2, 3] must list each of the axes 1 to 2 once"),
    (lambda: L.Permute("21"), "argument 'dims' expected a list of integers"),
    (lambda: L.Permute((2, 1), name="p").infer((None, 28, 28, 1)),
     "Permute 'p': dims [2, 1] reorders 2 axes, but the input (None, 28, 28, 1) has 3 after the batch"),
])
def test_bad_configs(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("dims,in_shape,out_shape", KERAS_SHAPES)
def test_live_keras(dims, in_shape, out_shape):
    config = {"dims": dims}
    assert keras_shape_and_params("Permute", config, in_shape) == (out_shape, 0)
    x = np.random.default_rng(1).standard_normal((2, *in_shape)).astype(np.float32)
    np.testing.assert_array_equal(run(built(L.Permute(dims), in_shape), x), keras_output("Permute", config, x))
