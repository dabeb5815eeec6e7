"""RandomContrast: Keras config (factor stored as Keras's pair), contrast vs numpy, gradients, vs Keras."""

import numpy as np
import pytest
from layer_checks import analysed, check_gradients, round_trip, trains_in_sequential
from random_checks import (built, check_adjoint, check_deterministic_fit, check_training_only, fixed_randomness,
                           keras_is_identity_when_predicting, keras_transform, training_output)

from visualcnn.engine import ConfigError, layers as L


def _reference(x, factors, low, high):
    mean = x.astype(np.float64).mean(axis=(1, 2), keepdims=True)
    return np.clip((x - mean) * factors.reshape(-1, 1, 1, 1) + mean, low, high)


def _factors(layer, n, seed):
    """The per-image contrast factors a training forward reseeded with `seed` draws."""
    layer.reseed(seed)
    lower, upper = layer.config["factor"]
    return layer._rng.uniform(1.0 - lower, 1.0 + upper, n).astype(np.float32)


def test_keras_defaults_and_config():
    layer = L.RandomContrast(0.2)
    # Keras's rule for one number f with bounds [0, 1]: (max(-f, 0), f), written as the pair
    assert layer.get_config() == {"name": None, "trainable": True, "factor": [0.0, 0.2],
                                  "value_range": [0.0, 255.0], "seed": None}
    assert L.RandomContrast([0.3, 0.1]).config["factor"] == (0.1, 0.3)
    keras_config = {"name": "random_contrast", "trainable": True, "dtype": {"module": "keras",
                    "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
                    "data_format": "channels_last", "factor": [0, 0.2], "value_range": [0, 1], "seed": 7}
    loaded = L.layer_from_config("RandomContrast", keras_config)
    assert loaded.config == {"factor": (0.0, 0.2), "value_range": (0.0, 1.0), "seed": 7}
    round_trip(loaded)
    with pytest.raises(ConfigError, match="factor"):
        L.RandomContrast(1.5)  # Keras: [0, 1]
    with pytest.raises(ConfigError, match="value_range"):
        L.RandomContrast(0.2, value_range=255)
    assert L.RandomContrast.family == "augmentation"


def test_shape_as_keras_and_derivation():
    inference = L.RandomContrast(0.2).infer((None, 5, 6, 3))
    assert inference.output_shape == (None, 5, 6, 3) and inference.params == 0  # Keras 3.15.1
    assert "random factor from 1 to 1.2" in inference.derivation[0]


def test_forward_matches_numpy_with_clipping():
    layer = built(L.RandomContrast((0.5, 0.9), value_range=(0.0, 1.0)), (4, 5, 3))
    x = np.random.default_rng(0).random((6, 4, 5, 3)).astype(np.float32)
    y = training_output(layer, x, 2)
    factors = _factors(layer, 6, 2)
    assert factors.min() >= 0.5 and factors.max() <= 1.9
    np.testing.assert_allclose(y, _reference(x, factors, 0.0, 1.0), rtol=1e-5, atol=1e-6)
    assert (y == 1.0).any() and (y == 0.0).any()  # some values were clipped


def test_gradients_adjoint_and_clipped_values_pass_none():
    x = np.random.default_rng(1).standard_normal((3, 4, 5, 2)).astype(np.float32)
    wide = built(L.RandomContrast(0.5, value_range=(-100.0, 100.0)), (4, 5, 2))
    check_training_only(wide, x)
    check_adjoint(wide, x)  # linear while nothing is clipped
    check_gradients(fixed_randomness(built(L.RandomContrast(0.5, value_range=(-100.0, 100.0)), (4, 5, 2))), x)
    from visualcnn.engine.layers.base import Context

    tight = built(L.RandomContrast(0.5, value_range=(-0.5, 0.5)), (4, 5, 2))
    tight.reseed(0)
    ctx = Context()
    y = tight.forward(x, ctx, training=True)
    dy = np.ones_like(x)
    dx = tight.backward(dy, ctx)
    factors = _factors(tight, 3, 0)
    inside = (np.abs(y) < 0.5)
    # dx = f*dz + (1 - f)*mean(dz): the clipped outputs pass nothing
    expected = factors.reshape(-1, 1, 1, 1) * inside + (1 - factors.reshape(-1, 1, 1, 1)) * inside.mean(
        axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(dx, expected, rtol=1e-5, atol=1e-6)


def test_in_a_model_and_the_analysis():
    trains_in_sequential([L.RandomContrast(0.3)])
    analysed((8, 8, 1), [L.RandomContrast(0.3), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    check_deterministic_fit(lambda: L.RandomContrast(0.5))


def test_live_keras_same_factors_same_images():
    x = (np.random.default_rng(2).random((4, 5, 6, 2)) * 255).astype(np.float32)
    config = {"factor": (0.5, 0.9)}
    assert keras_is_identity_when_predicting("RandomContrast", config, x)
    layer = built(L.RandomContrast(**config), (5, 6, 2))
    y = training_output(layer, x, 4)
    factors = _factors(layer, 4, 4).reshape(4, 1, 1, 1)
    expected = keras_transform("RandomContrast", config, x, {"contrast_factor": factors})
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-4)
