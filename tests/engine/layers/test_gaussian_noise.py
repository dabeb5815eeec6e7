"""GaussianNoise: Keras config, noise statistics in training, identity gradient, in a model."""

import math

import numpy as np
import pytest
from layer_checks import analysed, check_gradients, keras_shape_and_params, round_trip, trains_in_sequential
from random_checks import (built, check_deterministic_fit, check_training_only, fixed_randomness,
                           keras_is_identity_when_predicting, training_output)

from visualcnn.engine import ConfigError, layers as L


def test_keras_defaults_and_config():
    layer = L.GaussianNoise(0.1)
    assert layer.get_config() == {"name": None, "trainable": True, "stddev": 0.1, "seed": None}
    keras_config = {"name": "gaussian_noise", "trainable": True, "dtype": {"module": "keras",
                    "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
                    "stddev": 0.1, "seed": None}
    loaded = L.layer_from_config("GaussianNoise", keras_config)
    assert loaded.config == {"stddev": 0.1, "seed": None}
    round_trip(loaded)
    round_trip(L.GaussianNoise(0.5, seed=3, name="noise"))
    with pytest.raises(ConfigError, match="stddev"):
        L.GaussianNoise(1.5)  # Keras: between 0 and 1
    assert L.GaussianNoise.family == "regularisation"


def test_shape_as_keras_any_rank():
    for shape in ((None, 5, 6, 8), (None, 10)):
        inference = L.GaussianNoise(0.1).infer(shape)
        assert inference.output_shape == shape and inference.params == 0  # Keras 3.15.1


def test_noise_has_the_asked_spread():
    layer = built(L.GaussianNoise(0.3), (100, 100))
    x = np.full((4, 100, 100), 2.0, np.float32)
    noise = training_output(layer, x, 5) - 2.0
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.3) < 0.01
    # the noise is the kernel's normal values for the key the layer drew
    layer.reseed(5)
    key = layer._rng.integers(2**63)
    from visualcnn.engine.kernels.noise import normal_reference

    np.testing.assert_allclose(noise.reshape(-1), 0.3 * normal_reference(key, noise.size), atol=1e-6)


def test_the_noise_is_normal():
    """The counter-based ziggurat against the normal CDF (200,000 values): Kolmogorov-
    Smirnov distance, the tails beyond 2 and 3.44 (the ziggurat's tail start), no
    correlation between neighbours, and a different key gives different values."""
    from visualcnn.engine.kernels.noise import normal_reference

    z = np.sort(normal_reference(12345, 200_000).astype(np.float64))
    cdf = 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in z[::50]]))
    empirical = (np.arange(0, z.size, 50) + 0.5) / z.size
    assert np.abs(cdf - empirical).max() < 0.005
    for t in (2.0, 3.442619855899):
        expected = math.erfc(t / math.sqrt(2))
        assert abs((np.abs(z) > t).mean() - expected) < 0.15 * expected + 2e-4
    raw = normal_reference(12345, 200_000).astype(np.float64)
    assert abs(np.corrcoef(raw[:-1], raw[1:])[0, 1]) < 0.01
    assert not np.array_equal(raw[:100], normal_reference(54321, 100))


def test_training_only_and_gradient_is_identity():
    x = np.random.default_rng(1).standard_normal((3, 4, 5, 2)).astype(np.float32)
    layer = built(L.GaussianNoise(0.2), (4, 5, 2))
    check_training_only(layer, x)
    check_gradients(fixed_randomness(built(L.GaussianNoise(0.2), (4, 5, 2))), x)
    assert L.GaussianNoise(0.2).buffer_values((None, 4), (None, 4), training=True) == 4
    assert L.GaussianNoise(0.2).buffer_values((None, 4), (None, 4), training=False) == 0


def test_in_a_model_and_the_analysis():
    trains_in_sequential([L.GaussianNoise(0.1)])
    report = analysed((8, 8, 1), [L.GaussianNoise(0.1), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    assert report.rows[0].inference.output_shape == (None, 8, 8, 1)
    check_deterministic_fit(lambda: L.GaussianNoise(0.3))


def test_live_keras_shapes_and_identity_when_predicting():
    assert keras_shape_and_params("GaussianNoise", {"stddev": 0.1}, (5, 6, 8)) == ((None, 5, 6, 8), 0)
    x = np.random.default_rng(2).standard_normal((2, 5, 6, 8)).astype(np.float32)
    assert keras_is_identity_when_predicting("GaussianNoise", {"stddev": 0.3}, x)
