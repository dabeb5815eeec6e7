"""SpatialDropout2D: Keras config, whole feature maps dropped, gradients, in a model."""

import numpy as np
import pytest
from layer_checks import analysed, check_gradients, keras_shape_and_params, round_trip, trains_in_sequential
from random_checks import (built, check_adjoint, check_deterministic_fit, check_training_only, fixed_randomness,
                           keras_is_identity_when_predicting, training_output)

from visualcnn.engine import ConfigError, layers as L


def test_keras_defaults_and_config():
    layer = L.SpatialDropout2D(0.3)
    # Keras's SpatialDropout2D config has no `trainable` (its __init__ would refuse it)
    assert layer.get_config() == {"name": None, "rate": 0.3, "seed": None}
    keras_config = {"rate": 0.3, "seed": 5, "name": "spatial_dropout2d", "dtype": "float32",
                    "data_format": "channels_last"}
    loaded = L.layer_from_config("SpatialDropout2D", keras_config)
    assert loaded.config == {"rate": 0.3, "seed": 5} and loaded.name == "spatial_dropout2d"
    round_trip(loaded)
    round_trip(L.SpatialDropout2D(0.5, name="sd"))
    with pytest.raises(ConfigError, match="data_format"):
        L.layer_from_config("SpatialDropout2D", {**keras_config, "data_format": "channels_first"})
    with pytest.raises(ConfigError, match="rate"):
        L.SpatialDropout2D(1.0)
    assert L.SpatialDropout2D.family == "regularisation" and L.SpatialDropout2D.starter_config["rate"] > 0


def test_shape_as_keras_and_image_only():
    inference = L.SpatialDropout2D(0.3).infer((None, 5, 6, 8))
    assert inference.output_shape == (None, 5, 6, 8) and inference.params == 0  # Keras 3.15.1
    assert any("feature map" in line for line in inference.derivation)
    with pytest.raises(ConfigError, match="image"):
        L.SpatialDropout2D(0.3).infer((None, 10))


def test_drops_whole_feature_maps_scaled():
    layer = built(L.SpatialDropout2D(0.25), (6, 5, 40))
    x = np.random.default_rng(0).uniform(1, 2, (30, 6, 5, 40)).astype(np.float32)
    y = training_output(layer, x, 3)
    dropped = (y == 0).all(axis=(1, 2))  # (N, C)
    kept = ~dropped
    np.testing.assert_allclose(y.transpose(0, 3, 1, 2)[kept], (x / 0.75).transpose(0, 3, 1, 2)[kept], rtol=1e-6)
    assert ((y == 0) == dropped[:, None, None, :]).all()  # never part of a map
    assert 0.2 < dropped.mean() < 0.3


def test_training_only_gradients_and_adjoint():
    x = np.random.default_rng(1).standard_normal((4, 3, 5, 6)).astype(np.float32)
    layer = built(L.SpatialDropout2D(0.4), (3, 5, 6))
    check_training_only(layer, x)
    check_adjoint(layer, x)
    check_gradients(fixed_randomness(built(L.SpatialDropout2D(0.4), (3, 5, 6))), x)


def test_memory_is_y_and_dx_in_training_only():
    layer = L.SpatialDropout2D(0.3)
    assert layer.buffer_values((None, 4, 4, 2), (None, 4, 4, 2), training=True) == 64
    assert layer.buffer_values((None, 4, 4, 2), (None, 4, 4, 2), training=False) == 0


def test_in_a_model_and_the_analysis():
    trains_in_sequential([L.SpatialDropout2D(0.3)])
    report = analysed((8, 8, 1), [L.Conv2D(4, 3), L.SpatialDropout2D(0.3), L.Flatten(), L.Dense(2)])
    assert report.rows[1].inference.output_shape == (None, 6, 6, 4)
    assert report.rows[1].inference.field == report.rows[0].inference.field
    check_deterministic_fit(lambda: L.SpatialDropout2D(0.5))


def test_live_keras_shapes_and_identity_when_predicting():
    assert keras_shape_and_params("SpatialDropout2D", {"rate": 0.3}, (5, 6, 8)) == ((None, 5, 6, 8), 0)
    x = np.random.default_rng(2).standard_normal((2, 5, 6, 8)).astype(np.float32)
    assert keras_is_identity_when_predicting("SpatialDropout2D", {"rate": 0.3}, x)
