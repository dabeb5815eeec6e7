"""RandomFlip: Keras config and modes, flips per image, flip-back gradient, in a model, vs Keras."""

import numpy as np
import pytest
from layer_checks import analysed, check_gradients, round_trip, trains_in_sequential
from random_checks import (built, check_adjoint, check_deterministic_fit, check_training_only, fixed_randomness,
                           keras_is_identity_when_predicting, keras_transform, training_output)

from visualcnn.engine import ConfigError, layers as L


def test_keras_defaults_and_config():
    layer = L.RandomFlip()
    assert layer.get_config() == {"name": None, "trainable": True, "mode": "horizontal_and_vertical", "seed": None}
    keras_config = {"name": "random_flip", "trainable": True, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                    "config": {"name": "float32"}, "registered_name": None}, "data_format": "channels_last",
                    "seed": 3, "mode": "horizontal"}
    loaded = L.layer_from_config("RandomFlip", keras_config)
    assert loaded.config == {"mode": "horizontal", "seed": 3}
    round_trip(loaded)
    with pytest.raises(ConfigError, match="mode"):
        L.RandomFlip("diagonal")
    assert L.RandomFlip.family == "augmentation" and L.RandomFlip.starter_config == {"mode": "horizontal"}


def test_shape_as_keras_and_image_only():
    inference = L.RandomFlip().infer((None, 5, 6, 3))
    assert inference.output_shape == (None, 5, 6, 3) and inference.params == 0  # Keras 3.15.1
    assert inference.derivation[0].startswith("while training: each image is mirrored")
    with pytest.raises(ConfigError, match="image"):
        L.RandomFlip().infer((None, 10))


@pytest.mark.parametrize("mode,rows,cols", [("horizontal", False, True), ("vertical", True, False),
                                            ("horizontal_and_vertical", True, True)])
def test_each_image_flipped_or_not(mode, rows, cols):
    layer = built(L.RandomFlip(mode), (4, 5, 2))
    x = np.random.default_rng(0).standard_normal((40, 4, 5, 2)).astype(np.float32)
    y = training_output(layer, x, 7)
    flipped = x[:, ::-1 if rows else 1, ::-1 if cols else 1]
    was_flipped = np.array([np.array_equal(y[n], flipped[n]) for n in range(40)])
    assert all(was_flipped[n] or np.array_equal(y[n], x[n]) for n in range(40))
    assert 10 < was_flipped.sum() < 30  # probability 1/2 per image


def test_training_only_gradients_and_adjoint():
    x = np.random.default_rng(1).standard_normal((6, 3, 4, 2)).astype(np.float32)
    for mode in ("horizontal", "vertical", "horizontal_and_vertical"):
        layer = built(L.RandomFlip(mode), (3, 4, 2))
        check_training_only(layer, x)
        check_adjoint(layer, x)
        check_gradients(fixed_randomness(built(L.RandomFlip(mode), (3, 4, 2))), x)


def test_in_a_model_and_the_analysis():
    model = trains_in_sequential([L.RandomFlip()])
    assert model.layers[1].buffer_values((None, 8, 8, 4), (None, 8, 8, 4), training=False) == 0
    report = analysed((8, 8, 1), [L.RandomFlip("horizontal"), L.Conv2D(2, 3), L.Flatten(), L.Dense(2)])
    assert report.rows[0].inference.field.size == (1, 1)
    check_deterministic_fit(lambda: L.RandomFlip())


@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_live_keras_same_flips_same_images(mode):
    x = np.random.default_rng(2).standard_normal((5, 4, 6, 3)).astype(np.float32)
    assert keras_is_identity_when_predicting("RandomFlip", {"mode": mode}, x)
    layer = built(L.RandomFlip(mode), (4, 6, 3))
    y = training_output(layer, x, 9)
    layer.reseed(9)
    flips = (layer._rng.random(5) <= 0.5).reshape(5, 1, 1, 1)  # the draw forward makes
    np.testing.assert_array_equal(y, keras_transform("RandomFlip", {"mode": mode}, x, {"flips": flips}))
