"""Reshape: Keras config and shapes, -1 worked out, sizes named in errors, views, in a model."""

import numpy as np
import pytest
from layer_checks import (analysed, built, check_gradients, keras_output, keras_shape_and_params, round_trip, run,
                          trains_in_sequential)

from visualcnn.engine import ConfigError, layers as L

# (target_shape, input shape) -> output shape, as Keras 3.15.1 gives them (no weights)
KERAS_SHAPES = [
    ((-1,), (5, 4, 3), (None, 60)),
    ((10, 6), (5, 4, 3), (None, 10, 6)),
    ((2, -1, 3), (5, 4, 3), (None, 2, 10, 3)),
    ((7, 7, 16), (784,), (None, 7, 7, 16)),
]


def test_config():
    layer = L.Reshape((2, -1, 3))
    assert layer.config == {"target_shape": (2, -1, 3)}
    assert layer.get_config() == {"name": None, "trainable": True, "target_shape": [2, -1, 3]}
    keras_config = {"name": "reshape", "trainable": True, "dtype": "float32", "target_shape": [7, 7, 16]}
    assert L.layer_from_config("Reshape", keras_config).config["target_shape"] == (7, 7, 16)
    round_trip(layer)
    round_trip(L.Reshape(target_shape=[4], name="r"))


@pytest.mark.parametrize("target,in_shape,out_shape", KERAS_SHAPES)
def test_shapes_as_keras(target, in_shape, out_shape):
    inference = L.Reshape(target).infer((None, *in_shape))
    assert inference.output_shape == out_shape and inference.params == 0


def test_derivation_and_receptive_field():
    inference = L.Reshape((2, -1, 3)).infer((None, 5, 4, 3))
    assert inference.derivation[:2] == ("values per example = 5*4*3 = 60", "-1 = 60 / 6 = 10")
    assert inference.output_shape == (None, 2, 10, 3)
    # rows and columns scrambled: the whole 5x4 map, as after Flatten
    assert inference.field.size == (5, 4)
    # channels regrouped only (rows and columns kept): field unchanged
    assert L.Reshape((5, 4, 3)).infer((None, 5, 4, 3)).field.size == (1, 1)


def test_forward_is_numpy_reshape_view_and_gradients():
    layer = built(L.Reshape((4, -1)), (3, 4, 2))
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 2)).astype(np.float32)
    y = layer.forward(x, __import__("visualcnn.engine.layers.base", fromlist=["Context"]).Context())
    np.testing.assert_array_equal(y, x.reshape(2, 4, 6))
    assert np.shares_memory(y, x)  # no copy
    assert layer.buffer_values((None, 3, 4, 2), (None, 4, 6), training=True) == 0
    check_gradients(layer, x)


def test_in_a_sequential_and_the_analysis():
    trains_in_sequential([L.Reshape((4, 16, 4)), L.Conv2D(2, 3, activation="tanh")], in_shape=(8, 8, 2))
    report = analysed((784,), [L.Reshape((28, 28, 1)), L.Conv2D(4, 3), L.Flatten(), L.Dense(10)])
    assert report.rows[0].output_shape == (None, 28, 28, 1) and report.rows[1].output_shape == (None, 26, 26, 4)


@pytest.mark.parametrize("make,message", [
    (lambda: L.Reshape((4, 4)).infer((None, 28, 28, 1)),
     "Reshape: target_shape (4, 4) holds 16 values but the input (None, 28, 28, 1) has 784 per example"),
    (lambda: L.Reshape((5, -1), name="r").infer((None, 28, 28, 1)),
     "Reshape 'r': cannot arrange the 784 values of (None, 28, 28, 1) into (5, -1): 784 is not a multiple of 5"),
    (lambda: L.Reshape((-1, -1)), "target_shape [-1, -1] has more than one -1"),
    (lambda: L.Reshape((0, 4)), "target_shape [0, 4] has a 0"),
    (lambda: L.Reshape((-2, 4)), "argument 'target_shape' expected each value >= -1, received [-2, 4]"),
    (lambda: L.Reshape(()), "argument 'target_shape' expected a list of integers"),
    (lambda: L.Reshape(12), "argument 'target_shape' expected a list of integers"),
    (lambda: L.Reshape((2.5, 4)), "argument 'target_shape' expected a list of integers"),
    (lambda: L.Reshape(), "argument 'target_shape' is required"),
    (lambda: L.Reshape((10**9, 10**9)).infer((None, 4)), "holds 1,000,000,000,000,000,000 values but the input"),
])
def test_bad_configs(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("target,in_shape,out_shape", KERAS_SHAPES)
def test_live_keras(target, in_shape, out_shape):
    config = {"target_shape": target}
    assert keras_shape_and_params("Reshape", config, in_shape) == (out_shape, 0)
    x = np.random.default_rng(1).standard_normal((2, *in_shape)).astype(np.float32)
    np.testing.assert_array_equal(run(built(L.Reshape(target), in_shape), x), keras_output("Reshape", config, x))


def test_a_lone_minus_one_takes_all_the_values():
    assert L.Reshape([-1]).infer((None, 28, 28, 1)).derivation[1] == "-1 = 784 (all the values)"
