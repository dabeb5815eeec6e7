"""RandomZoom: Keras config (width_factor null keeps the aspect), zoom vs numpy, adjoint, vs Keras."""

import numpy as np
import pytest
from layer_checks import analysed, round_trip, trains_in_sequential
from random_checks import (FILL_MODES, built, check_affine_layer, check_deterministic_fit, check_training_only,
                           drawn_params, keras_is_identity_when_predicting, keras_transform, training_output)

from visualcnn.engine import ConfigError, layers as L


def test_keras_defaults_and_config():
    layer = L.RandomZoom(0.1)
    assert layer.get_config() == {"name": None, "trainable": True, "height_factor": 0.1, "width_factor": None,
                                  "fill_mode": "reflect", "interpolation": "bilinear", "seed": None, "fill_value": 0.0}
    keras_config = {"name": "random_zoom", "trainable": True, "dtype": {"module": "keras",
                    "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
                    "data_format": "channels_last", "height_factor": 0.1, "width_factor": None,
                    "fill_mode": "reflect", "interpolation": "bilinear", "seed": None, "fill_value": 0.0}
    loaded = L.layer_from_config("RandomZoom", keras_config)
    assert loaded.config["width_factor"] is None
    assert L.RandomZoom(0.2, None).config["width_factor"] is None  # positional null, as Keras accepts
    round_trip(loaded)
    round_trip(L.RandomZoom((-0.3, 0.2), [0.1, 0.4], fill_mode="constant", fill_value=2.0))
    with pytest.raises(ConfigError, match=r"\(-1, 1\]"):
        L.RandomZoom(-1.0)  # Keras: the range is (-1, 1]
    assert L.RandomZoom.family == "augmentation"


def test_shape_as_keras_and_derivation():
    inference = L.RandomZoom(0.2).infer((None, 5, 6, 3))
    assert inference.output_shape == (None, 5, 6, 3) and inference.params == 0  # Keras 3.15.1
    assert "zoomed by a factor from 0.8 to 1.2" in inference.derivation[0]


def test_zoom_factors_and_aspect():
    layer = built(L.RandomZoom((0.1, 0.3)), (9, 9, 1))
    p = drawn_params(layer, 300, 9, 9, 1)
    np.testing.assert_array_equal(p[:, 0], p[:, 4])  # width_factor null: one zoom for both axes
    assert 1.1 <= p[:, 4].min() < 1.15 and 1.25 < p[:, 4].max() <= 1.3
    wide = built(L.RandomZoom(0.2, (0.5, 0.6)), (9, 9, 1))
    p = drawn_params(wide, 300, 9, 9, 1)
    assert 1.5 <= p[:, 0].min() and p[:, 0].max() <= 1.6 and p[:, 4].max() <= 1.2


def test_no_zoom_is_the_identity_and_two_x_reads_the_centre():
    x = np.random.default_rng(0).standard_normal((2, 5, 5, 1)).astype(np.float32)
    np.testing.assert_array_equal(training_output(built(L.RandomZoom((0.0, 0.0)), (5, 5, 1)), x, 0), x)
    zoom_in = built(L.RandomZoom((-0.5, -0.5), interpolation="nearest"), (5, 5, 1))
    y = training_output(zoom_in, x, 0)
    np.testing.assert_array_equal(y[:, 2, 2], x[:, 2, 2])  # the centre stays
    np.testing.assert_array_equal(y[:, 0, 2], x[:, 1, 2])  # row 0 reads row 2 + 0.5*(0 - 2) = 1


def test_every_fill_mode_and_interpolation():
    x = np.random.default_rng(0).standard_normal((3, 5, 6, 2)).astype(np.float32)
    check_affine_layer(lambda **kw: L.RandomZoom(0.5, (-0.4, 0.8), **kw), x)


def test_training_only_in_a_model_and_the_analysis():
    x = np.random.default_rng(1).standard_normal((3, 5, 6, 2)).astype(np.float32)
    check_training_only(built(L.RandomZoom(0.3), (5, 6, 2)), x)
    trains_in_sequential([L.RandomZoom(0.2)])
    analysed((8, 8, 1), [L.RandomZoom(0.1), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    check_deterministic_fit(lambda: L.RandomZoom(0.3))


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_live_keras_same_zooms_same_images(fill_mode, interpolation):
    x = np.random.default_rng(2).standard_normal((3, 7, 9, 2)).astype(np.float32)
    config = {"height_factor": 0.5, "width_factor": (-0.5, 0.6), "fill_mode": fill_mode,
              "interpolation": interpolation, "fill_value": 0.7}
    assert keras_is_identity_when_predicting("RandomZoom", config, x)
    layer = built(L.RandomZoom(**config), (7, 9, 2))
    y = training_output(layer, x, 5)
    p = drawn_params(layer, 3, 7, 9, 5)
    zooms = {"width_zoom": p[:, 0:1].copy(), "height_zoom": p[:, 4:5].copy(), "input_shape": x.shape}
    np.testing.assert_allclose(y, keras_transform("RandomZoom", config, x, zooms), rtol=1e-6, atol=1e-6)
