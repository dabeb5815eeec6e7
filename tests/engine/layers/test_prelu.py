"""PReLU: Keras config, alpha shape and params as Keras, forward, gradients of x and alpha, in a model."""

import numpy as np
import pytest
from layer_checks import (analysed, built, check_gradients, keras_output, keras_shape_and_params, round_trip, run,
                          trains_in_sequential)

from visualcnn.engine import ConfigError, Sequential, layers as L

# (shared_axes, input shape) -> (alpha shape, params), as Keras 3.15.1 gives them
KERAS_ALPHAS = [
    (None, (5, 4, 3), (5, 4, 3), 60),
    ([1, 2], (5, 4, 3), (1, 1, 3), 3),
    ([3], (5, 4, 3), (5, 4, 1), 20),
    (1, (5, 4, 3), (1, 4, 3), 12),
    (None, (10,), (10,), 10),
]


def test_keras_defaults_and_config():
    layer = L.PReLU()
    assert layer.config == {"alpha_initializer": "zeros", "shared_axes": None}
    assert layer.get_config() == {"name": None, "trainable": True, "alpha_initializer": "zeros", "shared_axes": None}
    keras_config = {"name": "p_re_lu", "trainable": True, "dtype": "float32",
                    "alpha_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                          "registered_name": None},
                    "alpha_regularizer": None, "alpha_constraint": None, "shared_axes": [1, 2]}
    read = L.layer_from_config("PReLU", keras_config)
    assert read.config == {"alpha_initializer": "zeros", "shared_axes": (1, 2)}
    assert L.PReLU(shared_axes=3).config["shared_axes"] == (3,)  # Keras wraps one axis in a list
    for layer in (layer, read, L.PReLU("ones", shared_axes=[1, 2], name="p")):
        round_trip(layer)


@pytest.mark.parametrize("shared,in_shape,alpha_shape,params", KERAS_ALPHAS)
def test_alpha_shape_and_params_as_keras(shared, in_shape, alpha_shape, params):
    inference = L.PReLU(shared_axes=shared).infer((None, *in_shape))
    assert inference.output_shape == (None, *in_shape)
    assert [(w.name, w.shape) for w in inference.weights] == [("alpha", alpha_shape)]
    assert inference.params == inference.trainable_params == params


def test_derivation():
    lines = L.PReLU(shared_axes=[1, 2]).infer((None, 5, 4, 32)).derivation
    assert "alpha shape (1, 1, 32): one slope shared along height, width" in lines
    assert "params = 1*1*32 = 32" in lines
    assert L.PReLU(trainable=False).infer((None, 4)).trainable_params == 0


def test_alpha_starts_at_zero_so_it_starts_as_relu():
    model = Sequential([L.Input(shape=(6,)), L.PReLU()])
    model.build(seed=0)
    assert not model.get_weights()[0].any()
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(2, 6)
    np.testing.assert_array_equal(model.predict(x), np.maximum(x, 0))


@pytest.mark.parametrize("shared,in_shape", [(None, (3, 4, 2)), ([1, 2], (3, 4, 2)), ([3], (3, 4, 2)), ([2], (3, 4, 2)),
                                             (None, (7,)), ([1, 2, 3], (3, 4, 2))])
def test_forward_and_gradients_of_x_and_alpha(shared, in_shape):
    layer = built(L.PReLU(shared_axes=shared), in_shape, seed=1)
    alpha = layer.weights[0]
    x = np.random.default_rng(2).standard_normal((3, *in_shape)).astype(np.float32)
    x = np.where(np.abs(x) < 0.05, x + 0.1, x).astype(np.float32)
    np.testing.assert_allclose(run(layer, x), np.where(x > 0, x, alpha * x), rtol=1e-6)
    check_gradients(layer, x)


def test_in_a_sequential_and_the_analysis():
    model = trains_in_sequential([L.PReLU(shared_axes=[1, 2])])
    assert model.layers[1].weights[0].shape == (1, 1, 4)
    report = analysed((8, 8, 1), [L.Conv2D(4, 3), L.PReLU(), L.Flatten(), L.Dense(2)])
    assert report.rows[1].params == 6 * 6 * 4


@pytest.mark.parametrize("make,message", [
    (lambda: L.PReLU(shared_axes=[0]), "PReLU: argument 'shared_axes' expected each value >= 1, received [0]"),
    (lambda: L.PReLU(shared_axes=[-1]), "argument 'shared_axes' expected each value >= 1"),
    (lambda: L.PReLU(shared_axes="1,2"), "argument 'shared_axes' expected a list of integers such as [2, 1] or null"),
    (lambda: L.PReLU(shared_axes=[4]).infer((None, 5, 4, 3)),
     "PReLU: shared_axes [4] names axis 4, but the input (None, 5, 4, 3) has axes 1 to 3 after the batch"),
    (lambda: L.PReLU(alpha_regularizer={"class_name": "L2"}), "does not support regularizers or constraints"),
    (lambda: L.PReLU(alpha_constraint="non_neg"), "'alpha_constraint' is set"),
    (lambda: L.PReLU(alpha_initializer="magic"), "initializer 'magic' is not supported"),
])
def test_bad_configs(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("shared,in_shape,alpha_shape,params", KERAS_ALPHAS)
def test_live_keras(shared, in_shape, alpha_shape, params):
    config = {"shared_axes": shared}
    assert keras_shape_and_params("PReLU", config, in_shape) == ((None, *in_shape), params)
    layer = built(L.PReLU(**config), in_shape, seed=3)
    x = np.random.default_rng(4).standard_normal((2, *in_shape)).astype(np.float32)
    expected = keras_output("PReLU", config, x, weights=[layer.weights[0]])
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-6, atol=1e-7)


def test_memory_counts_the_expanded_slopes():
    layer = L.PReLU(shared_axes=[1, 2])
    assert layer.workspace_values((None, 5, 4, 3), (None, 5, 4, 3), batch_size=32, threads=2) == 2 * 60
    assert layer.buffer_values((None, 5, 4, 3), (None, 5, 4, 3), training=True) == 2 * 60  # y and dx per example


def test_an_empty_shared_axes_list_shares_nothing_as_in_keras():
    layer = L.layer_from_config("PReLU", {"name": "p", "shared_axes": []})
    assert layer.config["shared_axes"] is None
    assert layer.infer((None, 5, 4, 3)).weights[0].shape == (5, 4, 3)
