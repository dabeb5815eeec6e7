"""RandomTranslation: Keras config and factors, shifts vs numpy for every fill mode, adjoint, vs Keras."""

import numpy as np
import pytest
from layer_checks import analysed, round_trip, trains_in_sequential
from random_checks import (FILL_MODES, built, check_affine_layer, check_deterministic_fit, check_training_only,
                           drawn_params, keras_is_identity_when_predicting, keras_transform, training_output)

from visualcnn.engine import ConfigError, layers as L


def test_keras_defaults_and_config():
    layer = L.RandomTranslation(0.1, 0.2)
    assert layer.get_config() == {"name": None, "trainable": True, "height_factor": 0.1, "width_factor": 0.2,
                                  "fill_mode": "reflect", "interpolation": "bilinear", "seed": None, "fill_value": 0.0}
    keras_config = {"name": "random_translation", "trainable": True, "dtype": {"module": "keras",
                    "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
                    "data_format": "channels_last", "height_factor": [-0.2, 0.3], "width_factor": 0.2,
                    "fill_mode": "constant", "interpolation": "nearest", "seed": 4, "fill_value": 1.5}
    loaded = L.layer_from_config("RandomTranslation", keras_config)
    assert loaded.config["height_factor"] == (-0.2, 0.3) and loaded.config["fill_value"] == 1.5
    assert loaded.get_config()["height_factor"] == [-0.2, 0.3]  # as given, like Keras
    round_trip(loaded)
    for bad in ({"height_factor": 1.5, "width_factor": 0.1}, {"height_factor": 0.1, "width_factor": 0.1,
                                                               "fill_mode": "mirror"}):
        with pytest.raises(ConfigError):
            L.RandomTranslation(**bad)
    assert L.RandomTranslation.family == "augmentation"


def test_shape_as_keras():
    inference = L.RandomTranslation(0.1, 0.1).infer((None, 5, 6, 3))
    assert inference.output_shape == (None, 5, 6, 3) and inference.params == 0  # Keras 3.15.1
    assert "shifted by -0.1 to 0.1 of its height" in inference.derivation[0]


def test_shifts_stay_in_the_factor_range():
    layer = built(L.RandomTranslation((0.1, 0.3), 0.2), (10, 20, 1))
    p = drawn_params(layer, 500, 10, 20, 3)
    down, right = -p[:, 5], -p[:, 2]  # output (i, j) reads input (i - down, j - right)
    assert 1.0 <= down.min() and down.max() <= 3.0 and down.max() > 2.5
    assert -4.0 <= right.min() < -3.5 and 3.5 < right.max() <= 4.0
    np.testing.assert_array_equal(p[:, [0, 4]], 1.0)


def test_whole_pixel_shift_with_constant_fill():
    layer = built(L.RandomTranslation((0.5, 0.5), (-0.25, -0.25), fill_mode="constant", fill_value=-1.0,
                                      interpolation="nearest"), (4, 4, 1))
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    y = training_output(layer, x, 0)[0, :, :, 0]
    # down by 2 rows, left by 1 column
    expected = np.full((4, 4), -1.0, np.float32)
    expected[2:, :3] = x[0, :2, 1:, 0]
    np.testing.assert_array_equal(y, expected)


def test_every_fill_mode_and_interpolation():
    x = np.random.default_rng(0).standard_normal((3, 5, 6, 2)).astype(np.float32)
    check_affine_layer(lambda **kw: L.RandomTranslation(0.4, (-0.5, 0.7), **kw), x)


def test_training_only_in_a_model_and_the_analysis():
    x = np.random.default_rng(1).standard_normal((3, 5, 6, 2)).astype(np.float32)
    check_training_only(built(L.RandomTranslation(0.3, 0.3), (5, 6, 2)), x)
    trains_in_sequential([L.RandomTranslation(0.2, 0.2)])
    analysed((8, 8, 1), [L.RandomTranslation(0.1, 0.1), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    check_deterministic_fit(lambda: L.RandomTranslation(0.3, 0.3))


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_live_keras_same_shifts_same_images(fill_mode, interpolation):
    x = np.random.default_rng(2).standard_normal((3, 7, 9, 2)).astype(np.float32)
    config = {"height_factor": 0.4, "width_factor": 0.4, "fill_mode": fill_mode, "interpolation": interpolation,
              "fill_value": 0.7}
    assert keras_is_identity_when_predicting("RandomTranslation", config, x)
    layer = built(L.RandomTranslation(**config), (7, 9, 2))
    y = training_output(layer, x, 5)
    p = drawn_params(layer, 3, 7, 9, 5)
    shifts = np.stack([-p[:, 2], -p[:, 5]], axis=1)  # Keras's (width, height) translations in pixels
    expected = keras_transform("RandomTranslation", config, x, {"translations": shifts, "input_shape": x.shape})
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
