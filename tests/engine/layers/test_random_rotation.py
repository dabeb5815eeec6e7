"""RandomRotation: Keras config (factor = fraction of a full turn), rotation vs numpy, adjoint, vs Keras."""

import numpy as np
import pytest
from layer_checks import analysed, round_trip, trains_in_sequential
from random_checks import (FILL_MODES, built, check_affine_layer, check_deterministic_fit, check_training_only,
                           drawn_params, keras_is_identity_when_predicting, keras_transform, training_output)

from visualcnn.engine import ConfigError, layers as L


def test_keras_defaults_and_config():
    layer = L.RandomRotation(0.2)
    # Keras stores the (lower, upper) pair: its to_json writes "factor": [-0.2, 0.2]
    assert layer.get_config() == {"name": None, "trainable": True, "factor": [-0.2, 0.2], "fill_mode": "reflect",
                                  "interpolation": "bilinear", "seed": None, "fill_value": 0.0}
    assert L.RandomRotation([0.3, -0.1]).config["factor"] == (-0.1, 0.3)  # sorted, as Keras
    keras_config = {"name": "random_rotation", "trainable": True, "dtype": {"module": "keras",
                    "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
                    "data_format": "channels_last", "factor": [-0.2, 0.2], "fill_mode": "wrap", "fill_value": 0.0,
                    "interpolation": "nearest", "seed": 2}
    loaded = L.layer_from_config("RandomRotation", keras_config)
    assert loaded.config["factor"] == (-0.2, 0.2) and loaded.config["fill_mode"] == "wrap"
    round_trip(loaded)
    with pytest.raises(ConfigError, match="factor"):
        L.RandomRotation(1.5)
    with pytest.raises(ConfigError, match="interpolation"):
        L.RandomRotation(0.1, interpolation="bicubic")
    assert L.RandomRotation.family == "augmentation"


def test_shape_as_keras_and_derivation():
    inference = L.RandomRotation(0.1).infer((None, 5, 6, 3))
    assert inference.output_shape == (None, 5, 6, 3) and inference.params == 0  # Keras 3.15.1
    assert "rotated by -36 to 36 degrees" in inference.derivation[0]


def test_angles_are_a_fraction_of_a_full_turn():
    layer = built(L.RandomRotation((0.1, 0.25)), (9, 9, 1))
    p = drawn_params(layer, 400, 9, 9, 1)
    degrees = np.degrees(np.arctan2(p[:, 3], p[:, 0]))  # b0 = sin, a0 = cos
    assert 36.0 - 1e-3 <= degrees.min() < 40.0 and 85.0 < degrees.max() <= 90.0 + 1e-3


def test_a_quarter_turn_is_rot90():
    layer = built(L.RandomRotation((0.25, 0.25), interpolation="nearest"), (5, 5, 2))
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(training_output(layer, x, 0), np.rot90(x, axes=(1, 2)))


def test_every_fill_mode_and_interpolation():
    x = np.random.default_rng(0).standard_normal((3, 5, 6, 2)).astype(np.float32)
    check_affine_layer(lambda **kw: L.RandomRotation(0.3, **kw), x)


def test_training_only_in_a_model_and_the_analysis():
    x = np.random.default_rng(1).standard_normal((3, 5, 6, 2)).astype(np.float32)
    check_training_only(built(L.RandomRotation(0.2), (5, 6, 2)), x)
    trains_in_sequential([L.RandomRotation(0.1)])
    analysed((8, 8, 1), [L.RandomRotation(0.1), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    check_deterministic_fit(lambda: L.RandomRotation(0.2))


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_live_keras_same_angles_same_images(fill_mode, interpolation):
    x = np.random.default_rng(2).standard_normal((3, 7, 9, 2)).astype(np.float32)
    config = {"factor": 0.3, "fill_mode": fill_mode, "interpolation": interpolation, "fill_value": 0.7}
    assert keras_is_identity_when_predicting("RandomRotation", config, x)
    layer = built(L.RandomRotation(**config), (7, 9, 2))
    y = training_output(layer, x, 5)
    matrix = np.concatenate([drawn_params(layer, 3, 7, 9, 5), np.zeros((3, 2), np.float32)], axis=1)
    expected = keras_transform("RandomRotation", config, x, {"rotation_matrix": matrix})
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
